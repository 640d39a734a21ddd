package taskrt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Builtins returns the functions every node hosts (SPEC §1): echo, sleep,
// fail and noop.
func Builtins() map[string]Function {
	return map[string]Function{
		"echo":  FunctionFunc(echo),
		"sleep": FunctionFunc(sleep),
		"fail":  FunctionFunc(fail),
		"noop":  FunctionFunc(noop),
	}
}

// echo returns params[L] for each declared output label L, else "<task>.<L>".
func echo(_ context.Context, req Request) (map[string]any, error) {
	out := make(map[string]any, len(req.Outputs))
	for _, l := range req.Outputs {
		if v, ok := req.Params[l]; ok {
			out[l] = v
		} else {
			out[l] = req.Task + "." + l
		}
	}
	return out, nil
}

// sleep waits params.ms milliseconds (default 100), then echoes. Check
// bounds ms by max_sleep; sleep itself refuses what no limit could allow,
// a negative wait or one whose time.Duration would overflow.
func sleep(ctx context.Context, req Request) (map[string]any, error) {
	ms, err := intParam(req.Params, "ms", 100)
	if err != nil {
		return nil, Permanent(err)
	}
	if ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		return nil, Permanent(fmt.Errorf("param ms: %d is not a wait in milliseconds from 0 to %d", ms, math.MaxInt64/int64(time.Millisecond)))
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	return echo(ctx, req)
}

// fail fails with params.message; with params.attempts_before_success n it
// fails the first n attempts and then echoes.
func fail(ctx context.Context, req Request) (map[string]any, error) {
	n, err := intParam(req.Params, "attempts_before_success", -1)
	if err != nil {
		return nil, Permanent(err)
	}
	if n >= 0 && int64(req.Attempt) > n {
		return echo(ctx, req)
	}
	msg := "failed"
	if m, ok := req.Params["message"].(string); ok {
		msg = m
	}
	return nil, errors.New(msg)
}

// noop succeeds with an empty output.
func noop(context.Context, Request) (map[string]any, error) { return map[string]any{}, nil }

// intParam reads a whole-number param, accepting any JSON number type a
// decoder may have produced.
func intParam(params map[string]any, key string, def int64) (int64, error) {
	v, ok := params[key]
	if !ok {
		return def, nil
	}
	switch n := v.(type) {
	case int:
		return int64(n), nil
	case int64:
		return n, nil
	case uint64:
		return int64(n), nil
	case float64:
		if n == float64(int64(n)) {
			return int64(n), nil
		}
	}
	return 0, fmt.Errorf("param %s: want a whole number, got %v", key, v)
}
