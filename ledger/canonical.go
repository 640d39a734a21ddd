package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/sagachain/sagachain/taskrt"
)

// ErrNotCanonical reports bytes that are not the canonical JSON the ledger
// stores: what the state machine admits is kept in the store as JSON, so
// anything that would not survive encoding and decoding byte for byte is
// refused at admission rather than failing the commit of every node.
var ErrNotCanonical = errors.New("not canonical JSON")

// ErrNotUTF8 reports a string a signer made that is not valid UTF-8: the
// store keeps it as JSON, which would replace the invalid bytes, so a node
// reading it back from disk would hold other bytes than one that kept it in
// memory.
var ErrNotUTF8 = errors.New("not valid UTF-8")

// CanonicalJSON checks that b is JSON in the one form encoding/json
// produces for it: a single value, no spaces, object keys sorted and not
// repeated, strings valid UTF-8 and escaped as json.Marshal escapes them
// (numbers keep their literal form). It decodes, re-encodes and compares.
func CanonicalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // re-encodes a number's literal exactly, however large
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%w: does not decode: %v", ErrNotCanonical, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the first value", ErrNotCanonical)
	}
	re, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: does not encode: %v", ErrNotCanonical, err)
	}
	if !bytes.Equal(re, b) {
		return fmt.Errorf("%w: differs from its re-encoding at byte %d (spaces, key order, repeated keys, escapes or invalid UTF-8)", ErrNotCanonical, firstDiff(re, b))
	}
	return nil
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// CanonicalOperation checks that raw is the operation file as the ledger
// records it: exactly the bytes that encoding op, the operation parsed from
// raw, with json.Marshal gives (the schema's field order, then sorted map
// keys), which is what `sagachain submit` signs. YAML, a JSON file with
// other spacing or key order, or JSON with fields the schema does not keep
// are refused, naming the rule.
func CanonicalOperation(raw []byte, op *taskrt.Operation) error {
	if !json.Valid(raw) {
		return fmt.Errorf("operation must be canonical JSON (as sagachain submit encodes it): %w: it is not JSON", ErrNotCanonical)
	}
	re, err := json.Marshal(op)
	if err != nil {
		return fmt.Errorf("operation must be canonical JSON: %w: the parsed operation does not encode: %v", ErrNotCanonical, err)
	}
	if !bytes.Equal(re, raw) {
		return fmt.Errorf("operation must be canonical JSON (as sagachain submit encodes it): %w: differs from the encoding of the parsed operation at byte %d", ErrNotCanonical, firstDiff(re, raw))
	}
	return nil
}

// checkAttestationData checks what of an attestation the store keeps: its
// output, when there is one, must be canonical JSON, and its error and task
// valid UTF-8.
func checkAttestationData(task string, output []byte, errText string) error {
	if !utf8.ValidString(task) {
		return fmt.Errorf("attestation task name: %w", ErrNotUTF8)
	}
	if !utf8.ValidString(errText) {
		return fmt.Errorf("attestation of task %q: error text: %w", task, ErrNotUTF8)
	}
	if len(output) > 0 {
		if err := CanonicalJSON(output); err != nil {
			return fmt.Errorf("attestation of task %q: output must be canonical JSON: %w", task, err)
		}
	}
	return nil
}
