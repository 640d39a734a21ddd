package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/sagachain/sagachain/taskrt"
)

// limits are the operation limits of the config.
func (a *app) limits() taskrt.Limits {
	return taskrt.Limits{
		MaxTasks:       a.cfg.Limits.MaxTasks,
		MaxFileBytes:   a.cfg.Limits.MaxFileBytes,
		MaxOutputBytes: a.cfg.Limits.MaxOutputBytes,
		MaxAttempts:    a.cfg.Limits.MaxAttempts,
		MinBackoff:     a.cfg.Limits.MinBackoff,
		MaxSleep:       a.cfg.Limits.MaxSleep,
		MaxRuleCost:    a.cfg.Limits.MaxOperationRuleCost,
	}
}

// loadOperation reads the operation file at path ("-" for stdin), applies
// inputs over its own, checks it against the config's limits, plans it and
// compiles its rules. Every error is an input error that names the file.
func (a *app) loadOperation(path string, inputs map[string]any) (*taskrt.Plan, []*taskrt.Rule, error) {
	data, err := a.readFile(path)
	if err != nil {
		return nil, nil, inputError(err)
	}
	op, err := taskrt.Load(data, inputs, a.limits())
	if err != nil {
		return nil, nil, inputErrorf("%s: %w", path, err)
	}
	if err := checkInputLabels(data, op, inputs); err != nil {
		return nil, nil, inputErrorf("%s: %w", path, err)
	}
	plan, err := taskrt.NewPlan(op)
	if err != nil {
		return nil, nil, inputErrorf("%s: %w", path, err)
	}
	rules, err := taskrt.CompileRules(op)
	if err != nil {
		return nil, nil, inputErrorf("%s: %w", path, err)
	}
	if _, err := taskrt.CheckRuleCost(op, rules, a.limits()); err != nil {
		return nil, nil, inputErrorf("%s: %w", path, err)
	}
	return plan, rules, nil
}

// readFile reads at most one byte more than the file limit, so that an
// oversized file is refused by the limit check without being read whole.
func (a *app) readFile(path string) ([]byte, error) {
	var r io.Reader = a.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(a.cfg.Limits.MaxFileBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// checkInputLabels refuses an --input label that the operation neither
// declares nor consumes: it would change nothing, so it is a typo.
func checkInputLabels(data []byte, op *taskrt.Operation, inputs map[string]any) error {
	if len(inputs) == 0 {
		return nil
	}
	file, err := taskrt.Decode(data) // cannot fail: Load decoded it already
	if err != nil {
		return err
	}
	known := make(map[string]bool)
	for label := range file.Inputs {
		known[label] = true
	}
	produced := make(map[string]bool)
	for _, t := range op.Tasks {
		for _, l := range t.Outputs {
			produced[l] = true
		}
	}
	for _, t := range op.Tasks {
		for _, l := range t.Inputs {
			if !produced[l] {
				known[l] = true
			}
		}
	}
	for _, label := range slices.Sorted(maps.Keys(inputs)) {
		if !known[label] {
			return fmt.Errorf("--input %s: the operation has no input %q (its inputs: %s)",
				label, label, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
		}
	}
	return nil
}
