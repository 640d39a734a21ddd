package ledger

import (
	"errors"
	"strings"
	"testing"
)

// batchOf signs the attestations of entries, which c.attest made, as one
// batch by key, with extra items after them.
func batchOf(t *testing.T, key *PrivateKey, entries []Entry, extra ...AttestationItem) Entry {
	t.Helper()
	b := &AttestationBatch{}
	for _, e := range entries {
		body, err := e.Decode()
		if err != nil {
			t.Fatal(err)
		}
		b.Items = append(b.Items, ItemOf(body.(*Attestation)))
	}
	b.Items = append(b.Items, extra...)
	if err := b.Sign(key, "test-chain"); err != nil {
		t.Fatal(err)
	}
	e, err := NewEntry(KindAttestations, b)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestAttestationBatchSignature(t *testing.T) {
	key := testKey(t, 1)
	b := &AttestationBatch{Items: []AttestationItem{{Task: "a", Output: []byte(`{}`)}, {Task: "b", Error: "boom"}}}
	if err := b.Sign(key, "test-chain"); err != nil {
		t.Fatal(err)
	}
	if err := b.Verify("test-chain"); err != nil {
		t.Fatalf("Verify of a signed batch: %v", err)
	}
	if err := b.Verify("other-chain"); !errors.Is(err, ErrWrongSigner) {
		t.Errorf("batch checked on another chain: got %v, want ErrWrongSigner", err)
	}
	b.Items[1].Error = ""
	if err := b.Verify("test-chain"); !errors.Is(err, ErrWrongSigner) {
		t.Errorf("altered item: got %v, want ErrWrongSigner", err)
	}
	// A single attestation's signature over the same fields does not pass
	// for a batch of one: the domains differ.
	a := &Attestation{Task: "a", Output: []byte(`{}`)}
	if err := a.Sign(key, "test-chain"); err != nil {
		t.Fatal(err)
	}
	one := &AttestationBatch{Items: []AttestationItem{ItemOf(a)}, Executor: a.Executor, Signature: a.Signature}
	if err := one.Verify("test-chain"); !errors.Is(err, ErrWrongSigner) {
		t.Errorf("an attestation's signature on a batch: got %v, want ErrWrongSigner", err)
	}
	if err := (&AttestationBatch{Executor: key.Address()}).Verify("test-chain"); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty batch: got %v", err)
	}
	got := (&AttestationBatch{Items: []AttestationItem{ItemOf(a)}, Executor: a.Executor}).Attestation(0)
	if got.Task != "a" || string(got.Output) != `{}` || got.Executor != key.Address() {
		t.Errorf("Attestation(0) = %+v, want item a by the batch's executor", got)
	}
}

// A batch applies each item that fits, skips the rest, and is followed by
// what its items derive, in item order.
func TestMachineAppliesAttestationBatches(t *testing.T) {
	c := newTestChain(t)
	sub1, id1 := c.submit(tripYAML)
	sub2, id2 := c.submit(strings.Replace(tripYAML, "name: trip", "name: trip-two", 1))
	c.block(10, sub1, sub2)

	first := append(c.attest(id1, c.val, ok), c.attest(id2, c.val, ok)...)
	if len(first) != 4 {
		t.Fatalf("%d attestations for stage 0 of two trips, want 4", len(first))
	}
	// excursion, of the last stage, is not running even after the batch
	// releases stage 1: its item does not fit and is skipped. (An item for
	// hotel would fit, as a separate attestation after these would: items
	// apply in order, each to the state the ones before it left.)
	early := AttestationItem{Operation: id1, Task: "excursion", Attempts: 1, Output: []byte(`{"excursion":"x"}`)}
	batch := batchOf(t, c.val, first, early)
	if err := c.m.Authenticate(batch); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	entries := c.block(10, batch)
	var kinds []string
	for _, e := range entries {
		kinds = append(kinds, e.Kind.String())
	}
	if got, want := strings.Join(kinds, " "), "attestations stage_release stage_release"; got != want {
		t.Fatalf("block holds %q, want %q", got, want)
	}
	for i, id := range []Hash{id1, id2} {
		rec, _ := entries[1+i].Decode()
		if sr := rec.(*StageRecord); sr.Operation != id || sr.Stage != 1 {
			t.Errorf("derived record %d releases stage %d of %s, want stage 1 of %s", i, sr.Stage, sr.Operation, id)
		}
		if got, want := eventTypes(c.op(id)), "submitted stage_released0 task_attested0:flight task_attested0:payment stage_released1"; got != want {
			t.Errorf("op %d events %q, want %q", i, got, want)
		}
	}

	// The same batch again is a replay; the same items in another batch
	// are stale now: they fit nowhere.
	ctx := Context{Height: c.height + 1, Time: c.time + 10}
	if _, err := c.m.Try(NewOverlay(c.st), ctx, batch, nil); !errors.Is(err, ErrReplay) {
		t.Errorf("the batch again: got %v, want ErrReplay", err)
	}
	d0, _ := first[0].Decode()
	again := batchOf(t, c.val, first[1:], early, ItemOf(d0.(*Attestation)))
	if _, err := c.m.Try(NewOverlay(c.st), ctx, again, nil); err == nil || !strings.Contains(err.Error(), "none of the 5") {
		t.Errorf("the items again: got %v, want none fitting", err)
	}
	if _, err := c.m.ApplyEntries(NewOverlay(c.st), ctx, []Entry{again}); err == nil {
		t.Error("a block holding a batch that fits nowhere was accepted")
	}

	// A batch by a key that is not the executor fits nowhere either, and
	// gossip refuses it outright.
	stranger := testKey(t, 9)
	forged := batchOf(t, stranger, append(c.attest(id1, c.val, ok), c.attest(id2, c.val, ok)...))
	if _, err := c.m.Try(NewOverlay(c.st), ctx, forged, nil); !errors.Is(err, ErrNotExecutor) {
		t.Errorf("stranger's batch: got %v, want ErrNotExecutor", err)
	}
	if err := c.m.Authenticate(forged); !errors.Is(err, ErrNotValidator) {
		t.Errorf("Authenticate(stranger's batch) = %v, want ErrNotValidator", err)
	}

	// Both trips finish on batches alone.
	for n := 0; n < 10 && !(c.op(id1).Saga.Status.Final() && c.op(id2).Saga.Status.Final()); n++ {
		c.block(10, batchOf(t, c.val, append(c.attest(id1, c.val, ok), c.attest(id2, c.val, ok)...)))
	}
	for _, id := range []Hash{id1, id2} {
		if st := c.op(id).Saga.Status; st != "completed" {
			t.Errorf("op %s is %s, want completed", id, st)
		}
	}
}
