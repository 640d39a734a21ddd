package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// testChain drives the state machine block by block, as a one-validator
// node would, over an in-memory state.
type testChain struct {
	t         *testing.T
	m         *Machine
	st        *MemState
	val, user *PrivateKey
	height    uint64
	time      uint64
	roots     []Hash
	blocks    [][]Entry
	ctxs      []Context
}

func newTestChain(t *testing.T) *testChain {
	t.Helper()
	_, m, val, user := newTestMachine(t)
	return &testChain{t: t, m: m, st: NewMemState(), val: val, user: user, time: 1_000}
}

// newTestMachine returns the test chains' genesis (one validator, one
// submitter, time 1,000, default params), its machine and the two keys.
func newTestMachine(t *testing.T) (*Genesis, *Machine, *PrivateKey, *PrivateKey) {
	t.Helper()
	val, user := testKey(t, 1), testKey(t, 2)
	g := &Genesis{ChainID: "test-chain", Time: 1_000, Validators: []GenesisValidator{NewGenesisValidator(val, "val0")},
		Submitters: []Address{user.Address()}, Params: DefaultParams()}
	m, err := NewMachine(g)
	if err != nil {
		t.Fatal(err)
	}
	return g, m, val, user
}

// slowOp is an operation of one sleep task that times out after 1s.
const slowOp = `
name: slow
defaults: {timeout: 1s}
tasks:
  - {id: a, run: sleep, rollback: noop, outputs: [x]}
`

