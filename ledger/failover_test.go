package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// Executor failover (issue 11), at the ledger: a fleet of validators that
// all host the builtins, some of which go silent.

// fleet is a testChain of several validators, with the key of each so a
// test can play every executor; keys are sorted by address, the order in
// which work moves from host to host.
type fleet struct {
	*testChain
	keys []*PrivateKey
}

func newFleet(t *testing.T, n int) *fleet {
	t.Helper()
	keys := []*PrivateKey{testKey(t, 1)}
	for i := 1; i < n; i++ {
		keys = append(keys, testKey(t, byte(20+i)))
	}
	return fleetOf(t, keys...)
}

// fleetOf returns the test chain with keys as its validators, their keys
// in address order.
func fleetOf(t *testing.T, keys ...*PrivateKey) *fleet {
	t.Helper()
	c := newTestChain(t)
	g := *c.m.Genesis()
	g.Validators = nil
	for i, k := range keys {
		g.Validators = append(g.Validators, NewGenesisValidator(k, fmt.Sprint("val", i)))
	}
	m, err := NewMachine(&g)
	if err != nil {
		t.Fatal(err)
	}
	c.m = m
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b *PrivateKey) int {
		x, y := a.Address(), b.Address()
		return bytes.Compare(x[:], y[:])
	})
	return &fleet{testChain: c, keys: keys}
}

func (f *fleet) key(a Address) *PrivateKey {
	for _, k := range f.keys {
		if k.Address() == a {
			return k
		}
	}
	f.t.Fatalf("no key for %s", a.Hex())
	return nil
}

// after returns the host that follows a in address order, around: where
// a's work moves while every other host is live.
func (f *fleet) after(a Address) Address {
	for i, k := range f.keys {
		if k.Address() == a {
			return f.keys[(i+1)%len(f.keys)].Address()
		}
	}
	f.t.Fatalf("%s is no validator", a.Hex())
	return Address{}
}

// index returns the position of task in operation r.
func (f *fleet) index(r *OpRecord, task string) int {
	op, _, err := f.m.Compiled(r)
	if err != nil {
		f.t.Fatal(err)
	}
	for i, t := range op.Tasks {
		if t.ID == task {
			return i
		}
	}
	f.t.Fatalf("no task %q", task)
	return -1
}

// task returns the ledger's assignment of task in operation id.
func (f *fleet) task(id Hash, task string) TaskRecord {
	r := f.op(id)
	return r.Tasks[f.index(r, task)]
}

// work plays key's executor on operation id: the attestations c.attest
// makes, for only the work the ledger assigns to key now, each naming the
// assignment it answers (the moves it made).
func (f *fleet) work(id Hash, key *PrivateKey, outcome func(string, bool) (map[string]any, string)) []Entry {
	f.t.Helper()
	if outcome == nil {
		outcome = ok
	}
	r := f.op(id)
	var out []Entry
	for _, e := range f.attest(id, key, outcome) {
		a := decodeAs[*Attestation](f.t, e)
		exec, _, moves := r.Tasks[f.index(r, a.Task)].assignment(a.Rollback)
		if exec != key.Address() {
			continue
		}
		a.Assignment = moves
		out = append(out, f.signed(key, a))
	}
	return out
}

// stale is key's attestation of task naming assignment n, whoever holds
// the task now.
func (f *fleet) stale(id Hash, key *PrivateKey, task string, rollback bool, n uint64) Entry {
	a := &Attestation{Operation: id, Task: task, Rollback: rollback, Attempts: 1, Assignment: n}
	if !rollback {
		a.Output = []byte(`{"x":1}`)
	}
	return f.signed(key, a)
}

// round makes one block, advance ms after the last, in which every
// executor but the silent ones attests all its work on ops.
func (f *fleet) round(advance uint64, ops []Hash, outcome func(string, bool) (map[string]any, string), silent ...*PrivateKey) []Entry {
	f.t.Helper()
	var entries []Entry
	for _, k := range f.keys {
		if slices.Contains(silent, k) {
			continue
		}
		for _, id := range ops {
			entries = append(entries, f.work(id, k, outcome)...)
		}
	}
	return f.block(advance, entries...)
}

// blockAt makes the next block at block time t.
func (f *fleet) blockAt(t uint64, pending ...Entry) []Entry {
	f.t.Helper()
	if t <= f.time {
		f.t.Fatalf("block time %d is not after %d", t, f.time)
	}
	return f.block(t-f.time, pending...)
}

