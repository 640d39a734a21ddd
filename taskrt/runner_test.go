package taskrt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// journal records function calls across goroutines in the order they
// happened.
type journal struct {
	mu    sync.Mutex
	lines []string
	reqs  map[string][]Request
}

func (j *journal) add(line string, req Request) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, line)
	if j.reqs == nil {
		j.reqs = map[string][]Request{}
	}
	j.reqs[line] = append(j.reqs[line], req)
}

func (j *journal) snapshot() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.lines)
}

// recorder returns a function that journals "<prefix> <task>" on entry and
// then behaves as f.
func (j *journal) recorder(prefix string, f FunctionFunc) Function {
	return FunctionFunc(func(ctx context.Context, req Request) (map[string]any, error) {
		j.add(prefix+" "+req.Task, req)
		return f(ctx, req)
	})
}

func testOp(tasks ...Task) *Operation {
	return &Operation{Name: "test", Inputs: map[string]any{"traveler": "Ada"}, Tasks: tasks,
		Defaults: Defaults{Retry: &Retry{Attempts: 3, Backoff: Duration(time.Millisecond)}}}
}

func runOp(t *testing.T, ctx context.Context, reg *Registry, op *Operation) OperationView {
	t.Helper()
	p, err := NewPlan(op)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := CompileRules(op)
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Registry: reg, Seed: 1}
	v, err := r.Run(ctx, "0xop", p, rules)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func taskView(t *testing.T, v OperationView, id string) TaskView {
	t.Helper()
	for _, s := range v.Stages {
		for _, tv := range s.Tasks {
			if tv.ID == id {
				return tv
			}
		}
	}
	t.Fatalf("no task %q in view", id)
	return TaskView{}
}

func eventsOf(v OperationView, typ string) []string {
	var out []string
	for _, e := range v.Events {
		if e.Type == typ {
			s := e.Task
			if s == "" && e.Stage != nil {
				s = fmt.Sprint(*e.Stage)
			}
			out = append(out, s)
		}
	}
	return out
}

// The trip from SPEC §1: data flows through labels, stages run in order,
// and tasks of one stage overlap in time.
func TestRunnerStagesInOrderAndInParallel(t *testing.T) {
	var j journal
	reg := NewRegistry()
	// flight and payment each wait for the other to have started: if stage 0
	// ran its tasks one after another, neither would ever return.
	var started sync.WaitGroup
	started.Add(2)
	barrier := FunctionFunc(func(ctx context.Context, req Request) (map[string]any, error) {
		started.Done()
		done := make(chan struct{})
		go func() { started.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, Permanent(fmt.Errorf("%s: the other stage-0 task never started: %w", req.Task, ctx.Err()))
		}
		return echo(ctx, req)
	})
	must(t, reg.Register("barrier", j.recorder("run", barrier)))
	must(t, reg.Register("book", j.recorder("run", echo)))
	op := testOp(
		Task{ID: "flight", Run: "barrier", Rollback: "noop", Inputs: []string{"traveler"}, Outputs: []string{"flight"},
			Params: map[string]any{"flight": map[string]any{"confirmation": "QX12AB"}}, Timeout: Duration(10 * time.Second),
			Validate: `output.flight.confirmation.matches("^[A-Z0-9]{6}$")`},
		Task{ID: "payment", Run: "barrier", Inputs: []string{"traveler"}, Outputs: []string{"charge"}, Timeout: Duration(10 * time.Second)},
		Task{ID: "hotel", Run: "book", Inputs: []string{"flight"}, Outputs: []string{"hotel"}},
		Task{ID: "car", Run: "book", Inputs: []string{"flight", "charge"}, Outputs: []string{"car"}},
		Task{ID: "excursion", Run: "book", Inputs: []string{"hotel"}, Outputs: []string{"excursion"}},
	)
	v := runOp(t, context.Background(), reg, op)
	if v.Status != OpCompleted {
		t.Fatalf("status %s, want completed; events %+v", v.Status, v.Events)
	}
	calls := j.snapshot()
	pos := func(s string) int { return slices.Index(calls, s) }
	for _, order := range [][2]string{{"run flight", "run hotel"}, {"run payment", "run car"}, {"run hotel", "run excursion"}, {"run car", "run excursion"}} {
		if pos(order[0]) < 0 || pos(order[0]) > pos(order[1]) {
			t.Errorf("%q did not come before %q: %v", order[0], order[1], calls)
		}
	}
	if got := j.reqs["run car"][0].Inputs; got["charge"] != "payment.charge" || got["flight"] == nil {
		t.Errorf("car got inputs %v, want flight and payment's charge", got)
	}
	if got := j.reqs["run flight"][0].Inputs["traveler"]; got != "Ada" {
		t.Errorf("flight got traveler %v, want the operation input", got)
	}
	if tv := taskView(t, v, "flight"); tv.Validation != ValidationPassed {
		t.Errorf("flight validation %q, want passed", tv.Validation)
	}
}

