package taskrt

import (
	"encoding/json"
	"fmt"
	"time"
)

// Policy is how a task is run: its timeout for all attempts together, how
// many attempts, and the first backoff between them.
type Policy struct {
	Timeout  time.Duration
	Attempts int
	Backoff  time.Duration
}

// PolicyOf resolves t's policy against op's defaults and the built-in ones.
func PolicyOf(op *Operation, t Task) Policy {
	p := Policy{Timeout: t.Timeout.Std(), Attempts: DefaultAttempts, Backoff: DefaultBackoff}
	if p.Timeout == 0 {
		p.Timeout = op.Defaults.Timeout.Std()
	}
	if p.Timeout == 0 {
		p.Timeout = DefaultTaskTimeout
	}
	retry := t.Retry
	if retry == nil {
		retry = op.Defaults.Retry
	}
	if retry != nil {
		p.Attempts, p.Backoff = max(retry.Attempts, 1), retry.Backoff.Std()
	}
	return p
}

// Judge turns a function's output into the task's result: the output must
// be a JSON object within maxBytes holding every declared label, and must
// pass the task's rule (nil for none). The ledger calls it on recorded
// outputs, so every node reaches the same verdict.
func Judge(t Task, rule *Rule, out map[string]any, inputs map[string]any, attempts, maxBytes int) Result {
	res, _ := JudgeCost(t, rule, out, inputs, attempts, maxBytes)
	return res
}

// JudgeCost is Judge that also returns the CEL cost of evaluating the rule
// (see [Rule.EvalCost]): what the ledger counts against a block's
// evaluation budget.
func JudgeCost(t Task, rule *Rule, out map[string]any, inputs map[string]any, attempts, maxBytes int) (Result, uint64) {
	out, err := CheckOutput(t, out, maxBytes)
	if err != nil {
		return Result{Status: TaskFailed, Attempts: attempts, Reason: err.Error()}, 0
	}
	res := Result{Status: TaskSucceeded, Attempts: attempts, Output: out, Valid: true}
	var cost uint64
	if rule != nil {
		var ok bool
		ok, cost, err = rule.EvalCost(out, inputs, t.Params)
		switch {
		case err != nil:
			res.Valid, res.Reason = false, err.Error()
		case !ok:
			res.Valid, res.Reason = false, rule.Reason()
		}
	}
	return res, cost
}

// CheckOutput normalises a function's output and checks that it holds
// every declared label and is at most maxBytes as JSON.
func CheckOutput(t Task, out map[string]any, maxBytes int) (map[string]any, error) {
	if out == nil {
		out = map[string]any{}
	}
	out, err := NormalizeObject(out)
	if err != nil {
		return nil, fmt.Errorf("output is not JSON: %w", err)
	}
	for _, l := range t.Outputs {
		if _, ok := out[l]; !ok {
			return nil, fmt.Errorf("output lacks declared label %q", l)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("output is not JSON: %w", err)
	}
	if len(b) > maxBytes {
		return nil, fmt.Errorf("output is %d bytes, over the limit of %d", len(b), maxBytes)
	}
	return out, nil
}