func (f *fleet) heartbeat(key *PrivateKey, time uint64) Entry {
	f.t.Helper()
	h := &Heartbeat{Time: time}
	if err := h.Sign(key, "test-chain"); err != nil {
		f.t.Fatal(err)
	}
	e, err := NewEntry(KindHeartbeat, h)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

func failoverOf(t *testing.T, id Hash, task string, rollback bool, from Address) Entry {
	e, err := NewEntry(KindFailover, &Failover{Operation: id, Task: task, Rollback: rollback, From: from})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// tryAt tries e alone on the committed state in a block at time t.
func (f *fleet) tryAt(t uint64, e Entry) (*Applied, error) {
	out := &Applied{}
	_, err := f.m.Try(NewOverlay(f.st), Context{Height: f.height + 1, Time: t}, e, out)
	return out, err
}

// dueAt returns the failovers and timeouts a proposer makes for a block at
// time t.
func (f *fleet) dueAt(t uint64) []Entry {
	f.t.Helper()
	due, err := f.m.DueTimeouts(f.st, Context{Height: f.height + 1, Time: t})
	if err != nil {
		f.t.Fatal(err)
	}
	return due
}

func (f *fleet) hosts() *Hosts {
	f.t.Helper()
	h, err := f.st.Hosts()
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

func decodeAs[T any](t *testing.T, e Entry) T {
	t.Helper()
	body, err := e.Decode()
	if err != nil {
		t.Fatal(err)
	}
	v, ok := body.(T)
	if !ok {
		t.Fatalf("%s entry decodes to %T", e.Kind, body)
	}
	return v
}

// failovers returns the failover entries of entries.
func failovers(t *testing.T, entries []Entry) []*Failover {
	var out []*Failover
	for _, e := range entries {
		if e.Kind == KindFailover {
			out = append(out, decodeAs[*Failover](t, e))
		}
	}
	return out
}

// eventsOf returns the events of r of the given type.
func eventsOf(r *OpRecord, typ string) []taskrt.Event {
	var out []taskrt.Event
	for _, e := range r.Events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// hasLeaf reports whether a's results hold the decision leaf v.
func hasLeaf(a *Applied, v ...any) bool {
	want := mustRLP(v)
	return slices.ContainsFunc(a.Results, func(r []byte) bool { return bytes.Equal(r, want) })
}

// wideOp is one stage of eight independent tasks, so that each of four
// validators holds some of them.
const wideOp = `
name: wide
tasks:
  - {id: t0, run: echo, rollback: noop, outputs: [o0]}
  - {id: t1, run: echo, rollback: noop, outputs: [o1]}
  - {id: t2, run: echo, rollback: noop, outputs: [o2]}
  - {id: t3, run: echo, rollback: noop, outputs: [o3]}
  - {id: t4, run: echo, rollback: noop, outputs: [o4]}
  - {id: t5, run: echo, rollback: noop, outputs: [o5]}
  - {id: t6, run: echo, rollback: noop, outputs: [o6]}
  - {id: t7, run: echo, rollback: noop, outputs: [o7]}
`

// silentStart submits wideOp to a fleet of four and lets every executor
// but the one holding the most tasks (the victim) attest its work. It
// returns the fleet, the operation, the victim's key, its tasks and the
// block time of their release.
func silentStart(t *testing.T) (f *fleet, id Hash, victim *PrivateKey, tasks []string, released uint64) {
	t.Helper()
	f = newFleet(t, 4)
	sub, id := f.submit(wideOp)
	f.block(10, sub)
	released = f.time
	held := map[Address][]string{}
	r := f.op(id)
	for i, tr := range r.Tasks {
		held[tr.Executor] = append(held[tr.Executor], fmt.Sprint("t", i))
	}
	for _, k := range f.keys {
		if len(held[k.Address()]) > len(tasks) {
			victim, tasks = k, held[k.Address()]
		}
	}
	if len(tasks) < 2 {
		t.Fatalf("the busiest executor holds %d tasks; the test needs two", len(tasks))
	}
	f.round(10, []Hash{id}, nil, victim)
	for i, ts := range f.op(id).Saga.Tasks {
		running := ts.Status == taskrt.TaskRunning
		if mine := slices.Contains(tasks, fmt.Sprint("t", i)); running != mine {
			t.Fatalf("t%d running %v, but held by the silent executor %v", i, running, mine)
		}
	}
	return f, id, victim, tasks, released
}

// TestFailoverMovesASilentExecutorsWork: an executor that never attests
// keeps its work for exactly its lease; then the proposer's failovers move
// each of its tasks to the next live host with a fresh deadline, a
// task_moved event and the executor marked down. A failover before the
// lease expired is refused.
func TestFailoverMovesASilentExecutorsWork(t *testing.T) {
	f, id, victim, tasks, released := silentStart(t)
	lease := f.m.Genesis().Params.ExecutorLease()
	if lease != DefaultExecutorLeaseMS {
		t.Fatalf("lease %d, want the default %d", lease, DefaultExecutorLeaseMS)
	}
	v := victim.Address()

	if due := f.dueAt(released + lease); len(due) != 0 {
		t.Fatalf("at the lease's end itself %d entries are due: %v", len(due), failovers(t, due))
	}
	if _, err := f.tryAt(released+lease/2, failoverOf(t, id, tasks[0], false, v)); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("a failover within the lease: got %v, want ErrLeaseHeld", err)
	}
	due := failovers(t, f.dueAt(released+lease+1))
	var named []string
	for _, fo := range due {
		if fo.Operation != id || fo.From != v || fo.Rollback {
			t.Fatalf("failover %+v, want one of the victim's tasks from %s", fo, v.Hex())
		}
		named = append(named, fo.Task)
	}
	slices.Sort(named)
	if !slices.Equal(named, tasks) {
		t.Fatalf("failovers of %v, want one for each of the victim's tasks %v", named, tasks)
	}

	f.blockAt(released + lease + 1)
	at, moved := f.height, f.time
	to := f.after(v)
	r := f.op(id)
	for _, task := range tasks {
		tr := f.task(id, task)
		// A fresh deadline: the default timeout of 5m from the move.
		if tr.Executor != to || tr.Moves != 1 || tr.Since != moved || tr.Deadline != moved+5*60_000 {
			t.Errorf("%s after the move: %+v, want executor %s, 1 move, since %d, deadline %d", task, tr, to.Hex(), moved, moved+5*60_000)
		}
	}
	evs := eventsOf(r, taskrt.EventTaskMoved)
	if len(evs) != len(tasks) {
		t.Fatalf("%d task_moved events, want %d; events %s", len(evs), len(tasks), eventTypes(r))
	}
	for _, ev := range evs {
		if !slices.Contains(tasks, ev.Task) || ev.From != v.Hex() || ev.To != to.Hex() || ev.Height != at ||
			!strings.Contains(ev.Reason, v.Hex()) || ev.Stage == nil || *ev.Stage != 0 {
			t.Errorf("event %+v, want a move of a victim's task from %s to %s at height %d, with its reason", ev, v.Hex(), to.Hex(), at)
		}
	}
	if r.Saga.Status != taskrt.OpRunning {
		t.Fatalf("a move changed the operation's status to %s", r.Saga.Status)
	}
	h := f.hosts()
	if !h.IsDown(v) || h.ByValidator[v].DownHeight != at || !slices.Equal(h.Down(), []Address{v}) {
		t.Fatalf("hosts %+v, want only %s down since height %d", h.ByValidator, v.Hex(), at)
	}
	// The next block moves nothing more: the work is on a live host.
	if due := f.dueAt(f.time + 10); len(due) != 0 {
		t.Fatalf("after the move %d entries are due", len(due))
	}
}

// TestFailoverWaitsWhileTheLeaseIsKept: an executor that keeps signing
// something a block carries, heartbeats or attestations of some of its
// work, keeps the rest however long it runs; the lease runs from the last.
func TestFailoverWaitsWhileTheLeaseIsKept(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep func(f *fleet, id Hash, victim *PrivateKey, tasks []string, step int) Entry
		// steps is how many blocks, lease*6/10 apart, the victim keeps its lease
		steps func(tasks []string) int
		// kept are the tasks it still holds at the end
		kept func(tasks []string) []string
	}{
		{"heartbeats",
			func(f *fleet, _ Hash, victim *PrivateKey, _ []string, _ int) Entry {
				return f.heartbeat(victim, f.time)
			},
			func([]string) int { return 5 },
			func(tasks []string) []string { return tasks }},
		{"attestations",
			func(f *fleet, id Hash, victim *PrivateKey, tasks []string, step int) Entry {
				for _, e := range f.work(id, victim, nil) {
					if decodeAs[*Attestation](f.t, e).Task == tasks[step] {
						return e
					}
				}
				f.t.Fatalf("the victim holds no %s", tasks[step])
				return Entry{}
			},
			func(tasks []string) int { return len(tasks) - 1 },
			func(tasks []string) []string { return tasks[len(tasks)-1:] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, id, victim, tasks, _ := silentStart(t)
			lease := f.m.Genesis().Params.ExecutorLease()
			for step := range tc.steps(tasks) {
				e := tc.keep(f, id, victim, tasks, step)
				entries := f.block(lease*6/10, e)
				if !slices.ContainsFunc(entries, func(x Entry) bool { return x.Hash() == e.Hash() }) {
					t.Fatalf("block at %d left out the victim's %s", f.time, e.Kind)
				}
				if fo := failovers(t, entries); len(fo) != 0 {
					t.Fatalf("block at %d moved %+v while the victim kept its lease", f.time, fo)
				}
			}
			kept := tc.kept(tasks)
			for _, task := range kept {
				if tr := f.task(id, task); tr.Executor != victim.Address() || tr.Moves != 0 {
					t.Fatalf("%s: %+v, want still with the victim", task, tr)
				}
			}
			if f.hosts().IsDown(victim.Address()) {
				t.Fatal("the victim is marked down")
			}
			// Silent from now: its lease runs out one lease after the
			// last block that carried its entry.
			if due := f.dueAt(f.time + lease); len(due) != 0 {
				t.Fatalf("%d entries due within the lease", len(due))
			}
			var named []string
			for _, fo := range failovers(t, f.dueAt(f.time+lease+1)) {
				named = append(named, fo.Task)
			}
			slices.Sort(named)
			if !slices.Equal(named, kept) {
				t.Fatalf("once the lease expired, failovers of %v, want %v", named, kept)
			}
		})
	}
}

// TestFailoverRefusesTheOldExecutorAndServesTheReturningOne: after the
// move, the silent executor's attestations are refused, alone and in a
// batch; releases skip it while it is down; its heartbeat brings it back
// (an executor_up decision) and it gets new work; the moved tasks
// complete on their new host.
func TestFailoverRefusesTheOldExecutorAndServesTheReturningOne(t *testing.T) {
	f, id, victim, tasks, released := silentStart(t)
	v := victim.Address()
	lease := f.m.Genesis().Params.ExecutorLease()
	f.blockAt(released + lease + 1)
	to := f.key(f.after(v))

	for _, n := range []uint64{0, 1} {
		if _, err := f.tryAt(f.time+10, f.stale(id, victim, tasks[0], false, n)); !errors.Is(err, ErrNotExecutor) {
			t.Errorf("the old executor's attestation naming assignment %d: got %v, want ErrNotExecutor", n, err)
		}
	}
	old := batchOf(t, victim, nil, ItemOf(decodeAs[*Attestation](t, f.stale(id, victim, tasks[0], false, 0))),
		ItemOf(decodeAs[*Attestation](t, f.stale(id, victim, tasks[1], false, 0))))
	if _, err := f.tryAt(f.time+10, old); !errors.Is(err, ErrNotExecutor) {
		t.Errorf("a batch of only moved tasks by the old executor: got %v, want ErrNotExecutor", err)
	}

	// Down: a new operation's release skips it.
	// (an operation some task of which would go to it, were it up)
	var sub2 Entry
	var id2 Hash
	for n := 2; ; n++ {
		if sub2, id2 = f.submit(strings.Replace(wideOp, "name: wide", fmt.Sprint("name: wide-", n), 1)); wouldGet(f, id2, v) {
			break
		} else if n == 20 {
			t.Fatal("no operation would give the victim a task: the test shows nothing")
		}
	}
	f.block(10, sub2)
	for i, tr := range f.op(id2).Tasks {
		if tr.Executor == v {
			t.Errorf("t%d of an operation released while its executor is down went to it", i)
		}
	}

	// Stale heartbeats are refused; one within the lease brings it back.
	// A heartbeat carries its signer's clock, which may run ahead of the
	// proposer's by max_clock_drift_ms.
	drift := f.m.Genesis().Params.MaxClockDriftMS
	for _, tc := range []struct {
		name  string
		delta int64 // heartbeat time minus the block's
		err   error
	}{
		{"older than the lease", -int64(lease) - 1, ErrStaleHeartbeat},
		{"further after the block than clocks drift", int64(drift) + 1, ErrStaleHeartbeat},
		{"as far after the block as clocks drift", int64(drift), nil},
		{"a lease old", -int64(lease), nil},
		{"the block's own time", 0, nil},
	} {
		at := f.time + 10
		_, err := f.tryAt(at, f.heartbeat(victim, uint64(int64(at)+tc.delta)))
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("heartbeat %s: got %v, want %v", tc.name, err, tc.err)
		}
	}
	if _, err := f.tryAt(f.time+10, f.heartbeat(testKey(t, 9), f.time)); !errors.Is(err, ErrNotValidator) {
		t.Errorf("heartbeat by a stranger: got %v, want ErrNotValidator", err)
	}
	hb := f.heartbeat(victim, f.time)
	applied, err := f.tryAt(f.time+10, hb)
	if err != nil {
		t.Fatal(err)
	}
	if !hasLeaf(applied, "executor_up", v, f.height+1) {
		t.Error("the returning executor's heartbeat records no executor_up decision")
	}
	f.round(10, []Hash{id2}, nil, victim) // id's moved tasks stay open for the batch below
	if entries := f.block(10, hb); len(entries) == 0 || entries[0].Hash() != hb.Hash() {
		t.Fatal("the heartbeat was left out")
	}
	if f.hosts().IsDown(v) {
		t.Fatal("still down after its heartbeat")
	}
	if _, err := f.tryAt(f.time+10, hb); !errors.Is(err, ErrReplay) {
		t.Errorf("the same heartbeat again: got %v, want ErrReplay", err)
	}

	// Up: it gets work again.
	sub3, id3 := f.submit(strings.Replace(wideOp, "name: wide", "name: wide-3", 1))
	f.block(10, sub3)
	var mine []Entry
	if mine = f.work(id3, victim, nil); len(mine) == 0 {
		t.Fatal("the returned executor got no task of a new operation")
	}
	// A batch of a moved task and its new work: the stale item is
	// skipped, the others apply.
	items := []AttestationItem{ItemOf(decodeAs[*Attestation](t, f.stale(id, victim, tasks[0], false, 0)))}
	batch := batchOf(t, victim, mine, items...)
	if entries := f.block(10, batch); len(entries) == 0 || entries[0].Kind != KindAttestations {
		t.Fatal("the batch with one stale item was left out")
	}
	if st := f.op(id).Saga.Tasks[f.index(f.op(id), tasks[0])].Status; st != taskrt.TaskRunning {
		t.Fatalf("the stale item changed %s to %s", tasks[0], st)
	}
	for _, e := range mine {
		task := decodeAs[*Attestation](t, e).Task
		if st := f.op(id3).Saga.Tasks[f.index(f.op(id3), task)].Status; st == taskrt.TaskRunning {
			t.Fatalf("the batch's fitting item for %s was not applied", task)
		}
	}

	// The new host's attestations complete the moved tasks.
	for _, e := range f.work(id, to, nil) {
		if a := decodeAs[*Attestation](t, e); a.Assignment != 1 {
			t.Fatalf("the new host answers assignment %d of %s, want 1", a.Assignment, a.Task)
		}
	}
	for n := 0; n < 5; n++ {
		f.round(10, []Hash{id, id2, id3}, nil)
	}
	for _, x := range []Hash{id, id2, id3} {
		if r := f.op(x); r.Saga.Status != taskrt.OpCompleted {
			t.Fatalf("operation %s: %s, want completed; events %s", x.Hex(), r.Saga.Status, eventTypes(r))
		}
	}
}

// wouldGet reports whether the unskipped assignment, over every host,
// gives executor a some task of wideOp in operation id.
func wouldGet(f *fleet, id Hash, a Address) bool {
	var all []Address
	for _, k := range f.keys {
		all = append(all, k.Address())
	}
	for i := range 8 {
		if Assign(all, id, fmt.Sprint("t", i), false) == a {
			return true
		}
	}
	return false
}

// undoOp fails b, so a's rollback is released; its timeout (and so its
// rollback's) is 1.5 s.
const undoOp = `
name: undo
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [x], timeout: 1500ms}
  - {id: b, run: fail, rollback: noop, inputs: [x], outputs: [y]}
`

func failB(task string, rb bool) (map[string]any, string) {
	if task == "b" && !rb {
		return nil, "no"
	}
	return nil, ""
}

// TestFailoverMovesARollback: a rollback whose executor is silent moves
// (rollback_moved) with a fresh deadline, so the operation rolls back on
// the new host even after the first deadline, and never ends
// rollback_failed.
func TestFailoverMovesARollback(t *testing.T) {
	f := newFleet(t, 3)
	sub, id := f.submit(undoOp)
	f.block(10, sub)
	f.round(10, []Hash{id}, failB) // a attested
	for n := 0; n < 5 && !f.op(id).Saga.Tasks[0].Undoing; n++ {
		f.round(10, []Hash{id}, failB) // b fails: a's rollback is released
	}
	r := f.op(id)
	if !r.Saga.Tasks[0].Undoing {
		t.Fatalf("a is not undoing; events %s", eventTypes(r))
	}
	tr := r.Tasks[0]
	silent, released := f.key(tr.RollbackExecutor), f.time
	if tr.RollbackSince != released || tr.RollbackDeadline != released+1500 {
		t.Fatalf("rollback assignment %+v, want since %d and deadline %d", tr, released, released+1500)
	}
	lease := f.m.Genesis().Params.ExecutorLease()
	if _, err := f.tryAt(released+lease, failoverOf(t, id, "a", true, silent.Address())); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("a rollback failover within the lease: got %v, want ErrLeaseHeld", err)
	}
	entries := f.blockAt(released + lease + 1)
	if fo := failovers(t, entries); len(fo) != 1 || !fo[0].Rollback || fo[0].Task != "a" || fo[0].From != silent.Address() {
		t.Fatalf("failovers %+v, want a's rollback from %s", fo, silent.Address().Hex())
	}
	to := f.after(silent.Address())
	tr = f.task(id, "a")
	if tr.RollbackExecutor != to || tr.RollbackMoves != 1 || tr.RollbackSince != f.time || tr.RollbackDeadline != f.time+1500 || tr.Moves != 0 {
		t.Fatalf("rollback assignment after the move %+v, want %s, 1 move, deadline %d", tr, to.Hex(), f.time+1500)
	}
	r = f.op(id)
	evs := eventsOf(r, taskrt.EventRollbackMoved)
	if len(evs) != 1 || evs[0].Task != "a" || evs[0].From != silent.Address().Hex() || evs[0].To != to.Hex() || evs[0].Height != f.height {
		t.Fatalf("rollback_moved events %+v, want one for a from %s to %s at %d", evs, silent.Address().Hex(), to.Hex(), f.height)
	}
	if _, err := f.tryAt(f.time+10, f.stale(id, silent, "a", true, 0)); !errors.Is(err, ErrNotExecutor) {
		t.Fatalf("the old rollback executor's attestation: got %v, want ErrNotExecutor", err)
	}
	// Past the first deadline, within the new one: nothing times out.
	if entries := f.blockAt(released + 1600); len(entries) != 0 {
		t.Fatalf("the block after the first rollback deadline carries %d entries (a %s)", len(entries), entries[0].Kind)
	}
	// The new host's rollback attestation answers assignment 1, and the
	// operation rolls back.
	att := f.work(id, f.key(to), nil)
	if len(att) != 1 || decodeAs[*Attestation](t, att[0]).Assignment != 1 {
		t.Fatalf("the new host has %d rollbacks to attest, want a's, assignment 1", len(att))
	}
	f.block(10, att...)
	r = f.op(id)
	if r.Saga.Status != taskrt.OpRolledBack {
		t.Fatalf("status %s, want rolled_back; events %s", r.Saga.Status, eventTypes(r))
	}
	if n := len(eventsOf(r, taskrt.EventTaskRollbackFailed)); n != 0 {
		t.Fatalf("%d task_rollback_failed events; events %s", n, eventTypes(r))
	}
}

