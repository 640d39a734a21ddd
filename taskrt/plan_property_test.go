package taskrt

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// randomDAG is a random acyclic operation. Its tasks were generated in a
// hidden topological order (task v may depend only on tasks u < v), then
// shuffled into the file.
type randomDAG struct {
	op *Operation
	// pos[v] is the file index of generated task v; node[i] inverts it.
	pos, node []int
	// deps[v] is the set of generated tasks v depends on.
	deps []map[int]bool
}

// drawDAG draws tasks that depend on each other through labels and `after`,
// and on operation inputs.
func drawDAG(t *rapid.T, minTasks int) *randomDAG {
	n := rapid.IntRange(minTasks, 40).Draw(t, "tasks")
	d := &randomDAG{deps: make([]map[int]bool, n)}
	tasks := make([]Task, n)
	for v := range n {
		d.deps[v] = map[int]bool{}
		tasks[v] = Task{ID: fmt.Sprintf("t%d", v), Run: "echo"}
		for k := range rapid.IntRange(0, 2).Draw(t, "outputs") {
			tasks[v].Outputs = append(tasks[v].Outputs, fmt.Sprintf("t%d.out%d", v, k))
		}
		if rapid.Bool().Draw(t, "uses an operation input") {
			tasks[v].Inputs = append(tasks[v].Inputs, rapid.SampledFrom([]string{"in0", "in1"}).Draw(t, "input"))
		}
		if v == 0 {
			continue
		}
		for range rapid.IntRange(0, min(v, 4)).Draw(t, "deps") {
			d.addEdge(t, tasks, v, rapid.IntRange(0, v-1).Draw(t, "dep"))
		}
	}
	d.shuffle(t, tasks)
	return d
}

// addEdge makes v depend on u, through one of u's labels or through `after`,
// unless it already does.
func (d *randomDAG) addEdge(t *rapid.T, tasks []Task, v, u int) {
	if d.deps[v][u] {
		return
	}
	d.deps[v][u] = true
	if len(tasks[u].Outputs) > 0 && rapid.Bool().Draw(t, "by label") {
		tasks[v].Inputs = append(tasks[v].Inputs, rapid.SampledFrom(tasks[u].Outputs).Draw(t, "label"))
	} else {
		tasks[v].After = append(tasks[v].After, tasks[u].ID)
	}
}

// shuffle lays the tasks out in a random file order.
func (d *randomDAG) shuffle(t *rapid.T, tasks []Task) {
	n := len(tasks)
	d.node = rapid.Permutation(identity(n)).Draw(t, "file order")
	d.pos = make([]int, n)
	d.op = &Operation{Name: "random", Inputs: map[string]any{"in0": int64(0), "in1": "x"}, Tasks: make([]Task, n)}
	for i, v := range d.node {
		d.pos[v] = i
		d.op.Tasks[i] = tasks[v]
	}
}

func identity(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestPlanPropertyStages(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := drawDAG(t, 1)
		if err := d.op.Check(DefaultLimits()); err != nil {
			t.Fatalf("Check refused a DAG: %v", err)
		}
		p, err := NewPlan(d.op)
		if err != nil {
			t.Fatalf("NewPlan refused a DAG: %v", err)
		}
		checkPlanInvariants(t, p)
		// Deps are exactly the generated edges, by file index.
		for i, v := range d.node {
			var want []int
			for u := range d.deps[v] {
				want = append(want, d.pos[u])
			}
			slices.Sort(want)
			if !slices.Equal(p.Deps[i], want) {
				t.Fatalf("deps of %s = %v, want %v", d.op.Tasks[i].ID, p.Deps[i], want)
			}
		}
		// Stages are the longest path from a task without dependencies,
		// computed the slow way in the generated order.
		stage := make([]int, len(d.node))
		for v := range stage {
			for u := range d.deps[v] {
				stage[v] = max(stage[v], stage[u]+1)
			}
			if got := p.StageOf[d.pos[v]]; got != stage[v] {
				t.Fatalf("stage of t%d = %d, want %d", v, got, stage[v])
			}
		}
	})
}

func TestPlanPropertyCycle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := drawDAG(t, 2)
		tasks := make([]Task, len(d.node))
		for i, v := range d.node {
			tasks[v] = d.op.Tasks[i]
		}
		// Walk back from some task u through its dependencies to an
		// ancestor a, then make a depend on u: a back edge, closing a cycle.
		u := rapid.IntRange(1, len(tasks)-1).Draw(t, "u")
		if len(d.deps[u]) == 0 {
			d.addEdge(t, tasks, u, rapid.IntRange(0, u-1).Draw(t, "forced dep"))
		}
		a := u
		for steps := rapid.IntRange(1, 6).Draw(t, "steps"); steps > 0 && len(d.deps[a]) > 0; steps-- {
			a = rapid.SampledFrom(sortedKeys(d.deps[a])).Draw(t, "step")
		}
		d.addEdge(t, tasks, a, u)
		d.shuffle(t, tasks)

		checkErr := d.op.Check(DefaultLimits())
		_, planErr := NewPlan(d.op)
		for _, err := range []error{checkErr, planErr} {
			var ce *CycleError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a *CycleError", err)
			}
			if want := "cycle: " + strings.Join(append(slices.Clone(ce.Tasks), ce.Tasks[0]), " -> "); err.Error() != want {
				t.Fatalf("error %q, want %q", err, want)
			}
			checkRealCycle(t, d.op, ce.Tasks)
		}
		if checkErr.Error() != planErr.Error() {
			t.Fatalf("Check found %q, NewPlan %q", checkErr, planErr)
		}
	})
}

// checkRealCycle asserts that ids name distinct tasks, each depending
// directly on the one before it and the first on the last, starting with the
// one that comes first in the file.
func checkRealCycle(t *rapid.T, op *Operation, ids []string) {
	index := map[string]int{}
	producer := map[string]int{}
	for i, task := range op.Tasks {
		index[task.ID] = i
		for _, l := range task.Outputs {
			producer[l] = i
		}
	}
	dependsOn := func(b, a int) bool {
		for _, l := range op.Tasks[b].Inputs {
			if j, ok := producer[l]; ok && j == a {
				return true
			}
		}
		return slices.Contains(op.Tasks[b].After, op.Tasks[a].ID)
	}
	seen := map[string]bool{}
	for k, id := range ids {
		if seen[id] {
			t.Fatalf("cycle %v repeats %q", ids, id)
		}
		seen[id] = true
		next := ids[(k+1)%len(ids)]
		if !dependsOn(index[next], index[id]) {
			t.Fatalf("cycle %v: %q does not depend on %q", ids, next, id)
		}
		if index[id] < index[ids[0]] {
			t.Fatalf("cycle %v does not start at its first task in the file", ids)
		}
	}
}

func sortedKeys(m map[int]bool) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
