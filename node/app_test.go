package node

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// TestBuiltHereTrustsOnlyTheBuiltEntries checks the shortcut that spares
// a proposer re-checking its own block: a copy by value (what consensus
// keeps) qualifies; the same signed header carrying entries that arrived
// from elsewhere, even equal ones, does not.
func TestBuiltHereTrustsOnlyTheBuiltEntries(t *testing.T) {
	k := key(t, 1)
	e, err := ledger.NewEntry(ledger.KindTimeout, &ledger.Timeout{Operation: ledger.Hash{1}, Task: "a"})
	if err != nil {
		t.Fatal(err)
	}
	built, err := ledger.NewBlock(k, "c", 1, 0, 1000, ledger.Hash{}, ledger.Hash{}, ledger.Commit{}, []ledger.Entry{e})
	if err != nil {
		t.Fatal(err)
	}
	copied := *built
	if !builtHere(built, &copied) {
		t.Error("a copy by value of the built block is not recognised")
	}
	raw, err := rlp.EncodeToBytes(built)
	if err != nil {
		t.Fatal(err)
	}
	var decoded ledger.Block
	if err := rlp.DecodeBytes(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	if builtHere(built, &decoded) {
		t.Error("a block decoded from the wire counts as built here")
	}
	forged := *built
	other, _ := ledger.NewEntry(ledger.KindTimeout, &ledger.Timeout{Operation: ledger.Hash{2}, Task: "a"})
	forged.Entries = []ledger.Entry{other}
	if builtHere(built, &forged) {
		t.Error("the built header with other entries counts as built here")
	}
	if builtHere(nil, &copied) {
		t.Error("no built block counts as built here")
	}
}

// consensus.max_block_entries caps the blocks this node proposes, and the
// rest of the mempool waits for the next block. On a2a74ac the key was
// checked and documented but never read: the block took all three.
func TestProposedBlocksHoldAtMostMaxBlockEntries(t *testing.T) {
	g, cfg, val, user := oneValidator(t)
	cfg.Consensus.MaxBlockEntries = 2
	n, err := New(Options{Config: cfg, Genesis: g, Key: val, InMemory: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.store.Close() })
	op, err := json.Marshal(map[string]any{"name": "capped", "tasks": []any{map[string]any{"id": "a", "run": "noop"}}})
	if err != nil {
		t.Fatal(err)
	}
	for nonce := range uint64(3) {
		s := &ledger.Submission{Operation: op, Nonce: nonce}
		if err := s.Sign(user, g.ChainID); err != nil {
			t.Fatal(err)
		}
		e, err := ledger.NewEntry(ledger.KindSubmission, s)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.queue(e); err != nil {
			t.Fatalf("submission %d: %v", nonce, err)
		}
	}
	b, err := n.app.ProposeBlock(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Entries) != 2 {
		t.Fatalf("proposed %d entries, want consensus.max_block_entries = 2", len(b.Entries))
	}
	if n.mempool.Len() != 3 {
		t.Fatalf("mempool holds %d entries, want all 3 until a block commits them", n.mempool.Len())
	}
}

// commitAlone commits b as a one-validator network does: the validator's
// own precommit is the certificate.
func commitAlone(t *testing.T, n *Node, val *ledger.PrivateKey, b *ledger.Block) {
	t.Helper()
	v := ledger.Vote{Type: ledger.Precommit, Height: b.Header.Height, Round: b.Header.Round, BlockHash: b.Hash()}
	if err := v.Sign(val, n.machine.Genesis().ChainID); err != nil {
		t.Fatal(err)
	}
	c := &ledger.Commit{Height: v.Height, Round: v.Round, BlockHash: v.BlockHash,
		Signatures: []ledger.CommitSig{{Validator: v.Validator, Signature: v.Signature}}}
	if _, _, err := n.app.CommitBlock(b, c, nil); err != nil {
		t.Fatalf("commit block %d: %v", b.Header.Height, err)
	}
}

// A task's attestation waiting in the mempool when its deadline passes
// wins over the timeout: the proposer puts the attestation in the block
// and no timeout. On a2a74ac the proposer put the due timeout first, so
// the block timed the task out and rolled the operation back although its
// attestation had arrived.
func TestProposerPrefersAnAttestationOverItsTimeout(t *testing.T) {
	g, cfg, val, user := oneValidator(t)
	now := time.UnixMilli(1_700_000_000_000)
	n, err := New(Options{Config: cfg, Genesis: g, Key: val, InMemory: true, Now: func() time.Time { return now },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.store.Close() })
	op := canonicalOp(t, []byte(`{"name":"late","tasks":[{"id":"a","run":"echo","outputs":["x"],"timeout":"1s"}]}`))
	s := &ledger.Submission{Operation: op, Nonce: 1}
	if err := s.Sign(user, g.ChainID); err != nil {
		t.Fatal(err)
	}
	sub, err := ledger.NewEntry(ledger.KindSubmission, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.queue(sub); err != nil {
		t.Fatal(err)
	}
	b1, err := n.app.ProposeBlock(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	commitAlone(t, n, val, b1)

	a := &ledger.Attestation{Operation: sub.Hash(), Task: "a", Attempts: 1, Output: []byte(`{"x":"a.x"}`)}
	if err := a.Sign(val, g.ChainID); err != nil {
		t.Fatal(err)
	}
	att, err := ledger.NewEntry(ledger.KindAttestation, a)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.queue(att); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second) // past the task's deadline
	b2, err := n.app.ProposeBlock(2, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range b2.Entries {
		kinds = append(kinds, e.Kind.String())
	}
	commitAlone(t, n, val, b2)
	r, err := n.store.Operation(sub.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if r.Saga.Status != taskrt.OpCompleted {
		t.Fatalf("block 2 carries %v; operation %s, want completed: the attestation must win over the timeout", kinds, r.Saga.Status)
	}
}