// oneTask is an operation of one echo task.
const oneTask = `
name: one
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [x]}
`

// TestFailoverRefusesASupersededAssignment: with two validators, a's task
// moves from X to Y, X comes back, Y goes silent and the task moves back
// to X. X's attestation of its first assignment (0), or of Y's (1), is
// refused with ErrSuperseded and changes nothing; naming 2 it is
// accepted.
func TestFailoverRefusesASupersededAssignment(t *testing.T) {
	f := newFleet(t, 2)
	sub, id := f.submit(oneTask)
	f.block(10, sub)
	lease := f.m.Genesis().Params.ExecutorLease()
	x := f.key(f.task(id, "a").Executor)
	y := f.key(f.after(x.Address()))
	f.block(lease + 1) // X silent: a moves to Y
	if tr := f.task(id, "a"); tr.Executor != y.Address() || tr.Moves != 1 {
		t.Fatalf("after X's lease: %+v, want with Y after 1 move", tr)
	}
	// X's attestation of its old assignment: not its work any more.
	if _, err := f.tryAt(f.time+10, f.stale(id, x, "a", false, 0)); !errors.Is(err, ErrNotExecutor) {
		t.Fatalf("X's attestation after the move: got %v, want ErrNotExecutor", err)
	}
	f.block(lease/2, f.heartbeat(x, f.time)) // X is back
	if f.hosts().IsDown(x.Address()) {
		t.Fatal("X still down after its heartbeat")
	}
	f.block(lease/2 + 1) // Y silent for its lease since the move: back to X
	tr := f.task(id, "a")
	if tr.Executor != x.Address() || tr.Moves != 2 || !f.hosts().IsDown(y.Address()) {
		t.Fatalf("after Y's lease: %+v, Y down %v; want with X after 2 moves", tr, f.hosts().IsDown(y.Address()))
	}
	if evs := eventsOf(f.op(id), taskrt.EventTaskMoved); len(evs) != 2 || evs[1].From != y.Address().Hex() || evs[1].To != x.Address().Hex() {
		t.Fatalf("task_moved events %+v, want X to Y, then Y to X", evs)
	}
	before := f.op(id)
	for _, n := range []uint64{0, 1, 3} {
		if _, err := f.tryAt(f.time+10, f.stale(id, x, "a", false, n)); !errors.Is(err, ErrSuperseded) {
			t.Errorf("X's attestation naming assignment %d: got %v, want ErrSuperseded", n, err)
		}
	}
	old := batchOf(t, x, []Entry{f.stale(id, x, "a", false, 0)})
	if _, err := f.tryAt(f.time+10, old); !errors.Is(err, ErrSuperseded) {
		t.Errorf("X's batch of its superseded assignment: got %v, want ErrSuperseded", err)
	}
	if _, err := f.tryAt(f.time+10, f.stale(id, y, "a", false, 1)); !errors.Is(err, ErrNotExecutor) {
		t.Errorf("Y's attestation after the move back: got %v, want ErrNotExecutor", err)
	}
	if r := f.op(id); len(r.Events) != len(before.Events) || r.Saga.Status != taskrt.OpRunning {
		t.Fatal("a refused attestation changed the operation")
	}
	f.block(10, f.stale(id, x, "a", false, 2))
	if r := f.op(id); r.Saga.Status != taskrt.OpCompleted {
		t.Fatalf("X's attestation of assignment 2: status %s, want completed; events %s", r.Saga.Status, eventTypes(r))
	}
}

