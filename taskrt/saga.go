package taskrt

import (
	"errors"
	"fmt"
	"slices"
)

// OpStatus is the status of an operation (SPEC §2).
type OpStatus string

// Operation statuses.
const (
	OpRunning        OpStatus = "running"
	OpCompleted      OpStatus = "completed"
	OpRollingBack    OpStatus = "rolling_back"
	OpRolledBack     OpStatus = "rolled_back"
	OpRollbackFailed OpStatus = "rollback_failed"
)

// Final reports whether s is an end state. rollback_failed is final until
// someone asks for a retry.
func (s OpStatus) Final() bool {
	return s == OpCompleted || s == OpRolledBack || s == OpRollbackFailed
}

// TaskStatus is the status of one task (SPEC §2).
type TaskStatus string

// Task statuses.
const (
	TaskPending        TaskStatus = "pending"
	TaskRunning        TaskStatus = "running"
	TaskSucceeded      TaskStatus = "succeeded"
	TaskFailed         TaskStatus = "failed"
	TaskTimedOut       TaskStatus = "timed_out"
	TaskRolledBack     TaskStatus = "rolled_back"
	TaskRollbackFailed TaskStatus = "rollback_failed"
)

// Validation verdicts recorded per task.
const (
	ValidationPassed = "passed"
	ValidationFailed = "failed"
)

// Event types, in the order an operation usually meets them.
const (
	EventSubmitted          = "submitted"
	EventStageReleased      = "stage_released"
	EventTaskAttested       = "task_attested"
	EventTaskFailed         = "task_failed"
	EventTaskTimedOut       = "task_timed_out"
	EventRollbackReleased   = "rollback_released"
	EventTaskRolledBack     = "task_rolled_back"
	EventTaskRollbackFailed = "task_rollback_failed"
	EventRollbackRetried    = "rollback_retried"
	EventFinished           = "finished"
	// EventTaskMoved and EventRollbackMoved record that a task's run, or
	// its rollback, moved from an executor that went silent to another
	// host of its function (see Saga.Moved).
	EventTaskMoved     = "task_moved"
	EventRollbackMoved = "rollback_moved"
)