// block proposes a block holding what can be applied of pending, plus due
// timeouts, applies it as a validator would, and returns its entries.
func (c *testChain) block(advanceMS uint64, pending ...Entry) []Entry {
	c.t.Helper()
	c.height++
	c.time += advanceMS
	ctx := Context{Height: c.height, Time: c.time}
	prop := NewOverlay(c.st)
	due, err := c.m.DueTimeouts(c.st, ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	var entries []Entry
	tried := &Applied{}
	for _, e := range append(pending, due...) {
		got, err := c.m.Try(prop, ctx, e, tried)
		if err != nil {
			c.t.Logf("proposer drops %s: %v", e.Kind, err)
			continue
		}
		entries = append(entries, got...)
	}
	c.apply(ctx, entries)
	if root := c.roots[len(c.roots)-1]; tried.Root() != root {
		c.t.Fatalf("block %d: the proposer's results root differs from applying the block", c.height)
	}
	return entries
}

func (c *testChain) apply(ctx Context, entries []Entry) {
	c.t.Helper()
	ov := NewOverlay(c.st)
	res, err := c.m.ApplyEntries(ov, ctx, entries)
	if err != nil {
		c.t.Fatalf("block %d: %v", ctx.Height, err)
	}
	c.st.CommitOverlay(ov)
	c.roots = append(c.roots, res.Root())
	c.blocks = append(c.blocks, entries)
	c.ctxs = append(c.ctxs, ctx)
}

func (c *testChain) submit(opYAML string) (Entry, Hash) {
	c.t.Helper()
	s := &Submission{Operation: canonicalOp(c.t, []byte(opYAML)), Nonce: c.height}
	if err := s.Sign(c.user, "test-chain"); err != nil {
		c.t.Fatal(err)
	}
	e, err := NewEntry(KindSubmission, s)
	if err != nil {
		c.t.Fatal(err)
	}
	return e, e.Hash()
}

// attest plays the executor: for every task assigned to key that is running
// (or whose rollback is), it returns a signed attestation; outcome decides
// per task id what the function did ("" output from echo).
func (c *testChain) attest(id Hash, key *PrivateKey, outcome func(task string, rollback bool) (map[string]any, string)) []Entry {
	c.t.Helper()
	r, err := c.st.Operation(id)
	if err != nil {
		c.t.Fatal(err)
	}
	op, _, err := c.m.Compiled(r)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []Entry
	for i, ts := range r.Saga.Tasks {
		rollback := ts.Undoing
		if ts.Status != taskrt.TaskRunning && !rollback {
			continue
		}
		t := op.Tasks[i]
		res, errText := outcome(t.ID, rollback)
		if res == nil && errText == "" && !rollback {
			// What the builtin echo returns for this task.
			res, err = taskrt.Builtins()["echo"].Call(context.Background(), taskrt.Request{Task: t.ID, Params: t.Params, Outputs: t.Outputs})
			if err != nil {
				c.t.Fatal(err)
			}
		}
		raw, _ := json.Marshal(res)
		a := &Attestation{Operation: id, Task: t.ID, Rollback: rollback, Attempts: 1, Error: errText}
		if rollback {
			// As node's executor counts them: across retries, so that a
			// retried rollback failing again is a new attestation.
			a.Attempts += uint64(ts.RollbackAttempts)
		}
		if errText == "" && !rollback {
			a.Output = raw
		}
		if err := a.Sign(key, "test-chain"); err != nil {
			c.t.Fatal(err)
		}
		kind := KindAttestation
		if rollback {
			kind = KindRollbackAttestation
		}
		e, _ := NewEntry(kind, a)
		out = append(out, e)
	}
	return out
}

func (c *testChain) op(id Hash) *OpRecord {
	r, err := c.st.Operation(id)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// run drives an operation to a final state, one block per round of
// attestations, and returns its record.
func (c *testChain) run(id Hash, outcome func(string, bool) (map[string]any, string)) *OpRecord {
	c.t.Helper()
	for n := 0; n < 50 && !c.op(id).Saga.Status.Final(); n++ {
		c.block(10, c.attest(id, c.val, outcome)...)
	}
	return c.op(id)
}

const tripYAML = `
name: trip
inputs: {traveler: Ada}
tasks:
  - {id: flight, run: echo, rollback: noop, inputs: [traveler], outputs: [flight],
     params: {flight: {confirmation: QX12AB}}, validate: 'output.flight.confirmation.matches("^[A-Z0-9]{6}$")'}
  - {id: payment, run: echo, rollback: noop, inputs: [traveler], outputs: [charge]}
  - {id: hotel, run: echo, rollback: noop, inputs: [flight], outputs: [hotel]}
  - {id: car, run: echo, inputs: [flight, charge], outputs: [car]}
  - {id: excursion, run: echo, rollback: noop, inputs: [hotel], outputs: [excursion]}
`

func ok(string, bool) (map[string]any, string) { return nil, "" }

func eventTypes(r *OpRecord) string {
	var s []string
	for _, e := range r.Events {
		x := e.Type
		if e.Stage != nil {
			x += fmt.Sprint(*e.Stage)
		}
		if e.Task != "" {
			x += ":" + e.Task
		}
		s = append(s, x)
	}
	return strings.Join(s, " ")
}

func TestMachineCompletesAnOperation(t *testing.T) {
	c := newTestChain(t)
	sub, id := c.submit(tripYAML)
	entries := c.block(10, sub)
	if len(entries) != 2 || entries[1].Kind != KindStageRelease {
		t.Fatalf("submission block holds %d entries, want the submission and stage 0's release", len(entries))
	}
	r := c.run(id, func(task string, rb bool) (map[string]any, string) {
		if task == "flight" {
			return map[string]any{"flight": map[string]any{"confirmation": "QX12AB"}}, ""
		}
		return nil, ""
	})
	if r.Saga.Status != taskrt.OpCompleted {
		t.Fatalf("status %s, want completed; events %s", r.Saga.Status, eventTypes(r))
	}
	// The stage records form the operation's own chain back to its submission.
	prev := id
	for k, s := range r.Stages {
		if s.ReleasePrev != prev {
			t.Fatalf("stage %d points back to %s, want %s", k, s.ReleasePrev, prev)
		}
		prev = s.Release
	}
	for _, ev := range r.Events {
		if ev.Height == 0 {
			t.Fatalf("event %+v has no height", ev)
		}
	}
}

func TestMachineRollsBackOnFailureAndRuleFailure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		outcome func(string, bool) (map[string]any, string)
		reason  string
	}{
		{"error", func(task string, rb bool) (map[string]any, string) {
			if task == "hotel" && !rb {
				return nil, "no rooms left"
			}
			return nil, ""
		}, "no rooms left"},
		{"rule", func(task string, rb bool) (map[string]any, string) {
			if task == "flight" && !rb {
				return map[string]any{"flight": map[string]any{"confirmation": "lowercase"}}, ""
			}
			return nil, ""
		}, "rule returned false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestChain(t)
			sub, id := c.submit(tripYAML)
			c.block(10, sub)
			r := c.run(id, tc.outcome)
			if r.Saga.Status != taskrt.OpRolledBack {
				t.Fatalf("status %s, want rolled_back; events %s", r.Saga.Status, eventTypes(r))
			}
			found := false
			for _, ev := range r.Events {
				found = found || strings.Contains(ev.Reason, tc.reason)
			}
			if !found {
				t.Errorf("no event keeps the reason %q: %+v", tc.reason, r.Events)
			}
		})
	}
}

