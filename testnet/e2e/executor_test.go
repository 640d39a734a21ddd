package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

// partner stands in for a partner's web API, served by the test as the
// function partner.slow: every request takes hold, and, like any
// idempotent API, the work is done once per idempotency key: a request
// with a key seen before waits for that work and gets its result.
type partner struct {
	hold    time.Duration
	arrived chan struct{} // signalled on every call

	mu    sync.Mutex
	calls []partnerCall
	work  map[string]*partnerJob
}

// partnerCall is one request the service received.
type partnerCall struct {
	Key, Operation, Task string
	Attempt              int
	// From is the caller's address: the executor's container, or 127.0.0.1.
	From string
}

type partnerJob struct {
	done chan struct{}
	out  map[string]any
}

func newPartner(hold time.Duration) *partner {
	return &partner{hold: hold, arrived: make(chan struct{}, 16), work: map[string]*partnerJob{}}
}

func (p *partner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req taskrt.Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	from, _, _ := net.SplitHostPort(r.RemoteAddr)
	p.mu.Lock()
	p.calls = append(p.calls, partnerCall{Key: key, Operation: req.Operation, Task: req.Task, Attempt: req.Attempt, From: from})
	j := p.work[key]
	if j == nil {
		// The work outlives the request: a caller that dies does not undo
		// what it asked for.
		j = &partnerJob{done: make(chan struct{})}
		p.work[key] = j
		go func() {
			time.Sleep(p.hold)
			j.out = map[string]any{"y": map[string]any{"idempotency_key": key}}
			close(j.done)
		}()
	}
	p.mu.Unlock()
	select {
	case p.arrived <- struct{}{}:
	default:
	}
	select {
	case <-j.done:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(j.out)
	case <-r.Context().Done():
	}
}

// received returns the calls so far.
func (p *partner) received() []partnerCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]partnerCall(nil), p.calls...)
}

// A validator killed while a task assigned to it is running does not make
// the task run twice with two outcomes: the operation still ends, every
// call of the task carries the one idempotency key of the task, and the
// ledger records exactly one outcome for it. Either the restarted
// executor resumes the task with that key (the service then returns the
// work it did for the first call), or, once the executor's lease ran out,
// the task moved to another host of the function, which calls with the
// same key; or the ledger times the task out and rolls the operation back.
// Every call comes from a host the ledger assigned the task to.
func TestExecutorKilledMidTask(t *testing.T) {
	skipShort(t)
	svc := newPartner(3 * time.Second)
	net := Start(t, env, Testnet{Validators: 4, Functions: map[string]http.Handler{"partner.slow": svc}})
	op, err := LoadOperation("testdata/slow-task.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := net.Submission(op)
	if err != nil {
		t.Fatal(err)
	}
	id := e.Hash()
	submitWhenHosted(t, net, e)

	select {
	case <-svc.arrived:
	case <-time.After(time.Minute):
		t.Fatal("partner.slow was not called within a minute of the submission")
	}
	ex := executorOf(t, net, id, "slow")
	if err := net.Backend.Kill(ex); err != nil {
		t.Fatal(err)
	}
	killedAfter := len(svc.received())
	time.Sleep(time.Second)
	if err := net.Backend.Start(ex); err != nil {
		t.Fatal(err)
	}
	if err := net.WaitReady(ex); err != nil {
		t.Fatal(err)
	}

	s, err := net.Check(net.Validators, []Acked{{ID: id, Name: op.Name}})
	if err != nil {
		t.Fatal(err)
	}
	v := operation(t, net.Validators[0], id)
	slow := taskView(t, v, "slow")
	key := taskrt.IdempotencyKey(id.Hex(), "slow", false)
	calls := svc.received()
	assigned := map[string]string{ex.Host: ex.Name} // host -> name of every executor the task had
	for _, a := range slow.Executors {
		addr, err := ledger.ParseAddress(a.Executor)
		if err != nil {
			t.Fatalf("task slow: executor %q: %v", a.Executor, err)
		}
		if nd := net.NodeByAddress(addr); nd != nil {
			assigned[nd.Host] = nd.Name
		}
	}
	for i, c := range calls {
		if c.Key != key || c.Operation != id.Hex() || c.Task != "slow" {
			t.Errorf("call %d of partner.slow: key %q for operation %s task %q; want key %q", i+1, c.Key, c.Operation, c.Task, key)
		}
		if _, ok := assigned[c.From]; !ok {
			t.Errorf("call %d of partner.slow came from %s, which the ledger never assigned the task to (%v)", i+1, c.From, assigned)
		}
	}
	switch v.Status {
	case taskrt.OpCompleted:
		// The first call was cut off by the kill, so the output can only
		// have come from a call the restarted executor made.
		if len(calls) <= killedAfter {
			t.Errorf("completed with the %d call(s) made before the kill, none after", len(calls))
		}
		got, _ := slow.Output["y"].(map[string]any)
		if got["idempotency_key"] != key {
			t.Errorf("task slow recorded output %v, want the work of key %q", slow.Output, key)
		}
	case taskrt.OpRolledBack:
		if slow.Status != taskrt.TaskRolledBack || slow.Outcome != taskrt.TaskTimedOut {
			t.Errorf("rolled back, but task slow is %s after %s, want rolled back after timing out", slow.Status, slow.Outcome)
		}
	default:
		t.Errorf("operation ended %s, want completed (resumed) or rolled_back (timed out)", v.Status)
	}
	if n := outcomesOnLedger(t, net.Validators[0], id, "slow", v.SubmittedHeight, s.Height); n != 1 {
		t.Errorf("the ledger records %d outcomes (attestations and timeouts) of task slow, want 1", n)
	}
	var outcomes int
	for _, ev := range v.Events {
		if ev.Task == "slow" && (ev.Type == taskrt.EventTaskAttested || ev.Type == taskrt.EventTaskTimedOut || ev.Type == taskrt.EventTaskFailed) {
			outcomes++
		}
	}
	if outcomes != 1 {
		t.Errorf("the operation's history holds %d outcomes of task slow, want 1: %+v", outcomes, v.Events)
	}
	t.Logf("executor %s (%s) killed during call %d of partner.slow, back 1s later; operation %s, task slow %s after %d attempt(s) on %d executor(s); "+
		"partner.slow saw %d call(s), all with key %s from %v; %s",
		ex.Name, ex.Host, killedAfter, v.Status, slow.Status, slow.Attempts, len(slow.Executors), len(calls), key, assigned, s)
}

// executorOf returns the validator the ledger assigned the task to, as op
// get shows it, once node0 has committed the task's release.
func executorOf(t *testing.T, net *Network, id ledger.Hash, task string) *Node {
	t.Helper()
	var tv taskrt.TaskView
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if tv = taskView(t, operation(t, net.Validators[0], id), task); tv.Executor != "" {
			break
		}
	}
	addr, err := ledger.ParseAddress(tv.Executor)
	if err != nil {
		t.Fatalf("task %s: executor %q: %v", task, tv.Executor, err)
	}
	ex := net.NodeByAddress(addr)
	if ex == nil {
		t.Fatalf("task %s: executor %s is no validator", task, tv.Executor)
	}
	return ex
}

