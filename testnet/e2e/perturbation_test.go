package e2e

import (
	"testing"
	"time"

	"github.com/sagachain/sagachain/taskrt"
)

// loadOperations are the trips of testnet/ops, one that completes and one
// whose hotel fails, and the one-task echo.
var loadOperations = []string{"../ops/trip.yaml", "../ops/trip-hotel-fails.yaml", "testdata/echo.yaml"}

// loadOutcomes: the failing trip can never complete, and the echo, whose
// task has the default deadline of five minutes, far beyond any outage
// here, always does. A trip may end either way: a task whose executor is
// out past the trip's deadlines times out and rolls the trip back.
var loadOutcomes = map[string][]taskrt.OpStatus{
	"book-trip-hotel-fails": {taskrt.OpRolledBack, taskrt.OpRollbackFailed},
	"echo":                  {taskrt.OpCompleted},
}

// Four validators under load lose one validator after another (killed,
// paused, cut off the network, stopped), and two at once, which halts
// them. After every step each validator holds the same head, every
// acknowledged operation has ended the same way on all of them, and every
// chain verifies from genesis.
func TestPerturbations(t *testing.T) {
	skipShort(t)
	net := Start(t, env, Testnet{
		Validators: 4,
		Load: Load{Operations: loadOperations, Outcomes: loadOutcomes, Workers: 2, Interval: 100 * time.Millisecond,
			Max: 5000, Duration: 4 * time.Minute, Attempt: 4 * time.Second, GiveUp: 20 * time.Second},
		Steps: []Step{
			{Name: "kill node1", Perturbation: Kill, Nodes: []int{1}, Down: 3 * time.Second},
			// Longer than a round's three timeouts (1s each by default).
			{Name: "pause node2", Perturbation: Pause, Nodes: []int{2}, Down: 5 * time.Second},
			{Name: "disconnect node3", Perturbation: Disconnect, Nodes: []int{3}, Down: 5 * time.Second},
			{Name: "halt: kill node0 and node1", Perturbation: Halt, Nodes: []int{0, 1}, Down: 4 * time.Second},
			{Name: "restart node2", Perturbation: Restart, Nodes: []int{2}},
		},
	})
	net.Run(t)
}