// TestFailoverInsteadOfTimeout: a task whose executor's lease expired
// while another host is live moves; its timeout is refused with
// ErrFailoverDue, even past its deadline, and the proposer makes the
// failover instead.
func TestFailoverInsteadOfTimeout(t *testing.T) {
	f := newFleet(t, 3)
	sub, id := f.submit(strings.Replace(oneTask, "outputs: [x]}", "outputs: [x], timeout: 1s}", 1))
	f.block(10, sub)
	released := f.time
	if f.task(id, "a").Deadline != released+1000 {
		t.Fatalf("deadline %d, want %d", f.task(id, "a").Deadline, released+1000)
	}
	at := released + f.m.Genesis().Params.ExecutorLease() + 1
	to, _ := NewEntry(KindTimeout, &Timeout{Operation: id, Task: "a"})
	if _, err := f.tryAt(at, to); !errors.Is(err, ErrFailoverDue) {
		t.Fatalf("a timeout of a silent executor's task with another host live: got %v, want ErrFailoverDue", err)
	}
	due := f.dueAt(at)
	if len(due) != 1 || due[0].Kind != KindFailover {
		t.Fatalf("due at %d: %d entries, want the failover alone", at, len(due))
	}
	f.blockAt(at)
	r := f.op(id)
	if r.Saga.Tasks[0].Status != taskrt.TaskRunning || r.Tasks[0].Moves != 1 || r.Tasks[0].Deadline != at+1000 {
		t.Fatalf("a after the failover: %+v %+v, want running on its new host until %d", r.Saga.Tasks[0], r.Tasks[0], at+1000)
	}
}

