package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/p2p"
)

// submissionEntry is a submission of a one-task operation, signed by k.
func submissionEntry(t *testing.T, k *ledger.PrivateKey, chainID string, nonce uint64) ledger.Entry {
	t.Helper()
	op, _ := json.Marshal(map[string]any{"name": "x", "tasks": []any{map[string]any{"id": "a", "run": "echo"}}})
	s := &ledger.Submission{Operation: op, Nonce: nonce}
	if err := s.Sign(k, chainID); err != nil {
		t.Fatal(err)
	}
	e, err := ledger.NewEntry(ledger.KindSubmission, s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func encodeEntries(t *testing.T, es ...ledger.Entry) []byte {
	t.Helper()
	raw := make([]rlp.RawValue, len(es))
	for i := range es {
		b, err := rlp.EncodeToBytes(&es[i])
		if err != nil {
			t.Fatal(err)
		}
		raw[i] = b
	}
	b, err := encodeEntryBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEntryBatchRoundTrip(t *testing.T) {
	user := key(t, 2)
	es := []ledger.Entry{submissionEntry(t, user, "c", 1), submissionEntry(t, user, "c", 2)}
	got, err := decodeEntryBatch(encodeEntries(t, es...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Hash() != es[0].Hash() || got[1].Hash() != es[1].Hash() {
		t.Fatalf("decoded %d entries, want the 2 encoded in order", len(got))
	}
	empty, _ := rlp.EncodeToBytes([]rlp.RawValue{})
	one, _ := rlp.EncodeToBytes(&es[0]) // an entry alone is not a batch
	for name, data := range map[string][]byte{"empty": empty, "entry": one, "garbage": []byte("\xff\x01")} {
		if _, err := decodeEntryBatch(data); err == nil {
			t.Errorf("%s: decoded, want an error", name)
		}
	}
}

func TestOutboxTakeBoundsABatch(t *testing.T) {
	o := newOutbox()
	for i := range maxBatchEntries + 3 {
		o.add(fmt.Appendf(nil, "%d", i))
	}
	if got := len(o.take()); got != maxBatchEntries {
		t.Fatalf("first batch has %d entries, want %d", got, maxBatchEntries)
	}
	if got := o.take(); len(got) != 3 || string(got[0]) != fmt.Sprint(maxBatchEntries) {
		t.Fatalf("second batch = %v, want the 3 left in order", got)
	}
	if got := o.take(); got != nil {
		t.Fatalf("empty outbox gave %v", got)
	}
	// By size: two halves and a byte do not fit one batch; one entry over
	// the limit still goes, alone.
	half := maxBatchBytes / 2
	o.add(make([]byte, half))
	o.add(make([]byte, half+1))
	o.add(make([]byte, maxBatchBytes+1))
	o.add([]byte{1})
	for i, want := range []int{1, 1, 1, 1} {
		if got := len(o.take()); got != want {
			t.Fatalf("batch %d has %d entries, want %d", i, got, want)
		}
	}
}

func TestOutboxRunSendsEverythingInOrder(t *testing.T) {
	o := newOutbox()
	ctx, cancel := context.WithCancel(context.Background())
	batches := make(chan []rlp.RawValue, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.run(ctx, func(b []rlp.RawValue) { batches <- b })
	}()
	const n = 300
	for i := range n {
		o.add(fmt.Appendf(nil, "%d", i))
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // let some batches go out alone
		}
	}
	var got []string
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case b := <-batches:
			if len(b) == 0 {
				t.Fatal("sent an empty batch")
			}
			for _, r := range b {
				got = append(got, string(r))
			}
		case <-deadline:
			t.Fatalf("sent %d of %d entries", len(got), n)
		}
	}
	for i, s := range got {
		if s != fmt.Sprint(i) {
			t.Fatalf("entry %d sent as %q: order lost", i, s)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

// A batch is accepted only when every new entry in it is authentic, and
// ignored when the node holds them all.
func TestValidateEntryBatch(t *testing.T) {
	n, user := newIdleNode(t)
	g, stranger := n.Genesis(), key(t, 9)
	p := &p2pNetwork{n: n, self: peer.ID("self")}
	good1, good2 := submissionEntry(t, user, g.ChainID, 1), submissionEntry(t, user, g.ChainID, 2)
	forged := submissionEntry(t, stranger, g.ChainID, 3)
	other := submissionEntry(t, user, "other-chain", 4)
	from := peer.ID("peer")
	for _, c := range []struct {
		name string
		data []byte
		want p2p.Verdict
	}{
		{"authentic", encodeEntries(t, good1, good2), p2p.Accept},
		{"one by a stranger", encodeEntries(t, good1, forged, good2), p2p.Reject},
		{"one for another chain", encodeEntries(t, other, good2), p2p.Reject},
		{"not a batch", bytes.Repeat([]byte{0xc0}, 3), p2p.Reject},
	} {
		if got := p.validateEntry(from, c.data); got != c.want {
			t.Errorf("%s: verdict %v, want %v", c.name, got, c.want)
		}
	}
	if err := n.mempool.Add(good1, 0); err != nil {
		t.Fatal(err)
	}
	if got := p.validateEntry(from, encodeEntries(t, good1)); got != p2p.Ignore {
		t.Errorf("a batch the mempool holds: verdict %v, want Ignore", got)
	}
	if got := p.validateEntry(from, encodeEntries(t, good1, forged)); got != p2p.Reject {
		t.Errorf("a held entry and a forged one: verdict %v, want Reject", got)
	}
	// What is accepted is queued, every entry of it.
	p.onEntry(from, encodeEntries(t, good1, good2))
	for i, e := range []ledger.Entry{good1, good2} {
		if !n.mempool.Has(e.Hash()) {
			t.Errorf("entry %d of a delivered batch is not in the mempool", i)
		}
	}
	if slices.ContainsFunc(n.mempool.All(), func(q Queued) bool { return q.Entry.Hash() == forged.Hash() }) {
		t.Error("the forged entry reached the mempool")
	}
}
