package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// Executor runs the tasks and rollbacks the ledger assigned to this node,
// all in parallel, and submits a signed attestation of each, those that
// finish together under one signature (see finish). It keeps no
// state of its own: after a restart, whatever is released to this node and
// not attested runs again with the same idempotency key.
type Executor struct {
	machine  *ledger.Machine
	registry *taskrt.Registry
	invoker  *taskrt.Invoker
	key      *ledger.PrivateKey
	submit   func(ledger.Entry) error
	log      *slog.Logger
	// finished, if set, hears of every run and rollback this node ends.
	finished func(function string, rollback bool, took time.Duration, failed bool)

	mu sync.Mutex
	// started maps the idempotency keys of runs started here whose task
	// the ledger still shows running to the assignment (TaskRecord.Moves)
	// they run: an attestation may be on its way. Work that moved away and
	// came back is a new assignment, and runs again.
	started map[string]uint64
	// attested is when this node last submitted attestations: they renew
	// its lease as a heartbeat does (see heartbeat).
	attested time.Time
	// inflight counts the runs started and not finished; pending holds the
	// attestations of finished runs not yet signed (see finish).
	inflight int
	pending  []pendingAttestation
	// linger is attestLinger but in tests.
	linger time.Duration
	wg     sync.WaitGroup
	ctx    context.Context
}

// NewExecutor returns an executor whose runs live as long as ctx.
func NewExecutor(ctx context.Context, m *ledger.Machine, reg *taskrt.Registry, key *ledger.PrivateKey, submit func(ledger.Entry) error, log *slog.Logger) *Executor {
	return &Executor{machine: m, registry: reg, invoker: taskrt.NewInvoker(seedOf(key), 256), key: key,
		submit: submit, log: log, started: make(map[string]uint64), ctx: ctx, linger: attestLinger}
}

func seedOf(k *ledger.PrivateKey) uint64 {
	a := k.Address()
	var s uint64
	for _, b := range a[:8] {
		s = s<<8 | uint64(b)
	}
	return s
}

// Wait waits for every run started so far.
func (x *Executor) Wait() { x.wg.Wait() }

// Busy reports whether a run of this node is going, and when it last
// submitted attestations: what decides whether its lease needs a
// heartbeat.
func (x *Executor) Busy() (running bool, attested time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.inflight > 0, x.attested
}

// Consider starts whatever of these operations is assigned to this node and
// not yet running here.
func (x *Executor) Consider(ops []*ledger.OpRecord) {
	// Counted as a run of its own until every run is started, so that runs
	// ending before the last one starts wait for it (see finish).
	x.mu.Lock()
	x.inflight++
	x.mu.Unlock()
	defer x.finish(nil)
	me := x.key.Address()
	for _, r := range ops {
		// What rewriting r costs a block, measured once for all of its
		// tasks this node starts (encoding a record is not free).
		var writes uint64
		recordWrites := func() uint64 {
			if writes == 0 {
				writes = x.machine.RecordWriteCost(r)
			}
			return writes
		}
		for i, ts := range r.Saga.Tasks {
			tr := r.Tasks[i]
			run := ts.Status == taskrt.TaskRunning && r.Saga.RollbackStage < 0
			switch {
			case ts.Undoing && tr.RollbackExecutor == me:
				x.start(r, i, true, recordWrites)
			case run && tr.Executor == me:
				x.start(r, i, false, recordWrites)
			}
			x.forget(r, i, run, ts.Undoing)
		}
	}
}

// forget drops the keys of task i's runs once the ledger has moved past
// them, so that a retried rollback can start again.
func (x *Executor) forget(r *ledger.OpRecord, i int, running, undoing bool) {
	if running && undoing {
		return
	}
	op, _, err := x.machine.Compiled(r)
	if err != nil {
		return
	}
	id := op.Tasks[i].ID
	x.mu.Lock()
	defer x.mu.Unlock()
	// Work that moved to another host is no longer this node's to start;
	// forgetting it lets it run again should it come back.
	me, tr := x.key.Address(), r.Tasks[i]
	if tr.Executor != me {
		delete(x.started, taskrt.IdempotencyKey(r.ID.Hex(), id, false))
	}
	if tr.RollbackExecutor != me {
		delete(x.started, taskrt.IdempotencyKey(r.ID.Hex(), id, true))
	}
	if !running {
		delete(x.started, taskrt.IdempotencyKey(r.ID.Hex(), id, false))
	}
	if !undoing {
		delete(x.started, taskrt.IdempotencyKey(r.ID.Hex(), id, true))
	}
}

