package taskrt

// OperationView is one operation as `sagachain op get --json` and
// `sagachain run --json` print it (SPEC §2). Fields only a ledger knows
// (submitter, heights, stage hashes, executors and their history) are left
// for it to fill.
type OperationView struct {
	ID              string      `json:"id"`
	Name            string      `json:"name"`
	Status          OpStatus    `json:"status"`
	Submitter       string      `json:"submitter,omitempty"`
	SubmittedHeight uint64      `json:"submitted_height"`
	Stages          []StageView `json:"stages"`
	Events          []Event     `json:"events"`
}

// StageView is one stage of an [OperationView].
type StageView struct {
	Index  int        `json:"index"`
	Hash   string     `json:"hash,omitempty"`
	Prev   string     `json:"prev,omitempty"`
	Status string     `json:"status"`
	Tasks  []TaskView `json:"tasks"`
}

// TaskView is one task of a [StageView].
type TaskView struct {
	ID       string     `json:"id"`
	Run      string     `json:"run"`
	Rollback string     `json:"rollback,omitempty"`
	Executor string     `json:"executor,omitempty"`
	Status   TaskStatus `json:"status"`
	Attempts int        `json:"attempts"`
	// Deps are the ids of the tasks this one depends on, for drawing the graph.
	Deps       []string       `json:"deps,omitempty"`
	Rule       string         `json:"rule,omitempty"`
	Output     map[string]any `json:"output,omitempty"`
	Validation string         `json:"validation"`
	Error      string         `json:"error"`
	// Outcome is how the run ended, kept after the task is rolled back.
	Outcome          TaskStatus `json:"outcome,omitempty"`
	RollbackAttempts int        `json:"rollback_attempts,omitempty"`
	RollbackError    string     `json:"rollback_error,omitempty"`
	// Executors is where the task ran, in order: its first assignment,
	// then one entry per move (EventTaskMoved). Only a ledger fills it, so
	// that a reader sees the path of a task whose executor went silent
	// without piecing it together from the events.
	Executors []Assignment `json:"executors,omitempty"`
	// RollbackExecutor is the executor the rollback is assigned to, once
	// the task's rollback was released; RollbackExecutors is the path of
	// that assignment as Executors is of the run's.
	RollbackExecutor  string       `json:"rollback_executor,omitempty"`
	RollbackExecutors []Assignment `json:"rollback_executors,omitempty"`
}

// Assignment is one step of a task's executor history: the executor that
// held the work from the block at Height, and, for a move, why the work
// left the one before.
type Assignment struct {
	Executor string `json:"executor"`
	Height   uint64 `json:"height"`
	Reason   string `json:"reason,omitempty"`
}

// NewView renders an operation's plan, kernel state and history.
func NewView(id string, p *Plan, st SagaState, events []Event) OperationView {
	v := OperationView{ID: id, Name: p.Op.Name, Status: st.Status, Stages: make([]StageView, len(p.Stages)), Events: events}
	if v.Events == nil {
		v.Events = []Event{}
	}
	for k, stage := range p.Stages {
		sv := StageView{Index: k, Tasks: make([]TaskView, 0, len(stage))}
		states := make([]TaskState, 0, len(stage))
		for _, i := range stage {
			states = append(states, st.Tasks[i])
			t, ts := p.Op.Tasks[i], st.Tasks[i]
			tv := TaskView{
				ID: t.ID, Run: t.Run, Rollback: t.Rollback, Status: ts.Status, Attempts: ts.Attempts,
				Rule: t.Validate, Output: ts.Output, Validation: ts.Validation, Error: ts.Error,
				Outcome: ts.Outcome, RollbackAttempts: ts.RollbackAttempts, RollbackError: ts.RollbackError,
			}
			for _, d := range p.Deps[i] {
				tv.Deps = append(tv.Deps, p.Op.Tasks[d].ID)
			}
			sv.Tasks = append(sv.Tasks, tv)
		}
		sv.Status = stageStatus(states)
		v.Stages[k] = sv
	}
	return v
}

// stageStatus sums up the tasks of a stage: a stuck rollback first, then a
// finished or running rollback, then a failure, then progress.
func stageStatus(tasks []TaskState) string {
	var n = map[TaskStatus]int{}
	undoing := false
	for _, t := range tasks {
		n[t.Status]++
		undoing = undoing || t.Undoing
	}
	switch {
	case n[TaskRollbackFailed] > 0:
		return string(TaskRollbackFailed)
	case undoing:
		return string(OpRollingBack)
	case n[TaskRolledBack] > 0:
		return string(TaskRolledBack)
	case n[TaskFailed] > 0 || n[TaskTimedOut] > 0:
		return string(TaskFailed)
	case n[TaskRunning] > 0:
		return string(TaskRunning)
	case n[TaskSucceeded] == len(tasks):
		return string(TaskSucceeded)
	}
	return string(TaskPending)
}
