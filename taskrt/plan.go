package taskrt

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
// `after`, and groups them into stages.
func NewPlan(op *Operation) (*Plan, error) {
	n := len(op.Tasks)
	p := &Plan{Op: op, StageOf: make([]int, n), Deps: make([][]int, n), index: make(map[string]int, n)}
	producer := make(map[string]int)
	for i, t := range op.Tasks {
		p.index[t.ID] = i
		for _, l := range t.Outputs {
			producer[l] = i
		}
	}
	// Provisional: assumes a checked, acyclic operation in topological file order.
	for i, t := range op.Tasks {
		deps := map[int]bool{}
		for _, l := range t.Inputs {
			if j, ok := producer[l]; ok {
				deps[j] = true
			}
		}
		for _, a := range t.After {
			deps[p.index[a]] = true
		}
		for j := range deps {
			p.Deps[i] = append(p.Deps[i], j)
			if p.StageOf[j]+1 > p.StageOf[i] {
				p.StageOf[i] = p.StageOf[j] + 1
			}
		}
	}
	for i, s := range p.StageOf {
		for len(p.Stages) <= s {
			p.Stages = append(p.Stages, nil)
		}
		p.Stages[s] = append(p.Stages[s], i)
	}
	return p, nil
}
