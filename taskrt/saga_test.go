package taskrt

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestSaga runs the kernel scenarios in testdata/saga. Each file is a script:
//
//	op                      define the operation, one task a line:
//	a                         id [after=x,y] [norollback]
//	b after=a
//	----
//	start                   release stage 0
//	ok a                    task a succeeded and passed its rule
//	invalid a REASON        task a succeeded but its rule returned false
//	fail a REASON           task a failed after its retries
//	timeout a               task a timed out
//	optimeout               the operation's deadline passed
//	undone a                the rollback of a finished
//	undofail a REASON       the rollback of a failed for good
//	retry                   run the remaining rollbacks again
//	state                   print every task's status
//
// and the output lists the events and actions each step produced.
func TestSaga(t *testing.T) {
	datadriven.Walk(t, "testdata/saga", func(t *testing.T, path string) {
		var s *Saga
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd == "op" {
				p, err := scriptPlan(d.Input)
				if err != nil {
					return "error: " + err.Error()
				}
				s = NewSaga(p)
				return formatStages(p)
			}
			if s == nil {
				d.Fatalf(t, "%s before op", d.Cmd)
			}
			acts, evs, err := scriptStep(s, d)
			if err != nil {
				return "error: " + err.Error()
			}
			return formatStep(s, acts, evs)
		})
	})
}

func scriptPlan(input string) (*Plan, error) {
	op := &Operation{Name: "script"}
	for _, line := range strings.Split(strings.TrimSpace(input), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		t := Task{ID: f[0], Run: "echo", Rollback: "noop", Outputs: []string{f[0]}}
		for _, opt := range f[1:] {
			switch {
			case opt == "norollback":
				t.Rollback = ""
			case strings.HasPrefix(opt, "after="):
				t.After = strings.Split(strings.TrimPrefix(opt, "after="), ",")
			default:
				return nil, fmt.Errorf("task %s: unknown option %q", f[0], opt)
			}
		}
		op.Tasks = append(op.Tasks, t)
	}
	return NewPlan(op)
}

func scriptStep(s *Saga, d *datadriven.TestData) ([]Action, []Event, error) {
	task := func() int {
		if len(d.CmdArgs) == 0 {
			panic(d.Pos + ": " + d.Cmd + " needs a task")
		}
		i, ok := s.Plan().Index(d.CmdArgs[0].Key)
		if !ok {
			return -1
		}
		return i
	}
	reason := func() string {
		var words []string
		for _, a := range d.CmdArgs[1:] {
			words = append(words, a.Key)
		}
		return strings.Join(words, " ")
	}
	switch d.Cmd {
	case "start":
		return s.Start()
	case "ok":
		return s.TaskDone(task(), Result{Status: TaskSucceeded, Attempts: 1, Output: map[string]any{}, Valid: true})
	case "invalid":
		return s.TaskDone(task(), Result{Status: TaskSucceeded, Attempts: 1, Output: map[string]any{}, Reason: reason()})
	case "fail":
		return s.TaskDone(task(), Result{Status: TaskFailed, Attempts: 3, Reason: reason()})
	case "timeout":
		return s.TaskDone(task(), Result{Status: TaskTimedOut, Attempts: 1, Reason: "timed out after 1s"})
	case "optimeout":
		return s.TimeOut("operation timeout 10m exceeded")
	case "undone":
		return s.RollbackDone(task(), true, 1, "")
	case "undofail":
		return s.RollbackDone(task(), false, 5, reason())
	case "retry":
		return s.Retry()
	case "state":
		return nil, nil, nil
	}
	return nil, nil, fmt.Errorf("unknown command %q", d.Cmd)
}