func (x *Executor) start(r *ledger.OpRecord, i int, rollback bool, recordWrites func() uint64) {
	op, plan, err := x.machine.Compiled(r)
	if err != nil {
		x.log.Error("cannot plan a recorded operation", "op", r.ID, "err", err)
		return
	}
	t := op.Tasks[i]
	key := taskrt.IdempotencyKey(r.ID.Hex(), t.ID, rollback)
	assignment := r.Tasks[i].Moves
	if rollback {
		assignment = r.Tasks[i].RollbackMoves
	}
	x.mu.Lock()
	if a, ok := x.started[key]; ok && a == assignment {
		x.mu.Unlock()
		return
	}
	x.started[key] = assignment
	x.mu.Unlock()

	saga, err := taskrt.ResumeSaga(plan, r.Saga)
	if err != nil {
		x.log.Error("cannot resume a recorded operation", "op", r.ID, "err", err)
		return
	}
	// Attempts on hosts the work moved away from count: the function sees
	// its attempts numbered after them, and the attestation counts them.
	req := taskrt.Request{Operation: r.ID.Hex(), Task: t.ID, IdempotencyKey: key, Inputs: saga.Inputs(i),
		Params: t.Params, Outputs: t.Outputs, Attempt: int(assignment)}
	pol := taskrt.PolicyOf(op, t)
	fn := t.Run
	prevAttempts := 0
	if rollback {
		ts := saga.Task(i)
		prevAttempts = ts.RollbackAttempts
		req.Outcome, req.Output = string(ts.Outcome), ts.Output
		pol.Attempts = max(pol.Attempts, taskrt.DefaultRollbackAttempts)
		fn = t.Rollback
	}
	// What the task's rule may cost every validator, for flush to keep a
	// batch within the block's budget; a rollback evaluates no rule.
	var cost uint64
	if !rollback {
		cost = x.machine.RuleCost(r, i)
	}
	// And what rewriting its record costs the block, for flush to keep a
	// batch within max_block_write_bytes.
	writes := recordWrites()
	x.wg.Add(1)
	x.mu.Lock()
	x.inflight++
	x.mu.Unlock()
	go func() {
		defer x.wg.Done()
		a := x.run(r.ID, t.ID, fn, rollback, req, pol)
		if a != nil {
			a.Assignment = assignment
			a.Attempts += assignment
		}
		if a != nil && rollback {
			// Rollback attempts count across retries: a retried rollback
			// that fails as before is then a new attestation, not the
			// committed one again, which the ledger refuses as a replay.
			a.Attempts += uint64(prevAttempts)
		}
		x.finishCosts(a, cost, writes)
	}()
}

// run runs one task or rollback and returns its attestation, unsigned, or
// nil when there is nothing to attest.
func (x *Executor) run(op ledger.Hash, task, fn string, rollback bool, req taskrt.Request, pol taskrt.Policy) *ledger.Attestation {
	a := &ledger.Attestation{Operation: op, Task: task, Rollback: rollback}
	f, ok := x.registry.Lookup(fn)
	if !ok {
		a.Error, a.Permanent = fmt.Sprintf("function %q is not hosted on %s", fn, x.key.Address().Hex()), true
		return a
	}
	start := time.Now()
	out, n, err := x.invoker.Invoke(x.ctx, f, req, pol)
	a.Attempts = uint64(n)
	if x.finished != nil && x.ctx.Err() == nil {
		x.finished(fn, rollback, time.Since(start), err != nil)
	}
	switch {
	case x.ctx.Err() != nil:
		return nil // shutting down: the task runs again after restart
	case errors.Is(err, context.DeadlineExceeded):
		// The ledger judges deadlines by block time and records the
		// timeout itself; attesting an error would call it a failure.
		return nil
	case err != nil:
		a.Error, a.Permanent = err.Error(), taskrt.IsPermanent(err)
	case !rollback:
		if out == nil {
			out = map[string]any{}
		}
		b, err := json.Marshal(out)
		if err != nil {
			a.Error = fmt.Sprintf("output is not JSON: %v", err)
		}
		a.Output = b
	}
	return a
}

const (
	// attestLinger bounds how long a finished run's attestation waits for
	// the runs still going before it is signed without them.
	attestLinger = 2 * time.Millisecond
	// maxBatchItems and maxBatchOutput bound one signed batch.
	maxBatchItems  = 256
	maxBatchOutput = 1 << 20
	// batchItemWrites is what flush adds for an item besides its output
	// and record: its events, signature and framing, generously.
	batchItemWrites = 2048
)

