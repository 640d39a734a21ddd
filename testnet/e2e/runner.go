package e2e

import (
	"cmp"
	"errors"
	"testing"
	"time"
)

// warmup is how long the load runs before a step perturbs anything, so
// that every perturbation meets operations in flight, when the step does
// not say (Step.Before).
const warmup = time.Second

// Run runs the testnet's load and applies its steps one at a time, each as
// a subtest named for the step: the perturbation under load, then, with
// the load paused, Check against every validator. A step the backend
// cannot perform is skipped and says why; a failed step ends the run, for
// the steps after it would start from a broken network. It returns the
// load, stopped, for the test to look further at what it submitted.
func (n *Network) Run(t *testing.T) *Loader {
	load, err := n.StartLoad(n.Testnet.Load)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(load.Stop)
	for _, step := range n.Testnet.Steps {
		load.Resume()
		ok := t.Run(step.Name, func(t *testing.T) {
			time.Sleep(cmp.Or(step.Before, warmup))
			observed, err := n.Apply(step)
			load.Pause()
			if errors.Is(err, errors.ErrUnsupported) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Log(observed)
			if err := load.Err(); err != nil {
				t.Fatal(err)
			}
			s, err := n.Check(n.Validators, load.Acked())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("settled: %s", s)
			t.Logf("load so far: %s", load.Stats())
		})
		if !ok {
			load.Stop()
			return load
		}
	}
	load.Stop()
	return load
}