// Event is one step of an operation's history. The kernel fills everything
// but Height, which the caller stamps with the block that recorded it.
type Event struct {
	Height uint64 `json:"height"`
	Seq    int    `json:"seq"`
	Type   string `json:"type"`
	Stage  *int   `json:"stage,omitempty"`
	Task   string `json:"task,omitempty"`
	Valid  *bool  `json:"valid,omitempty"`
	Status string `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
	// From and To are the executors of a move (EventTaskMoved,
	// EventRollbackMoved), as the ledger names them.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// ActionKind says what a caller must do next.
type ActionKind int

// Action kinds.
const (
	// ActionRunStage: start the run functions of Tasks, all in parallel.
	ActionRunStage ActionKind = iota + 1
	// ActionRollbackStage: start the rollback functions of Tasks, all in parallel.
	ActionRollbackStage
	// ActionCancel: stop the run functions of Tasks; their results no longer count.
	ActionCancel
	// ActionFinish: the operation ended with Status.
	ActionFinish
)

// Action is one instruction from the kernel to its driver.
type Action struct {
	Kind   ActionKind
	Stage  int
	Tasks  []int
	Status OpStatus
}

// Result is the outcome of running one task, all attempts included.
type Result struct {
	// Status is TaskSucceeded, TaskFailed or TaskTimedOut.
	Status TaskStatus
	// Attempts is how many attempts were made.
	Attempts int
	// Output is the function's output when Status is TaskSucceeded.
	Output map[string]any
	// Valid is the verdict of the task's rule on Output.
	Valid bool
	// Reason says why the task failed, timed out or failed its rule.
	Reason string
}

// TaskState is what the kernel knows of one task.
type TaskState struct {
	Status     TaskStatus     `json:"status"`
	Attempts   int            `json:"attempts"`
	Output     map[string]any `json:"output,omitempty"`
	Validation string         `json:"validation,omitempty"`
	Error      string         `json:"error,omitempty"`
	// Outcome is how the run ended (succeeded, failed, timed_out), kept for
	// the rollback request after Status moves on.
	Outcome TaskStatus `json:"outcome,omitempty"`
	// Undone says the task's effects are undone or there was nothing to undo.
	Undone bool `json:"undone,omitempty"`
	// Undoing says the task's rollback is released and has not ended.
	Undoing          bool   `json:"undoing,omitempty"`
	RollbackAttempts int    `json:"rollback_attempts,omitempty"`
	RollbackError    string `json:"rollback_error,omitempty"`
}

// SagaState is the whole state of a [Saga], plain data a ledger can store.
type SagaState struct {
	Status OpStatus `json:"status"`
	// Stage is the highest forward stage released, -1 before Start.
	Stage int `json:"stage"`
	// Failing says a task of Stage failed and rollback is pending or running.
	Failing bool `json:"failing,omitempty"`
	// RollbackStage is the stage whose rollbacks run or last ran, -1 for none.
	RollbackStage int         `json:"rollback_stage"`
	Tasks         []TaskState `json:"tasks"`
	// Seq is the number of events emitted so far.
	Seq int `json:"seq"`
}

// Errors returned for inputs that do not fit the operation's state. A ledger
// refuses an entry that gets one of these.
var (
	ErrNotStarted    = errors.New("operation not started")
	ErrStarted       = errors.New("operation already started")
	ErrFinished      = errors.New("operation already finished")
	ErrNoSuchTask    = errors.New("no such task")
	ErrTaskNotActive = errors.New("task is not running")
	ErrNoRetry       = errors.New("operation is not rollback_failed")
)

// Saga is the saga kernel: an operation's progress as a pure state machine.
// Every method is deterministic and does no I/O; results go in, actions and
// events come out. A Saga is not safe for concurrent use.
type Saga struct {
	plan *Plan
	st   SagaState
	out  []Event
	acts []Action
}

// NewSaga returns the kernel for a planned operation, not yet started.
func NewSaga(plan *Plan) *Saga {
	st := SagaState{Status: OpRunning, Stage: -1, RollbackStage: -1, Tasks: make([]TaskState, len(plan.Op.Tasks))}
	for i := range st.Tasks {
		st.Tasks[i].Status = TaskPending
	}
	return &Saga{plan: plan, st: st}
}

// ResumeSaga returns the kernel for plan in a state saved by [Saga.State].
func ResumeSaga(plan *Plan, st SagaState) (*Saga, error) {
	if len(st.Tasks) != len(plan.Op.Tasks) {
		return nil, fmt.Errorf("saved state has %d tasks, plan has %d", len(st.Tasks), len(plan.Op.Tasks))
	}
	return &Saga{plan: plan, st: cloneState(st)}, nil
}

// Plan returns the plan the kernel follows.
func (s *Saga) Plan() *Plan { return s.plan }

// State returns a copy of the kernel's state.
func (s *Saga) State() SagaState { return cloneState(s.st) }

// Status returns the operation's status.
func (s *Saga) Status() OpStatus { return s.st.Status }

// Task returns the state of task i.
func (s *Saga) Task(i int) TaskState { return s.st.Tasks[i] }

// Inputs resolves task i's input labels from the operation's inputs and
// the recorded outputs of the tasks it depends on.
func (s *Saga) Inputs(i int) map[string]any {
	op := s.plan.Op
	in := make(map[string]any, len(op.Tasks[i].Inputs))
	for _, l := range op.Tasks[i].Inputs {
		if v, ok := op.Inputs[l]; ok {
			in[l] = v
			continue
		}
		for _, d := range s.plan.Deps[i] {
			if v, ok := s.st.Tasks[d].Output[l]; ok {
				in[l] = v
				break
			}
		}
	}
	return in
}

func cloneState(st SagaState) SagaState {
	st.Tasks = slices.Clone(st.Tasks)
	return st
}

// Start releases stage 0.
func (s *Saga) Start() ([]Action, []Event, error) {
	if s.st.Stage >= 0 {
		return nil, nil, ErrStarted
	}
	s.emit(Event{Type: EventSubmitted})
	s.releaseStage(0)
	return s.flush()
}

// TaskDone records the result of task i and says what follows.
func (s *Saga) TaskDone(i int, r Result) ([]Action, []Event, error) {
	t, err := s.running(i)
	if err != nil {
		return nil, nil, err
	}
	switch r.Status {
	case TaskSucceeded, TaskFailed, TaskTimedOut:
	default:
		return nil, nil, fmt.Errorf("task %q: result status %q is not succeeded, failed or timed_out", s.id(i), r.Status)
	}
	t.Attempts = r.Attempts
	t.Outcome = r.Status
	stage := s.plan.StageOf[i]
	switch r.Status {
	case TaskSucceeded:
		t.Output = r.Output
		valid := r.Valid
		s.emit(Event{Type: EventTaskAttested, Stage: intp(stage), Task: s.id(i), Valid: &valid, Reason: reasonIf(!valid, r.Reason)})
		if valid {
			t.Status = TaskSucceeded
			t.Validation = ValidationPassed
		} else {
			t.Status = TaskFailed
			t.Validation = ValidationFailed
			t.Error = r.Reason
			s.fail()
		}
	case TaskFailed:
		t.Status = TaskFailed
		t.Error = r.Reason
		s.emit(Event{Type: EventTaskFailed, Stage: intp(stage), Task: s.id(i), Reason: r.Reason})
		s.fail()
	case TaskTimedOut:
		t.Status = TaskTimedOut
		t.Error = r.Reason
		s.emit(Event{Type: EventTaskTimedOut, Stage: intp(stage), Task: s.id(i), Reason: r.Reason})
		s.fail()
	}
	s.advance()
	return s.flush()
}

// TimeOut ends every task of the current stage that is still running as
// timed out, with reason: the operation's own deadline has passed. The
// caller must stop those tasks; the stage then rolls back.
func (s *Saga) TimeOut(reason string) ([]Action, []Event, error) {
	if err := s.forward(); err != nil {
		return nil, nil, err
	}
	var cancelled []int
	stage := s.st.Stage
	for _, i := range s.plan.Stages[stage] {
		t := &s.st.Tasks[i]
		if t.Status != TaskRunning {
			continue
		}
		t.Status, t.Outcome, t.Error = TaskTimedOut, TaskTimedOut, reason
		cancelled = append(cancelled, i)
		s.emit(Event{Type: EventTaskTimedOut, Stage: intp(stage), Task: s.id(i), Reason: reason})
	}
	if len(cancelled) > 0 {
		s.acts = append(s.acts, Action{Kind: ActionCancel, Stage: stage, Tasks: cancelled})
		s.fail()
	}
	s.advance()
	return s.flush()
}

// Moved records that the run of task i (or its rollback) moved from the
// executor from to the executor to, for reason. A move changes no state
// of the saga: the task is still running (or undoing), with the same
// idempotency key, and its timeout and retries start again on its new
// host, since a host that went silent did not use them. It returns the
// event, which the caller records with the others.
func (s *Saga) Moved(i int, rollback bool, from, to, reason string) ([]Event, error) {
	if i < 0 || i >= len(s.st.Tasks) {
		return nil, fmt.Errorf("task %d: %w", i, ErrNoSuchTask)
	}
	t := s.st.Tasks[i]
	typ, stage := EventTaskMoved, s.plan.StageOf[i]
	switch {
	case rollback && !t.Undoing:
		return nil, fmt.Errorf("rollback of task %q: %w", s.id(i), ErrTaskNotActive)
	case rollback:
		typ = EventRollbackMoved
	default:
		if _, err := s.running(i); err != nil {
			return nil, err
		}
	}
	s.emit(Event{Type: typ, Stage: intp(stage), Task: s.id(i), Reason: reason, From: from, To: to})
	_, evs, err := s.flush()
	return evs, err
}

// RollbackDone records that the rollback of task i ended: undone, or failed
// for good with reason after attempts.
func (s *Saga) RollbackDone(i int, undone bool, attempts int, reason string) ([]Action, []Event, error) {
	if i < 0 || i >= len(s.st.Tasks) {
		return nil, nil, fmt.Errorf("task index %d: %w", i, ErrNoSuchTask)
	}
	t := &s.st.Tasks[i]
	stage := s.plan.StageOf[i]
	if s.st.Status != OpRollingBack || stage != s.st.RollbackStage || !t.Undoing {
		return nil, nil, fmt.Errorf("rollback of task %q: %w", s.id(i), ErrTaskNotActive)
	}
	t.RollbackAttempts = attempts
	t.Undoing = false
	if undone {
		t.Status, t.Undone, t.RollbackError = TaskRolledBack, true, ""
		s.emit(Event{Type: EventTaskRolledBack, Stage: intp(stage), Task: s.id(i)})
	} else {
		t.Status, t.RollbackError = TaskRollbackFailed, reason
		s.emit(Event{Type: EventTaskRollbackFailed, Stage: intp(stage), Task: s.id(i), Reason: reason})
	}
	s.advance()
	return s.flush()
}

// Retry runs again the rollbacks of an operation left rollback_failed.
func (s *Saga) Retry() ([]Action, []Event, error) {
	if s.st.Status != OpRollbackFailed {
		return nil, nil, fmt.Errorf("status %s: %w", s.st.Status, ErrNoRetry)
	}
	stage := s.st.RollbackStage
	s.st.Status = OpRollingBack
	s.emit(Event{Type: EventRollbackRetried, Stage: intp(stage)})
	var again []int
	for _, i := range s.plan.Stages[stage] {
		if t := &s.st.Tasks[i]; t.Status == TaskRollbackFailed {
			t.Undoing = true
			again = append(again, i)
		}
	}
	s.acts = append(s.acts, Action{Kind: ActionRollbackStage, Stage: stage, Tasks: again})
	s.emit(Event{Type: EventRollbackReleased, Stage: intp(stage)})
	return s.flush()
}

// running returns task i if it is running in the current forward stage.
func (s *Saga) running(i int) (*TaskState, error) {
	if i < 0 || i >= len(s.st.Tasks) {
		return nil, fmt.Errorf("task index %d: %w", i, ErrNoSuchTask)
	}
	if err := s.forward(); err != nil {
		return nil, err
	}
	t := &s.st.Tasks[i]
	if t.Status != TaskRunning {
		return nil, fmt.Errorf("task %q is %s: %w", s.id(i), t.Status, ErrTaskNotActive)
	}
	return t, nil
}

// forward checks that the operation is between Start and its first rollback.
func (s *Saga) forward() error {
	switch {
	case s.st.Stage < 0:
		return ErrNotStarted
	case s.st.Status.Final():
		return fmt.Errorf("status %s: %w", s.st.Status, ErrFinished)
	case s.st.RollbackStage >= 0:
		return fmt.Errorf("stage %d is rolling back: %w", s.st.RollbackStage, ErrTaskNotActive)
	}
	return nil
}

func (s *Saga) fail() {
	s.st.Failing = true
	s.st.Status = OpRollingBack
}

// advance moves the operation on after a result: to the next stage, to the
// first rollbacks, to the next lower rollbacks, or to its end.
func (s *Saga) advance() {
	if s.st.RollbackStage < 0 {
		stage := s.st.Stage
		for _, i := range s.plan.Stages[stage] {
			if s.st.Tasks[i].Status == TaskRunning {
				return // wait for siblings, whatever happened
			}
		}
		if !s.st.Failing {
			if stage+1 < len(s.plan.Stages) {
				s.releaseStage(stage + 1)
			} else {
				s.finish(OpCompleted)
			}
			return
		}
		s.releaseRollback(stage)
		return
	}
	stage := s.st.RollbackStage
	failed := false
	for _, i := range s.plan.Stages[stage] {
		t := s.st.Tasks[i]
		if t.Undoing {
			return // a rollback of this stage is still running
		}
		failed = failed || t.Status == TaskRollbackFailed
	}
	if failed {
		s.finish(OpRollbackFailed)
		return
	}
	s.releaseRollback(stage - 1)
}

func (s *Saga) releaseStage(stage int) {
	s.st.Stage = stage
	tasks := slices.Clone(s.plan.Stages[stage])
	for _, i := range tasks {
		s.st.Tasks[i].Status = TaskRunning
	}
	s.emit(Event{Type: EventStageReleased, Stage: intp(stage)})
	s.acts = append(s.acts, Action{Kind: ActionRunStage, Stage: stage, Tasks: tasks})
}

// releaseRollback releases the rollbacks of every started task of stage,
// skipping down past stages with nothing to undo, and finishes the operation
// as rolled_back below stage 0.
func (s *Saga) releaseRollback(stage int) {
	for ; stage >= 0; stage-- {
		s.st.RollbackStage = stage
		s.emit(Event{Type: EventRollbackReleased, Stage: intp(stage)})
		var run []int
		for _, i := range s.plan.Stages[stage] {
			t := &s.st.Tasks[i]
			if t.Status == TaskPending {
				continue // never started: nothing to undo
			}
			if s.plan.Op.Tasks[i].Rollback == "" {
				t.Status, t.Undone = TaskRolledBack, true
				s.emit(Event{Type: EventTaskRolledBack, Stage: intp(stage), Task: s.id(i), Reason: "no rollback: nothing to undo"})
				continue
			}
			t.Undoing = true
			run = append(run, i)
		}
		if len(run) > 0 {
			s.acts = append(s.acts, Action{Kind: ActionRollbackStage, Stage: stage, Tasks: run})
			return
		}
	}
	s.finish(OpRolledBack)
}

func (s *Saga) finish(status OpStatus) {
	s.st.Status = status
	s.emit(Event{Type: EventFinished, Status: string(status)})
	s.acts = append(s.acts, Action{Kind: ActionFinish, Status: status})
}

func (s *Saga) emit(e Event) {
	s.st.Seq++
	e.Seq = s.st.Seq
	s.out = append(s.out, e)
}

func (s *Saga) flush() ([]Action, []Event, error) {
	acts, evs := s.acts, s.out
	s.acts, s.out = nil, nil
	return acts, evs, nil
}

func (s *Saga) id(i int) string { return s.plan.Op.Tasks[i].ID }

// intp returns a pointer to a copy of v, so events never alias a variable
// that changes later.
func intp(v int) *int { return &v }

func reasonIf(cond bool, reason string) string {
	if cond {
		return reason
	}
	return ""
}