// finish takes the attestation of a run that ended (nil if it ended
// without one) and signs what is pending once no run is left going, or
// attestLinger after the first pending one, whichever comes first. Runs
// released by one block thus end in one signed batch: every validator
// checks one signature for them instead of one each, which was a fifth of
// a loaded validator's time.
func (x *Executor) finish(a *ledger.Attestation) { x.finishCost(a, 0) }

// pendingAttestation is a finished run's attestation waiting to be signed,
// with the worst-case cost of the rule it makes validators evaluate.
type pendingAttestation struct {
	*ledger.Attestation
	ruleCost uint64
	// recordWrites is what rewriting its operation's record cost a block
	// when the run started (Machine.RecordWriteCost).
	recordWrites uint64
}

// finishCost is finish for an attestation whose rule may cost ruleCost.
func (x *Executor) finishCost(a *ledger.Attestation, ruleCost uint64) { x.finishCosts(a, ruleCost, 0) }

// finishCosts is finishCost for an attestation whose operation's record
// costs recordWrites to rewrite.
func (x *Executor) finishCosts(a *ledger.Attestation, ruleCost, recordWrites uint64) {
	x.mu.Lock()
	x.inflight--
	if a != nil {
		x.pending = append(x.pending, pendingAttestation{a, ruleCost, recordWrites})
	}
	now := x.inflight == 0 && len(x.pending) > 0
	later := !now && a != nil && len(x.pending) == 1
	if later {
		x.wg.Add(1)
	}
	x.mu.Unlock()
	switch {
	case now:
		x.flush()
	case later:
		time.AfterFunc(x.linger, func() {
			defer x.wg.Done()
			x.flush()
		})
	}
}

// flush signs and submits the pending attestations: one alone as an
// attestation entry, several as attestation batches. A batch whose rules
// may cost more than the chain's max_block_rule_cost is invalid, so the
// worst-case costs of a batch's rules are kept within it; an attestation
// whose rule alone may cost more goes alone, and fits a block that has
// evaluated nothing else.
//
// Likewise a batch whose store writes alone are over max_block_write_bytes
// is invalid (ledger.ErrBatchTooBig): it rewrites the record of every
// operation it attests. So a batch is kept within half that budget by an
// estimate of its writes, each record once (as it was when its run
// started, the other half left for what the record grows by since) and
// each output twice (in the entry and in the record); an attestation
// alone is never refused for its writes.
func (x *Executor) flush() {
	x.mu.Lock()
	pending := x.pending
	x.pending = nil
	x.mu.Unlock()
	budget := x.machine.Genesis().Params.BlockRuleCost()
	writeBudget := x.machine.Genesis().Params.BlockWriteBytes() / 2
	for len(pending) > 0 {
		n, size, cost, writes := 0, 0, uint64(0), uint64(0)
		ops := map[ledger.Hash]bool{}
		for n < len(pending) && n < maxBatchItems {
			p := pending[n]
			w := 2*uint64(len(p.Output)) + batchItemWrites
			if !ops[p.Operation] {
				w += p.recordWrites
			}
			if n > 0 && (size+len(p.Output) > maxBatchOutput || cost+p.ruleCost > budget || writes+w > writeBudget) {
				break
			}
			size, cost, writes = size+len(p.Output), cost+p.ruleCost, writes+w
			ops[p.Operation] = true
			n++
		}
		as := make([]*ledger.Attestation, n)
		for i := range as {
			as[i] = pending[i].Attestation
		}
		x.submitSigned(as)
		pending = pending[n:]
	}
}

// submitSigned signs attestations as one entry and submits it.
func (x *Executor) submitSigned(as []*ledger.Attestation) {
	chainID := x.machine.Genesis().ChainID
	var (
		e   ledger.Entry
		err error
	)
	if len(as) == 1 {
		a := as[0]
		kind := ledger.KindAttestation
		if a.Rollback {
			kind = ledger.KindRollbackAttestation
		}
		if err = a.Sign(x.key, chainID); err == nil {
			e, err = ledger.NewEntry(kind, a)
		}
	} else {
		b := &ledger.AttestationBatch{Items: make([]ledger.AttestationItem, len(as))}
		for i, a := range as {
			b.Items[i] = ledger.ItemOf(a)
		}
		if err = b.Sign(x.key, chainID); err == nil {
			e, err = ledger.NewEntry(ledger.KindAttestations, b)
		}
	}
	if err == nil {
		x.machine.MarkVerified(e)
		err = x.submit(e)
	}
	if err == nil {
		x.mu.Lock()
		x.attested = time.Now()
		x.mu.Unlock()
	}
	if err != nil {
		x.log.Warn("attestations not submitted", "count", len(as), "first_op", as[0].Operation, "first_task", as[0].Task, "err", err)
	}
}
