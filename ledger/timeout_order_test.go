package ledger

import (
	"errors"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// TestAttestationWinsOverTimeoutInTheSameBlock: on a2a74ac a proposer put
// due timeouts first, so a task whose attestation was in the very block
// that recorded its timeout was timed out (issue #10). A block carrying
// both is now invalid, and DueTimeoutsFor leaves such a timeout out, so a
// proposer that puts timeouts first (as node's does) lets the task pass.
func TestAttestationWinsOverTimeoutInTheSameBlock(t *testing.T) {
	c := newTestChain(t)
	sub, id := c.submit(slowOp)
	c.block(10, sub)
	ctx := Context{Height: c.height + 1, Time: c.time + 1001}
	att := c.attestRunning(id, "a", false)

	due, err := c.m.DueTimeouts(c.st, ctx)
	if err != nil || len(due) != 1 {
		t.Fatalf("DueTimeouts: %d entries, %v; want the task's timeout", len(due), err)
	}
	// The block a2a74ac's proposer built: the timeout (and the rollback it
	// releases) first, then the attestation; build it by hand, as the
	// attestation no longer fits once the timeout applied.
	prop := NewOverlay(c.st)
	block, err := c.m.Try(prop, ctx, due[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	block = append(block, att)
	if _, err := c.m.ApplyEntries(NewOverlay(c.st), ctx, block); !errors.Is(err, ErrAttestedInBlock) {
		t.Fatalf("a block with the timeout and the attestation of one task: got %v, want ErrAttestedInBlock", err)
	}
	// The attestation first is no better: the block is just as invalid.
	if _, err := c.m.ApplyEntries(NewOverlay(c.st), ctx, append([]Entry{att}, block[:len(block)-1]...)); err == nil {
		t.Fatal("a block with the attestation and then the task's timeout was accepted")
	}

	// The proposer's way: timeouts first, but for this block's candidates.
	pending := []Entry{att}
	due, err = c.m.DueTimeoutsFor(c.st, ctx, pending)
	if err != nil || len(due) != 0 {
		t.Fatalf("DueTimeoutsFor: %d entries, %v; want none, the attestation wins", len(due), err)
	}
	c.height, c.time = ctx.Height-1, ctx.Time-1001
	c.block(1001, append(due, pending...)...)
	r := c.op(id)
	if r.Saga.Tasks[0].Outcome == taskrt.TaskTimedOut || r.Saga.Status != taskrt.OpCompleted {
		t.Fatalf("task outcome %s, operation %s; want the attested task to pass; events %s", r.Saga.Tasks[0].Outcome, r.Saga.Status, eventTypes(r))
	}
}

// TestTimeoutFirstProposerNeverBuildsAnInvalidBlock plays a proposer that
// still tries due timeouts first with plain DueTimeouts, and a batch that
// attests the timed-out task and another: the batch does not fit that
// block (a block may not carry both), so the block stays valid, and the
// next block takes the batch, skipping the stale item.
func TestTimeoutFirstProposerNeverBuildsAnInvalidBlock(t *testing.T) {
	c := newTestChain(t)
	sub, id := c.submit(`
name: pair
tasks:
  - {id: a, run: sleep, rollback: noop, outputs: [x], timeout: 1s}
  - {id: b, run: echo, rollback: noop, outputs: [y], timeout: 1h}
`)
	c.block(10, sub)
	batch := batchOf(t, c.val, []Entry{c.attestRunning(id, "a", false)},
		AttestationItem{Operation: id, Task: "b", Attempts: 1, Output: []byte(`{"y":1}`)})
	ctx := Context{Height: c.height + 1, Time: c.time + 1001}
	// a's timeout, and b's failover: the lone executor signed nothing for
	// a lease, so it is marked down (b has nowhere else to go).
	due, err := c.m.DueTimeouts(c.st, ctx)
	if err != nil || len(due) != 2 || due[0].Kind != KindTimeout && due[1].Kind != KindTimeout {
		t.Fatalf("DueTimeouts: %d, %v; want a's timeout and b's failover", len(due), err)
	}
	prop := NewOverlay(c.st)
	var block []Entry
	for _, e := range append(due, batch) {
		got, err := c.m.Try(prop, ctx, e, nil)
		if err != nil {
			if e.Kind != KindAttestations || !errors.Is(err, ErrAttestedInBlock) {
				t.Fatalf("%s: %v", e.Kind, err)
			}
			continue
		}
		block = append(block, got...)
	}
	if _, err := c.m.ApplyEntries(NewOverlay(c.st), ctx, block); err != nil {
		t.Fatalf("the timeout-first proposer built an invalid block: %v", err)
	}
	c.apply(ctx, block)
	c.height, c.time = ctx.Height, ctx.Time
	c.block(10, batch)
	r := c.op(id)
	if got := r.Saga.Tasks[0].Outcome; got != taskrt.TaskTimedOut {
		t.Fatalf("a: %s, want timed_out", got)
	}
	found := false
	for _, e := range r.Events {
		found = found || (e.Type == "task_attested" && e.Task == "b")
	}
	if !found {
		t.Fatalf("b's item was not applied in the next block; events %s", eventTypes(r))
	}
}
