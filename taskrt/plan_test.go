package taskrt

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/plans")

// TestPlanGolden plans each testdata/plans/NAME.yaml and compares its stages,
// dependencies and Graphviz form, or its error, with NAME.golden.
func TestPlanGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/plans/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no plans in testdata/plans")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := describePlan(t, data)
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("plan of %s differs from %s (run with -update if the change is intended)\n--- got\n%s--- want\n%s", f, golden, got, want)
			}
		})
	}
}

// describePlan loads and plans an operation file and prints the outcome.
func describePlan(t *testing.T, data []byte) string {
	t.Helper()
	op, err := Load(data, nil, DefaultLimits())
	if err != nil {
		// A cycle is found the same way by NewPlan on the unchecked file.
		var ce *CycleError
		if errors.As(err, &ce) {
			raw, derr := Decode(data)
			if derr != nil {
				t.Fatal(derr)
			}
			if _, perr := NewPlan(raw); perr == nil || perr.Error() != err.Error() {
				t.Errorf("Check found %q, NewPlan found %v", err, perr)
			}
		}
		return "error: " + err.Error() + "\n"
	}
	p, err := NewPlan(op)
	if err != nil {
		t.Fatalf("checked operation does not plan: %v", err)
	}
	checkPlanInvariants(t, p)
	var b strings.Builder
	b.WriteString("stages:\n")
	for s, ids := range p.StageIDs() {
		fmt.Fprintf(&b, "  %d: %s\n", s, strings.Join(ids, " "))
	}
	b.WriteString("deps:\n")
	for i, deps := range p.Deps {
		if len(deps) == 0 {
			continue
		}
		ids := make([]string, len(deps))
		for k, j := range deps {
			ids[k] = op.Tasks[j].ID
		}
		fmt.Fprintf(&b, "  %s <- %s\n", op.Tasks[i].ID, strings.Join(ids, " "))
	}
	b.WriteString("dot:\n")
	b.WriteString(p.Dot())
	return b.String()
}

// checkPlanInvariants asserts the stage rules of SPEC §1 and the shape of
// the Plan's fields.
func checkPlanInvariants(t failer, p *Plan) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	n := len(p.Op.Tasks)
	if len(p.StageOf) != n || len(p.Deps) != n {
		t.Fatalf("plan of %d tasks has %d stages-of and %d dep lists", n, len(p.StageOf), len(p.Deps))
	}
	seen := 0
	for s, tasks := range p.Stages {
		if len(tasks) == 0 {
			t.Errorf("stage %d is empty", s)
		}
		for k, i := range tasks {
			seen++
			if p.StageOf[i] != s {
				t.Errorf("task %d is listed in stage %d but StageOf says %d", i, s, p.StageOf[i])
			}
			if k > 0 && tasks[k-1] >= i {
				t.Errorf("stage %d is not in file order: %v", s, tasks)
			}
		}
	}
	if seen != n {
		t.Errorf("stages hold %d tasks, want %d", seen, n)
	}
	for i, deps := range p.Deps {
		id := p.Op.Tasks[i].ID
		if j, ok := p.Index(id); !ok || j != i {
			t.Errorf("Index(%q) = %d, %v; want %d", id, j, ok, i)
		}
		if len(deps) == 0 && p.StageOf[i] != 0 {
			t.Errorf("task %q has no dependencies but is in stage %d", id, p.StageOf[i])
		}
		prev := -1
		onePrevious := false
		for _, j := range deps {
			if j <= prev {
				t.Errorf("deps of %q are not ascending and distinct: %v", id, deps)
			}
			prev = j
			if p.StageOf[j] >= p.StageOf[i] {
				t.Errorf("task %q (stage %d) depends on %q of stage %d", id, p.StageOf[i], p.Op.Tasks[j].ID, p.StageOf[j])
			}
			if p.StageOf[j] == p.StageOf[i]-1 {
				onePrevious = true
			}
		}
		if len(deps) > 0 && !onePrevious {
			t.Errorf("task %q of stage %d depends on no task of stage %d", id, p.StageOf[i], p.StageOf[i]-1)
		}
	}
}

