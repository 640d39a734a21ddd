package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
)

// seededReader returns a deterministic byte stream for key generation.
func seededReader(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// testKey returns a deterministic key; distinct seeds give distinct keys.
func testKey(t testing.TB, seed byte) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(seededReader(seed))
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return k
}

// secp256k1Order is the group order N as 32 big-endian bytes.
func secp256k1Order() []byte {
	return crypto.S256().Params().N.FillBytes(make([]byte, 32))
}

func TestGenerateKeyIsDeterministicInItsRandomness(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 1)
	if a.Hex() != b.Hex() {
		t.Fatalf("same seed gave different keys: %s and %s", a, b)
	}
	c := testKey(t, 2)
	if a.Hex() == c.Hex() {
		t.Fatalf("seeds 1 and 2 gave the same key %s", a)
	}
}

func TestGenerateKeyKnownAnswer(t *testing.T) {
	// The key with scalar 1 has the well-known Ethereum address below.
	one := make([]byte, 32)
	one[31] = 1
	const want = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"

	k, err := GenerateKey(bytes.NewReader(one))
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Address().Hex(); got != want {
		t.Fatalf("address of scalar 1 = %s, want %s", got, want)
	}

	// Zero and N are not scalars; GenerateKey must skip them and use the next
	// 32 bytes.
	stream := append(append(make([]byte, 32), secp256k1Order()...), one...)
	k, err = GenerateKey(bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Address().Hex(); got != want {
		t.Fatalf("after skipping zero and N: address %s, want %s", got, want)
	}
}

func TestGenerateKeyBrokenRandomness(t *testing.T) {
	if _, err := GenerateKey(bytes.NewReader(make([]byte, 1<<12))); err == nil || !strings.Contains(err.Error(), "out-of-range") {
		t.Fatalf("all-zero randomness: err = %v, want an out-of-range error", err)
	}
	if _, err := GenerateKey(bytes.NewReader(make([]byte, 10))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short randomness: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestSaveLoadKeyRoundTrip(t *testing.T) {
	k := testKey(t, 3)
	path := filepath.Join(t.TempDir(), "node.key")
	if err := k.SaveKey(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", perm)
	}
	got, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hex() != k.Hex() || got.Address() != k.Address() {
		t.Fatalf("loaded %s, saved %s", got, k)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files after SaveKey, want only the key: %v", len(entries), entries)
	}
}

func TestSaveKeyRefusesToOverwrite(t *testing.T) {
	first, second := testKey(t, 4), testKey(t, 5)
	path := filepath.Join(t.TempDir(), "node.key")
	if err := first.SaveKey(path); err != nil {
		t.Fatal(err)
	}
	err := second.SaveKey(path)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second SaveKey: err = %v, want fs.ErrExist naming %s", err, path)
	}
	got, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Address() != first.Address() {
		t.Fatalf("key file now holds %s, want the first key %s", got, first)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files after the refused save, want 1", len(entries))
	}
}

func TestLoadKeyRefusesFilesOthersCanRead(t *testing.T) {
	k := testKey(t, 6)
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o666, 0o601} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.key")
			if err := k.SaveKey(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKey(path)
			if !errors.Is(err, ErrKeyFileMode) {
				t.Fatalf("err = %v, want ErrKeyFileMode", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("%04o", mode)) {
				t.Fatalf("error %q does not name the file and its mode %04o", msg, mode)
			}
		})
	}
	// Stricter than 0600 is fine.
	path := filepath.Join(t.TempDir(), "node.key")
	if err := k.SaveKey(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path); err != nil {
		t.Fatalf("mode 0400: %v", err)
	}
}

func TestLoadKeyContents(t *testing.T) {
	valid := testKey(t, 7)
	secretish := strings.Repeat("ab", 30) + "zzab" // 64 characters, invalid at 60
	for _, tc := range []struct {
		name, content, wantErr string
	}{
		{"prefix and newline", "0x" + valid.Hex() + "\n", ""},
		{"surrounding whitespace", "  " + strings.ToUpper(valid.Hex()) + "\r\n\n", ""},
		{"empty", "", "want 64 hex digits, got 0"},
		{"short", valid.Hex()[:63], "want 64 hex digits, got 63"},
		{"long", valid.Hex() + "00", "want 64 hex digits, got 66"},
		{"bad hex", secretish, "invalid hex character at position 60"},
		{"zero", strings.Repeat("0", 64), "zero or not below"},
		{"order", fmt.Sprintf("%x", secp256k1Order()), "zero or not below"},
		{"huge", strings.Repeat("0", 1000), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.key")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := LoadKey(path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if k.Address() != valid.Address() {
					t.Fatalf("loaded %s, want %s", k, valid)
				}
				return
			}
			if err == nil {
				t.Fatalf("loaded %s from invalid content, want error %q", k, tc.wantErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantErr) || !strings.Contains(msg, path) {
				t.Fatalf("err = %q, want it to contain %q and the path", msg, tc.wantErr)
			}
			if len(tc.content) >= 8 && strings.Contains(msg, tc.content[:8]) {
				t.Fatalf("error %q repeats the key file's content", msg)
			}
		})
	}
}

func TestLoadKeyMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.key")
	if _, err := LoadKey(path); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want fs.ErrNotExist naming %s", err, path)
	}
	if _, err := LoadKey(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory as key file: err = %v, want 'not a regular file'", err)
	}
}

func TestPrivateKeyEncodings(t *testing.T) {
	k := testKey(t, 8)
	fromHex, err := ParsePrivateKeyHex("0x" + k.Hex())
	if err != nil {
		t.Fatal(err)
	}
	fromBytes, err := PrivateKeyFromBytes(k.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if fromHex.Address() != k.Address() || fromBytes.Address() != k.Address() {
		t.Fatalf("round trip changed the key: hex %s, bytes %s, want %s", fromHex, fromBytes, k)
	}
	if _, err := PrivateKeyFromBytes(k.Bytes()[:31]); err == nil || !strings.Contains(err.Error(), "want 32 bytes, got 31") {
		t.Fatalf("31 bytes: err = %v", err)
	}
}

func TestPrivateKeyFormattingHidesSecret(t *testing.T) {
	k := testKey(t, 9)
	secret := k.Hex()
	for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%x", "%q"} {
		out := fmt.Sprintf(verb, k)
		if strings.Contains(strings.ToLower(out), secret) {
			t.Fatalf("%s prints the secret: %s", verb, out)
		}
		if !strings.Contains(out, k.Address().Hex()) && verb != "%x" {
			t.Fatalf("%s = %s, want it to name the address %s", verb, out, k.Address().Hex())
		}
	}
}

func TestPublicKey(t *testing.T) {
	k := testKey(t, 10)
	pub := k.Public()
	if pub.IsZero() {
		t.Fatal("Public() is zero")
	}
	if pub.Address() != k.Address() {
		t.Fatalf("public key address %s, private key address %s", pub.Address().Hex(), k.Address().Hex())
	}
	if want := crypto.FromECDSAPub(&k.key.PublicKey); !bytes.Equal(pub.Bytes(), want) {
		t.Fatalf("Bytes() = %x, want %x", pub.Bytes(), want)
	}
	for name, enc := range map[string][]byte{"uncompressed": pub.Bytes(), "compressed": pub.Compressed()} {
		got, err := ParsePublicKey(enc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != pub {
			t.Fatalf("%s round trip gave a different key", name)
		}
	}
	if _, err := ParsePublicKey(pub.Bytes()[:64]); err == nil || !strings.Contains(err.Error(), "got 64") {
		t.Fatalf("64 bytes: err = %v", err)
	}
	offCurve := pub.Bytes()
	offCurve[64] ^= 1
	if _, err := ParsePublicKey(offCurve); err == nil || !strings.Contains(err.Error(), "not a secp256k1 point") {
		t.Fatalf("point off the curve: err = %v", err)
	}
	var zero PublicKey
	if zero.Address() != (Address{}) || zero.Bytes() != nil || zero.Compressed() != nil {
		t.Fatal("zero PublicKey must have the zero address and no encoding")
	}
}

func TestParseAddress(t *testing.T) {
	const checksummed = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
	for _, s := range []string{
		checksummed,
		strings.ToLower(checksummed),
		"0x" + strings.ToUpper(checksummed[2:]),
		checksummed[2:],
	} {
		a, err := ParseAddress(s)
		if err != nil {
			t.Fatalf("ParseAddress(%q): %v", s, err)
		}
		if a.Hex() != checksummed {
			t.Fatalf("ParseAddress(%q) = %s, want %s", s, a.Hex(), checksummed)
		}
	}
	// Flip the case of one letter: the EIP-55 checksum no longer matches.
	badSum := strings.Replace(checksummed, "E5F", "e5F", 1)
	for _, tc := range []struct{ in, want string }{
		{"", "want 40 hex digits, got 0"},
		{"0x1234", "want 40 hex digits, got 4"},
		{checksummed + "00", "want 40 hex digits, got 42"},
		{"0x7E5F4552091A69125d5DfCb7b8C2659029395Bdg", "invalid hex character at position 39"},
		{badSum, "EIP-55 checksum"},
	} {
		_, err := ParseAddress(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
			t.Fatalf("ParseAddress(%q): err = %v, want it to contain %q and the input", tc.in, err, tc.want)
		}
	}
}
