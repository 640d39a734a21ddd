package node

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/sagachain/sagachain/ledger"
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
