package e2e

import (
	"cmp"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// tripView is the trip of testnet/ops (stages: flight and payment; hotel
// and car; excursion) ended in status, with tasks in the given statuses
// (pending when not named) and history evs, written one event a string:
// "type stage task", "finished status".
func tripView(status taskrt.OpStatus, tasks map[string]taskrt.TaskStatus, evs ...string) *taskrt.OperationView {
	v := &taskrt.OperationView{Status: status}
	for k, ids := range [][]string{{"flight", "payment"}, {"hotel", "car"}, {"excursion"}} {
		sv := taskrt.StageView{Index: k}
		for _, id := range ids {
			sv.Tasks = append(sv.Tasks, taskrt.TaskView{ID: id, Status: cmp.Or(tasks[id], taskrt.TaskPending)})
		}
		v.Stages = append(v.Stages, sv)
	}
	for i, s := range evs {
		f := strings.Fields(s)
		e := taskrt.Event{Seq: i + 1, Type: f[0]}
		switch {
		case f[0] == taskrt.EventFinished:
			e.Status = f[1]
		case len(f) > 1:
			k := int(f[1][0] - '0')
			e.Stage = &k
			if len(f) > 2 {
				e.Task = f[2]
			}
		}
		v.Events = append(v.Events, e)
	}
	return v
}

// checkHistory passes the histories the saga writes, moves included, and
// names the first event out of order in one that breaks the order.
func TestCheckHistory(t *testing.T) {
	completed := []string{"submitted", "stage_released 0", "task_attested 0 flight", "task_moved 0 payment", "task_attested 0 payment",
		"stage_released 1", "task_attested 1 car", "task_attested 1 hotel", "stage_released 2", "task_moved 2 excursion",
		"task_moved 2 excursion", "task_attested 2 excursion", "finished completed"}
	rolledBack := []string{"submitted", "stage_released 0", "task_attested 0 flight", "task_attested 0 payment",
		"stage_released 1", "task_attested 1 car", "task_moved 1 hotel", "task_failed 1 hotel",
		"rollback_released 1", "task_rolled_back 1 hotel", "rollback_moved 1 car", "task_rolled_back 1 car",
		"rollback_released 0", "task_rolled_back 0 payment", "task_rolled_back 0 flight", "finished rolled_back"}
	undone := map[string]taskrt.TaskStatus{"flight": taskrt.TaskRolledBack, "payment": taskrt.TaskRolledBack,
		"hotel": taskrt.TaskRolledBack, "car": taskrt.TaskRolledBack}
	retried := []string{"submitted", "stage_released 0", "task_failed 0 flight", "task_attested 0 payment",
		"rollback_released 0", "task_rolled_back 0 flight", "task_rollback_failed 0 payment", "finished rollback_failed",
		"rollback_retried 0", "rollback_released 0", "rollback_moved 0 payment", "task_rolled_back 0 payment", "finished rolled_back"}
	swap := func(evs []string, i, j int) []string {
		evs = append([]string(nil), evs...)
		evs[i], evs[j] = evs[j], evs[i]
		return evs
	}
	for _, c := range []struct {
		name string
		v    *taskrt.OperationView
		want string // in the error; "" for none
	}{
		{"completed with moves", tripView(taskrt.OpCompleted, nil, completed...), ""},
		{"rolled back from stage 1", tripView(taskrt.OpRolledBack, undone, rolledBack...), ""},
		{"retried after rollback_failed", tripView(taskrt.OpRolledBack, map[string]taskrt.TaskStatus{
			"flight": taskrt.TaskRolledBack, "payment": taskrt.TaskRolledBack}, retried...), ""},
		{"stage 0 undone before stage 1", tripView(taskrt.OpRolledBack, undone,
			append(rolledBack[:8:8], "rollback_released 0", "rollback_released 1", "finished rolled_back")...), "the first rollbacks are of stage 0"},
		{"a rollback of stage 0 in stage 1's window", tripView(taskrt.OpRolledBack, undone, swap(rolledBack, 11, 13)...),
			"a rollback of stage 0 recorded while stage 1 rolls back"},
		{"moved after its outcome", tripView(taskrt.OpRolledBack, undone, swap(rolledBack, 6, 7)...), `task "hotel" has had its outcome`},
		{"rollback moved after its outcome", tripView(taskrt.OpRolledBack, undone, swap(rolledBack, 10, 11)...), `the rollback of task "car" has had`},
		{"stage skipped", tripView(taskrt.OpCompleted, nil, append(completed[:5:5], "stage_released 2", "finished completed")...), "stage 2 released after stage 0"},
		{"rolled back short of stage 0", tripView(taskrt.OpRolledBack, undone, append(rolledBack[:12:12], "finished rolled_back")...),
			"the rollbacks released last are stage 1's"},
		{"rolled back with a task still done", tripView(taskrt.OpRolledBack, map[string]taskrt.TaskStatus{"flight": taskrt.TaskSucceeded},
			rolledBack...), `task "flight" of stage 0 is succeeded`},
		{"finished twice", tripView(taskrt.OpCompleted, nil, append(completed, "finished completed")...), "after the operation finished"},
		{"another status", tripView(taskrt.OpRollbackFailed, undone, rolledBack...), `finishes "rolled_back"`},
	} {
		err := checkHistory(c.v)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.want)
		}
	}
}
