package ledger

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// moveChain is a test chain of three validators where one stays silent
// while the others send heartbeats, so that the silent one's work moves.
type moveChain struct{ *fleet }

func newMoveChain(t *testing.T) *moveChain {
	t.Helper()
	return &moveChain{fleetOf(t, testKey(t, 1), testKey(t, 3), testKey(t, 4))}
}

// step makes a block 600 ms after the last, carrying a heartbeat of every
// validator but silent and the given entries.
func (c *moveChain) step(silent Address, entries ...Entry) {
	c.t.Helper()
	for _, k := range c.keys {
		if k.Address() == silent {
			continue
		}
		hb := &Heartbeat{Time: c.time}
		if err := hb.Sign(k, "test-chain"); err != nil {
			c.t.Fatal(err)
		}
		e, err := NewEntry(KindHeartbeat, hb)
		if err != nil {
			c.t.Fatal(err)
		}
		entries = append(entries, e)
	}
	c.block(600, entries...)
}

// attestTask signs the attestation of task i's current assignment (of its
// run, or of its rollback) by the executor it names.
func (c *moveChain) attestTask(id Hash, i int, rollback bool, errText string) Entry {
	c.t.Helper()
	r := c.op(id)
	op, _, err := c.m.Compiled(r)
	if err != nil {
		c.t.Fatal(err)
	}
	exec, _, moves := r.Tasks[i].assignment(rollback)
	a := &Attestation{Operation: id, Task: op.Tasks[i].ID, Rollback: rollback, Attempts: 1, Error: errText, Assignment: moves}
	if errText == "" && !rollback {
		a.Output, _ = json.Marshal(map[string]any{"x": 1})
	}
	return c.signed(c.key(exec), a)
}

func (c *moveChain) view(id Hash) taskrt.OperationView {
	c.t.Helper()
	v, err := c.m.View(c.op(id))
	if err != nil {
		c.t.Fatal(err)
	}
	return v
}

// checkHistory checks a task's executor history: first assigned at
// height first, then one move per further executor, each with the reason
// of its event.
func checkHistory(t *testing.T, what string, got []taskrt.Assignment, execs []Address, first uint64, moves []taskrt.Event) {
	t.Helper()
	if len(got) != len(execs) || len(moves) != len(execs)-1 {
		t.Fatalf("%s: history %+v, want %d steps (%d move events)", what, got, len(execs), len(moves))
	}
	for k, a := range got {
		want := taskrt.Assignment{Executor: execs[k].Hex(), Height: first}
		if k > 0 {
			want.Height, want.Reason = moves[k-1].Height, moves[k-1].Reason
		}
		if a != want {
			t.Errorf("%s: step %d is %+v, want %+v", what, k, a, want)
		}
	}
}

