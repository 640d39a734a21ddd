package ledger

import (
	"github.com/sagachain/sagachain/taskrt"
)

// View renders a recorded operation as `op get --json` prints it (SPEC §2),
// with what only the ledger knows: submitter, heights, stage record hashes
// and executors.
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
			if e := r.Tasks[i].Executor; e != (Address{}) {
				v.Stages[k].Tasks[j].Executor = e.Hex()
			}
		}
	}
	return v, nil
}