// solo has host announce solo.fn, then submits soloOp, in two blocks; it
// returns the operation's id.
func (f *fleet) solo(host *PrivateKey) Hash {
	f.t.Helper()
	ann := &Announcement{Functions: []string{"solo.fn"}, Seq: 1}
	if err := ann.Sign(host, "test-chain"); err != nil {
		f.t.Fatal(err)
	}
	ae, _ := NewEntry(KindAnnouncement, ann)
	f.block(10, ae)
	sub, id := f.submit(soloOp)
	f.block(10, sub)
	return id
}

// soloOp runs a function only the validator that announced it hosts.
const soloOp = `
name: solo
tasks:
  - {id: a, run: solo.fn, rollback: noop, outputs: [x], timeout: 3s}
`

// TestFailoverOfASoleHost: work on a function one validator hosts cannot
// move. The failover only marks its host down (no move, no event); no
// failover follows, and the task times out at its own deadline, or is
// attested when its host returns.
func TestFailoverOfASoleHost(t *testing.T) {
	for _, returns := range []bool{false, true} {
		t.Run(map[bool]string{false: "times out", true: "host returns"}[returns], func(t *testing.T) {
			f := newFleet(t, 3)
			host := f.keys[1]
			id := f.solo(host)
			released, lease := f.time, f.m.Genesis().Params.ExecutorLease()
			if got := f.task(id, "a").Executor; got != host.Address() {
				t.Fatalf("a went to %s, not its only host", got.Hex())
			}
			entries := f.blockAt(released + lease + 1)
			if fo := failovers(t, entries); len(fo) != 1 || fo[0].From != host.Address() {
				t.Fatalf("failovers %+v, want one marking the host down", fo)
			}
			r := f.op(id)
			if tr := r.Tasks[0]; tr.Executor != host.Address() || tr.Moves != 0 || tr.Deadline != released+3000 {
				t.Fatalf("a after the failover: %+v, want unmoved, deadline %d", tr, released+3000)
			}
			if n := len(eventsOf(r, taskrt.EventTaskMoved)); n != 0 || r.Saga.Tasks[0].Status != taskrt.TaskRunning {
				t.Fatalf("%d task_moved events, a %s; want none, still running", n, r.Saga.Tasks[0].Status)
			}
			if !f.hosts().IsDown(host.Address()) {
				t.Fatal("the silent sole host is not marked down")
			}
			if due := f.dueAt(released + 2000); len(due) != 0 {
				t.Fatalf("%d entries due after the host was marked down, before the deadline", len(due))
			}
			if _, err := f.tryAt(released+2000, failoverOf(t, id, "a", false, host.Address())); !errors.Is(err, ErrLeaseHeld) {
				t.Fatalf("a second failover with nowhere to go: got %v, want ErrLeaseHeld", err)
			}
			if returns {
				f.blockAt(released+2000, f.heartbeat(host, f.time))
				f.block(10, f.work(id, host, nil)...)
				if r := f.op(id); r.Saga.Status != taskrt.OpCompleted {
					t.Fatalf("status %s, want completed on the returned host; events %s", r.Saga.Status, eventTypes(r))
				}
				return
			}
			if due := f.dueAt(released + 3000); len(due) != 0 {
				t.Fatalf("%d entries due at the deadline itself", len(due))
			}
			entries = f.blockAt(released + 3001)
			if len(entries) == 0 || entries[0].Kind != KindTimeout {
				t.Fatalf("the block past the deadline carries no timeout")
			}
			r = f.op(id)
			if r.Saga.Tasks[0].Outcome != taskrt.TaskTimedOut || r.Tasks[0].Moves != 0 {
				t.Fatalf("a: %+v, want timed out where it was", r.Saga.Tasks[0])
			}
		})
	}
}