// A task and a rollback whose executors go silent move, and the view
// shows each one's executors in order, with the move's height and reason,
// besides the move events themselves.
func TestViewShowsTheExecutorHistoryOfMovedWork(t *testing.T) {
	c := newMoveChain(t)
	sub, id := c.submit(`
name: moved
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [x]}
  - {id: b, run: fail, inputs: [x]}
`)
	c.block(10, sub)
	released := c.height
	first := c.op(id).Tasks[0].Executor
	if v := c.view(id); len(v.Stages[0].Tasks[0].Executors) != 1 || v.Stages[0].Tasks[0].Executors[0] != (taskrt.Assignment{Executor: first.Hex(), Height: released}) {
		t.Fatalf("before any move: history %+v, want %s from block %d", v.Stages[0].Tasks[0].Executors, first.Hex(), released)
	}
	// a's executor signs nothing for longer than the lease.
	for n := 0; n < 5 && c.op(id).Tasks[0].Moves == 0; n++ {
		c.step(first)
	}
	r := c.op(id)
	second := r.Tasks[0].Executor
	if r.Tasks[0].Moves != 1 || second == first {
		t.Fatalf("task a: %d moves, executor %s (first %s); want one move away", r.Tasks[0].Moves, second.Hex(), first.Hex())
	}
	moved := eventsOf(r, taskrt.EventTaskMoved)
	if len(moved) != 1 || moved[0].From != first.Hex() || moved[0].To != second.Hex() || !strings.Contains(moved[0].Reason, "signed nothing") {
		t.Fatalf("task_moved events %+v", moved)
	}
	v := c.view(id)
	checkHistory(t, "task a", v.Stages[0].Tasks[0].Executors, []Address{first, second}, released, moved)
	if v.Stages[0].Tasks[0].Executor != second.Hex() {
		t.Errorf("task a: executor %s, want where it moved, %s", v.Stages[0].Tasks[0].Executor, second.Hex())
	}

	// a succeeds on its new host; b fails, so a's rollback is released.
	c.step(first, c.attestTask(id, 0, false, ""))
	c.step(first, c.attestTask(id, 1, false, "no"))
	r = c.op(id)
	if !r.Saga.Tasks[0].Undoing {
		t.Fatalf("a is not undoing after b failed: %s", eventTypes(r))
	}
	rbReleased := eventsOf(r, taskrt.EventRollbackReleased)[0].Height
	undoer := r.Tasks[0].RollbackExecutor
	v = c.view(id)
	if got := v.Stages[0].Tasks[0]; got.RollbackExecutor != undoer.Hex() || len(got.RollbackExecutors) != 1 || got.RollbackExecutors[0].Height != rbReleased {
		t.Fatalf("rollback released: rollback_executor %s, history %+v; want %s from block %d", got.RollbackExecutor, got.RollbackExecutors, undoer.Hex(), rbReleased)
	}
	// Now the rollback's executor goes silent.
	for n := 0; n < 5 && c.op(id).Tasks[0].RollbackMoves == 0; n++ {
		c.step(undoer)
	}
	r = c.op(id)
	rbMoved := eventsOf(r, taskrt.EventRollbackMoved)
	if len(rbMoved) != 1 || rbMoved[0].From != undoer.Hex() {
		t.Fatalf("rollback_moved events %+v, want one from %s", rbMoved, undoer.Hex())
	}
	v = c.view(id)
	got := v.Stages[0].Tasks[0]
	checkHistory(t, "rollback of a", got.RollbackExecutors, []Address{undoer, r.Tasks[0].RollbackExecutor}, rbReleased, rbMoved)
	if got.RollbackExecutor != r.Tasks[0].RollbackExecutor.Hex() {
		t.Errorf("rollback_executor %s, want %s", got.RollbackExecutor, r.Tasks[0].RollbackExecutor.Hex())
	}
	// The run's history is unchanged by the rollback's move; b never
	// moved, and never had a rollback.
	checkHistory(t, "task a after its rollback moved", got.Executors, []Address{first, second}, released, moved)
	if b := v.Stages[1].Tasks[0]; len(b.Executors) != 1 || b.RollbackExecutor != "" || b.RollbackExecutors != nil {
		t.Errorf("task b: history %+v, rollback executor %q %+v; want one step and no rollback", b.Executors, b.RollbackExecutor, b.RollbackExecutors)
	}
	c.step(undoer, c.attestTask(id, 0, true, ""))
	if r := c.op(id); r.Saga.Status != taskrt.OpRolledBack {
		t.Fatalf("operation %s after the moved rollback was attested: %s", r.Saga.Status, eventTypes(r))
	}
	// The JSON carries the new fields by their SPEC names.
	raw, err := json.Marshal(c.view(id).Stages[0].Tasks[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"executors":[{"executor":"`, `"rollback_executor":"`, `"rollback_executors":[`, `"reason":"executor `} {
		if !strings.Contains(string(raw), k) {
			t.Errorf("task JSON %s lacks %s", raw, k)
		}
	}
}
