package taskrt

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffDoublesWithJitterAndCap(t *testing.T) {
	v := NewInvoker(7, 1)
	base := 100 * time.Millisecond
	for attempt := 1; attempt <= 12; attempt++ {
		full := min(base<<(attempt-1), MaxBackoff)
		for range 50 {
			d := v.backoff(base, attempt)
			if d < full/2 || d > full {
				t.Fatalf("attempt %d: backoff %s outside [%s, %s]", attempt, d, full/2, full)
			}
		}
	}
	if d := v.backoff(0, 3); d != 0 {
		t.Fatalf("zero base gave backoff %s", d)
	}
}

func TestInvokeStopsAtTheTimeout(t *testing.T) {
	v := NewInvoker(1, 4)
	calls := 0
	hang := FunctionFunc(func(ctx context.Context, req Request) (map[string]any, error) {
		calls++
		<-ctx.Done()
		return nil, ctx.Err()
	})
	_, n, err := v.Invoke(context.Background(), hang, Request{}, Policy{Timeout: 10 * time.Millisecond, Attempts: 5, Backoff: time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || n != 1 || calls != 1 {
		t.Fatalf("got n=%d calls=%d err=%v, want one attempt cut by the deadline", n, calls, err)
	}
}