// submitWhenHosted submits e until a validator acknowledges it. The
// validators announce the functions they host in their first blocks, and
// until those commit a submission naming partner.slow is refused as naming
// a function no validator hosts.
func submitWhenHosted(t *testing.T, net *Network, e ledger.Entry) {
	t.Helper()
	var last error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, last = net.Validators[0].Client().Submit(ctx, e)
		cancel()
		if last == nil {
			return
		}
		if !errors.Is(last, rpc.ErrInvalidInput) {
			t.Fatal(last)
		}
	}
	t.Fatalf("no validator accepted the submission within a minute: %v", last)
}

func operation(t *testing.T, nd *Node, id ledger.Hash) *taskrt.OperationView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	v, err := nd.Client().Operation(ctx, id)
	if err != nil {
		t.Fatalf("%s: operation %s: %v", nd.Name, id.Hex(), err)
	}
	return v
}

func taskView(t *testing.T, v *taskrt.OperationView, task string) taskrt.TaskView {
	t.Helper()
	for _, s := range v.Stages {
		for _, tv := range s.Tasks {
			if tv.ID == task {
				return tv
			}
		}
	}
	t.Fatalf("operation %s has no task %q: %+v", v.ID, task, v.Stages)
	return taskrt.TaskView{}
}

// outcomesOnLedger counts the attestations and timeouts of a task's run
// (not of its rollback) in the node's blocks from one height to another.
func outcomesOnLedger(t *testing.T, nd *Node, id ledger.Hash, task string, from, to uint64) int {
	t.Helper()
	n := 0
	for h := from; h <= to; h++ {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		b, err := nd.Client().Block(ctx, h)
		cancel()
		if err != nil {
			t.Fatalf("%s: block %d: %v", nd.Name, h, err)
		}
		for _, en := range b.Entries {
			kind := en.Kind == ledger.KindAttestation.String() || en.Kind == ledger.KindTimeout.String()
			if kind && en.Operation != nil && *en.Operation == id && en.Task == task && !en.Rollback {
				n++
			}
		}
	}
	return n
}
