package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sagachain/sagachain/taskrt"
)

// renderer prints an operation's events as they happen, one line each,
// grouped by stage:
//
//	book-trip 0x3fa2…9c1d · 3 stages · 5 tasks
//	stage 0 ▶ flight, payment
//	  ✓ flight   airline.reserve  rule passed  (12ms)
//	rollback stage 0 ◀ flight, payment
//	  ↺ flight   airline.cancel   undone  (3ms)
//	rolled_back in 1.24s
//
// It runs on the runner's goroutine.
type renderer struct {
	w     io.Writer
	id    string
	plan  *taskrt.Plan
	color bool
	start time.Time
	// released is when the running stage, or the stage rolling back, was released.
	released time.Time
	idW, fnW int
	// err is the first error writing to w.
	err error
}

func newRenderer(w io.Writer, id string, plan *taskrt.Plan, color bool) *renderer {
	r := &renderer{w: w, id: id, plan: plan, color: color, start: time.Now()}
	for _, t := range plan.Op.Tasks {
		r.idW = max(r.idW, len(t.ID))
		r.fnW = max(r.fnW, len(t.Run), len(rollbackName(t)))
	}
	return r
}

// ANSI colours, used only on a terminal.
const (
	bold   = "1"
	red    = "31"
	green  = "32"
	yellow = "33"
	cyan   = "36"
)

func (r *renderer) paint(code, s string) string {
	if !r.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (r *renderer) printf(format string, args ...any) {
	if r.err == nil {
		_, r.err = fmt.Fprintf(r.w, format, args...)
	}
}

// taskLine prints one task's line: mark, id, function, what happened, and
// how long since its stage was released.
func (r *renderer) taskLine(mark, color, id, fn, what string) {
	since := time.Since(r.released)
	r.printf("  %s %-*s  %-*s  %s  (%s)\n", r.paint(color, mark), r.idW, id, r.fnW, fn, what, elapsed(since))
}

func (r *renderer) event(e taskrt.Event, s *taskrt.Saga) {
	op := r.plan.Op
	task := func() (taskrt.Task, taskrt.TaskState) {
		i, ok := r.plan.Index(e.Task)
		if !ok {
			return taskrt.Task{ID: e.Task}, taskrt.TaskState{}
		}
		return op.Tasks[i], s.Task(i)
	}
	switch e.Type {
	case taskrt.EventSubmitted:
		r.printf("%s %s · %s · %s\n", r.paint(bold, op.Name), shortID(r.id), plural(len(r.plan.Stages), "stage"), plural(len(op.Tasks), "task"))
	case taskrt.EventStageReleased:
		r.released = time.Now()
		r.printf("%s ▶ %s\n", r.paint(bold, fmt.Sprintf("stage %d", *e.Stage)), strings.Join(r.stageTasks(*e.Stage, s, false), ", "))
	case taskrt.EventTaskAttested:
		t, st := task()
		switch {
		case e.Valid != nil && !*e.Valid:
			r.taskLine("✗", red, t.ID, t.Run, "invalid: "+e.Reason)
		case t.Validate != "":
			r.taskLine("✓", green, t.ID, t.Run, "rule passed"+attempts(st.Attempts))
		default:
			r.taskLine("✓", green, t.ID, t.Run, "succeeded"+attempts(st.Attempts))
		}
	case taskrt.EventTaskFailed:
		t, _ := task()
		r.taskLine("✗", red, t.ID, t.Run, "failed: "+e.Reason)
	case taskrt.EventTaskTimedOut:
		t, _ := task()
		r.taskLine("⏱", yellow, t.ID, t.Run, "timed out: "+e.Reason)
	case taskrt.EventRollbackReleased:
		r.released = time.Now()
		r.printf("%s ◀ %s\n", r.paint(bold, fmt.Sprintf("rollback stage %d", *e.Stage)), strings.Join(r.stageTasks(*e.Stage, s, true), ", "))
	case taskrt.EventTaskRolledBack:
		t, st := task()
		if t.Rollback == "" {
			r.taskLine("↺", cyan, t.ID, "-", "nothing to undo (no rollback)")
			break
		}
		r.taskLine("↺", cyan, t.ID, t.Rollback, "undone"+attempts(st.RollbackAttempts))
	case taskrt.EventTaskRollbackFailed:
		t, _ := task()
		r.taskLine("✗", red, t.ID, t.Rollback, "rollback failed: "+e.Reason)
	case taskrt.EventRollbackRetried:
		r.printf("%s\n", r.paint(bold, fmt.Sprintf("retrying rollback of stage %d", *e.Stage)))
	case taskrt.EventFinished:
		color := green
		if e.Status != string(taskrt.OpCompleted) {
			color = red
		}
		r.printf("%s in %s\n", r.paint(color, e.Status), elapsed(time.Since(r.start)))
		view := taskrt.NewView(r.id, r.plan, s.State(), nil)
		for _, f := range failures(view) {
			r.printf("  %s\n", f)
		}
		if st := s.State(); e.Status == string(taskrt.OpRollbackFailed) && st.RollbackStage > 0 {
			r.printf("  stages 0 to %d were not undone\n", st.RollbackStage-1)
		}
	}
}

// stageTasks lists the ids of a stage's tasks: all of them for a run, the
// started ones for a rollback (tasks never started have nothing to undo).
func (r *renderer) stageTasks(stage int, s *taskrt.Saga, rollback bool) []string {
	var ids []string
	for _, i := range r.plan.Stages[stage] {
		if rollback && s.Task(i).Status == taskrt.TaskPending {
			continue
		}
		ids = append(ids, r.plan.Op.Tasks[i].ID)
	}
	return ids
}

// attempts notes the attempts a call took when it took more than one.
func attempts(n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(" after %d attempts", n)
}

// rollbackName is a task's rollback function, or "-" for none.
func rollbackName(t taskrt.Task) string {
	if t.Rollback == "" {
		return "-"
	}
	return t.Rollback
}

// shortID abbreviates an operation id for a person: 0x3fa2…9c1d.
func shortID(id string) string {
	if len(id) <= 14 {
		return id
	}
	return id[:6] + "…" + id[len(id)-4:]
}

// useColor reports whether w is a terminal that wants colour.
func useColor(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
