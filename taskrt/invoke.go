package taskrt

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Invoker calls functions under a task's policy: up to Attempts attempts,
// all within Timeout, backing off exponentially with jitter between them.
// The local runner and a node's executor share it. It is safe for
// concurrent use.
type Invoker struct {
	slots chan struct{}
	mu    sync.Mutex
	rng   *rand.Rand
}

// NewInvoker returns an invoker whose jitter is seeded by seed and which
// lets at most parallelism calls run at once.
func NewInvoker(seed uint64, parallelism int) *Invoker {
	return &Invoker{slots: make(chan struct{}, max(parallelism, 1)), rng: rand.New(rand.NewPCG(seed, 0x5a9a))}
}

// Invoke calls f until it succeeds, fails permanently, runs out of
// attempts or of time. It returns the output, the number of attempts made
// and the last error; an error caused by the timeout wraps
// context.DeadlineExceeded. The function sees its attempts numbered after
// req.Attempt, 0 unless attempts ran elsewhere first (on an executor the
// work moved away from); they do not use up pol.Attempts.
func (v *Invoker) Invoke(ctx context.Context, f Function, req Request, pol Policy) (map[string]any, int, error) {
	ctx, cancel := context.WithTimeout(ctx, pol.Timeout)
	defer cancel()
	attempts := max(pol.Attempts, 1)
	before := req.Attempt
	var err error
	for n := 1; n <= attempts; n++ {
		select {
		case v.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, n - 1, fmt.Errorf("waiting to start attempt %d: %w", n, context.Cause(ctx))
		}
		req.Attempt = before + n
		var out map[string]any
		out, err = f.Call(ctx, req)
		<-v.slots
		if err == nil {
			return out, n, nil
		}
		if ctx.Err() != nil {
			return nil, n, fmt.Errorf("attempt %d: %w", n, context.Cause(ctx))
		}
		if IsPermanent(err) || n == attempts {
			return nil, n, fmt.Errorf("attempt %d: %w", n, err)
		}
		wait := time.NewTimer(v.backoff(pol.Backoff, n))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil, n, fmt.Errorf("attempt %d: %w (then %w)", n, err, context.Cause(ctx))
		case <-wait.C:
		}
	}
	return nil, attempts, err
}

// backoff is base doubled per failed attempt, capped at MaxBackoff, with
// equal jitter so that tasks failing together do not retry in lockstep.
func (v *Invoker) backoff(base time.Duration, attempt int) time.Duration {
	if base <= 0 {
		return 0
	}
	d := base << min(attempt-1, 20)
	if d <= 0 || d > MaxBackoff {
		d = MaxBackoff
	}
	v.mu.Lock()
	j := time.Duration(v.rng.Int64N(int64(d/2) + 1))
	v.mu.Unlock()
	return d/2 + j
}
