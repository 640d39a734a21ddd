package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// TestExecutorRetriedRollbackIsNotAReplay: the ledger refuses an entry it
// has committed (issue #10), and signatures are deterministic, so an
// executor attesting a retried rollback that fails exactly as before
// would sign the committed entry again and be refused. It counts rollback
// attempts across retries, so its second attestation is a new entry that
// the ledger applies.
func TestExecutorRetriedRollbackIsNotAReplay(t *testing.T) {
	val, user := key(t, 1), key(t, 2)
	g := &ledger.Genesis{ChainID: "test-chain", Time: 1, Validators: []ledger.GenesisValidator{{Address: val.Address()}},
		Submitters: []ledger.Address{user.Address()}, Params: ledger.DefaultParams()}
	m, err := ledger.NewMachine(g)
	if err != nil {
		t.Fatal(err)
	}
	st, height := ledger.NewMemState(), uint64(0)
	apply := func(es ...ledger.Entry) {
		t.Helper()
		height++
		ctx := ledger.Context{Height: height, Time: 1 + 10*height}
		ov := ledger.NewOverlay(st)
		for _, e := range es {
			if _, err := m.Try(ov, ctx, e, nil); err != nil {
				t.Fatalf("block %d: %s: %v", height, e.Kind, err)
			}
		}
		st.CommitOverlay(ov)
	}
	raw := canonicalOp(t, []byte(`
name: stuck
defaults: {retry: {attempts: 1, backoff: 1ms}}
tasks:
  - {id: a, run: echo, rollback: fail, outputs: [x]}
  - {id: d, run: fail, rollback: noop, inputs: [x], outputs: [w]}
`))
	s := &ledger.Submission{Operation: raw, Nonce: 1}
	if err := s.Sign(user, g.ChainID); err != nil {
		t.Fatal(err)
	}
	se, _ := ledger.NewEntry(ledger.KindSubmission, s)
	apply(se)
	id := se.Hash()

	sub := new(submitted)
	x := NewExecutor(context.Background(), m, taskrt.NewRegistry(), val, sub.submit, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// run lets the executor do what the record asks and applies what it
	// attests, one block per round, until nothing more comes.
	var rollbacks []ledger.Entry
	run := func() {
		t.Helper()
		for round := 0; round < 10; round++ {
			r, err := st.Operation(id)
			if err != nil {
				t.Fatal(err)
			}
			before := len(sub.all())
			x.Consider([]*ledger.OpRecord{r})
			x.Wait()
			got := sub.all()[before:]
			if len(got) == 0 {
				return
			}
			for _, e := range got {
				for _, a := range decodeAttestations(t, e, val) {
					if a.Rollback && a.Task == "a" {
						rollbacks = append(rollbacks, e)
					}
				}
			}
			apply(got...)
		}
	}
	run()
	if r, _ := st.Operation(id); r.Saga.Status != taskrt.OpRollbackFailed || len(rollbacks) != 1 {
		t.Fatalf("status %s after %d rollback attestations of a, want rollback_failed after 1", r.Saga.Status, len(rollbacks))
	}
	retry := &ledger.Retry{Operation: id, Nonce: 1}
	if err := retry.Sign(user, g.ChainID); err != nil {
		t.Fatal(err)
	}
	re, _ := ledger.NewEntry(ledger.KindRetry, retry)
	apply(re)
	run()
	if len(rollbacks) != 2 {
		t.Fatalf("%d rollback attestations of a, want 2", len(rollbacks))
	}
	if rollbacks[0].Hash() == rollbacks[1].Hash() {
		t.Fatal("the retried rollback's attestation is the committed one again")
	}
	r, _ := st.Operation(id)
	if r.Saga.Status != taskrt.OpRollbackFailed {
		t.Fatalf("status %s, want rollback_failed again", r.Saga.Status)
	}
	ctx := ledger.Context{Height: height + 1, Time: 1 + 10*(height+1)}
	if err := m.Check(st, ctx, rollbacks[0]); !errors.Is(err, ledger.ErrReplay) {
		t.Fatalf("the first rollback attestation again: %v, want ErrReplay", err)
	}
}
