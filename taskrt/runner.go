package taskrt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Policy defaults for tasks whose file and defaults set none.
const (
	DefaultTaskTimeout      = 5 * time.Minute
	DefaultAttempts         = 3
	DefaultBackoff          = 200 * time.Millisecond
	DefaultRollbackAttempts = 5
	// MaxBackoff caps the exponential backoff between two attempts.
	MaxBackoff = 30 * time.Second
)

// Runner is the local driver of the saga kernel: it runs one operation in
// this process, its stages' tasks in parallel, with retries, timeouts and
// rollbacks, and records its history. Only Runner's goroutine touches the
// kernel; tasks report back over a channel.
type Runner struct {
	// Registry holds the functions tasks may call.
	Registry *Registry
	// Parallelism bounds the functions running at once; 0 means 64.
	Parallelism int
	// MaxOutputBytes bounds one task's output as JSON; 0 means 64 KiB.
	MaxOutputBytes int
	// RollbackAttempts bounds the attempts of a rollback before it is
	// recorded as failed; 0 means DefaultRollbackAttempts.
	RollbackAttempts int
	// OnEvent, if set, sees every event as it happens, from Run's goroutine.
	OnEvent func(Event, *Saga)
	// Seed seeds the backoff jitter.
	Seed uint64
}

// taskDone carries a finished run or rollback back to Run's goroutine.
type taskDone struct {
	task     int
	rollback bool
	result   Result
}

// Run runs the operation of plan under the given id, with one compiled
// rule per task (nil for none), to its end, and returns its view.
// Cancelling ctx, or the operation's own timeout, cuts the running stage as
// timed out and rolls everything back; rollbacks are not cut by ctx.
func (r *Runner) Run(ctx context.Context, id string, plan *Plan, rules []*Rule) (OperationView, error) {
	if r.Registry == nil {
		return OperationView{}, errors.New("runner has no function registry")
	}
	if len(rules) != len(plan.Op.Tasks) {
		return OperationView{}, fmt.Errorf("%d rules for %d tasks", len(rules), len(plan.Op.Tasks))
	}
	if missing := r.Registry.Missing(plan.Op); len(missing) > 0 {
		return OperationView{}, fmt.Errorf("functions not hosted here: %v", missing)
	}
	x := &execution{
		Runner:   r,
		id:       id,
		plan:     plan,
		rules:    rules,
		saga:     NewSaga(plan),
		done:     make(chan taskDone),
		cancel:   make(map[int]context.CancelFunc),
		finished: make(map[int]chan struct{}),
		invoker:  NewInvoker(r.Seed, orDefault(r.Parallelism, 64)),
		undoCtx:  context.WithoutCancel(ctx),
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var deadline <-chan time.Time
	if d := plan.Op.Timeout.Std(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	acts, evs, err := x.saga.Start()
	if err != nil {
		return OperationView{}, err
	}
	for {
		x.record(evs)
		if final := x.act(runCtx, acts); final {
			break
		}
		interrupted := runCtx.Done()
		if x.saga.Status() != OpRunning {
			interrupted, deadline = nil, nil // rollbacks are never cut
		}
		select {
		case d := <-x.done:
			if d.rollback {
				acts, evs, err = x.saga.RollbackDone(d.task, d.result.Status == TaskRolledBack, d.result.Attempts, d.result.Reason)
			} else {
				acts, evs, err = x.saga.TaskDone(d.task, d.result)
			}
			if errors.Is(err, ErrTaskNotActive) {
				acts, evs, err = nil, nil, nil // a cut task reporting late: the kernel has moved on
			}
		case <-deadline:
			acts, evs, err = x.saga.TimeOut(fmt.Sprintf("operation timeout %s exceeded", plan.Op.Timeout))
		case <-interrupted:
			acts, evs, err = x.saga.TimeOut(fmt.Sprintf("interrupted: %v", context.Cause(runCtx)))
		}
		if err != nil {
			return OperationView{}, fmt.Errorf("operation %s: %w", id, err)
		}
	}
	// Tasks the kernel cut (an operation timeout ends a run whose stage
	// had nothing to undo) may still report; nobody reads their results
	// now, so drain them while waiting, or they would block on done and
	// the wait would never end.
	go func() {
		x.wg.Wait()
		close(x.done)
	}()
	for range x.done {
	}
	return NewView(id, plan, x.saga.State(), x.events), nil
}

// execution is the state of one Run.
type execution struct {
	*Runner
	id       string
	plan     *Plan
	rules    []*Rule
	saga     *Saga
	events   []Event
	done     chan taskDone
	cancel   map[int]context.CancelFunc
	finished map[int]chan struct{}
	invoker  *Invoker
	wg       sync.WaitGroup
	undoCtx  context.Context
}

func (x *execution) record(evs []Event) {
	for _, e := range evs {
		x.events = append(x.events, e)
		if x.OnEvent != nil {
			x.OnEvent(e, x.saga)
		}
	}
}

// act carries out the kernel's actions and reports whether the operation
// has finished.
func (x *execution) act(ctx context.Context, acts []Action) bool {
	final := false
	for _, a := range acts {
		switch a.Kind {
		case ActionRunStage:
			for _, i := range a.Tasks {
				tctx, cancel := context.WithCancel(ctx)
				finished := make(chan struct{})
				x.cancel[i], x.finished[i] = cancel, finished
				req := x.request(i, false)
				x.spawn(i, false, func() Result {
					defer close(finished)
					defer cancel()
					return x.runTask(tctx, i, req)
				})
			}
		case ActionCancel:
			for _, i := range a.Tasks {
				x.cancel[i]()
			}
		case ActionRollbackStage:
			for _, i := range a.Tasks {
				wait := x.finished[i]
				req := x.request(i, true)
				x.spawn(i, true, func() Result {
					<-wait // a cut run must have stopped before it is undone
					return x.rollbackTask(i, req)
				})
			}
		case ActionFinish:
			final = true
		}
	}
	return final
}

func (x *execution) spawn(i int, rollback bool, f func() Result) {
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		x.done <- taskDone{task: i, rollback: rollback, result: f()}
	}()
}

// runTask runs task i with its retry policy within its timeout, then checks
// its output and evaluates its rule.
func (x *execution) runTask(ctx context.Context, i int, req Request) Result {
	t := x.plan.Op.Tasks[i]
	pol := PolicyOf(x.plan.Op, t)
	out, n, err := x.call(ctx, t.Run, req, pol)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return Result{Status: TaskTimedOut, Attempts: n, Reason: fmt.Sprintf("timed out after %s: %v", pol.Timeout, err)}
		}
		return Result{Status: TaskFailed, Attempts: n, Reason: err.Error()}
	}
	return Judge(t, x.rules[i], out, req.Inputs, n, orDefault(x.MaxOutputBytes, DefaultLimits().MaxOutputBytes))
}