// A hotel that fails rolls back stage 1 (car and hotel) before stage 0, and
// the excursion never runs.
func TestRunnerRollsBackInReverseStageOrder(t *testing.T) {
	var j journal
	reg := NewRegistry()
	must(t, reg.Register("book", j.recorder("run", echo)))
	must(t, reg.Register("cancel", j.recorder("undo", noop)))
	must(t, reg.Register("nohotel", j.recorder("run", FunctionFunc(func(context.Context, Request) (map[string]any, error) {
		return nil, errors.New("no rooms left")
	}))))
	op := testOp(
		Task{ID: "flight", Run: "book", Rollback: "cancel", Outputs: []string{"flight"}},
		Task{ID: "payment", Run: "book", Rollback: "cancel", Outputs: []string{"charge"}},
		Task{ID: "hotel", Run: "nohotel", Rollback: "cancel", Inputs: []string{"flight"}, Outputs: []string{"hotel"}},
		Task{ID: "car", Run: "book", Rollback: "cancel", Inputs: []string{"flight"}, Outputs: []string{"car"}},
		Task{ID: "excursion", Run: "book", Rollback: "cancel", Inputs: []string{"hotel", "car"}, Outputs: []string{"excursion"}},
	)
	v := runOp(t, context.Background(), reg, op)
	if v.Status != OpRolledBack {
		t.Fatalf("status %s, want rolled_back", v.Status)
	}
	if got := eventsOf(v, EventRollbackReleased); !slices.Equal(got, []string{"1", "0"}) {
		t.Errorf("rollback_released stages %v, want [1 0]", got)
	}
	calls := j.snapshot()
	lastStage1 := max(slices.Index(calls, "undo hotel"), slices.Index(calls, "undo car"))
	firstStage0 := min(slices.Index(calls, "undo flight"), slices.Index(calls, "undo payment"))
	if lastStage1 < 0 || firstStage0 < 0 || lastStage1 > firstStage0 {
		t.Errorf("stage 0 was undone before stage 1 finished: %v", calls)
	}
	if slices.Contains(calls, "run excursion") || slices.Contains(calls, "undo excursion") {
		t.Errorf("excursion ran or was undone though its stage was never released: %v", calls)
	}
	hotel := taskView(t, v, "hotel")
	if hotel.Status != TaskRolledBack || hotel.Outcome != TaskFailed || hotel.Attempts != 3 {
		t.Errorf("hotel %+v, want rolled_back after failing 3 attempts", hotel)
	}
	if hotel.Error == "" || !contains(hotel.Error, "no rooms left") {
		t.Errorf("hotel error %q does not keep the reason", hotel.Error)
	}
	undo := j.reqs["undo hotel"][0]
	if undo.Outcome != "failed" || undo.IdempotencyKey != "0xop:hotel:rollback" {
		t.Errorf("hotel rollback request %+v, want outcome failed and key 0xop:hotel:rollback", undo)
	}
	if got := j.reqs["undo flight"][0].Output["flight"]; got != "flight.flight" {
		t.Errorf("flight rollback got output %v, want the recorded output", got)
	}
}

