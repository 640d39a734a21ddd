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
//	  ⇄ hotel    hotel.book       moved 0xab12…cd34 → 0xef56…7890: executor … signed nothing …
//	rollback stage 0 ◀ flight, payment
//	  ↺ flight   airline.cancel   undone  (3ms)
//	rolled_back in 1.24s
//
// It serves `run`, whose events come from the runner as they happen, and
// `submit --wait`, whose events come from a node in views of the whole
// operation; there each line ends with the block that recorded the event
// instead of the time since its stage was released.
type renderer struct {
	w     io.Writer
	id    string
	color bool
	// ledger says the events carry the heights of the blocks that recorded
	// them.
	ledger bool
	start  time.Time
	// released is when the running stage, or the stage rolling back, was released.
	released time.Time
	idW, fnW int
	// err is the first error writing to w.
	err error
}

// opState is what the renderer reads about an operation as it prints an
// event: the runner's saga, or the newest view a node sent.
type opState interface {
	name() string
	stageCount() int
	// task returns a task's definition and state; ok is false for an id
	// the operation does not have.
	task(id string) (t taskLine, ok bool)
	// stageTasks lists the ids of a stage's tasks in file order: all of
	// them, or with started only the ones that started (a task never
	// started has nothing to undo).
	stageTasks(stage int, started bool) []string
	// view is the operation as `op get` shows it.
	view() taskrt.OperationView
}

// taskLine is what a line about a task shows.
type taskLine struct {
	ID, Run, Rollback, Rule    string
	Attempts, RollbackAttempts int
}