// TestFailoverAndAttestationInOneBlock: a block that carries a task's
// failover and its attestation, in either order, alone or in a batch, is
// invalid; DueTimeoutsFor leaves out the failover of a task a candidate
// attests (the executor's other tasks still move), so a proposer that puts
// failovers first builds a valid block, in which the attestation applies.
func TestFailoverAndAttestationInOneBlock(t *testing.T) {
	f, id, victim, tasks, released := silentStart(t)
	ctx := Context{Height: f.height + 1, Time: released + f.m.Genesis().Params.ExecutorLease() + 1}
	att := f.stale(id, victim, tasks[0], false, 0)
	fo := failoverOf(t, id, tasks[0], false, victim.Address())
	for name, block := range map[string][]Entry{
		"failover, attestation": {fo, att},
		"attestation, failover": {att, fo},
		"failover, batch":       {fo, batchOf(t, victim, []Entry{att})},
	} {
		if _, err := f.m.ApplyEntries(NewOverlay(f.st), ctx, block); !errors.Is(err, ErrAttestedInBlock) {
			t.Errorf("block %s: got %v, want ErrAttestedInBlock", name, err)
		}
	}
	due, err := f.m.DueTimeoutsFor(f.st, ctx, []Entry{att})
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, x := range failovers(t, due) {
		named = append(named, x.Task)
	}
	slices.Sort(named)
	if !slices.Equal(named, tasks[1:]) {
		t.Fatalf("DueTimeoutsFor with %s attested: failovers of %v, want %v", tasks[0], named, tasks[1:])
	}
	prop := NewOverlay(f.st)
	var block []Entry
	for _, e := range append(due, att) {
		got, err := f.m.Try(prop, ctx, e, nil)
		if err != nil {
			t.Fatalf("%s: %v", e.Kind, err)
		}
		block = append(block, got...)
	}
	f.apply(ctx, block)
	f.height, f.time = ctx.Height, ctx.Time
	r := f.op(id)
	if st := r.Saga.Tasks[f.index(r, tasks[0])].Status; st == taskrt.TaskRunning {
		t.Fatalf("%s still running: its attestation did not apply", tasks[0])
	}
	for _, task := range tasks[1:] {
		if tr := f.task(id, task); tr.Moves != 1 {
			t.Fatalf("%s: %+v, want moved", task, tr)
		}
	}
	if f.hosts().IsDown(victim.Address()) {
		t.Fatal("the victim is down, though the block carries its attestation")
	}
}

