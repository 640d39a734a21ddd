// Package e2e runs sagachain testnets of real nodes and perturbs them, in
// the manner of CometBFT's test/e2e runner. A testnet is described as data
// (Testnet: its validators, its load and a list of named perturbation
// steps); a Backend runs every node either as a Docker container with an
// address of its own on a private network, or as a process on 127.0.0.1;
// and after every step the runner checks invariants against every node:
// one head, every acknowledged operation final with the same status
// everywhere, and the whole chain verified from the genesis the test holds.
package e2e

import (
	"fmt"
	"net/http"
	"time"

	"github.com/sagachain/sagachain/taskrt"
)

// Testnet describes one end-to-end run.
type Testnet struct {
	// Validators is the number of validators.
	Validators int
	// Load is what is submitted while the steps run.
	Load Load
	// Steps are the perturbations, applied one at a time, in order, each
	// followed by the invariant checks.
	Steps []Step
	// Functions are HTTP functions every validator hosts besides the
	// builtins, by function name. The runner serves each handler from the
	// test process at an address the nodes reach, and lists it in every
	// validator's config.yaml.
	Functions map[string]http.Handler
}

// Perturbation is what a step does to the network.
type Perturbation int

// The perturbations. A step names the nodes it applies to.
const (
	// Kill ends the node with SIGKILL, keeps it down for Step.Down, then
	// starts it again on the same home.
	Kill Perturbation = iota + 1
	// Pause freezes the node (SIGSTOP, docker pause) for Step.Down, longer
	// than the consensus timeouts, then lets it go on.
	Pause
	// Disconnect takes the node off the network for Step.Down and puts it
	// back with the same address. Only the docker backend can do this: a
	// process on 127.0.0.1 has no link to cut, and freezing it would be a
	// pause, not a partition.
	Disconnect
	// Halt kills Step.Nodes, which must leave fewer than a quorum running:
	// the rest must commit nothing for Step.Down although entries wait, and
	// must not fork. Then the first killed node comes back, after which
	// the network must commit again, and then the others.
	Halt
	// Restart stops the node gracefully (SIGTERM, docker stop) and starts
	// it again.
	Restart
)

// String names the perturbation.
func (p Perturbation) String() string {
	switch p {
	case Kill:
		return "kill"
	case Pause:
		return "pause"
	case Disconnect:
		return "disconnect"
	case Halt:
		return "halt"
	case Restart:
		return "restart"
	}
	return fmt.Sprintf("perturbation(%d)", int(p))
}

// Step is one named perturbation.
type Step struct {
	Name         string
	Perturbation Perturbation
	// Nodes are the indexes of the validators it applies to: one for every
	// perturbation but Halt.
	Nodes []int
	// Down is how long the nodes stay killed, paused or disconnected; for
	// Halt, how long the rest must stand still.
	Down time.Duration
	// Before is how long the load runs before the step perturbs anything;
	// zero means a second. A randomised schedule sets it so that a fault
	// meets the operations in flight at a moment of its own.
	Before time.Duration
}

// Load is the operations a testnet's load submits: Workers goroutines, each
// submitting one operation at a time, rotating over Operations and over the
// nodes, until Max operations or Duration. A submission a node refuses to
// acknowledge (down, paused, no quorum) is sent again, the same signed
// entry, to the next node, until GiveUp.
type Load struct {
	// Operations are operation files (YAML or JSON), submitted in turn.
	Operations []string
	Workers    int
	// Interval is each worker's pause between two operations.
	Interval time.Duration
	// Max bounds the number of operations submitted.
	Max int
	// Duration bounds how long the load runs.
	Duration time.Duration
	// Attempt bounds one call of sc_submit, which returns once the entry is
	// committed.
	Attempt time.Duration
	// GiveUp bounds the attempts of one operation.
	GiveUp time.Duration
	// Outcomes are, by operation name, the final statuses an operation of
	// that name may end in; any final status when its name is missing.
	Outcomes map[string][]taskrt.OpStatus
}