// rollbackTask undoes task i. It is retried past the task's own attempts,
// up to RollbackAttempts, unless the error is permanent.
func (x *execution) rollbackTask(i int, req Request) Result {
	t := x.plan.Op.Tasks[i]
	pol := PolicyOf(x.plan.Op, t)
	pol.Attempts = orDefault(x.RollbackAttempts, DefaultRollbackAttempts)
	_, n, err := x.call(x.undoCtx, t.Rollback, req, pol)
	if err != nil {
		return Result{Status: TaskRollbackFailed, Attempts: n, Reason: fmt.Sprintf("after %d attempts: %v", n, err)}
	}
	return Result{Status: TaskRolledBack, Attempts: n}
}

// call invokes the named function with the given policy.
func (x *execution) call(ctx context.Context, name string, req Request, pol Policy) (map[string]any, int, error) {
	f, ok := x.Registry.Lookup(name)
	if !ok {
		return nil, 0, Permanent(fmt.Errorf("function %q is not hosted here", name))
	}
	return x.invoker.Invoke(ctx, f, req, pol)
}

// request builds the request for task i, or for its rollback, from the
// kernel's state. It runs on Run's goroutine: task goroutines never read
// the kernel.
func (x *execution) request(i int, rollback bool) Request {
	t := x.plan.Op.Tasks[i]
	req := Request{
		Operation: x.id, Task: t.ID, IdempotencyKey: IdempotencyKey(x.id, t.ID, rollback),
		Inputs: x.saga.Inputs(i), Params: t.Params, Outputs: t.Outputs,
	}
	if rollback {
		st := x.saga.Task(i)
		req.Outcome, req.Output = string(st.Outcome), st.Output
	}
	return req
}

// IdempotencyKey is the key every attempt of one task of one operation
// carries; its rollback's key has the suffix ":rollback" (SPEC §1).
func IdempotencyKey(operation, task string, rollback bool) string {
	if rollback {
		return operation + ":" + task + ":rollback"
	}
	return operation + ":" + task
}

// orDefault returns v, or def when v is zero or negative.
func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
