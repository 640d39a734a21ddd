package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

// Acked is an operation a node acknowledged: sc_submit returned, so a
// committed block holds its submission.
type Acked struct {
	ID   ledger.Hash
	Name string
	// By is the node that acknowledged it.
	By string
}

// LoadStats counts what a load did.
type LoadStats struct {
	// Submitted counts operations, Acked those a node acknowledged.
	Submitted, Acked int
	// Resent counts calls of sc_submit that failed and were made again on
	// another node; GaveUp the operations never acknowledged.
	Resent, GaveUp int
}

// String says what the load did, in one line.
func (s LoadStats) String() string {
	return fmt.Sprintf("%d operations submitted, %d acknowledged, %d calls resent to another node, %d given up",
		s.Submitted, s.Acked, s.Resent, s.GaveUp)
}

// Loader is a running load (see Load).
type Loader struct {
	net  *Network
	spec Load
	ops  []*taskrt.Operation
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu       sync.Mutex
	cond     *sync.Cond
	paused   bool
	stopped  bool
	inflight int
	acked    []Acked
	stats    LoadStats
	// refused are the submissions a node refused as invalid: never right,
	// for they are all valid.
	refused []error
	until   time.Time
}

// StartLoad starts the testnet's load. Stop ends it; the test's cleanup
// stops it too.
func (n *Network) StartLoad(spec Load) (*Loader, error) {
	if len(spec.Operations) == 0 || spec.Workers < 1 || spec.Max < 1 || spec.Attempt <= 0 || spec.GiveUp <= 0 || spec.Duration <= 0 {
		return nil, fmt.Errorf("load %+v: want operations, workers, max, duration, attempt and give-up", spec)
	}
	l := &Loader{net: n, spec: spec, until: time.Now().Add(spec.Duration)}
	l.cond = sync.NewCond(&l.mu)
	for _, path := range spec.Operations {
		op, err := LoadOperation(path)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		l.ops = append(l.ops, op)
	}
	l.ctx, l.stop = context.WithCancel(context.Background())
	for range spec.Workers {
		l.wg.Add(1)
		go l.work()
	}
	return l, nil
}

func (l *Loader) work() {
	defer l.wg.Done()
	for {
		k, ok := l.claim()
		if !ok {
			return
		}
		l.submit(k)
		l.mu.Lock()
		l.inflight--
		l.cond.Broadcast()
		l.mu.Unlock()
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(l.spec.Interval):
		}
	}
}

// claim waits while the load is paused and returns the number of the next
// operation to submit; false once the load is over.
func (l *Loader) claim() (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.paused && !l.stopped {
		l.cond.Wait()
	}
	if l.stopped || l.stats.Submitted >= l.spec.Max || time.Now().After(l.until) {
		return 0, false
	}
	k := l.stats.Submitted
	l.stats.Submitted++
	l.inflight++
	return k, true
}

// submit sends operation k to the validators in turn, starting with the
// k-th, the same signed entry each time, until one acknowledges it or the
// operation's time is up.
func (l *Loader) submit(k int) {
	op := l.ops[k%len(l.ops)]
	e, err := l.net.Submission(op)
	if err != nil {
		l.refuse(err)
		return
	}
	vals := l.net.Validators
	start := time.Now()
	for attempt := 0; ; attempt++ {
		nd := vals[(k+attempt)%len(vals)]
		ctx, cancel := context.WithTimeout(l.ctx, l.spec.Attempt)
		res, err := nd.client.Submit(ctx, e)
		cancel()
		switch {
		case l.ctx.Err() != nil:
			return
		case err == nil && res.ID != nil && *res.ID != e.Hash():
			l.refuse(fmt.Errorf("%s acknowledged operation %s as %s", nd.Name, e.Hash().Hex(), res.ID.Hex()))
			return
		case err == nil:
			l.mu.Lock()
			l.acked = append(l.acked, Acked{ID: e.Hash(), Name: op.Name, By: nd.Name})
			l.stats.Acked++
			l.mu.Unlock()
			return
		case errors.Is(err, rpc.ErrInvalidInput):
			l.refuse(fmt.Errorf("%s refused operation %q (%s): %w", nd.Name, op.Name, e.Hash().Hex(), err))
			return
		}
		l.mu.Lock()
		l.stats.Resent++
		if time.Since(start) > l.spec.GiveUp {
			l.stats.GaveUp++
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (l *Loader) refuse(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused = append(l.refused, err)
}

// Pause stops submitting and waits for the submissions in flight to end.
func (l *Loader) Pause() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused = true
	for l.inflight > 0 {
		l.cond.Wait()
	}
}

// Resume submits again after Pause.
func (l *Loader) Resume() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused = false
	l.cond.Broadcast()
}

// Stop ends the load, cutting the calls in flight short, and waits for its
// goroutines. It may be called more than once.
func (l *Loader) Stop() {
	l.stop()
	l.mu.Lock()
	l.stopped = true
	l.cond.Broadcast()
	l.mu.Unlock()
	l.wg.Wait()
}

// Acked returns the operations acknowledged so far.
func (l *Loader) Acked() []Acked {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Acked(nil), l.acked...)
}

// Stats returns what the load has done so far.
func (l *Loader) Stats() LoadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Err returns the refusals of valid submissions, joined; nil if none.
func (l *Loader) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.refused...)
}
