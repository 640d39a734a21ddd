package taskrt

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// builtin returns the builtin function registered under name.
func builtin(t *testing.T, name string) Function {
	t.Helper()
	f, ok := NewRegistry().Lookup(name)
	if !ok {
		t.Fatalf("builtin %q is not registered", name)
	}
	return f
}

func builtinRequest(attempt int, params map[string]any, outputs ...string) Request {
	return Request{Operation: "op-1", Task: "flight", Attempt: attempt, IdempotencyKey: "op-1/flight", Params: params, Outputs: outputs}
}

func TestBuiltinNames(t *testing.T) {
	want := []string{"echo", "fail", "noop", "sleep"}
	if got := NewRegistry().Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("a new registry holds %q, want %q", got, want)
	}
}

func TestEcho(t *testing.T) {
	tests := []struct {
		name    string
		params  map[string]any
		outputs []string
		want    map[string]any
	}{
		{"defaults", nil, []string{"flight", "seat"}, map[string]any{"flight": "flight.flight", "seat": "flight.seat"}},
		{"params override", map[string]any{"seat": "12A", "price": int64(420), "unused": true},
			[]string{"flight", "seat", "price"},
			map[string]any{"flight": "flight.flight", "seat": "12A", "price": int64(420)}},
		{"object param", map[string]any{"flight": map[string]any{"confirmation": "AB12CD"}}, []string{"flight"},
			map[string]any{"flight": map[string]any{"confirmation": "AB12CD"}}},
		{"no outputs", map[string]any{"x": 1}, nil, map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := builtin(t, "echo").Call(context.Background(), builtinRequest(1, tt.params, tt.outputs...))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out, tt.want) {
				t.Errorf("echo = %#v, want %#v", out, tt.want)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	f := builtin(t, "sleep")
	out, err := f.Call(context.Background(), builtinRequest(1, map[string]any{"ms": int64(1), "seat": "1C"}, "seat", "flight"))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"seat": "1C", "flight": "flight.flight"}; !reflect.DeepEqual(out, want) {
		t.Errorf("sleep = %#v, want %#v", out, want)
	}

	if _, err := f.Call(context.Background(), builtinRequest(1, map[string]any{"ms": "soon"})); !IsPermanent(err) {
		t.Errorf("ms \"soon\" gave %v, want a permanent error", err)
	}
}

func TestSleepHonoursCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(20*time.Millisecond, cancel)
	// An hour: the call can only return early through the context.
	_, err := callPromptly(t, ctx, builtin(t, "sleep"), builtinRequest(1, map[string]any{"ms": float64(3_600_000)}, "x"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestFail(t *testing.T) {
	f := builtin(t, "fail")
	_, err := f.Call(context.Background(), builtinRequest(1, nil, "x"))
	if err == nil || err.Error() != "failed" {
		t.Errorf("fail without params gave %v, want the error \"failed\"", err)
	}
	_, err = f.Call(context.Background(), builtinRequest(5, map[string]any{"message": "card declined"}, "x"))
	if err == nil || err.Error() != "card declined" {
		t.Errorf("fail with a message gave %v, want the error \"card declined\"", err)
	}
	if IsPermanent(err) {
		t.Errorf("fail's error is permanent, so it would not be retried: %v", err)
	}
	if _, err := f.Call(context.Background(), builtinRequest(1, map[string]any{"attempts_before_success": "two"})); !IsPermanent(err) {
		t.Errorf("attempts_before_success \"two\" gave %v, want a permanent error", err)
	}
}

func TestFailAttemptsBeforeSuccess(t *testing.T) {
	// Numbers arrive as int64 from normalised JSON and as float64 from a
	// plain decoder; both count.
	for _, n := range []any{int64(2), float64(2)} {
		params := map[string]any{"attempts_before_success": n, "message": "not yet", "x": "done"}
		for attempt := 1; attempt <= 3; attempt++ {
			out, err := builtin(t, "fail").Call(context.Background(), builtinRequest(attempt, params, "x"))
			if attempt <= 2 {
				if err == nil || err.Error() != "not yet" {
					t.Errorf("n=%v attempt %d: got %v, %v; want the error \"not yet\"", n, attempt, out, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("n=%v attempt %d: %v", n, attempt, err)
			}
			if want := map[string]any{"x": "done"}; !reflect.DeepEqual(out, want) {
				t.Errorf("n=%v attempt %d: output %#v, want %#v", n, attempt, out, want)
			}
		}
	}
}

func TestNoop(t *testing.T) {
	out, err := builtin(t, "noop").Call(context.Background(), builtinRequest(1, map[string]any{"x": 1}, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if out == nil || len(out) != 0 {
		t.Errorf("noop = %#v, want an empty, non-nil map", out)
	}
}

// On a2a74ac, ms 9223372036854775807 overflowed time.Duration into a
// negative wait and sleep returned at once; a negative ms did the same.
func TestSleepRefusesWaitsThatOverflow(t *testing.T) {
	f := builtin(t, "sleep")
	for _, ms := range []int64{9223372036854775807, -1} {
		_, err := callPromptly(t, context.Background(), f, builtinRequest(1, map[string]any{"ms": ms}, "x"))
		if !IsPermanent(err) || !strings.Contains(err.Error(), "param ms") {
			t.Errorf("ms %d gave %v, want a permanent error naming param ms", ms, err)
		}
	}
}
