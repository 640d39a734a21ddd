package node

import (
	"errors"
	"testing"

	"github.com/sagachain/sagachain/ledger"
)

// pruneMempool drops what has not fitted the state for staleHeights
// blocks, keeps what fits, and looks only once every staleHeights blocks.
func TestPruneMempool(t *testing.T) {
	n, user := newIdleNode(t)
	g, val := n.Genesis(), key(t, 1)
	misfit := func(task string) ledger.Entry {
		a := &ledger.Attestation{Operation: ledger.Hash{1}, Task: task}
		if err := a.Sign(val, g.ChainID); err != nil {
			t.Fatal(err)
		}
		e, _ := ledger.NewEntry(ledger.KindAttestation, a)
		return e
	}
	fits, early, late := submissionEntry(t, user, g.ChainID, 1), misfit("early"), misfit("late")
	for _, e := range []ledger.Entry{fits, early} {
		if err := n.mempool.Add(e, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		head       uint64
		add        *ledger.Entry
		early, fit bool
	}{
		{head: 5, early: true, fit: true},                 // nothing is stale yet
		{head: staleHeights + 1, early: false, fit: true}, // looks: the misfit goes
		{head: staleHeights + 2, add: &late, fit: true},   // late arrives, at head 0 as well
		{head: 2 * staleHeights, fit: true},               // late is stale, but no look yet
		{head: 2*staleHeights + 1, fit: true},             // looks again
	} {
		if step.add != nil {
			if err := n.mempool.Add(*step.add, 0); err != nil {
				t.Fatal(err)
			}
		}
		n.pruneMempool(step.head)
		if got := n.mempool.Has(early.Hash()); got != step.early {
			t.Errorf("head %d: early misfit queued = %v, want %v", step.head, got, step.early)
		}
		if got := n.mempool.Has(fits.Hash()); got != step.fit {
			t.Errorf("head %d: fitting submission queued = %v, want %v", step.head, got, step.fit)
		}
		wantLate := step.head >= staleHeights+2 && step.head < 2*staleHeights+1
		if got := n.mempool.Has(late.Hash()); got != wantLate {
			t.Errorf("head %d: late misfit queued = %v, want %v", step.head, got, wantLate)
		}
	}
}

// A mempool told what is committed refuses those entries and never hands
// them to a proposer (issue #10: a committed Retry included again ran the
// retry again; the ledger refuses it, and the mempool drops it first).
func TestMempoolDropsCommittedEntries(t *testing.T) {
	user := key(t, 2)
	a, b, c := submissionEntry(t, user, "test", 1), submissionEntry(t, user, "test", 2), submissionEntry(t, user, "test", 3)
	mp := NewMempool(10)
	for _, e := range []ledger.Entry{a, b} {
		if err := mp.Add(e, 0); err != nil {
			t.Fatal(err)
		}
	}
	committed := map[ledger.Hash]bool{a.Hash(): true, c.Hash(): true}
	mp.DropCommitted(func(h ledger.Hash) bool { return committed[h] })
	if err := mp.Add(c, 1); !errors.Is(err, ErrCommitted) || !errors.Is(err, ledger.ErrReplay) {
		t.Fatalf("Add of a committed entry: got %v, want ErrCommitted", err)
	}
	got := mp.Pending(10)
	if len(got) != 1 || got[0].Hash() != b.Hash() {
		t.Fatalf("Pending gave %d entries, want only the uncommitted one", len(got))
	}
	if mp.Has(a.Hash()) || mp.Len() != 1 {
		t.Fatalf("the committed entry queued before is still held (len %d)", mp.Len())
	}
	// Gossip asks Known: committed and queued entries are not news.
	if !mp.Known(a.Hash()) || !mp.Known(b.Hash()) || mp.Known(submissionEntry(t, user, "test", 4).Hash()) {
		t.Fatal("Known does not cover committed and queued entries only")
	}
}
