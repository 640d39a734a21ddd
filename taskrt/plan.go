package taskrt

import (
	"fmt"
	"strings"
)

// Plan is an operation's dependency graph grouped into stages (SPEC §1).
// Task indexes refer to Op.Tasks.
type Plan struct {
	// Op is the planned operation.
	Op *Operation
	// Stages lists, per stage, the indexes of its tasks in file order.
	Stages [][]int
	// StageOf is the stage of each task.
	StageOf []int
	// Deps lists, per task, the indexes of the tasks it depends on, ascending.
	Deps [][]int
	// index maps a task id to its index.
	index map[string]int
}

// Index returns the index of the task with the given id.
func (p *Plan) Index(id string) (int, bool) {
	i, ok := p.index[id]
	return i, ok
}

// NewPlan derives the dependencies of op's tasks from their labels and
// `after`, and groups them into stages: a task with no dependency is in stage
// 0, any other in the stage after the latest of its dependencies. It takes
// time linear in tasks plus dependencies, whatever order the file lists the
// tasks in.
//
// NewPlan is safe on an operation that was not checked: it returns an error
// for a repeated task id, a label output twice, an `after` naming no task,
// or a cycle (a [*CycleError]). An input label that no task outputs is taken
// to be an operation input; [Operation.Check] is what refuses it when it is
// not one.
func NewPlan(op *Operation) (*Plan, error) {
	g, err := buildGraph(op)
	if err != nil {
		return nil, err
	}
	n := len(op.Tasks)

	// Kahn's algorithm: a task is placed once all its dependencies are, so
	// its stage is final by then.
	stageOf := make([]int, n)
	waiting := make([]int, n)
	order := make([]int, 0, n)
	for i := range n {
		waiting[i] = len(g.deps[i])
		if waiting[i] == 0 {
			order = append(order, i)
		}
	}
	for head := 0; head < len(order); head++ {
		j := order[head]
		for _, i := range g.succ[j] {
			stageOf[i] = max(stageOf[i], stageOf[j]+1)
			waiting[i]--
			if waiting[i] == 0 {
				order = append(order, i)
			}
		}
	}
	if len(order) < n {
		return nil, cycleError(op, findCycle(g.succ))
	}

	// Group by stage in file order, all stages sharing one backing array.
	var count []int
	for _, s := range stageOf {
		for len(count) <= s {
			count = append(count, 0)
		}
		count[s]++
	}
	all := make([]int, n)
	stages := make([][]int, len(count))
	start := 0
	for s, c := range count {
		stages[s] = all[start : start : start+c]
		start += c
	}
	for i, s := range stageOf {
		stages[s] = append(stages[s], i)
	}
	return &Plan{Op: op, Stages: stages, StageOf: stageOf, Deps: g.deps, index: g.index}, nil
}

// StageIDs returns the task ids of each stage, in file order, as
// `sagachain plan --json` prints them.
func (p *Plan) StageIDs() [][]string {
	out := make([][]string, len(p.Stages))
	for s, tasks := range p.Stages {
		out[s] = make([]string, len(tasks))
		for k, i := range tasks {
			out[s][k] = p.Op.Tasks[i].ID
		}
	}
	return out
}