// TestTimeoutFirstProposerNeverBuildsAnInvalidBlockWithAFailover is
// TestTimeoutFirstProposerNeverBuildsAnInvalidBlock for a failover that
// moves nothing (a sole host's work): the proposer tries DueTimeouts
// first, then the host's attestation, which arrived late. The block it
// builds must be valid: the attestation must not fit after the failover
// in Try when ApplyEntries then refuses the pair.
func TestTimeoutFirstProposerNeverBuildsAnInvalidBlockWithAFailover(t *testing.T) {
	f := newFleet(t, 3)
	host := f.keys[0]
	id := f.solo(host)
	ctx := Context{Height: f.height + 1, Time: f.time + f.m.Genesis().Params.ExecutorLease() + 1}
	att := f.work(id, host, nil)
	if len(att) != 1 {
		t.Fatalf("the host has %d attestations to make, want 1", len(att))
	}
	due, err := f.m.DueTimeouts(f.st, ctx)
	if err != nil || len(due) != 1 || due[0].Kind != KindFailover {
		t.Fatalf("DueTimeouts: %d, %v; want the failover that marks the host down", len(due), err)
	}
	for name, pending := range map[string]Entry{"attestation": att[0], "batch": batchOf(t, host, att)} {
		prop := NewOverlay(f.st)
		var block []Entry
		for _, e := range append(due, pending) {
			got, err := f.m.Try(prop, ctx, e, nil)
			if err != nil {
				continue // left for the next block
			}
			block = append(block, got...)
		}
		if _, err := f.m.ApplyEntries(NewOverlay(f.st), ctx, block); err != nil {
			t.Errorf("%s: the timeout-first proposer built an invalid block: %v", name, err)
		}
	}
}

// signedFleet is signedChain for a fleet: each block proposed by the
// validator its height names, each certificate signed by all.
func signedFleet(t *testing.T, f *fleet, blocks [][]Entry) ([]*Block, []*Commit) {
	t.Helper()
	g := f.m.Genesis()
	var out []*Block
	var commits []*Commit
	prev, results := g.Hash(), MerkleRoot(nil)
	var last Commit
	for h, entries := range blocks {
		height := uint64(h + 1)
		b, err := NewBlock(f.key(f.m.Validators().Proposer(height, 0)), g.ChainID, height, 0, f.ctxs[h].Time, prev, results, last, entries)
		if err != nil {
			t.Fatal(err)
		}
		cm := &Commit{Height: height, BlockHash: b.Hash()}
		for _, k := range f.keys {
			v := Vote{Type: Precommit, Height: height, BlockHash: b.Hash()}
			if err := v.Sign(k, g.ChainID); err != nil {
				t.Fatal(err)
			}
			cm.Signatures = append(cm.Signatures, CommitSig{Validator: v.Validator, Signature: v.Signature})
		}
		out, commits = append(out, b), append(commits, cm)
		prev, results, last = b.Hash(), f.roots[h], *cm
	}
	return out, commits
}

// failoverChain runs silentStart's victim through a move, a heartbeat and
// the operation's end, and a rollback move, to have every new entry kind
// and decision on one chain.
func failoverChain(t *testing.T) *fleet {
	t.Helper()
	f, id, victim, _, released := silentStart(t)
	lease := f.m.Genesis().Params.ExecutorLease()
	f.blockAt(released + lease + 1) // the victim's tasks move
	f.block(10, f.heartbeat(victim, f.time))
	sub, id2 := f.submit(undoOp)
	f.block(10, sub)
	for n := 0; n < 10 && !f.op(id2).Saga.Tasks[0].Undoing; n++ {
		f.round(10, []Hash{id, id2}, failB)
	}
	silent := f.key(f.task(id2, "a").RollbackExecutor)
	f.block(lease + 1) // a's rollback moves
	for n := 0; n < 5; n++ {
		f.round(10, []Hash{id, id2}, failB, silent)
	}
	if a, b := f.op(id).Saga.Status, f.op(id2).Saga.Status; a != taskrt.OpCompleted || b != taskrt.OpRolledBack {
		t.Fatalf("statuses %s and %s, want completed and rolled_back", a, b)
	}
	if len(eventsOf(f.op(id), taskrt.EventTaskMoved)) == 0 || len(eventsOf(f.op(id2), taskrt.EventRollbackMoved)) != 1 {
		t.Fatal("the chain lacks a task or a rollback move")
	}
	return f
}

