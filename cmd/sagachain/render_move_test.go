package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// movedView is a completed trip whose hotel moved once from a silent
// executor and whose flight's rollback moved once.
func movedView() taskrt.OperationView {
	zero, one := 0, 1
	a, b, c := "0x"+strings.Repeat("a1", 20), "0x"+strings.Repeat("b2", 20), "0x"+strings.Repeat("c3", 20)
	why := "executor " + a + " signed nothing a block carried since block time 1000 (lease 1000 ms)"
	return taskrt.OperationView{
		ID: "0x" + strings.Repeat("ab", 32), Name: "trip", Status: taskrt.OpRolledBack,
		Stages: []taskrt.StageView{
			{Index: 0, Status: "rolled_back", Tasks: []taskrt.TaskView{{
				ID: "flight", Run: "airline.reserve", Rollback: "airline.cancel", Status: taskrt.TaskRolledBack, Attempts: 1,
				Executor: b, Executors: []taskrt.Assignment{{Executor: b, Height: 1}},
				RollbackExecutor: c, RollbackExecutors: []taskrt.Assignment{{Executor: a, Height: 4}, {Executor: c, Height: 6, Reason: why}},
			}}},
			{Index: 1, Status: "rolled_back", Tasks: []taskrt.TaskView{{
				ID: "hotel", Run: "hotel.book", Status: taskrt.TaskRolledBack, Attempts: 1, Error: "no rooms",
				Executor: b, Executors: []taskrt.Assignment{{Executor: a, Height: 2}, {Executor: b, Height: 3, Reason: why}},
			}}},
		},
		Events: []taskrt.Event{
			{Height: 1, Seq: 1, Type: taskrt.EventSubmitted},
			{Height: 1, Seq: 2, Type: taskrt.EventStageReleased, Stage: &zero},
			{Height: 2, Seq: 3, Type: taskrt.EventTaskAttested, Stage: &zero, Task: "flight"},
			{Height: 2, Seq: 4, Type: taskrt.EventStageReleased, Stage: &one},
			{Height: 3, Seq: 5, Type: taskrt.EventTaskMoved, Stage: &one, Task: "hotel", From: a, To: b, Reason: why},
			{Height: 4, Seq: 6, Type: taskrt.EventTaskFailed, Stage: &one, Task: "hotel", Reason: "no rooms"},
			{Height: 4, Seq: 7, Type: taskrt.EventRollbackReleased, Stage: &zero},
			{Height: 6, Seq: 8, Type: taskrt.EventRollbackMoved, Stage: &zero, Task: "flight", From: a, To: c, Reason: why},
			{Height: 7, Seq: 9, Type: taskrt.EventTaskRolledBack, Stage: &zero, Task: "flight"},
			{Height: 7, Seq: 10, Type: taskrt.EventFinished, Status: string(taskrt.OpRolledBack)},
		},
	}
}

// op get and submit --wait show each move: the task, from whom to whom,
// why, and at which block; op get also lists a task's moves under it.
func TestHumanOutputShowsMoves(t *testing.T) {
	v := movedView()
	a, b, c := v.Stages[1].Tasks[0].Executors[0].Executor, v.Stages[1].Tasks[0].Executor, v.Stages[0].Tasks[0].RollbackExecutor
	why := v.Events[4].Reason

	var op strings.Builder
	writeOperation(&op, v)
	for _, want := range []string{
		"moved     at block 3: " + a + " → " + b + " (" + why + ")",
		"undo by   " + c,
		"undo move at block 6: " + a + " → " + c + " (" + why + ")",
		"task_moved stage 1 hotel " + a + " → " + b + ": " + why,
		"rollback_moved stage 0 flight " + a + " → " + c + ": " + why,
	} {
		if !strings.Contains(op.String(), want) {
			t.Errorf("op get lacks %q:\n%s", want, op.String())
		}
	}
	// A task that never moved lists no move.
	if n := strings.Count(op.String(), "moved     at block"); n != 1 {
		t.Errorf("op get lists %d run moves, want 1:\n%s", n, op.String())
	}

	var live bytes.Buffer
	r := newRenderer(&live, v.ID, viewTasks(v), false, true)
	for _, e := range v.Events {
		r.event(e, newViewState(v))
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	lines := strings.Split(live.String(), "\n")
	var hotel, flight string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "⇄ hotel"):
			hotel = l
		case strings.Contains(l, "⇄ flight"):
			flight = l
		}
	}
	if want := "hotel.book       moved " + shortID(a) + " → " + shortID(b) + ": " + why + "  (block 3)"; !strings.Contains(hotel, want) {
		t.Errorf("submit --wait shows the hotel's move as %q, want %q in it:\n%s", hotel, want, live.String())
	}
	if want := "airline.cancel   rollback moved " + shortID(a) + " → " + shortID(c) + ": " + why + "  (block 6)"; !strings.Contains(flight, want) {
		t.Errorf("submit --wait shows the flight rollback's move as %q, want %q in it:\n%s", flight, want, live.String())
	}
}