func newRenderer(w io.Writer, id string, tasks []taskLine, color, ledger bool) *renderer {
	r := &renderer{w: w, id: id, color: color, ledger: ledger, start: time.Now()}
	r.released = r.start
	for _, t := range tasks {
		r.idW = max(r.idW, len(t.ID))
		r.fnW = max(r.fnW, len(t.Run), len(rollbackName(t.Rollback)))
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
// when: the block that recorded it, or how long since its stage was
// released.
func (r *renderer) taskLine(e taskrt.Event, mark, color, id, fn, what string) {
	when := elapsed(time.Since(r.released))
	if r.ledger {
		when = fmt.Sprintf("block %d", e.Height)
	}
	r.printf("  %s %-*s  %-*s  %s  (%s)\n", r.paint(color, mark), r.idW, printable(id), r.fnW, printable(fn), printable(what), when)
}

func (r *renderer) event(e taskrt.Event, s opState) {
	task := func() taskLine {
		t, ok := s.task(e.Task)
		if !ok {
			return taskLine{ID: e.Task}
		}
		return t
	}
	switch e.Type {
	case taskrt.EventSubmitted:
		var tasks int
		for k := range s.stageCount() {
			tasks += len(s.stageTasks(k, false))
		}
		r.printf("%s %s · %s · %s", r.paint(bold, printable(s.name())), printable(shortID(r.id)), plural(s.stageCount(), "stage"), plural(tasks, "task"))
		if r.ledger {
			r.printf(" · block %d", e.Height)
		}
		r.printf("\n")
	case taskrt.EventStageReleased:
		r.released = time.Now()
		r.printf("%s ▶ %s\n", r.paint(bold, fmt.Sprintf("stage %d", *e.Stage)), printable(strings.Join(s.stageTasks(*e.Stage, false), ", ")))
	case taskrt.EventTaskAttested:
		t := task()
		switch {
		case e.Valid != nil && !*e.Valid:
			r.taskLine(e, "✗", red, t.ID, t.Run, "invalid: "+e.Reason)
		case t.Rule != "":
			r.taskLine(e, "✓", green, t.ID, t.Run, "rule passed"+attempts(t.Attempts))
		default:
			r.taskLine(e, "✓", green, t.ID, t.Run, "succeeded"+attempts(t.Attempts))
		}
	case taskrt.EventTaskFailed:
		t := task()
		r.taskLine(e, "✗", red, t.ID, t.Run, "failed: "+e.Reason)
	case taskrt.EventTaskTimedOut:
		t := task()
		r.taskLine(e, "⏱", yellow, t.ID, t.Run, "timed out: "+e.Reason)
	case taskrt.EventRollbackReleased:
		r.released = time.Now()
		r.printf("%s ◀ %s\n", r.paint(bold, fmt.Sprintf("rollback stage %d", *e.Stage)), printable(strings.Join(s.stageTasks(*e.Stage, true), ", ")))
	case taskrt.EventTaskRolledBack:
		t := task()
		if t.Rollback == "" {
			r.taskLine(e, "↺", cyan, t.ID, "-", "nothing to undo (no rollback)")
			break
		}
		r.taskLine(e, "↺", cyan, t.ID, t.Rollback, "undone"+attempts(t.RollbackAttempts))
	case taskrt.EventTaskRollbackFailed:
		t := task()
		r.taskLine(e, "✗", red, t.ID, t.Rollback, "rollback failed: "+e.Reason)
	case taskrt.EventTaskMoved:
		t := task()
		r.taskLine(e, "⇄", yellow, t.ID, t.Run, moved(e))
	case taskrt.EventRollbackMoved:
		t := task()
		r.taskLine(e, "⇄", yellow, t.ID, rollbackName(t.Rollback), "rollback "+moved(e))
	case taskrt.EventRollbackRetried:
		r.printf("%s\n", r.paint(bold, fmt.Sprintf("retrying rollback of stage %d", *e.Stage)))
	case taskrt.EventFinished:
		color := green
		if e.Status != string(taskrt.OpCompleted) {
			color = red
		}
		if r.ledger {
			r.printf("%s at block %d, %s after submitting\n", r.paint(color, printable(e.Status)), e.Height, elapsed(time.Since(r.start)))
		} else {
			r.printf("%s in %s\n", r.paint(color, printable(e.Status)), elapsed(time.Since(r.start)))
		}
		v := s.view()
		for _, f := range failures(v) {
			r.printf("  %s\n", printable(f))
		}
		if k := stuckStage(v); e.Status == string(taskrt.OpRollbackFailed) && k > 0 {
			r.printf("  stages 0 to %d were not undone\n", k-1)
		}
	}
}

// moved says where a task's run or rollback moved and why, with the
// executors shortened: the reason names the one that went silent in full.
func moved(e taskrt.Event) string {
	s := fmt.Sprintf("moved %s → %s", shortID(e.From), shortID(e.To))
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// stuckStage is the stage whose rollback failed, or -1.
func stuckStage(v taskrt.OperationView) int {
	for _, s := range v.Stages {
		if s.Status == string(taskrt.TaskRollbackFailed) {
			return s.Index
		}
	}
	return -1
}

// sagaState is the opState of the local runner's saga.
type sagaState struct {
	id   string
	plan *taskrt.Plan
	saga *taskrt.Saga
}

func (s sagaState) name() string    { return s.plan.Op.Name }
func (s sagaState) stageCount() int { return len(s.plan.Stages) }

func (s sagaState) task(id string) (taskLine, bool) {
	i, ok := s.plan.Index(id)
	if !ok {
		return taskLine{}, false
	}
	t, st := s.plan.Op.Tasks[i], s.saga.Task(i)
	return taskLine{ID: t.ID, Run: t.Run, Rollback: t.Rollback, Rule: t.Validate,
		Attempts: st.Attempts, RollbackAttempts: st.RollbackAttempts}, true
}

func (s sagaState) stageTasks(stage int, started bool) []string {
	var ids []string
	for _, i := range s.plan.Stages[stage] {
		if started && s.saga.Task(i).Status == taskrt.TaskPending {
			continue
		}
		ids = append(ids, s.plan.Op.Tasks[i].ID)
	}
	return ids
}

func (s sagaState) view() taskrt.OperationView {
	return taskrt.NewView(s.id, s.plan, s.saga.State(), nil)
}

// planTasks lists the tasks of a plan for newRenderer.
func planTasks(p *taskrt.Plan) []taskLine {
	out := make([]taskLine, len(p.Op.Tasks))
	for i, t := range p.Op.Tasks {
		out[i] = taskLine{ID: t.ID, Run: t.Run, Rollback: t.Rollback}
	}
	return out
}

// viewState is the opState of a view a node sent.
type viewState struct {
	v     taskrt.OperationView
	tasks map[string]taskrt.TaskView
}

func newViewState(v taskrt.OperationView) viewState {
	s := viewState{v: v, tasks: make(map[string]taskrt.TaskView)}
	for _, st := range v.Stages {
		for _, t := range st.Tasks {
			s.tasks[t.ID] = t
		}
	}
	return s
}

func (s viewState) name() string               { return s.v.Name }
func (s viewState) stageCount() int            { return len(s.v.Stages) }
func (s viewState) view() taskrt.OperationView { return s.v }

func (s viewState) task(id string) (taskLine, bool) {
	t, ok := s.tasks[id]
	return taskLine{ID: t.ID, Run: t.Run, Rollback: t.Rollback, Rule: t.Rule,
		Attempts: t.Attempts, RollbackAttempts: t.RollbackAttempts}, ok
}

func (s viewState) stageTasks(stage int, started bool) []string {
	var ids []string
	if stage < 0 || stage >= len(s.v.Stages) {
		return nil
	}
	for _, t := range s.v.Stages[stage].Tasks {
		if started && t.Status == taskrt.TaskPending {
			continue
		}
		ids = append(ids, t.ID)
	}
	return ids
}

// viewTasks lists the tasks of a view for newRenderer.
func viewTasks(v taskrt.OperationView) []taskLine {
	var out []taskLine
	for _, s := range v.Stages {
		for _, t := range s.Tasks {
			out = append(out, taskLine{ID: t.ID, Run: t.Run, Rollback: t.Rollback})
		}
	}
	return out
}

// attempts notes the attempts a call took when it took more than one.
func attempts(n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(" after %d attempts", n)
}

// rollbackName is a task's rollback function, or "-" for none.
func rollbackName(fn string) string {
	if fn == "" {
		return "-"
	}
	return fn
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
