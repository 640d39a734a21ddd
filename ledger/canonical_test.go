package ledger

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// TestClientEncodingIsCanonical: what `sagachain submit` signs (the file
// loaded with --input overrides, then json.Marshal) must pass the
// machine's canonical rule, for every example operation and awkward
// input values; otherwise the rule would refuse honest clients.
func TestClientEncodingIsCanonical(t *testing.T) {
	files, err := filepath.Glob("../testnet/ops/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example operations: %v", err)
	}
	inputs := []map[string]any{nil, {"traveler": "Ada <b>&</b> \u2028 é"}, {"traveler": 1.5}, {"traveler": int64(1) << 62},
		{"traveler": map[string]any{"z": []any{true, nil, 1e21}, "a": "x"}}}
	loaded := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			op, err := taskrt.Load(data, in, taskrt.DefaultLimits())
			if err != nil {
				continue // an override the file has no label for
			}
			loaded++
			raw, err := json.Marshal(op)
			if err != nil {
				t.Fatal(err)
			}
			again, err := taskrt.Load(raw, nil, taskrt.DefaultLimits())
			if err != nil {
				t.Fatalf("%s: the client's encoding does not load: %v", f, err)
			}
			if err := CanonicalOperation(raw, again); err != nil {
				t.Errorf("%s with inputs %v: %v", filepath.Base(f), in, err)
			}
		}
	}
	if loaded <= len(files) {
		t.Fatalf("only %d loads for %d files: the overrides were never applied", loaded, len(files))
	}
}

// TestCanonicalRefusals names the rule for what is not canonical.
func TestCanonicalRefusals(t *testing.T) {
	for _, b := range []string{`{"x": 1}`, `{"b":1,"a":2}`, `{"a":1,"a":2}`, "{\"a\":\"\xff\"}", `{"a":"<"}`, `{"a":1} `, `{"a":1}{}`, ``} {
		if err := CanonicalJSON([]byte(b)); !errors.Is(err, ErrNotCanonical) {
			t.Errorf("%q: got %v, want ErrNotCanonical", b, err)
		}
	}
	for _, b := range []string{`{"a":1,"b":[true,null,"\u003c"]}`, `123456789012345678901234567890`, `{}`} {
		if err := CanonicalJSON([]byte(b)); err != nil {
			t.Errorf("%q: %v", b, err)
		}
	}
	yaml := "name: one\ntasks:\n  - {id: a, run: echo}\n"
	op, err := taskrt.Load([]byte(yaml), nil, taskrt.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if err := CanonicalOperation([]byte(yaml), op); !errors.Is(err, ErrNotCanonical) || !strings.Contains(err.Error(), "operation must be canonical JSON") {
		t.Errorf("YAML operation: got %v", err)
	}
}

// TestAuthenticateRefusesWhatCannotBeStored: gossip's state-free check
// refuses a YAML operation and a non-canonical output, so they are neither
// forwarded nor left waiting in a mempool.
func TestAuthenticateRefusesWhatCannotBeStored(t *testing.T) {
	c := newStoreChain(t)
	s := &Submission{Operation: []byte("name: one\ntasks:\n  - {id: a, run: echo}\n"), Nonce: 1}
	if err := s.Sign(c.user, "test-chain"); err != nil {
		t.Fatal(err)
	}
	se, _ := NewEntry(KindSubmission, s)
	if err := c.m.Authenticate(se); !errors.Is(err, ErrNotCanonical) {
		t.Errorf("YAML submission: got %v, want ErrNotCanonical", err)
	}
	a := &Attestation{Operation: Hash{1}, Task: "a", Attempts: 1, Output: []byte(`{"x": 1}`)}
	if err := a.Sign(c.val, "test-chain"); err != nil {
		t.Fatal(err)
	}
	ae, _ := NewEntry(KindAttestation, a)
	if err := c.m.Authenticate(ae); !errors.Is(err, ErrNotCanonical) {
		t.Errorf("attestation with a spaced output: got %v, want ErrNotCanonical", err)
	}
}