// Every attempt of a task carries one idempotency key; attempts are
// numbered; a permanent error is not retried.
func TestRunnerRetries(t *testing.T) {
	var j journal
	reg := NewRegistry()
	must(t, reg.Register("flaky", j.recorder("run", fail)))
	must(t, reg.Register("rejects", j.recorder("run", FunctionFunc(func(context.Context, Request) (map[string]any, error) {
		return nil, Permanent(errors.New("400 bad card"))
	}))))
	op := testOp(Task{ID: "a", Run: "flaky", Outputs: []string{"x"}, Params: map[string]any{"attempts_before_success": int64(2)}})
	v := runOp(t, context.Background(), reg, op)
	if v.Status != OpCompleted || taskView(t, v, "a").Attempts != 3 {
		t.Fatalf("status %s attempts %d, want completed after 3", v.Status, taskView(t, v, "a").Attempts)
	}
	for n, req := range j.reqs["run a"] {
		if req.Attempt != n+1 || req.IdempotencyKey != "0xop:a" {
			t.Errorf("attempt %d carried attempt=%d key=%q", n+1, req.Attempt, req.IdempotencyKey)
		}
	}
	op = testOp(Task{ID: "b", Run: "rejects", Outputs: []string{"x"}})
	v = runOp(t, context.Background(), reg, op)
	if got := len(j.reqs["run b"]); got != 1 || v.Status != OpRolledBack {
		t.Fatalf("permanent error: %d calls and status %s, want 1 call and rolled_back", got, v.Status)
	}
}

// A task that outlives its timeout is cut, recorded as timed out, and its
// rollback still runs once it has stopped.
func TestRunnerTaskTimeout(t *testing.T) {
	var j journal
	reg := NewRegistry()
	must(t, reg.Register("hang", j.recorder("run", FunctionFunc(func(ctx context.Context, req Request) (map[string]any, error) {
		<-ctx.Done()
		j.add("stopped "+req.Task, req)
		return nil, ctx.Err()
	}))))
	must(t, reg.Register("cancel", j.recorder("undo", noop)))
	op := testOp(Task{ID: "slow", Run: "hang", Rollback: "cancel", Outputs: []string{"x"}, Timeout: Duration(20 * time.Millisecond)})
	v := runOp(t, context.Background(), reg, op)
	slow := taskView(t, v, "slow")
	if v.Status != OpRolledBack || slow.Outcome != TaskTimedOut {
		t.Fatalf("status %s outcome %s, want rolled_back after timed_out", v.Status, slow.Outcome)
	}
	if got := j.snapshot(); !slices.Equal(got, []string{"run slow", "stopped slow", "undo slow"}) {
		t.Errorf("calls %v, want the run stopped before its rollback", got)
	}
}

// The operation's deadline cuts the running stage; tasks already done in it
// are undone with it.
func TestRunnerOperationTimeout(t *testing.T) {
	reg := NewRegistry()
	op := testOp(
		Task{ID: "a", Run: "echo", Rollback: "noop", Outputs: []string{"x"}},
		Task{ID: "b", Run: "sleep", Rollback: "noop", Inputs: []string{"x"}, Outputs: []string{"y"}, Params: map[string]any{"ms": int64(60000)}},
		Task{ID: "c", Run: "echo", Rollback: "noop", Inputs: []string{"x"}, Outputs: []string{"z"}},
	)
	op.Timeout = Duration(50 * time.Millisecond)
	v := runOp(t, context.Background(), reg, op)
	if v.Status != OpRolledBack {
		t.Fatalf("status %s, want rolled_back", v.Status)
	}
	if b := taskView(t, v, "b"); b.Outcome != TaskTimedOut || !contains(b.Error, "operation timeout") {
		t.Errorf("b %+v, want timed out by the operation timeout", b)
	}
	if got := eventsOf(v, EventTaskRolledBack); !slices.Equal(sorted(got[:2]), []string{"b", "c"}) || got[2] != "a" {
		t.Errorf("rolled back %v, want b and c, then a", got)
	}
}