// Dot returns the plan as a Graphviz digraph: one cluster per stage, one box
// per task (its id and run function), and one edge per dependency labelled
// with the labels that flow along it, or "after". The output depends only on
// the operation.
func (p *Plan) Dot() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(p.Op.Name))
	b.WriteString("  rankdir=LR;\n  node [shape=box];\n")
	for s, tasks := range p.Stages {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s;\n", s, dotQuote(fmt.Sprintf("stage %d", s)))
		for _, i := range tasks {
			t := &p.Op.Tasks[i]
			fmt.Fprintf(&b, "    %s [label=%s];\n", dotQuote(t.ID), dotQuote(t.ID+"\n"+t.Run))
		}
		b.WriteString("  }\n")
	}
	producer := make(map[string]int)
	for i, t := range p.Op.Tasks {
		for _, l := range t.Outputs {
			producer[l] = i
		}
	}
	for i, t := range p.Op.Tasks {
		if len(p.Deps[i]) == 0 {
			continue
		}
		flows := make(map[int][]string, len(p.Deps[i]))
		for _, l := range t.Inputs {
			if j, ok := producer[l]; ok {
				flows[j] = append(flows[j], l)
			}
		}
		for _, id := range t.After {
			if j, ok := p.index[id]; ok {
				flows[j] = append(flows[j], "after")
			}
		}
		for _, j := range p.Deps[i] {
			fmt.Fprintf(&b, "  %s -> %s [label=%s];\n",
				dotQuote(p.Op.Tasks[j].ID), dotQuote(t.ID), dotQuote(strings.Join(flows[j], ", ")))
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote writes s as a Graphviz quoted string.
func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// graph is the dependency graph of an operation's tasks.
type graph struct {
	index map[string]int
	// deps lists, per task, the tasks it depends on, ascending, distinct.
	deps [][]int
	// succ lists, per task, the tasks that depend on it, ascending, distinct.
	succ [][]int
}

// buildGraph resolves labels and `after` into edges in time linear in tasks
// plus edges: the edges are gathered once per task, then distributed by
// counting, which leaves both directions sorted without a sort.
func buildGraph(op *Operation) (*graph, error) {
	n := len(op.Tasks)
	index := make(map[string]int, n)
	producer := make(map[string]int, n)
	for i, t := range op.Tasks {
		if j, dup := index[t.ID]; dup {
			return nil, fmt.Errorf("task id %q is used by tasks #%d and #%d; ids must be unique", t.ID, j+1, i+1)
		}
		index[t.ID] = i
		for _, l := range t.Outputs {
			if j, dup := producer[l]; dup && j != i {
				return nil, fmt.Errorf("label %q is output by both %s and %s; a label must have one source", l, taskName(op, j), taskName(op, i))
			}
			producer[l] = i
		}
	}

	// Distinct dependencies of each task, unsorted, in one flat array:
	// those of task i are flat[off[i]:off[i+1]].
	off := make([]int, n+1)
	var flat []int
	seen := make([]int, n) // seen[j] == i+1: j is already a dependency of i
	for i, t := range op.Tasks {
		for _, l := range t.Inputs {
			if j, ok := producer[l]; ok && seen[j] != i+1 {
				seen[j] = i + 1
				flat = append(flat, j)
			}
		}
		for _, id := range t.After {
			j, ok := index[id]
			if !ok {
				return nil, fmt.Errorf("%s is after %q, which is not a task of this operation", taskName(op, i), id)
			}
			if seen[j] != i+1 {
				seen[j] = i + 1
				flat = append(flat, j)
			}
		}
		off[i+1] = len(flat)
	}

	// Dependents: walking tasks in index order fills each list ascending.
	succOff := make([]int, n+1)
	for _, j := range flat {
		succOff[j+1]++
	}
	for j := range n {
		succOff[j+1] += succOff[j]
	}
	succFlat := make([]int, len(flat))
	fill := append([]int(nil), succOff[:n]...)
	for i := range n {
		for _, j := range flat[off[i]:off[i+1]] {
			succFlat[fill[j]] = i
			fill[j]++
		}
	}
	// Dependencies again, now ascending: walk dependents in index order.
	depsFlat := make([]int, len(flat))
	copy(fill, off[:n])
	for j := range n {
		for _, i := range succFlat[succOff[j]:succOff[j+1]] {
			depsFlat[fill[i]] = j
			fill[i]++
		}
	}

	g := &graph{index: index, deps: make([][]int, n), succ: make([][]int, n)}
	for i := range n {
		if off[i] < off[i+1] {
			g.deps[i] = depsFlat[off[i]:off[i+1]:off[i+1]]
		}
		if succOff[i] < succOff[i+1] {
			g.succ[i] = succFlat[succOff[i]:succOff[i+1]:succOff[i+1]]
		}
	}
	return g, nil
}