func TestMachineTimesOutByBlockTime(t *testing.T) {
	c := newTestChain(t)
	sub, id := c.submit(slowOp)
	c.block(10, sub)
	if due, _ := c.m.DueTimeouts(c.st, Context{Height: 2, Time: c.time + 1000}); len(due) != 0 {
		t.Fatalf("timeout due at the deadline itself: %d entries", len(due))
	}
	// A timeout proposed early is refused.
	early, _ := NewEntry(KindTimeout, &Timeout{Operation: id, Task: "a"})
	ov := NewOverlay(c.st)
	if _, err := c.m.Try(ov, Context{Height: 2, Time: c.time + 500}, early, nil); !errors.Is(err, ErrNotDue) {
		t.Fatalf("early timeout: got %v, want ErrNotDue", err)
	}
	c.block(1001)
	r := c.op(id)
	if r.Saga.Tasks[0].Outcome != taskrt.TaskTimedOut {
		t.Fatalf("task outcome %s, want timed_out; events %s", r.Saga.Tasks[0].Outcome, eventTypes(r))
	}
	// The executor's late attestation is refused: the ledger has decided.
	late := c.attestRunning(id, "a", false)
	if _, err := c.m.Try(NewOverlay(c.st), Context{Height: 3, Time: c.time}, late, nil); err == nil {
		t.Fatal("late attestation accepted after the timeout")
	}
	r = c.run(id, ok)
	if r.Saga.Status != taskrt.OpRolledBack {
		t.Fatalf("status %s, want rolled_back", r.Saga.Status)
	}
}

// attestRunning signs an attestation for a task regardless of its state.
func (c *testChain) attestRunning(id Hash, task string, rollback bool) Entry {
	return c.signed(c.val, &Attestation{Operation: id, Task: task, Rollback: rollback, Attempts: 1, Output: []byte(`{"x":1}`)})
}

// signed signs a with key as an entry of the attestation kind it calls
// for.
func (c *testChain) signed(key *PrivateKey, a *Attestation) Entry {
	c.t.Helper()
	if err := a.Sign(key, "test-chain"); err != nil {
		c.t.Fatal(err)
	}
	kind := KindAttestation
	if a.Rollback {
		kind = KindRollbackAttestation
	}
	e, err := NewEntry(kind, a)
	if err != nil {
		c.t.Fatal(err)
	}
	return e
}

func TestMachineRefusesForgeries(t *testing.T) {
	c := newTestChain(t)
	sub, id := c.submit(tripYAML)
	c.block(10, sub)
	ctx := Context{Height: 2, Time: c.time + 10}
	try := func(e Entry) error { _, err := c.m.Try(NewOverlay(c.st), ctx, e, nil); return err }

	// An attestation signed by a key that is not the assigned executor.
	stranger := testKey(t, 9)
	forged := c.attest(id, stranger, ok)[0]
	if err := try(forged); !errors.Is(err, ErrNotExecutor) {
		t.Errorf("attestation by a stranger: got %v, want ErrNotExecutor", err)
	}
	// An attestation whose body was altered after signing.
	good := c.attest(id, c.val, ok)[0]
	body, _ := good.Decode()
	a := body.(*Attestation)
	a.Output = []byte(`{"flight":"tampered"}`)
	tampered, _ := NewEntry(KindAttestation, a)
	if err := try(tampered); !errors.Is(err, ErrWrongSigner) {
		t.Errorf("tampered attestation: got %v, want ErrWrongSigner", err)
	}
	// A submission by a key genesis does not allow.
	s := &Submission{Operation: []byte(`{"name":"x","tasks":[{"id":"a","run":"echo"}]}`)}
	if err := s.Sign(stranger, "test-chain"); err != nil {
		t.Fatal(err)
	}
	e, _ := NewEntry(KindSubmission, s)
	if err := try(e); !errors.Is(err, ErrSubmitter) {
		t.Errorf("stranger's submission: got %v, want ErrSubmitter", err)
	}
	// A submission naming a function no validator hosts.
	s = &Submission{Operation: []byte(`{"name":"x","tasks":[{"id":"a","run":"airline.reserve"}]}`)}
	if err := s.Sign(c.user, "test-chain"); err != nil {
		t.Fatal(err)
	}
	e, _ = NewEntry(KindSubmission, s)
	if err := try(e); !errors.Is(err, ErrNotHosted) {
		t.Errorf("unhosted function: got %v, want ErrNotHosted", err)
	}
	// The same submission twice.
	if err := try(sub); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate submission: got %v, want ErrDuplicate", err)
	}
	// A block whose derived record differs from what the machine derives.
	sub2, _ := c.submit(strings.Replace(tripYAML, "name: trip", "name: trip-two", 1))
	got, err := c.m.Try(NewOverlay(c.st), ctx, sub2, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := got[1].Decode()
	sr := rec.(*StageRecord)
	sr.Tasks[0].Executor = stranger.Address()
	got[1], _ = NewEntry(KindStageRelease, sr)
	if _, err := c.m.ApplyEntries(NewOverlay(c.st), ctx, got); err == nil || !strings.Contains(err.Error(), "derives") {
		t.Errorf("block with a forged stage record: got %v", err)
	}
	if _, err := c.m.ApplyEntries(NewOverlay(c.st), ctx, got[:1]); err == nil {
		t.Error("block missing its derived record was accepted")
	}
}

