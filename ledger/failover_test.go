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
	c := newTestChain(t)
	keys := []*PrivateKey{c.val}
	for i := 1; i < n; i++ {
		keys = append(keys, testKey(t, byte(20+i)))
	}
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

// signed signs a as key's and returns its entry.
func (f *fleet) signed(key *PrivateKey, a *Attestation) Entry {
	f.t.Helper()
	if err := a.Sign(key, "test-chain"); err != nil {
		f.t.Fatal(err)
	}
	kind := KindAttestation
	if a.Rollback {
		kind = KindRollbackAttestation
	}
	e, err := NewEntry(kind, a)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
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
		if tr.Executor != to || tr.Moves != 1 || tr.Since != moved || tr.Deadline != moved+uint64((5*60_000)) {
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
	for _, tc := range []struct {
		name  string
		delta int64 // heartbeat time minus the block's
		err   error
	}{
		{"older than the lease", -int64(lease) - 1, ErrStaleHeartbeat},
		{"from after the block", 1, ErrStaleHeartbeat},
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
	f.round(10, []Hash{id2}, nil, victim, to) // keep id1's moved tasks open for the batch below
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
