package ledger

import (
	"errors"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// stuckOp fails its last task and then the rollback of c, so it ends
// rollback_failed while the rollback of c keeps failing.
const stuckOp = `
name: stuck
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [x]}
  - {id: c, run: echo, rollback: noop, inputs: [x], outputs: [z]}
  - {id: d, run: fail, rollback: noop, inputs: [z], outputs: [w]}
`

func stuckFails(task string, rb bool) (map[string]any, string) {
	switch {
	case task == "d" && !rb:
		return nil, "card declined"
	case task == "c" && rb:
		return nil, "hotel API returned 503"
	}
	return nil, ""
}

// TestMachineRefusesReplays includes committed entries again in later
// blocks, and twice in one block: a Retry (on a2a74ac the replay ran the
// retry again), the submission, and a rollback attestation that, replayed
// after a retry, would stand for the retried rollback's result.
func TestMachineRefusesReplays(t *testing.T) {
	c := newTestChain(t)
	sub, id := c.submit(stuckOp)
	c.block(10, sub)
	if r := c.run(id, stuckFails); r.Saga.Status != taskrt.OpRollbackFailed {
		t.Fatalf("status %s, want rollback_failed", r.Saga.Status)
	}
	// The rollback attestation of c that made it rollback_failed.
	var failed Entry
	for _, es := range c.blocks {
		for _, e := range es {
			if e.Kind == KindRollbackAttestation {
				failed = e
			}
		}
	}
	if failed.Body == nil {
		t.Fatal("no rollback attestation recorded")
	}
	retry := &Retry{Operation: id, Nonce: 1}
	if err := retry.Sign(c.user, "test-chain"); err != nil {
		t.Fatal(err)
	}
	re, _ := NewEntry(KindRetry, retry)
	next := func() Context { return Context{Height: c.height + 1, Time: c.time + 10} }

	// Twice in one block: the second is refused.
	once, err := c.m.Try(NewOverlay(c.st), next(), re, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.m.ApplyEntries(NewOverlay(c.st), next(), append(once, re)); !errors.Is(err, ErrReplay) {
		t.Errorf("a block with the retry twice: got %v, want ErrReplay", err)
	}
	c.block(10, re)
	if st := c.op(id).Saga.Status; st != taskrt.OpRollingBack {
		t.Fatalf("after the retry: %s, want rolling_back", st)
	}
	// The rollback of c runs again: the old failed attestation must not
	// count as its result.
	if _, err := c.m.Try(NewOverlay(c.st), next(), failed, nil); !errors.Is(err, ErrReplay) {
		t.Errorf("the committed rollback attestation again: got %v, want ErrReplay", err)
	}
	if r := c.run(id, stuckFails); r.Saga.Status != taskrt.OpRollbackFailed {
		t.Fatalf("status %s, want rollback_failed again (the honest second failure must apply)", r.Saga.Status)
	}
	retries := func() int {
		n := 0
		for _, e := range c.op(id).Events {
			if e.Type == taskrt.EventRollbackRetried {
				n++
			}
		}
		return n
	}
	before := retries()
	for _, e := range []Entry{re, sub} {
		if _, err := c.m.Try(NewOverlay(c.st), next(), e, nil); !errors.Is(err, ErrReplay) || !errors.Is(err, ErrDuplicate) {
			t.Errorf("the committed %s again: got %v, want ErrReplay", e.Kind, err)
		}
		if err := c.m.Check(c.st, next(), e); !errors.Is(err, ErrReplay) {
			t.Errorf("Check of the committed %s: got %v, want ErrReplay", e.Kind, err)
		}
	}
	if _, err := c.m.ApplyEntries(NewOverlay(c.st), next(), []Entry{re}); !errors.Is(err, ErrReplay) {
		t.Fatalf("a later block carrying the committed retry: got %v, want ErrReplay", err)
	}
	if got := retries(); got != before {
		t.Fatalf("retried %d times, was %d", got, before)
	}
}

// TestStoreRecordsCommittedEntries checks the store side of the rule: a
// saved block's entries are Recorded, others are not.
func TestStoreRecordsCommittedEntries(t *testing.T) {
	c := newStoreChain(t)
	sub := &Submission{Operation: []byte(`{"name":"one","tasks":[{"id":"a","run":"echo","outputs":["x"]}]}`), Nonce: 1}
	if err := sub.Sign(c.user, "test-chain"); err != nil {
		t.Fatal(err)
	}
	se, _ := NewEntry(KindSubmission, sub)
	if ok, err := c.s.Recorded(se.Hash()); err != nil || ok {
		t.Fatalf("before commit: Recorded = %v, %v", ok, err)
	}
	if !c.offer(se) {
		t.Fatal("submission refused")
	}
	if ok, err := c.s.Recorded(se.Hash()); err != nil || !ok {
		t.Fatalf("after commit: Recorded = %v, %v", ok, err)
	}
	if c.offer(se) {
		t.Fatal("the committed submission was accepted again")
	}
}
