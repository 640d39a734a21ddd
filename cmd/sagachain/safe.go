package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// printable returns s as it may be shown to a person inside one line:
// every character a terminal would act on rather than show (ESC, BEL, CR,
// newlines, other C0 and C1 controls, DEL, Unicode format characters such
// as bidirectional overrides) and every byte that is not UTF-8 is written
// as a Go escape (\x1b, \r, \u202e), so that text recorded by anyone (a
// function's error, an output, a name) can neither drive the terminal nor
// fake a line of its own. Printable Unicode (✓ ▶ é …) is kept.
//
// The JSON output is not passed through printable, as it must keep the
// exact strings: encoding/json escapes the C0 controls itself, and
// escapeJSON the characters it leaves raw.
func printable(s string) string { return escape(s, false) }

// printableText is printable for text of several lines composed by the
// command (op get, chain block, an error): newlines and tabs, which are the
// command's own layout, are kept; everything else is escaped as printable
// does.
func printableText(s string) string { return escape(s, true) }

func escape(s string, keepLayout bool) string {
	plain := func(r rune) bool {
		return r != utf8.RuneError && (r == ' ' || unicode.IsPrint(r) || keepLayout && (r == '\n' || r == '\t'))
	}
	clean := true
	for _, r := range s {
		if !plain(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case plain(r):
			b.WriteString(s[i : i+size])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < utf8.RuneSelf:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

// escapeJSON writes as \u escapes the characters of encoded JSON that
// encoding/json leaves raw although a terminal acts on them: DEL, the C1
// controls (U+0080 to U+009F, of which U+009B starts a sequence as ESC [
// does) and Unicode format characters (bidirectional overrides). Outside
// its strings JSON is ASCII without DEL, so every such character is inside
// a string, where an escape decodes to the same character: the recorded
// strings are kept exactly.
func escapeJSON(b []byte) []byte {
	act := func(r rune) bool { return r == 0x7f || r >= 0x80 && r < 0xa0 || unicode.Is(unicode.Cf, r) }
	if !strings.ContainsFunc(string(b), act) {
		return b
	}
	out := make([]byte, 0, len(b)+64)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case !act(r):
			out = append(out, b[i:i+size]...)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += size
	}
	return out
}
