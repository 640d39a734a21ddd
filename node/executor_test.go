package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// submitted records what an executor submits.
type submitted struct {
	mu      sync.Mutex
	entries []ledger.Entry
}

func (s *submitted) submit(e ledger.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, e)
	return nil
}

func (s *submitted) all() []ledger.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ledger.Entry(nil), s.entries...)
}

func testExecutor(t *testing.T) (*Executor, *submitted, *ledger.PrivateKey) {
	t.Helper()
	val := key(t, 1)
	g := &ledger.Genesis{ChainID: "test-chain", Time: 1, Validators: []ledger.GenesisValidator{{Address: val.Address()}},
		Params: ledger.DefaultParams()}
	m, err := ledger.NewMachine(g)
	if err != nil {
		t.Fatal(err)
	}
	sub := new(submitted)
	x := NewExecutor(context.Background(), m, taskrt.NewRegistry(), val, sub.submit, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return x, sub, val
}

// decodeAttestations returns the attestations an entry holds and checks
// that they are signed by key.
func decodeAttestations(t *testing.T, e ledger.Entry, key *ledger.PrivateKey) []*ledger.Attestation {
	t.Helper()
	body, err := e.Decode()
	if err != nil {
		t.Fatal(err)
	}
	switch b := body.(type) {
	case *ledger.Attestation:
		if err := b.Verify("test-chain"); err != nil || b.Executor != key.Address() {
			t.Fatalf("attestation not signed by the executor: %v", err)
		}
		return []*ledger.Attestation{b}
	case *ledger.AttestationBatch:
		if err := b.Verify("test-chain"); err != nil || b.Executor != key.Address() {
			t.Fatalf("batch not signed by the executor: %v", err)
		}
		out := make([]*ledger.Attestation, len(b.Items))
		for i := range b.Items {
			out[i] = b.Attestation(i)
		}
		return out
	}
	t.Fatalf("submitted a %s entry", e.Kind)
	return nil
}

func attestation(task string) *ledger.Attestation {
	return &ledger.Attestation{Task: task, Attempts: 1, Output: []byte(`{}`)}
}

// Runs that end while others are going wait for them and are signed as
// one batch; none waits long for a run that does not end.
func TestExecutorBatchesWhatFinishesTogether(t *testing.T) {
	x, sub, val := testExecutor(t)

	// Three runs going; the last one to end flushes all three at once,
	// however long the others took.
	x.linger = time.Hour
	x.inflight = 3
	x.finish(attestation("a"))
	x.finish(attestation("b"))
	x.finish(nil) // a run that attests nothing (shut down, deadline)
	got := sub.all()
	if len(got) != 1 || got[0].Kind != ledger.KindAttestations {
		t.Fatalf("submitted %d entries (first %v), want one batch", len(got), kindOf(got))
	}
	if as := decodeAttestations(t, got[0], val); len(as) != 2 || as[0].Task != "a" || as[1].Task != "b" {
		t.Fatalf("batch holds %d attestations, want a and b in order", len(as))
	}

	// One ends while another goes on: it is signed alone after the linger,
	// without waiting for the other.
	x.linger = time.Millisecond
	x.inflight = 2
	x.finish(attestation("c"))
	deadline := time.Now().Add(5 * time.Second)
	for len(sub.all()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got = sub.all()
	if len(got) != 2 || got[1].Kind != ledger.KindAttestation {
		t.Fatalf("after the linger: %d entries %v, want c alone as an attestation", len(got), kindOf(got))
	}
	if as := decodeAttestations(t, got[1], val); as[0].Task != "c" {
		t.Fatalf("signed %q, want c", as[0].Task)
	}
	x.finish(attestation("d")) // the last run going: flushed at once
	if got = sub.all(); len(got) != 3 || decodeAttestations(t, got[2], val)[0].Task != "d" {
		t.Fatalf("the last run: %d entries, want d alone", len(got))
	}

	// More than a batch holds goes as several batches, in order.
	x.linger = time.Hour
	x.inflight = maxBatchItems + 10
	for range maxBatchItems + 10 {
		x.finish(attestation("e"))
	}
	got = sub.all()[3:]
	n := 0
	for _, e := range got {
		n += len(decodeAttestations(t, e, val))
	}
	if len(got) != 2 || n != maxBatchItems+10 {
		t.Fatalf("%d attestations in %d entries, want %d in 2", n, len(got), maxBatchItems+10)
	}
	if x.inflight != 0 || len(x.pending) != 0 {
		t.Fatalf("left %d runs and %d attestations pending", x.inflight, len(x.pending))
	}
}

func kindOf(es []ledger.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Kind.String())
	}
	return out
}

// A batch whose rules may cost more than max_block_rule_cost is invalid,
// so the executor splits what finishes together by the rules' worst-case
// costs; a rule over the whole budget goes alone.
func TestExecutorSplitsBatchesByRuleCost(t *testing.T) {
	x, sub, val := testExecutor(t)
	budget := x.machine.Genesis().Params.BlockRuleCost()
	x.linger = time.Hour
	costs := []uint64{budget / 2, budget / 2, 1, budget + 1, 0, budget}
	x.inflight = len(costs)
	for i, c := range costs {
		x.finishCost(attestation(fmt.Sprintf("t%d", i)), c)
	}
	var sizes []int
	for _, e := range sub.all() {
		sizes = append(sizes, len(decodeAttestations(t, e, val)))
	}
	// {t0, t1} fill the budget, t2 starts a batch that t3 cannot join, t3
	// is alone, t4 (a rollback, say) and t5 fit together.
	if want := []int{2, 1, 1, 2}; !slices.Equal(sizes, want) {
		t.Errorf("entries of %v attestations, want %v", sizes, want)
	}
}
