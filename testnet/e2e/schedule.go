package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// SeedEnv is the environment variable that fixes the seed of a randomised
// schedule, so that a failed run can be replayed with the schedule it had.
const SeedEnv = "SAGACHAIN_E2E_SEED"

// Seed returns the seed s names, a decimal uint64, or, when s is empty, a
// fresh one.
func Seed(s string) (uint64, error) {
	if s == "" {
		return rand.Uint64(), nil
	}
	seed, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("seed %q: want a decimal number below 2^64", s)
	}
	return seed, nil
}

// NewRand returns the generator a schedule draws from: the same seed, the
// same draws.
func NewRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x5a9ac4a1))
}

// OutageBounds bound what RandomOutages draws, each uniformly from
// [lo, hi]: how long the load runs before each outage, and how long each
// kind keeps its validator out.
type OutageBounds struct {
	Before, Kill, Pause, Disconnect [2]time.Duration
}

// DefaultOutageBounds are long enough for a failover to be the only way
// through: a kill and a disconnect outlast the ten seconds the trips give
// a task by default, and a pause the five they give their hotel task, so
// that work left waiting on the validator that is out times out and rolls
// its operation back; and a pause outlasts the default executor lease (a
// second) six times over. A shorter outage proves nothing on the old
// scheme either: the executor comes back in time and does its work itself.
// They are short enough for three outages to stay within a minute.
var DefaultOutageBounds = OutageBounds{
	Before:     [2]time.Duration{500 * time.Millisecond, 3 * time.Second},
	Kill:       [2]time.Duration{11 * time.Second, 13 * time.Second},
	Pause:      [2]time.Duration{6 * time.Second, 8 * time.Second},
	Disconnect: [2]time.Duration{11 * time.Second, 13 * time.Second},
}

// RandomOutages returns a kill, a pause and a disconnect, in an order drawn
// from rng, each of a validator (of validators) drawn from rng, after and
// for times drawn within b. Run applies the steps one at a time, and each
// brings its validator back before it ends, so no two are ever out at once.
// A killed validator is started again on its home.
func RandomOutages(rng *rand.Rand, validators int, b OutageBounds) []Step {
	kinds := []Perturbation{Kill, Pause, Disconnect}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	steps := make([]Step, 0, len(kinds))
	for _, p := range kinds {
		down := map[Perturbation][2]time.Duration{Kill: b.Kill, Pause: b.Pause, Disconnect: b.Disconnect}[p]
		s := Step{Perturbation: p, Nodes: []int{rng.IntN(validators)}, Before: between(rng, b.Before), Down: between(rng, down)}
		s.Name = fmt.Sprintf("%s node%d after %s for %s", p, s.Nodes[0], s.Before, s.Down)
		steps = append(steps, s)
	}
	return steps
}

// between draws a duration from [r[0], r[1]], in whole milliseconds, so
// that a step's name says exactly what it does.
func between(rng *rand.Rand, r [2]time.Duration) time.Duration {
	lo, hi := r[0].Milliseconds(), r[1].Milliseconds()
	if hi <= lo {
		return r[0]
	}
	return time.Duration(lo+rng.Int64N(hi-lo+1)) * time.Millisecond
}

// DefaultExecutorLease is the executor lease of a genesis that does not
// set params.executor_lease_ms.
const DefaultExecutorLease = time.Second

// ExecutorLease reads params.executor_lease_ms from the testnet's genesis
// file: how long, in block time, a validator's executor may stay silent
// before the ledger moves its work to the next live host.
func (n *Network) ExecutorLease() (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(n.Validators[0].Home, "genesis.json"))
	if err != nil {
		return 0, err
	}
	var g struct {
		Params struct {
			ExecutorLeaseMS uint64 `json:"executor_lease_ms"`
		} `json:"params"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		return 0, fmt.Errorf("genesis: %w", err)
	}
	if g.Params.ExecutorLeaseMS == 0 {
		return DefaultExecutorLease, nil
	}
	return time.Duration(g.Params.ExecutorLeaseMS) * time.Millisecond, nil
}