// Replaying every block from genesis reproduces every results root.
func TestMachineReplayIsDeterministic(t *testing.T) {
	c, id1, id2 := busyChain(t)
	replay := &testChain{t: t, m: c.m, st: NewMemState(), time: 1_000}
	m2, _ := NewMachine(c.m.Genesis()) // a fresh machine: no cached plans
	replay.m = m2
	for h, entries := range c.blocks {
		replay.apply(c.ctxs[h], entries)
	}
	for h := range c.roots {
		if c.roots[h] != replay.roots[h] {
			t.Fatalf("results root of block %d differs on replay", h+1)
		}
	}
	if c.op(id1).Saga.Status != taskrt.OpCompleted || c.op(id2).Saga.Status != taskrt.OpRolledBack {
		t.Fatalf("statuses %s and %s, want completed and rolled_back", c.op(id1).Saga.Status, c.op(id2).Saga.Status)
	}
}

// A rollback attested as failed leaves the operation rollback_failed; a
// retry by an allowed submitter releases the remaining rollbacks again and
// the operation then rolls back to the end. Tasks without a rollback are
// recorded as having nothing to undo.
func TestMachineRollbackFailedThenRetried(t *testing.T) {
	c := newTestChain(t)
	sub, id := c.submit(`
name: stuck
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [x]}
  - {id: b, run: echo, inputs: [x], outputs: [y]}
  - {id: c, run: echo, rollback: noop, inputs: [x], outputs: [z]}
  - {id: d, run: fail, rollback: noop, inputs: [y, z], outputs: [w]}
`)
	c.block(10, sub)
	broken := true
	r := c.run(id, func(task string, rb bool) (map[string]any, string) {
		switch {
		case task == "d" && !rb:
			return nil, "card declined"
		case task == "c" && rb && broken:
			return nil, "hotel API returned 503 after 5 attempts"
		}
		return nil, ""
	})
	if r.Saga.Status != taskrt.OpRollbackFailed {
		t.Fatalf("status %s, want rollback_failed; events %s", r.Saga.Status, eventTypes(r))
	}
	if a := r.Saga.Tasks[0]; a.Undone {
		t.Fatal("stage 0 was undone while stage 1's rollback had failed")
	}
	// A retry signed by a stranger is refused; the submitter's is not.
	stranger := testKey(t, 9)
	forged := &Retry{Operation: id}
	if err := forged.Sign(stranger, "test-chain"); err != nil {
		t.Fatal(err)
	}
	fe, _ := NewEntry(KindRetry, forged)
	if _, err := c.m.Try(NewOverlay(c.st), Context{Height: c.height + 1, Time: c.time + 10}, fe, nil); !errors.Is(err, ErrSubmitter) {
		t.Fatalf("retry by a stranger: got %v, want ErrSubmitter", err)
	}
	retry := &Retry{Operation: id, Nonce: 1}
	if err := retry.Sign(c.user, "test-chain"); err != nil {
		t.Fatal(err)
	}
	re, _ := NewEntry(KindRetry, retry)
	broken = false
	c.block(10, re)
	r = c.run(id, ok)
	if r.Saga.Status != taskrt.OpRolledBack {
		t.Fatalf("after retry: %s, want rolled_back; events %s", r.Saga.Status, eventTypes(r))
	}
	if b := r.Saga.Tasks[1]; b.Status != taskrt.TaskRolledBack || !b.Undone {
		t.Fatalf("task without rollback: %+v, want rolled_back with nothing to undo", b)
	}
	// The rollback records chain back through the retry's release.
	if s := r.Stages[1]; s.Rollback == (Hash{}) || s.RollbackPrev == (Hash{}) {
		t.Fatalf("stage 1 rollback record hashes missing: %+v", s)
	}
}