// TestFailoverReplays: the blocks of a chain with moves, a heartbeat and
// an executor back up replay from genesis on a fresh machine to the same
// results roots, and verify as a signed chain; a block whose failover
// names another executor is refused at that entry.
func TestFailoverReplays(t *testing.T) {
	f := failoverChain(t)
	m2, err := NewMachine(f.m.Genesis())
	if err != nil {
		t.Fatal(err)
	}
	replay := &testChain{t: t, m: m2, st: NewMemState()}
	for h, entries := range f.blocks {
		replay.apply(f.ctxs[h], entries)
		if replay.roots[h] != f.roots[h] {
			t.Fatalf("results root of block %d differs on replay", h+1)
		}
	}
	blocks, commits := signedFleet(t, f, f.blocks)
	rep, err := VerifyChain(f.m.Genesis(), &sliceSource{blocks: blocks, commits: commits})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Statuses[taskrt.OpCompleted] != 1 || rep.Statuses[taskrt.OpRolledBack] != 1 {
		t.Fatalf("verify report %+v, want one completed and one rolled back", rep)
	}

	tampered := 0
	for h, entries := range f.blocks {
		for k, e := range entries {
			if e.Kind != KindFailover {
				continue
			}
			fo := decodeAs[*Failover](t, e)
			fo.From = f.after(fo.From)
			bad := slices.Clone(f.blocks)
			bad[h] = slices.Clone(entries)
			bad[h][k], _ = NewEntry(KindFailover, fo)
			blocks, commits := signedFleet(t, f, bad)
			_, err := VerifyChain(f.m.Genesis(), &sliceSource{blocks: blocks, commits: commits})
			var fault *Fault
			if !errors.As(err, &fault) || fault.Height != uint64(h+1) || fault.Entry != k || !errors.Is(err, ErrNotExecutor) {
				t.Fatalf("block %d with failover %d naming %s: verify said %v, want ErrNotExecutor at that entry", h+1, k, fo.From.Hex(), err)
			}
			tampered++
		}
	}
	if tampered < 2 {
		t.Fatalf("tampered %d failovers, want the task's and the rollback's", tampered)
	}
}

// TestVerifyCountsHeartbeatSignatures: VerifyReport.Signatures counts the
// signatures Verify checked, and it checks each heartbeat's.
func TestVerifyCountsHeartbeatSignatures(t *testing.T) {
	f := failoverChain(t)
	blocks, commits := signedFleet(t, f, f.blocks)
	rep, err := VerifyChain(f.m.Genesis(), &sliceSource{blocks: blocks, commits: commits})
	if err != nil {
		t.Fatal(err)
	}
	var want, heartbeats uint64
	for _, b := range blocks {
		want += 1 + uint64(len(b.LastCommit.Signatures))
		for _, e := range b.Entries {
			switch e.Kind {
			case KindSubmission, KindAttestation, KindRollbackAttestation, KindAttestations, KindRetry, KindAnnouncement:
				want++
			case KindHeartbeat:
				want++
				heartbeats++
			case KindEvidence:
				want += 2
			}
		}
	}
	if heartbeats == 0 {
		t.Fatal("the chain carries no heartbeat")
	}
	if rep.Signatures != want {
		t.Fatalf("verify counted %d signatures, the chain has %d (%d of them heartbeats')", rep.Signatures, want, heartbeats)
	}
}

// TestFailoverIsNeverGossiped: failovers, like timeouts, are made by
// proposers; an executor's heartbeat is authenticated like its
// attestations.
func TestFailoverIsNeverGossiped(t *testing.T) {
	f := newFleet(t, 3)
	if err := f.m.Authenticate(failoverOf(t, Hash{1}, "a", false, f.keys[0].Address())); err == nil {
		t.Error("a failover passed Authenticate")
	}
	if err := f.m.Authenticate(f.heartbeat(f.keys[0], 1000)); err != nil {
		t.Errorf("a validator's heartbeat: %v", err)
	}
	if err := f.m.Authenticate(f.heartbeat(testKey(t, 9), 1000)); !errors.Is(err, ErrNotValidator) {
		t.Errorf("a stranger's heartbeat: got %v, want ErrNotValidator", err)
	}
	hb := decodeAs[*Heartbeat](t, f.heartbeat(f.keys[0], 1000))
	hb.Time++
	forged, _ := NewEntry(KindHeartbeat, hb)
	if err := f.m.Authenticate(forged); !errors.Is(err, ErrWrongSigner) {
		t.Errorf("a heartbeat altered after signing: got %v, want ErrWrongSigner", err)
	}
}

// TestNoFailoverFromAnExecutorWhoseHeartbeatWaits: when blocks come
// slower than the lease, an executor's heartbeat may wait for the very
// block whose time has passed its lease. DueTimeoutsFor then proposes no
// failover from it (moving its work would only run it twice), unless the
// heartbeat is too old for the block to take.
func TestNoFailoverFromAnExecutorWhoseHeartbeatWaits(t *testing.T) {
	f, id, victim, tasks, released := silentStart(t)
	at := released + f.m.Genesis().Params.ExecutorLease() + 500
	ctx := Context{Height: f.height + 1, Time: at}
	due, err := f.m.DueTimeoutsFor(f.st, ctx, nil)
	if err != nil || len(failovers(t, due)) != len(tasks) {
		t.Fatalf("without a heartbeat: %d failovers (%v), want %d", len(due), err, len(tasks))
	}
	fresh := f.heartbeat(victim, at-100)
	if due, err := f.m.DueTimeoutsFor(f.st, ctx, []Entry{fresh}); err != nil || len(due) != 0 {
		t.Fatalf("with the executor's heartbeat waiting: %d entries due (%v), want none", len(due), err)
	}
	// The block takes the heartbeat, and nothing of the executor's moved.
	f.blockAt(at, fresh)
	for _, task := range tasks {
		if tr := f.task(id, task); tr.Moves != 0 {
			t.Fatalf("%s moved though its executor's heartbeat was in the block: %+v", task, tr)
		}
	}
	// Another executor's heartbeat, or one too old to be taken, holds
	// nothing back.
	later := Context{Height: f.height + 1, Time: f.time + f.m.Genesis().Params.ExecutorLease() + 1}
	for name, hb := range map[string]Entry{
		"another executor's": f.heartbeat(f.keys[(slices.Index(f.keys, victim)+1)%len(f.keys)], later.Time),
		"a stale one":        f.heartbeat(victim, later.Time-f.m.Genesis().Params.ExecutorLease()-1),
	} {
		if due, err := f.m.DueTimeoutsFor(f.st, later, []Entry{hb}); err != nil || len(failovers(t, due)) != len(tasks) {
			t.Errorf("with %s heartbeat: %d failovers (%v), want %d", name, len(due), err, len(tasks))
		}
	}
}