// failer is what *testing.T and *rapid.T share.
type failer interface {
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// NewPlan is safe on operations that were never checked.
func TestNewPlanUnchecked(t *testing.T) {
	tests := []struct {
		name string
		op   *Operation
		want string
	}{
		{"repeated id", &Operation{Tasks: []Task{{ID: "a"}, {ID: "a"}}},
			`task id "a" is used by tasks #1 and #2; ids must be unique`},
		{"label output twice", &Operation{Tasks: []Task{{ID: "a", Outputs: []string{"x"}}, {ID: "b", Outputs: []string{"x"}}}},
			`label "x" is output by both task "a" and task "b"; a label must have one source`},
		{"after no task", &Operation{Tasks: []Task{{ID: "a", After: []string{"ghost"}}}},
			`task "a" is after "ghost", which is not a task of this operation`},
		{"own output", &Operation{Tasks: []Task{{ID: "a", Inputs: []string{"x"}, Outputs: []string{"x"}}}},
			`cycle: a -> a`},
		{"after itself", &Operation{Tasks: []Task{{ID: "z"}, {ID: "a", After: []string{"a"}}}},
			`cycle: a -> a`},
		{"cycle", &Operation{Tasks: []Task{
			{ID: "a", Inputs: []string{"c"}, Outputs: []string{"a"}},
			{ID: "b", Inputs: []string{"a"}, Outputs: []string{"b"}},
			{ID: "c", Inputs: []string{"b"}, Outputs: []string{"c"}},
		}}, `cycle: a -> b -> c -> a`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(tt.op)
			if err == nil {
				t.Fatalf("NewPlan accepted it: stages %v", p.Stages)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %q\nwant %q", err, tt.want)
			}
		})
	}
}

// A task that takes several labels from one task, and names it in `after`
// too, depends on it once; a label nobody outputs is an operation input.
func TestNewPlanDeps(t *testing.T) {
	op := &Operation{Name: "x", Tasks: []Task{
		{ID: "c", Inputs: []string{"b2", "a1", "b1", "in"}, After: []string{"b", "a"}},
		{ID: "b", Outputs: []string{"b1", "b2"}},
		{ID: "a", Outputs: []string{"a1"}},
	}}
	p, err := NewPlan(op)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]int{{1, 2}, nil, nil}; !reflect.DeepEqual(p.Deps, want) {
		t.Errorf("Deps = %v, want %v", p.Deps, want)
	}
	if want := [][]int{{1, 2}, {0}}; !reflect.DeepEqual(p.Stages, want) {
		t.Errorf("Stages = %v, want %v", p.Stages, want)
	}
	if _, ok := p.Index("nope"); ok {
		t.Error("Index found a task that does not exist")
	}
	// Appending to one stage must not overwrite the next.
	_ = append(p.Stages[0], 99)
	if p.Stages[1][0] != 0 {
		t.Errorf("appending to stage 0 changed stage 1 to %v", p.Stages[1])
	}
	_ = append(p.Deps[0], 99)
	if p2, _ := NewPlan(op); !reflect.DeepEqual(p.Deps, p2.Deps) {
		t.Errorf("appending to Deps[0] changed the plan: %v", p.Deps)
	}
}

func TestPlanEmpty(t *testing.T) {
	p, err := NewPlan(&Operation{Name: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Stages) != 0 || len(p.StageIDs()) != 0 {
		t.Errorf("empty operation has stages %v", p.Stages)
	}
}

// Dot quotes what it prints, and names the labels that flow along an edge,
// then "after".
func TestPlanDotQuoting(t *testing.T) {
	op := &Operation{Name: "q", Tasks: []Task{
		{ID: "a", Run: `say "hi"`, Outputs: []string{`x"y`, `back\slash`}},
		{ID: "b", Run: "echo", Inputs: []string{`back\slash`, `x"y`}, After: []string{"a"}},
	}}
	p, err := NewPlan(op)
	if err != nil {
		t.Fatal(err)
	}
	dot := p.Dot()
	for _, want := range []string{
		`"a" [label="a\nsay \"hi\""];`,
		`"a" -> "b" [label="back\\slash, x\"y, after"];`,
	} {
		if !strings.Contains(dot, want) {
			t.Errorf("Dot lacks %s:\n%s", want, dot)
		}
	}
}