// Interrupting a run (Ctrl-C) rolls back what was done.
func TestRunnerInterruptRollsBack(t *testing.T) {
	reg := NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	must(t, reg.Register("stall", FunctionFunc(func(c context.Context, req Request) (map[string]any, error) {
		cancel()
		<-c.Done()
		return nil, c.Err()
	})))
	op := testOp(
		Task{ID: "a", Run: "echo", Rollback: "noop", Outputs: []string{"x"}},
		Task{ID: "b", Run: "stall", Rollback: "noop", Inputs: []string{"x"}, Outputs: []string{"y"}},
	)
	v := runOp(t, ctx, reg, op)
	if v.Status != OpRolledBack || taskView(t, v, "a").Status != TaskRolledBack {
		t.Fatalf("status %s, a %s: want everything rolled back", v.Status, taskView(t, v, "a").Status)
	}
}

// A rollback that fails twice and then succeeds is retried until it does;
// one that never succeeds leaves the operation rollback_failed with the
// lower stages untouched.
func TestRunnerRollbackRetries(t *testing.T) {
	var j journal
	reg := NewRegistry()
	must(t, reg.Register("undo-flaky", j.recorder("undo", fail)))
	must(t, reg.Register("undo-broken", j.recorder("undo", FunctionFunc(func(context.Context, Request) (map[string]any, error) {
		return nil, errors.New("hotel API returned 503")
	}))))
	must(t, reg.Register("undo", j.recorder("undo", noop)))
	op := testOp(
		Task{ID: "a", Run: "echo", Rollback: "undo", Outputs: []string{"x"}},
		Task{ID: "b", Run: "echo", Rollback: "undo-flaky", Inputs: []string{"x"}, Outputs: []string{"y"}, Params: map[string]any{"attempts_before_success": int64(2)}},
		Task{ID: "c", Run: "fail", Rollback: "noop", Inputs: []string{"y"}, Outputs: []string{"z"}},
	)
	v := runOp(t, context.Background(), reg, op)
	if b := taskView(t, v, "b"); v.Status != OpRolledBack || b.RollbackAttempts != 3 {
		t.Fatalf("status %s, b rollback attempts %d: want rolled_back after 3 rollback attempts", v.Status, b.RollbackAttempts)
	}
	for _, req := range j.reqs["undo b"] {
		if req.IdempotencyKey != "0xop:b:rollback" {
			t.Errorf("rollback attempt carried key %q", req.IdempotencyKey)
		}
	}

	op.Tasks[1].Rollback = "undo-broken"
	j = journal{}
	v = runOp(t, context.Background(), reg, op)
	b := taskView(t, v, "b")
	if v.Status != OpRollbackFailed || b.Status != TaskRollbackFailed || b.RollbackAttempts != DefaultRollbackAttempts {
		t.Fatalf("status %s, b %s after %d attempts: want rollback_failed after %d", v.Status, b.Status, b.RollbackAttempts, DefaultRollbackAttempts)
	}
	if !contains(b.RollbackError, "503") {
		t.Errorf("rollback error %q lost the reason", b.RollbackError)
	}
	if slices.Contains(j.snapshot(), "undo a") {
		t.Errorf("stage 0 was undone though stage 1's rollback failed: %v", j.snapshot())
	}
}

// Outputs are checked before rules: a missing declared label fails the
// task, and a rule that returns false or errors fails it with the reason.
func TestRunnerOutputChecks(t *testing.T) {
	reg := NewRegistry()
	cases := []struct {
		task   Task
		reason string
	}{
		{Task{ID: "a", Run: "noop", Outputs: []string{"x"}}, `output lacks declared label "x"`},
		{Task{ID: "a", Run: "echo", Outputs: []string{"x"}, Params: map[string]any{"x": int64(3)}, Validate: "output.x > 5"}, "output.x > 5"},
		{Task{ID: "a", Run: "echo", Outputs: []string{"x"}, Validate: "output.nothere == 1"}, "nothere"},
	}
	for _, c := range cases {
		v := runOp(t, context.Background(), reg, testOp(c.task))
		a := taskView(t, v, "a")
		if v.Status != OpRolledBack || !contains(a.Error, c.reason) {
			t.Errorf("%s: status %s error %q, want rolled_back naming %q", c.task.Validate, v.Status, a.Error, c.reason)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
