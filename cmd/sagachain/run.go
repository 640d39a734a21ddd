package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	mathrand "math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/node"
	"github.com/sagachain/sagachain/taskrt"
)

func (a *app) newRunCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run an operation in this process, without a ledger",
		Long: `run runs an operation file (- reads stdin) in this process, with the builtin
functions (echo, sleep, fail, noop) and the http and exec functions of the
config file, and prints what happens as it happens. It is for trying an
operation file: nothing is recorded.

Ctrl-C cuts the running stage and rolls back what was done; a second Ctrl-C
quits at once, without rolling back.

Exit codes: 0 completed, 2 bad input (nothing ran), 3 rolled back,
4 rollback_failed, 1 anything else.`,
		Example: `  sagachain run testnet/ops/trip.yaml
  sagachain run testnet/ops/trip.yaml --input traveler="Grace Hopper" --json
  sagachain run ops/book.yaml --config node.yaml`,
		Args: oneFile,
		RunE: a.runE(a.run),
	}
	addInputFlag(cmd)
	cmd.Flags().Bool("json", false, "print the operation as JSON at the end (what `op get --json` prints) instead of the live log")
	return cmd
}

func (a *app) run(cmd *cobra.Command, args []string) error {
	asJSON, err := a.flagBool("json")
	if err != nil {
		return err
	}
	inputs, err := a.inputs()
	if err != nil {
		return err
	}
	plan, rules, err := a.loadOperation(args[0], inputs)
	if err != nil {
		return err
	}
	reg, err := node.Functions(a.cfg.Functions)
	if err != nil {
		return inputErrorf("config: %w", err)
	}
	if missing := reg.Missing(plan.Op); len(missing) > 0 {
		what := "functions"
		if len(missing) == 1 {
			what = "function"
		}
		return inputErrorf("%s: unknown %s %s: not builtins (%s) and not under functions: in the config file",
			args[0], what, strings.Join(missing, ", "), strings.Join(slices.Sorted(maps.Keys(taskrt.Builtins())), ", "))
	}
	id, err := newOperationID()
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	finished, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
		case <-finished:
			if ctx.Err() == nil {
				return
			}
		}
		// From now on a signal kills the process, as it would any other.
		stop()
		a.log.Warn("interrupted: rolling back what was done; interrupt again to quit at once, without rolling back")
	}()

	runner := taskrt.Runner{
		Registry:       reg,
		MaxOutputBytes: a.cfg.Limits.MaxOutputBytes,
		Seed:           mathrand.Uint64(),
	}
	var live *renderer
	if !asJSON {
		live = newRenderer(a.stdout, id, planTasks(plan), useColor(a.stdout), false)
		runner.OnEvent = func(e taskrt.Event, s *taskrt.Saga) { live.event(e, sagaState{id: id, plan: plan, saga: s}) }
	}
	view, err := runner.Run(ctx, id, plan, rules)
	close(finished)
	<-watched
	if err != nil {
		return err
	}
	if asJSON {
		if err := a.printJSON(view); err != nil {
			return err
		}
	} else if live.err != nil {
		return live.err
	}
	// The live log has said it all; after --json, stderr says why in a line.
	return finalStatus(view, asJSON)
}

// newOperationID returns a random operation id, "0x" and 32 bytes in hex.
// The id seeds the idempotency keys of the operation's tasks, so two runs of
// one file never share a key.
func newOperationID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("operation id: %w", err)
	}
	return "0x" + hex.EncodeToString(b[:]), nil
}

// failures says what went wrong: first each task that failed (the cause),
// then each rollback that failed, each in stage order.
func failures(v taskrt.OperationView) []string {
	var failed, stuck []string
	for _, s := range v.Stages {
		for _, t := range s.Tasks {
			switch {
			case t.Validation == taskrt.ValidationFailed:
				failed = append(failed, fmt.Sprintf("task %s failed its rule: %s", t.ID, t.Error))
			case t.Outcome == taskrt.TaskFailed:
				failed = append(failed, fmt.Sprintf("task %s failed: %s", t.ID, t.Error))
			case t.Outcome == taskrt.TaskTimedOut:
				failed = append(failed, fmt.Sprintf("task %s timed out: %s", t.ID, t.Error))
			}
			if t.Status == taskrt.TaskRollbackFailed {
				stuck = append(stuck, fmt.Sprintf("rollback of task %s failed: %s", t.ID, t.RollbackError))
			}
		}
	}
	return append(failed, stuck...)
}

// elapsed formats a duration for people: 340µs, 12ms, 1.24s, 2m3s.
func elapsed(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