// The operation's own timeout, judged by block time, cuts the running stage.
func TestMachineOperationTimeout(t *testing.T) {
	c := newTestChain(t)
	sub, id := c.submit(`
name: bounded
timeout: 2s
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [x]}
  - {id: b, run: sleep, rollback: noop, inputs: [x], outputs: [y], timeout: 1m}
`)
	c.block(10, sub)
	c.block(10, c.attest(id, c.val, func(task string, rb bool) (map[string]any, string) {
		if task == "b" {
			panic("b must not be running yet")
		}
		return nil, ""
	})...)
	if got := c.op(id).Saga.Tasks[1].Status; got != taskrt.TaskRunning {
		t.Fatalf("b is %s, want running", got)
	}
	c.block(2000) // past the operation's 2s, long before b's 1m
	r := c.op(id)
	if r.Saga.Tasks[1].Outcome != taskrt.TaskTimedOut || !strings.Contains(r.Saga.Tasks[1].Error, "operation timeout") {
		t.Fatalf("b: %+v, want timed out by the operation timeout", r.Saga.Tasks[1])
	}
	if r = c.run(id, ok); r.Saga.Status != taskrt.OpRolledBack {
		t.Fatalf("status %s, want rolled_back", r.Saga.Status)
	}
}

// A retried rollback moves to the next host of its function, so a retry
// after the executor died does not wait for the same dead node.
func TestMachineRetryMovesRollbackToTheNextHost(t *testing.T) {
	f := fleetOf(t, testKey(t, 1), testKey(t, 3), testKey(t, 4))
	c, vals := f.testChain, f.keys
	sub, id := c.submit(`
name: moves
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [x]}
  - {id: b, run: fail, rollback: noop, inputs: [x], outputs: [y]}
`)
	c.block(10, sub)
	keyOf := func(a Address) *PrivateKey {
		for _, k := range vals {
			if k.Address() == a {
				return k
			}
		}
		t.Fatalf("no key for %s", a.Hex())
		return nil
	}
	// Play every executor until the rollback of a fails once.
	for n := 0; n < 20 && c.op(id).Saga.Status != taskrt.OpRollbackFailed; n++ {
		r := c.op(id)
		var entries []Entry
		for i, ts := range r.Saga.Tasks {
			if ts.Status != taskrt.TaskRunning && !ts.Undoing {
				continue
			}
			exec := r.Tasks[i].Executor
			if ts.Undoing {
				exec = r.Tasks[i].RollbackExecutor
			}
			entries = append(entries, c.attest(id, keyOf(exec), func(task string, rb bool) (map[string]any, string) {
				switch {
				case task == "b" && !rb:
					return nil, "no"
				case task == "a" && rb:
					return nil, "executor down"
				}
				return nil, ""
			})...)
		}
		c.block(10, entries...)
	}
	first := c.op(id).Tasks[0].RollbackExecutor
	retry := &Retry{Operation: id, Nonce: 1}
	if err := retry.Sign(c.user, "test-chain"); err != nil {
		t.Fatal(err)
	}
	re, _ := NewEntry(KindRetry, retry)
	c.block(10, re)
	if again := c.op(id).Tasks[0].RollbackExecutor; again == first {
		t.Fatalf("the retried rollback went to the same executor %s", first.Hex())
	}
}

// canonicalOp is an operation file (YAML or JSON) as the client signs it:
// parsed, then encoded, the only form the ledger admits.
func canonicalOp(t testing.TB, file []byte) []byte {
	t.Helper()
	op, err := taskrt.Load(file, nil, taskrt.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