func formatStages(p *Plan) string {
	var b strings.Builder
	for k, st := range p.Stages {
		fmt.Fprintf(&b, "stage %d:", k)
		for _, i := range st {
			fmt.Fprintf(&b, " %s", p.Op.Tasks[i].ID)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func formatStep(s *Saga, acts []Action, evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "event %d %s", e.Seq, e.Type)
		if e.Stage != nil {
			fmt.Fprintf(&b, " stage=%d", *e.Stage)
		}
		if e.Task != "" {
			fmt.Fprintf(&b, " task=%s", e.Task)
		}
		if e.Valid != nil {
			fmt.Fprintf(&b, " valid=%t", *e.Valid)
		}
		if e.Status != "" {
			fmt.Fprintf(&b, " status=%s", e.Status)
		}
		if e.Reason != "" {
			fmt.Fprintf(&b, " reason=%q", e.Reason)
		}
		b.WriteString("\n")
	}
	kinds := map[ActionKind]string{ActionRunStage: "run", ActionRollbackStage: "rollback", ActionCancel: "cancel", ActionFinish: "finish"}
	for _, a := range acts {
		if a.Kind == ActionFinish {
			fmt.Fprintf(&b, "action finish %s\n", a.Status)
			continue
		}
		fmt.Fprintf(&b, "action %s stage %d:", kinds[a.Kind], a.Stage)
		for _, i := range a.Tasks {
			fmt.Fprintf(&b, " %s", s.Plan().Op.Tasks[i].ID)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "op %s |", s.Status())
	for i, t := range s.State().Tasks {
		fmt.Fprintf(&b, " %s=%s", s.Plan().Op.Tasks[i].ID, t.Status)
	}
	b.WriteString("\n")
	return b.String()
}

// TestSagaRefusesOutOfOrderResults checks the errors a ledger relies on to
// refuse entries that do not fit the operation's state.
func TestSagaRefusesOutOfOrderResults(t *testing.T) {
	p, err := scriptPlan("a\nb after=a")
	if err != nil {
		t.Fatal(err)
	}
	s := NewSaga(p)
	ok := Result{Status: TaskSucceeded, Valid: true, Attempts: 1}
	if _, _, err := s.TaskDone(0, ok); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("result before start: got %v, want ErrNotStarted", err)
	}
	if _, _, err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Start(); !errors.Is(err, ErrStarted) {
		t.Fatalf("second start: got %v, want ErrStarted", err)
	}
	if _, _, err := s.TaskDone(1, ok); !errors.Is(err, ErrTaskNotActive) {
		t.Fatalf("result for unreleased task: got %v, want ErrTaskNotActive", err)
	}
	if _, _, err := s.TaskDone(7, ok); !errors.Is(err, ErrNoSuchTask) {
		t.Fatalf("result for unknown task: got %v, want ErrNoSuchTask", err)
	}
	if _, _, err := s.TaskDone(0, Result{Status: TaskRunning}); err == nil {
		t.Fatal("result with status running was accepted")
	}
	if _, _, err := s.RollbackDone(0, true, 1, ""); !errors.Is(err, ErrTaskNotActive) {
		t.Fatalf("rollback while running forward: got %v, want ErrTaskNotActive", err)
	}
	if _, _, err := s.Retry(); !errors.Is(err, ErrNoRetry) {
		t.Fatalf("retry while running: got %v, want ErrNoRetry", err)
	}
	if _, _, err := s.TaskDone(0, ok); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.TaskDone(0, ok); !errors.Is(err, ErrTaskNotActive) {
		t.Fatalf("duplicate result: got %v, want ErrTaskNotActive", err)
	}
	if _, _, err := s.TaskDone(1, ok); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.TaskDone(1, ok); !errors.Is(err, ErrFinished) {
		t.Fatalf("result after completion: got %v, want ErrFinished", err)
	}
}

// TestSagaResume checks that a kernel rebuilt from its saved state carries on
// exactly as the original would: the ledger stores the state between blocks.
func TestSagaResume(t *testing.T) {
	p, err := scriptPlan("a\nb\nc after=a,b")
	if err != nil {
		t.Fatal(err)
	}
	orig := NewSaga(p)
	orig.Start()
	orig.TaskDone(0, Result{Status: TaskSucceeded, Valid: true, Attempts: 1})
	saved := orig.State()
	resumed, err := ResumeSaga(p, saved)
	if err != nil {
		t.Fatal(err)
	}
	fail := Result{Status: TaskFailed, Attempts: 2, Reason: "boom"}
	a1, e1, err1 := orig.TaskDone(1, fail)
	a2, e2, err2 := resumed.TaskDone(1, fail)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(e1, e2) {
		t.Fatalf("resumed kernel diverged:\n%v %v\n%v %v", a1, e1, a2, e2)
	}
	// The saved state must not alias the kernel's.
	if saved.Tasks[1].Status != TaskRunning {
		t.Fatalf("saved state changed under the kernel: task b is %s", saved.Tasks[1].Status)
	}
	if _, err := ResumeSaga(p, SagaState{Tasks: make([]TaskState, 1)}); err == nil {
		t.Fatal("state with the wrong number of tasks was accepted")
	}
}
