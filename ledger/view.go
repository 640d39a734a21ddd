package ledger

import (
	"github.com/sagachain/sagachain/taskrt"
)

// View renders a recorded operation as `op get --json` prints it (SPEC §2),
// with what only the ledger knows: submitter, heights, stage record hashes,
// executors and the history of each task's executors.
func (m *Machine) View(r *OpRecord) (taskrt.OperationView, error) {
	_, plan, err := m.Compiled(r)
	if err != nil {
		return taskrt.OperationView{}, err
	}
	v := taskrt.NewView(r.ID.Hex(), plan, r.Saga, r.Events)
	v.Submitter, v.SubmittedHeight = r.Submitter.Hex(), r.Height
	for k := range v.Stages {
		sh := r.Stages[k]
		if sh.Release != (Hash{}) {
			v.Stages[k].Hash, v.Stages[k].Prev = sh.Release.Hex(), sh.ReleasePrev.Hex()
		}
		for j, i := range plan.Stages[k] {
			tv, tr := &v.Stages[k].Tasks[j], r.Tasks[i]
			if tr.Executor != (Address{}) {
				tv.Executor = tr.Executor.Hex()
				tv.Executors = executorHistory(r.Events, tv.ID, k, false, tr.Executor)
			}
			if tr.RollbackExecutor != (Address{}) {
				tv.RollbackExecutor = tr.RollbackExecutor.Hex()
				tv.RollbackExecutors = executorHistory(r.Events, tv.ID, k, true, tr.RollbackExecutor)
			}
		}
	}
	return v, nil
}

// executorHistory derives from an operation's events where task (of stage)
// ran, or where its rollback runs: the assignment made by the stage's
// release, then one step per move. The release records no executor in the
// events, so the first executor of work that moved is its first move's
// from, and of work that never moved the current one. A rollback's
// history starts at its latest release or retry, since a retry assigns
// the rollback afresh.
func executorHistory(events []taskrt.Event, task string, stage int, rollback bool, current Address) []taskrt.Assignment {
	released, moved := taskrt.EventStageReleased, taskrt.EventTaskMoved
	if rollback {
		released, moved = taskrt.EventRollbackReleased, taskrt.EventRollbackMoved
	}
	var start uint64
	var moves []taskrt.Event
	for _, e := range events {
		switch {
		case e.Stage == nil || *e.Stage != stage:
		case e.Type == released || rollback && e.Type == taskrt.EventRollbackRetried:
			start, moves = e.Height, moves[:0]
		case e.Type == moved && e.Task == task:
			moves = append(moves, e)
		}
	}
	first := current.Hex()
	if len(moves) > 0 {
		first = moves[0].From
	}
	out := make([]taskrt.Assignment, 0, 1+len(moves))
	out = append(out, taskrt.Assignment{Executor: first, Height: start})
	for _, e := range moves {
		out = append(out, taskrt.Assignment{Executor: e.To, Height: e.Height, Reason: e.Reason})
	}
	return out
}
