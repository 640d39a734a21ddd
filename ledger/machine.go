package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/sagachain/sagachain/taskrt"
	"golang.org/x/sync/singleflight"
)

// Machine is the ledger's deterministic state machine. It applies a block's
// entries to the state by driving each operation's saga kernel, derives the
// stage and rollback records those entries cause, and checks that a block
// carries exactly those. It reads no clock and does no I/O: the block's
// time is the only time it knows, and state comes through a StateReader.
// A Machine is safe for concurrent use.
type Machine struct {
	genesis *Genesis
	vals    *ValidatorSet
	limits  taskrt.Limits

	mu sync.Mutex
	// plans and files cache compiled operations by operation id and by
	// file hash; compiling is deterministic, so a cache never changes a
	// result.
	plans map[Hash]*compiled
	files map[Hash]*compiled
	// sigs holds the hashes of entries whose signatures verified. An
	// entry's hash covers its signature and everything signed, so the
	// verdict is a function of the hash: caching it saves the second and
	// third recovery when an entry is checked, proposed and applied.
	sigs   map[Hash]struct{}
	flight singleflight.Group // verifications under way, by hash
}

// compiled is an operation parsed, planned and with its rules compiled.
type compiled struct {
	op    *taskrt.Operation
	plan  *taskrt.Plan
	rules []*taskrt.Rule
	costs []uint64 // each rule's worst-case CEL cost
}

// NewMachine returns the state machine of the chain g.
func NewMachine(g *Genesis) (*Machine, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	vals, err := g.ValidatorSet()
	if err != nil {
		return nil, err
	}
	limits := g.Params.TaskLimits()
	return &Machine{genesis: g, vals: vals, limits: limits, plans: make(map[Hash]*compiled), files: make(map[Hash]*compiled), sigs: make(map[Hash]struct{})}, nil
}

// Genesis returns the chain's genesis.
func (m *Machine) Genesis() *Genesis { return m.genesis }

// Validators returns the chain's validators.
func (m *Machine) Validators() *ValidatorSet { return m.vals }

// Context is where in the chain entries are applied: the height and the
// block time (Unix milliseconds) of the block that carries them.
type Context struct {
	Height uint64
	Time   uint64
}

// Applied is what applying a block decided.
type Applied struct {
	// Results are the encoded decisions, in order; their Merkle root is
	// the next header's ResultsRoot.
	Results [][]byte
}

// Root returns the Merkle root of the results.
func (a *Applied) Root() Hash { return MerkleRoot(a.Results) }

// ApplyEntries applies a block's entries to st in order. Each submitted
// entry must be followed by exactly the derived entries applying it causes;
// any entry that does not fit makes the whole block invalid, and the error
// names the entry.
//
// An attestation in a block wins over a timeout recorded in the same
// block: a block that carries the timeout of a task (or of its rollback)
// and, anywhere, an attestation of it (alone or as a batch item) is
// invalid, so an executor whose attestation made it into the block in
// time is never timed out by it (DueTimeoutsFor is how a proposer
// complies).
//
// A block whose store writes (see BlockWrites) are over
// params.max_block_write_bytes is invalid, with ErrBlockFull, unless it
// carries a single entry besides what that entry derives, and that entry
// is not an attestation batch of several items attesting several
// operations (ErrBatchTooBig).
func (m *Machine) ApplyEntries(st *Overlay, ctx Context, entries []Entry) (*Applied, error) {
	out := &Applied{}
	attested := attestedIn(entries)
	submitted := 0
	for i := 0; i < len(entries); i++ {
		e := entries[i]
		if e.Kind.Derived() {
			return nil, &EntryError{Index: i, Kind: e.Kind, Err: errors.New("a derived record that no entry before it causes")}
		}
		if (e.Kind == KindTimeout || e.Kind == KindFailover) && len(attested) > 0 {
			if k, ok := takenFrom(e); ok && attested[k] {
				return nil, &EntryError{Index: i, Kind: e.Kind, Err: fmt.Errorf("task %q: %w", k.task, ErrAttestedInBlock)}
			}
		}
		derived, err := m.apply(st, ctx, e, out)
		if err != nil {
			return nil, &EntryError{Index: i, Kind: e.Kind, Err: err}
		}
		cause := i
		for _, d := range derived {
			i++
			if i >= len(entries) {
				return nil, &EntryError{Index: cause, Kind: e.Kind, Err: fmt.Errorf("block ends where its derived %s belongs", d.Kind)}
			}
			if got := entries[i]; got.Kind != d.Kind || !bytes.Equal(got.Body, d.Body) {
				return nil, &EntryError{Index: i, Kind: got.Kind, Err: fmt.Errorf("differs from the %s the state machine derives from entry %d", d.Kind, cause)}
			}
		}
		submitted++
	}
	// Measured once, after the whole block: what the store will write. A
	// proposer's Try refused every entry after the first that would have
	// put its block over, so an honest block is within the budget or
	// holds one entry.
	n, err := BlockWrites(st, entries)
	if err != nil {
		return nil, err
	}
	if budget := m.genesis.Params.BlockWriteBytes(); n > budget && submitted > 1 {
		return nil, fmt.Errorf("%w: the block's %d entries write %d bytes, the limit is %d (max_block_write_bytes)", ErrBlockFull, submitted, n, budget)
	} else if n > budget && len(entries) > 0 && len(st.ops) > 1 && multiBatch(entries[0]) {
		return nil, &EntryError{Index: 0, Kind: entries[0].Kind, Err: fmt.Errorf("%w: %d bytes alone, the limit is %d (max_block_write_bytes)", ErrBatchTooBig, n, budget)}
	}
	return out, nil
}

// ErrAttestedInBlock reports a timeout or failover of a task whose
// attestation the same block carries: the attestation wins.
var ErrAttestedInBlock = errors.New("the block carries its attestation, which wins over a timeout or failover in the same block")

// takenFrom returns the task or rollback a timeout or failover entry takes
// from its executor; false for an operation timeout or an entry that does
// not decode.
func takenFrom(e Entry) (taskKey, bool) {
	switch e.Kind {
	case KindTimeout:
		var to Timeout
		if rlp.DecodeBytes(e.Body, &to) == nil && to.Task != "" {
			return taskKey{to.Operation, to.Task, to.Rollback}, true
		}
	case KindFailover:
		var f Failover
		if rlp.DecodeBytes(e.Body, &f) == nil {
			return taskKey{f.Operation, f.Task, f.Rollback}, true
		}
	}
	return taskKey{}, false
}

// taskKey names a task, or its rollback, of an operation.
type taskKey struct {
	op       Hash
	task     string
	rollback bool
}

// attestedIn returns the tasks and rollbacks that entries attest, alone or
// in batches. An entry that does not decode attests nothing (it makes the
// block invalid anyway).
func attestedIn(entries []Entry) map[taskKey]bool {
	var out map[taskKey]bool
	add := func(op Hash, task string, rollback bool) {
		if out == nil {
			out = make(map[taskKey]bool)
		}
		out[taskKey{op, task, rollback}] = true
	}
	for _, e := range entries {
		switch e.Kind {
		case KindAttestation, KindRollbackAttestation:
			var a Attestation
			if rlp.DecodeBytes(e.Body, &a) == nil {
				add(a.Operation, a.Task, a.Rollback)
			}
		case KindAttestations:
			var b AttestationBatch
			if rlp.DecodeBytes(e.Body, &b) == nil {
				for _, it := range b.Items {
					add(it.Operation, it.Task, it.Rollback)
				}
			}
		}
	}
	return out
}

// EntryError says which entry of a block is at fault and why.
type EntryError struct {
	Index int
	Kind  Kind
	Err   error
}

func (e *EntryError) Error() string { return fmt.Sprintf("entry %d (%s): %v", e.Index, e.Kind, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// Try applies one submitted entry to st, as a proposer does while filling a
// block, and returns the entry followed by the records it derives; out, if
// not nil, collects its results, so that a proposer trying its entries in
// order ends with what applying its block gives. An entry that does not fit
// is refused and leaves st and out as they were.
//
// Try also keeps the block's write budget (params.max_block_write_bytes):
// it measures what st's block writes with e (see BlockWrites) and refuses
// e with ErrBlockFull when that would be over the budget, unless st's
// block holds no entry yet, so one entry always fits; an attestation batch
// of several items and operations over the budget alone never fits
// (ErrBatchTooBig).
func (m *Machine) Try(st *Overlay, ctx Context, e Entry, out *Applied) ([]Entry, error) {
	return m.try(st, ctx, e, out, true)
}

// try is Try; measure false skips the write budget, for Check, whose
// overlay holds no block.
func (m *Machine) try(st *Overlay, ctx Context, e Entry, out *Applied, measure bool) ([]Entry, error) {
	if e.Kind.Derived() {
		return nil, fmt.Errorf("%s entries are derived, never submitted", e.Kind)
	}
	child := NewOverlay(st)
	res := &Applied{}
	derived, err := m.apply(child, ctx, e, res)
	if err != nil {
		return nil, err
	}
	// A batch is measured in Check too: one over the budget alone never
	// fits, and the mempool must not keep it.
	if batch := multiBatch(e); measure || batch {
		all := append([]Entry{e}, derived...)
		if err := child.measure(all); err != nil {
			return nil, err
		}
		budget := m.genesis.Params.BlockWriteBytes()
		switch n := child.w.total(); {
		case n <= budget:
		case st.w.count > 0:
			return nil, fmt.Errorf("%w: with this %s the block would write %d bytes, the limit is %d (max_block_write_bytes)",
				ErrBlockFull, e.Kind, n, budget)
		case batch && len(child.ops) > 1:
			return nil, fmt.Errorf("%w: %d bytes alone, the limit is %d (max_block_write_bytes); an executor must split it", ErrBatchTooBig, n, budget)
		}
	}
	st.Absorb(child)
	if out != nil {
		out.Results = append(out.Results, res.Results...)
	}
	return append([]Entry{e}, derived...), nil
}

// Check checks a submitted entry against st without keeping any change: the
// mempool's admission test.
func (m *Machine) Check(st StateReader, ctx Context, e Entry) error {
	_, err := m.try(NewOverlay(st), ctx, e, nil, false)
	return err
}

// Authenticate checks what about a submitted entry does not depend on the
// state: that it decodes, that its signatures are valid, and that its
// signer may make entries of its kind at all (an allowed submitter, a
// validator). Gossip uses it to drop forgeries without judging entries a
// peer may legitimately know to be valid before this node does.
func (m *Machine) Authenticate(e Entry) error {
	if e.Kind.Derived() || e.Kind == KindTimeout || e.Kind == KindFailover {
		return fmt.Errorf("%s entries are made by proposers, never submitted", e.Kind)
	}
	body, err := e.Decode()
	if err != nil {
		return err
	}
	chainID, hash := m.genesis.ChainID, e.Hash()
	switch b := body.(type) {
	case *Submission:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return err
		}
		if !m.genesis.AllowedSubmitter(b.Submitter) {
			return fmt.Errorf("%s: %w", b.Submitter.Hex(), ErrSubmitter)
		}
		// The canonical form does not depend on the state either: refused
		// here, a non-canonical file is neither forwarded nor kept.
		c, err := m.compile(hash, b.Operation)
		if err != nil {
			return fmt.Errorf("operation: %w", err)
		}
		if err := CanonicalOperation(b.Operation, c.op); err != nil {
			return err
		}
	case *Retry:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return err
		}
		if !m.genesis.AllowedSubmitter(b.Submitter) && !m.genesis.Operator(b.Submitter) {
			return fmt.Errorf("%s: %w", b.Submitter.Hex(), ErrSubmitter)
		}
	case *Attestation:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return err
		}
		if !m.vals.Has(b.Executor) {
			return fmt.Errorf("attestation by %s: %w", b.Executor.Hex(), ErrNotValidator)
		}
		if err := checkAttestationData(b.Task, b.Output, b.Error); err != nil {
			return err
		}
	case *AttestationBatch:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return err
		}
		if !m.vals.Has(b.Executor) {
			return fmt.Errorf("attestations by %s: %w", b.Executor.Hex(), ErrNotValidator)
		}
		for i, it := range b.Items {
			if err := checkAttestationData(it.Task, it.Output, it.Error); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
	case *Announcement:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return err
		}
		if !m.vals.Has(b.Validator) {
			return fmt.Errorf("announcement by %s: %w", b.Validator.Hex(), ErrNotValidator)
		}
	case *Heartbeat:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return err
		}
		if !m.vals.Has(b.Executor) {
			return fmt.Errorf("heartbeat by %s: %w", b.Executor.Hex(), ErrNotValidator)
		}
	case *Evidence:
		return m.verifyOnce(hash, func() error { return m.checkEvidence(b) })
	}
	return nil
}

// DueTimeouts returns the timeout entries block time ctx.Time makes due:
// tasks and rollbacks past their deadline, and operations past their own
// timeout. A proposer that also includes attestations must use
// DueTimeoutsFor instead.
func (m *Machine) DueTimeouts(st StateReader, ctx Context) ([]Entry, error) {
	return m.DueTimeoutsFor(st, ctx, nil)
}

// DueTimeoutsFor is DueTimeouts for a block that may also carry
// candidates, the entries the proposer means to try after the timeouts:
// it leaves out the timeout of any task or rollback that a candidate
// attests, since a block carrying both is invalid (see ApplyEntries) and
// the attestation wins. If that attestation does not fit after all, the
// timeout is due again at the next block. It also leaves out the
// failovers from an executor with a heartbeat among the candidates that
// the block can still take: when blocks come slower than the lease, the
// heartbeat waiting for this very block says the executor is alive, and
// moving its work would only make it run twice.
func (m *Machine) DueTimeoutsFor(st StateReader, ctx Context, candidates []Entry) ([]Entry, error) {
	attested := attestedIn(candidates)
	alive := m.heartbeatsIn(candidates, ctx)
	ids, err := st.ActiveOperations()
	if err != nil {
		return nil, err
	}
	hosts, err := peekHosts(st)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, id := range ids {
		r, err := st.Operation(id)
		if err != nil {
			return nil, err
		}
		c, err := m.compile(r.ID, r.Operation)
		if err != nil {
			return nil, err
		}
		if r.Saga.Status == taskrt.OpRunning && c.op.Timeout > 0 && ctx.Time > r.Time+uint64(c.op.Timeout.Std().Milliseconds()) {
			e, _ := NewEntry(KindTimeout, &Timeout{Operation: id})
			out = append(out, e)
			continue
		}
		for i, t := range r.Saga.Tasks {
			tr := &r.Tasks[i]
			task := c.op.Tasks[i].ID
			running := t.Status == taskrt.TaskRunning && r.Saga.RollbackStage < 0
			if attested[taskKey{id, task, t.Undoing}] || (!running && !t.Undoing) {
				continue // its attestation is on its way into this block, or nothing runs
			}
			deadline := tr.Deadline
			if t.Undoing {
				deadline = tr.RollbackDeadline
			}
			// A silent executor's work moves rather than time out: its
			// timeout is the function's, which a dead host did not use.
			// Work with nowhere to move times out at its deadline, and
			// before that its executor is marked down.
			to, due := m.failoverDue(hosts, c, tr, i, t.Undoing, ctx)
			late := deadline > 0 && ctx.Time > deadline
			exec, _, _ := tr.assignment(t.Undoing)
			switch {
			case due && alive[exec]:
				// Its executor's heartbeat is on its way into this block.
			case due && (to != Address{} || !late):
				e, _ := NewEntry(KindFailover, &Failover{Operation: id, Task: task, Rollback: t.Undoing, From: exec})
				out = append(out, e)
			case late:
				e, _ := NewEntry(KindTimeout, &Timeout{Operation: id, Task: task, Rollback: t.Undoing})
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// heartbeatsIn returns the executors of the heartbeats among entries that
// a block at ctx would take (signed within the lease before it; see
// Heartbeat). The signature is not checked here: a forged heartbeat fails
// when it is tried, and the failover it held back is due at the next
// block.
func (m *Machine) heartbeatsIn(entries []Entry, ctx Context) map[Address]bool {
	var out map[Address]bool
	lease, drift := m.genesis.Params.ExecutorLease(), m.genesis.Params.MaxClockDriftMS
	for _, e := range entries {
		if e.Kind != KindHeartbeat {
			continue
		}
		var hb Heartbeat
		if rlp.DecodeBytes(e.Body, &hb) != nil || hb.Time > ctx.Time+drift || hb.Time+lease < ctx.Time {
			continue
		}
		if out == nil {
			out = make(map[Address]bool)
		}
		out[hb.Executor] = true
	}
	return out
}

// peekHosts reads the announcements of st without making an overlay keep
// (and so write) a copy.
func peekHosts(st StateReader) (*Hosts, error) {
	if o, ok := st.(*Overlay); ok {
		return o.peekHosts()
	}
	return st.Hosts()
}

// LeaseExpiry returns the block time after which the executor of task i
// of r (or of its rollback) loses the work unless a block carries an entry
// it signed: params.executor_lease_ms after the later of its assignment
// and the last block that carried one.
func (m *Machine) LeaseExpiry(hosts *Hosts, tr *TaskRecord, rollback bool) uint64 {
	exec, since, _ := tr.assignment(rollback)
	return max(since, hosts.LastSeen(exec)) + m.genesis.Params.ExecutorLease()
}

// failoverDue reports whether a failover of task i's run (or rollback),
// which tr assigns, is due at ctx, and where the work moves: due when its
// executor is marked down or its lease expired, and there is a live host
// to move to or the executor is not marked down yet (the failover then
// only marks it). to is the zero address when the work stays where it is.
func (m *Machine) failoverDue(hosts *Hosts, c *compiled, tr *TaskRecord, i int, rollback bool, ctx Context) (to Address, due bool) {
	exec, _, _ := tr.assignment(rollback)
	down := hosts.IsDown(exec)
	if !down && ctx.Time <= m.LeaseExpiry(hosts, tr, rollback) {
		return Address{}, false
	}
	to, ok := m.nextHost(hosts, c, i, rollback, exec)
	return to, ok || !down
}

// nextHost returns the first live host of the function of task i (or of
// its rollback) after exec, in address order and around; false when none
// but exec is live.
func (m *Machine) nextHost(hosts *Hosts, c *compiled, i int, rollback bool, exec Address) (Address, bool) {
	fn := c.op.Tasks[i].Run
	if rollback {
		fn = c.op.Tasks[i].Rollback
	}
	all := hosts.Of(fn, m.vals)
	at := indexOf(all, exec)
	for k := 1; k < len(all); k++ {
		if a := all[(at+k)%len(all)]; a != exec && !hosts.IsDown(a) {
			return a, true
		}
	}
	return Address{}, false
}

// applyFailover applies a failover whose lease expired: it marks the
// silent executor down and moves the work to the next live host, with a
// fresh deadline and the same idempotency key; with no live host to move
// to, the work stays and waits for its executor or its timeout.
func (m *Machine) applyFailover(st *Overlay, ctx Context, f *Failover, out *Applied) ([]Entry, error) {
	r, c, s, i, err := m.load(st, f.Operation, f.Task)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("failover of task %q", f.Task)
	if f.Rollback {
		what = fmt.Sprintf("failover of the rollback of task %q", f.Task)
	}
	tr := &r.Tasks[i]
	t := s.Task(i)
	if f.Rollback && !t.Undoing || !f.Rollback && (t.Status != taskrt.TaskRunning || r.Saga.RollbackStage >= 0) {
		return nil, fmt.Errorf("%s: %w", what, taskrt.ErrTaskNotActive)
	}
	exec, since, _ := tr.assignment(f.Rollback)
	if exec != f.From {
		return nil, fmt.Errorf("%s from %s: the work is assigned to %s: %w", what, f.From.Hex(), exec.Hex(), ErrNotExecutor)
	}
	hosts, err := st.Hosts()
	if err != nil {
		return nil, err
	}
	to, due := m.failoverDue(hosts, c, tr, i, f.Rollback, ctx)
	if !due {
		return nil, fmt.Errorf("%s from %s: lease until block time %d, block at %d: %w", what, exec.Hex(), m.LeaseExpiry(hosts, tr, f.Rollback), ctx.Time, ErrLeaseHeld)
	}
	reason := fmt.Sprintf("executor %s is down", exec.Hex())
	if !hosts.IsDown(exec) {
		reason = fmt.Sprintf("executor %s signed nothing a block carried since block time %d (lease %d ms)",
			exec.Hex(), max(hosts.LastSeen(exec), since), m.genesis.Params.ExecutorLease())
		hosts.markDown(exec, ctx.Height)
		out.Results = append(out.Results, mustRLP([]any{"executor_down", exec, ctx.Height}))
	}
	st.timedOut(taskKey{f.Operation, f.Task, f.Rollback})
	if to == (Address{}) {
		return nil, nil // nowhere to go: the work waits for its executor
	}
	evs, err := s.Moved(i, f.Rollback, exec.Hex(), to.Hex(), reason)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	pol := taskrt.PolicyOf(c.op, c.op.Tasks[i])
	deadline := ctx.Time + uint64(pol.Timeout.Milliseconds())
	if f.Rollback {
		tr.RollbackExecutor, tr.RollbackSince, tr.RollbackDeadline = to, ctx.Time, deadline
		tr.RollbackMoves++
	} else {
		tr.Executor, tr.Since, tr.Deadline = to, ctx.Time, deadline
		tr.Moves++
	}
	return m.follow(r, c, s, ctx, hosts, nil, evs, out)
}

// seen records in hosts that a block at ctx carried an entry signed by a;
// that an executor marked down is up again is a decision of the block.
func (m *Machine) seen(hosts *Hosts, a Address, ctx Context, out *Applied) {
	if hosts.seen(a, ctx.Time) {
		out.Results = append(out.Results, mustRLP([]any{"executor_up", a, ctx.Height}))
	}
}

// Compiled returns the parsed operation and plan of a record.
func (m *Machine) Compiled(r *OpRecord) (*taskrt.Operation, *taskrt.Plan, error) {
	c, err := m.compile(r.ID, r.Operation)
	if err != nil {
		return nil, nil, err
	}
	return c.op, c.plan, nil
}

// compile returns the compiled form of operation id, whose file is raw.
// Besides the cache by operation, a second one is keyed by the file's hash:
// a service submits the same file again and again with other inputs, and
// parsing the YAML is the dearest step of applying a submission. The
// compiled form is read-only, so operations can share it.
func (m *Machine) compile(id Hash, raw []byte) (*compiled, error) {
	m.mu.Lock()
	c, ok := m.plans[id]
	m.mu.Unlock()
	if ok {
		return c, nil
	}
	fh := crypto.Keccak256Hash(raw)
	m.mu.Lock()
	c, ok = m.files[fh]
	m.mu.Unlock()
	if !ok {
		op, err := taskrt.Load(raw, nil, m.limits)
		if err != nil {
			return nil, err
		}
		plan, err := taskrt.NewPlan(op)
		if err != nil {
			return nil, err
		}
		rules, err := taskrt.CompileRules(op)
		if err != nil {
			return nil, err
		}
		// Every validator evaluates every rule: an operation whose rules
		// may cost more than the chain allows is refused at submission.
		costs, err := taskrt.CheckRuleCost(op, rules, m.limits)
		if err != nil {
			return nil, err
		}
		c = &compiled{op: op, plan: plan, rules: rules, costs: costs}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.plans) > 100_000 {
		clear(m.plans) // bound memory; everything is recomputable
	}
	if len(m.files) > 10_000 {
		clear(m.files)
	}
	m.plans[id] = c
	m.files[fh] = c
	return c, nil
}

// verifyOnce runs verify for the entry with hash h unless an earlier call
// for the same hash succeeded.
func (m *Machine) verifyOnce(h Hash, verify func() error) error {
	m.mu.Lock()
	_, ok := m.sigs[h]
	m.mu.Unlock()
	if ok {
		return nil
	}
	// Gossip validates the copies of one entry that arrive from several
	// peers at once, before any is marked seen: one recovery serves them
	// all.
	_, err, _ := m.flight.Do(string(h[:]), func() (any, error) {
		if err := verify(); err != nil {
			return nil, err
		}
		m.markVerified(h)
		return nil, nil
	})
	return err
}

// MarkVerified records that e's signature is valid without recovering it.
// It is for entries the caller has just signed with its own key: an
// executor's attestations, whose recovery would cost as much again as the
// signing did. The hash covers the signature, so a different entry is not
// vouched for; everything else about e is still checked when it applies.
func (m *Machine) MarkVerified(e Entry) { m.markVerified(e.Hash()) }

func (m *Machine) markVerified(h Hash) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sigs) >= 1<<18 {
		clear(m.sigs) // bound memory; a miss only costs a recovery
	}
	m.sigs[h] = struct{}{}
}

// Errors for entries that do not fit the state.
var (
	ErrSubmitter   = errors.New("submitter is not allowed by genesis")
	ErrDuplicate   = errors.New("already recorded")
	ErrNotHosted   = errors.New("no validator hosts the function")
	ErrNotExecutor = errors.New("signer is not the assigned executor")
	ErrNotDue      = errors.New("deadline has not passed")
	ErrStale       = errors.New("announcement is not newer than the last one")
	// ErrSuperseded reports an attestation for an assignment of a task
	// that has since moved (and perhaps come back): it changes nothing.
	ErrSuperseded = errors.New("the assignment it answers has moved on")
	// ErrStaleHeartbeat reports a heartbeat signed longer than a lease
	// before the block's time, or further after it than clocks may drift.
	ErrStaleHeartbeat = errors.New("heartbeat is not within the lease of the block's time")
	// ErrLeaseHeld reports a failover of work whose executor still holds
	// its lease, or that has nowhere to move.
	ErrLeaseHeld = errors.New("the executor's lease has not expired")
	// ErrFailoverDue refuses a timeout of work whose executor went silent
	// while another host is live: the work moves instead (see Failover).
	ErrFailoverDue = errors.New("a failover is due, not a timeout")
	// ErrNotAuthorized reports a signer who may make entries of the kind
	// but not this one: a retry of someone else's operation.
	ErrNotAuthorized = errors.New("signer may not do this")
	// ErrReplay reports an entry that a committed block, or the block
	// being applied, already carries. It is an ErrDuplicate.
	ErrReplay = fmt.Errorf("entry %w in a committed block", ErrDuplicate)
)

// apply applies one submitted entry and returns the records it derives.
// An entry a committed block (or this block) already carries is refused:
// a signed entry included again, a Retry say, would otherwise act again.
// Timeouts and failovers are exempt: the proposer makes them from the
// state, the state alone says whether one is due, and one repeated after
// a retry (or a second move of the same work from the same executor) is
// the same bytes.
func (m *Machine) apply(st *Overlay, ctx Context, e Entry, out *Applied) ([]Entry, error) {
	hash := e.Hash()
	exempt := e.Kind == KindTimeout || e.Kind == KindFailover
	if !exempt {
		done, err := st.Recorded(hash)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", e.Kind, hash.Hex(), err)
		}
		if done {
			return nil, fmt.Errorf("%s %s: %w", e.Kind, hash.Hex(), ErrReplay)
		}
	}
	derived, err := m.applyBody(st, ctx, e, hash, out)
	if err != nil {
		return nil, err
	}
	if !exempt {
		st.record(hash)
	}
	return derived, nil
}

// applyBody is apply without the replay rule.
func (m *Machine) applyBody(st *Overlay, ctx Context, e Entry, hash Hash, out *Applied) ([]Entry, error) {
	body, err := e.Decode()
	if err != nil {
		return nil, err
	}
	chainID := m.genesis.ChainID
	switch b := body.(type) {
	case *Submission:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return nil, err
		}
		if !m.genesis.AllowedSubmitter(b.Submitter) {
			return nil, fmt.Errorf("%s: %w", b.Submitter.Hex(), ErrSubmitter)
		}
		id := hash
		if _, err := st.Operation(id); err == nil {
			return nil, fmt.Errorf("operation %s: %w", id, ErrDuplicate)
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		c, err := m.compile(id, b.Operation)
		if err != nil {
			return nil, fmt.Errorf("operation: %w", err)
		}
		// The record keeps the file as JSON: bytes that do not survive
		// that (YAML, say) would fail the commit on every node.
		if err := CanonicalOperation(b.Operation, c.op); err != nil {
			return nil, err
		}
		hosts, err := st.Hosts()
		if err != nil {
			return nil, err
		}
		for _, fn := range functionsOf(c.op) {
			if len(hosts.Of(fn, m.vals)) == 0 {
				return nil, fmt.Errorf("function %q: %w", fn, ErrNotHosted)
			}
		}
		r := &OpRecord{ID: id, Submitter: b.Submitter, Height: ctx.Height, Time: ctx.Time,
			Operation: json.RawMessage(b.Operation), Tasks: make([]TaskRecord, len(c.op.Tasks)), Last: id,
			Stages: make([]StageHashes, len(c.plan.Stages))}
		s := taskrt.NewSaga(c.plan)
		acts, evs, err := s.Start()
		if err != nil {
			return nil, err
		}
		st.put(r)
		return m.follow(r, c, s, ctx, hosts, acts, evs, out)

	case *Attestation:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return nil, err
		}
		if b.Rollback != (e.Kind == KindRollbackAttestation) {
			return nil, fmt.Errorf("task %q: rollback flag does not match the entry kind", b.Task)
		}
		if err := checkAttestationData(b.Task, b.Output, b.Error); err != nil {
			return nil, err
		}
		// As for a batch item (below): a block may not carry both this and
		// a timeout or failover of its task, and a failover with nowhere to
		// move the work leaves it with this very executor.
		if st.timedOutHere(taskKey{b.Operation, b.Task, b.Rollback}) {
			return nil, fmt.Errorf("task %q: %w", b.Task, ErrAttestedInBlock)
		}
		if !b.Rollback {
			if err := m.checkBlockBudget(st); err != nil {
				return nil, err
			}
		}
		return m.applyAttestation(st, ctx, b, out)

	case *AttestationBatch:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return nil, err
		}
		// An item the store could not keep makes the whole batch invalid,
		// not just skipped: its executor signed it as it is. So does an
		// item whose task this very block timed out: a block may not
		// carry both (see ApplyEntries), and refusing the batch here,
		// rather than skipping the item, keeps a proposer that tries
		// timeouts first from building such a block; the batch fits the
		// next block, where the item is merely stale.
		for i, it := range b.Items {
			if err := checkAttestationData(it.Task, it.Output, it.Error); err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			if st.timedOutHere(taskKey{it.Operation, it.Task, it.Rollback}) {
				return nil, fmt.Errorf("item %d: task %q: %w", i, it.Task, ErrAttestedInBlock)
			}
		}
		if err := m.checkBatchBudget(st, b); err != nil {
			return nil, err
		}
		return m.applyBatch(st, ctx, b, out)

	case *Timeout:
		r, err := st.Operation(b.Operation)
		if err != nil {
			return nil, fmt.Errorf("operation %s: %w", b.Operation, err)
		}
		c, err := m.compile(r.ID, r.Operation)
		if err != nil {
			return nil, err
		}
		s, err := taskrt.ResumeSaga(c.plan, r.Saga)
		if err != nil {
			return nil, err
		}
		var acts []taskrt.Action
		var evs []taskrt.Event
		if b.Task == "" {
			limit := c.op.Timeout.Std().Milliseconds()
			if limit <= 0 || ctx.Time <= r.Time+uint64(limit) {
				return nil, fmt.Errorf("operation timeout: %w", ErrNotDue)
			}
			acts, evs, err = s.TimeOut(fmt.Sprintf("operation timeout %s exceeded", c.op.Timeout))
		} else {
			i, ok := c.plan.Index(b.Task)
			if !ok {
				return nil, fmt.Errorf("task %q: %w", b.Task, taskrt.ErrNoSuchTask)
			}
			tr := r.Tasks[i]
			hosts, herr := peekHosts(st)
			if herr != nil {
				return nil, herr
			}
			if to, due := m.failoverDue(hosts, c, &tr, i, b.Rollback, ctx); due && to != (Address{}) {
				return nil, fmt.Errorf("task %q: its executor's lease expired, so it moves to %s: %w", b.Task, to.Hex(), ErrFailoverDue)
			}
			if b.Rollback {
				if tr.RollbackDeadline == 0 || ctx.Time <= tr.RollbackDeadline {
					return nil, fmt.Errorf("rollback of task %q: %w", b.Task, ErrNotDue)
				}
				acts, evs, err = s.RollbackDone(i, false, r.Saga.Tasks[i].RollbackAttempts, "rollback timed out: no attestation by its deadline")
			} else {
				if tr.Deadline == 0 || ctx.Time <= tr.Deadline {
					return nil, fmt.Errorf("task %q: %w", b.Task, ErrNotDue)
				}
				pol := taskrt.PolicyOf(c.op, c.op.Tasks[i])
				acts, evs, err = s.TaskDone(i, taskrt.Result{Status: taskrt.TaskTimedOut, Reason: fmt.Sprintf("timed out: no attestation within %s", pol.Timeout)})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("timeout: %w", err)
		}
		if b.Task != "" {
			st.timedOut(taskKey{b.Operation, b.Task, b.Rollback})
		}
		hosts, err := st.Hosts()
		if err != nil {
			return nil, err
		}
		return m.follow(r, c, s, ctx, hosts, acts, evs, out)

	case *Retry:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return nil, err
		}
		if !m.genesis.AllowedSubmitter(b.Submitter) && !m.genesis.Operator(b.Submitter) {
			return nil, fmt.Errorf("%s: %w", b.Submitter.Hex(), ErrSubmitter)
		}
		r, c, s, _, err := m.load(st, b.Operation, "")
		if err != nil {
			return nil, err
		}
		if !m.genesis.MayRetry(b.Submitter, r.Submitter) {
			return nil, fmt.Errorf("retry of operation %s by %s: %w: only its submitter %s or a genesis operator may retry it",
				b.Operation.Hex(), b.Submitter.Hex(), ErrNotAuthorized, r.Submitter.Hex())
		}
		acts, evs, err := s.Retry()
		if err != nil {
			return nil, err
		}
		hosts, err := st.Hosts()
		if err != nil {
			return nil, err
		}
		return m.follow(r, c, s, ctx, hosts, acts, evs, out)

	case *Announcement:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return nil, err
		}
		if !m.vals.Has(b.Validator) {
			return nil, fmt.Errorf("announcement by %s: %w", b.Validator.Hex(), ErrNotValidator)
		}
		for i, fn := range b.Functions {
			if !utf8.ValidString(fn) {
				return nil, fmt.Errorf("announcement by %s: function %d: %w", b.Validator.Hex(), i, ErrNotUTF8)
			}
		}
		hosts, err := st.Hosts()
		if err != nil {
			return nil, err
		}
		if prev, ok := hosts.ByValidator[b.Validator]; ok && b.Seq <= prev.Seq {
			return nil, fmt.Errorf("announcement %d by %s, last %d: %w", b.Seq, b.Validator.Hex(), prev.Seq, ErrStale)
		}
		h := hosts.ByValidator[b.Validator]
		h.Seq, h.Functions = b.Seq, append([]string(nil), b.Functions...)
		hosts.ByValidator[b.Validator] = h
		out.Results = append(out.Results, mustRLP([]any{"announcement", b.Validator, b.Seq}))
		m.seen(hosts, b.Validator, ctx, out)
		return nil, nil

	case *Heartbeat:
		if err := m.verifyOnce(hash, func() error { return b.Verify(chainID) }); err != nil {
			return nil, err
		}
		if !m.vals.Has(b.Executor) {
			return nil, fmt.Errorf("heartbeat by %s: %w", b.Executor.Hex(), ErrNotValidator)
		}
		lease, drift := m.genesis.Params.ExecutorLease(), m.genesis.Params.MaxClockDriftMS
		if b.Time > ctx.Time+drift || b.Time+lease < ctx.Time {
			return nil, fmt.Errorf("heartbeat by %s signed at %d, in a block at %d: %w (executor_lease_ms %d, max_clock_drift_ms %d)",
				b.Executor.Hex(), b.Time, ctx.Time, ErrStaleHeartbeat, lease, drift)
		}
		hosts, err := st.Hosts()
		if err != nil {
			return nil, err
		}
		m.seen(hosts, b.Executor, ctx, out)
		return nil, nil

	case *Failover:
		return m.applyFailover(st, ctx, b, out)

	case *Evidence:
		if err := m.verifyOnce(hash, func() error { return m.checkEvidence(b) }); err != nil {
			return nil, err
		}
		// One offence is recorded once, whichever pair of its votes
		// proves it: another pair, or the same pair swapped, is another
		// entry hash but the same key.
		key := EvidenceKey(b)
		done, err := st.Recorded(key)
		if err != nil {
			return nil, fmt.Errorf("evidence: %w", err)
		}
		if done {
			return nil, fmt.Errorf("evidence against %s for the %s at %d/%d: %w", b.A.Validator.Hex(), b.A.Type, b.A.Height, b.A.Round, ErrDuplicate)
		}
		st.record(key)
		out.Results = append(out.Results, mustRLP([]any{"evidence", b.A.Validator, b.A.Height, b.A.Round}))
		return nil, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownKind, e.Kind)
}

// applyAttestation applies an attestation whose signature has been
// checked: its signer must be the executor the ledger assigned.
func (m *Machine) applyAttestation(st *Overlay, ctx Context, a *Attestation, out *Applied) ([]Entry, error) {
	r, c, s, i, err := m.load(st, a.Operation, a.Task)
	if err != nil {
		return nil, err
	}
	var acts []taskrt.Action
	var evs []taskrt.Event
	var own map[string]string
	if err := checkAssignment(&r.Tasks[i], a); err != nil {
		return nil, err
	}
	if a.Rollback {
		acts, evs, err = s.RollbackDone(i, a.Error == "", int(a.Attempts), a.Error)
	} else {
		res := m.judge(st, c, s, i, a)
		acts, evs, err = s.TaskDone(i, res)
		if err == nil && a.Error == "" && res.Reason != "" {
			own = map[string]string{res.Reason: rootReason(c, i, res)}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", a.Task, err)
	}
	hosts, err := st.Hosts()
	if err != nil {
		return nil, err
	}
	m.seen(hosts, a.Executor, ctx, out)
	return m.followOwn(r, c, s, ctx, hosts, acts, evs, out, own)
}

// checkAssignment checks that a is signed by the executor tr assigns the
// work to, for its current assignment: an attestation from before a move
// is refused and changes nothing, whoever holds the work now.
func checkAssignment(tr *TaskRecord, a *Attestation) error {
	what := fmt.Sprintf("task %q", a.Task)
	if a.Rollback {
		what = "rollback of " + what
	}
	want, _, moves := tr.assignment(a.Rollback)
	switch {
	case a.Executor != want && moves > 0:
		return fmt.Errorf("%s signed by %s, which moved to %s (assignment %d): %w", what, a.Executor.Hex(), want.Hex(), moves, ErrNotExecutor)
	case a.Executor != want:
		return fmt.Errorf("%s signed by %s, assigned to %s: %w", what, a.Executor.Hex(), want.Hex(), ErrNotExecutor)
	case a.Assignment != moves:
		return fmt.Errorf("%s: attestation for assignment %d, the current one is %d: %w", what, a.Assignment, moves, ErrSuperseded)
	}
	return nil
}

// rootReason is what the results root records of why the machine judged
// an attestation a failure: text this project produces from signed data,
// never a library's. The event keeps the full reason for display; a
// cel-go or encoding/json message may be worded differently by the next
// version, and hashing it would split a network that upgrades node by
// node. A reason an executor signed (its error) is hashed as signed.
func rootReason(c *compiled, i int, res taskrt.Result) string {
	if res.Status != taskrt.TaskSucceeded {
		return "output rejected"
	}
	if rule := c.rules[i]; rule != nil && res.Reason == rule.Reason() {
		return res.Reason // "rule returned false: <source>", from the signed rule
	}
	return "rule could not be evaluated: " + c.op.Tasks[i].Validate
}

// applyBatch applies each item of a checked batch that fits, in order, and
// skips the others (see AttestationBatch); the records the items derive
// follow the batch in item order.
func (m *Machine) applyBatch(st *Overlay, ctx Context, b *AttestationBatch, out *Applied) ([]Entry, error) {
	var (
		derived []Entry
		applied int
		first   error
	)
	for i := range b.Items {
		child, res := NewOverlay(st), &Applied{}
		d, err := m.applyAttestation(child, ctx, b.Attestation(i), res)
		if err != nil {
			if first == nil {
				first = fmt.Errorf("item %d: %w", i, err)
			}
			continue
		}
		st.Absorb(child)
		out.Results = append(out.Results, res.Results...)
		derived = append(derived, d...)
		applied++
	}
	if applied == 0 {
		return nil, fmt.Errorf("none of the %d attestations fits the state; %w", len(b.Items), first)
	}
	return derived, nil
}

// load returns an operation's record, compiled form, kernel and the index
// of the named task (-1 when task is empty).
func (m *Machine) load(st *Overlay, id Hash, task string) (*OpRecord, *compiled, *taskrt.Saga, int, error) {
	r, err := st.Operation(id)
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("operation %s: %w", id, err)
	}
	c, err := m.compile(r.ID, r.Operation)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	s, err := taskrt.ResumeSaga(c.plan, r.Saga)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	i := -1
	if task != "" {
		var ok bool
		if i, ok = c.plan.Index(task); !ok {
			return nil, nil, nil, 0, fmt.Errorf("task %q: %w", task, taskrt.ErrNoSuchTask)
		}
	}
	return r, c, s, i, nil
}

// judge turns an attestation into the kernel's result, computing the rule
// verdict from the recorded output: the executor's word is not trusted.
// The rule's cost counts against the block's budget in st.
func (m *Machine) judge(st *Overlay, c *compiled, s *taskrt.Saga, i int, a *Attestation) taskrt.Result {
	if a.Error != "" {
		return taskrt.Result{Status: taskrt.TaskFailed, Attempts: int(a.Attempts), Reason: a.Error}
	}
	var out map[string]any
	if err := json.Unmarshal(a.Output, &out); err != nil || out == nil {
		return taskrt.Result{Status: taskrt.TaskFailed, Attempts: int(a.Attempts), Reason: "output is not a JSON object"}
	}
	res, cost := taskrt.JudgeCost(c.op.Tasks[i], c.rules[i], out, s.Inputs(i), int(a.Attempts), m.limits.MaxOutputBytes)
	st.addRuleCost(cost)
	return res
}

// ErrBlockBudget refuses an attestation because the block has evaluated
// rules for params.max_block_rule_cost already: it fits a later block, so
// a proposer leaves it waiting, while a block that carries it is invalid.
var ErrBlockBudget = errors.New("the block's rule evaluation budget is spent")

// checkBlockBudget refuses another attestation once the rules evaluated
// in st's block have cost max_block_rule_cost. It looks before the
// evaluation, not after: an attestation is never evaluated only to be
// left out, and one always fits a block that has evaluated nothing yet,
// whatever it costs, so a costly rule waits at most until the next block.
// A block so ends at most one entry's cost over the budget.
func (m *Machine) checkBlockBudget(st *Overlay) error {
	if spent, budget := st.RuleCost(), m.genesis.Params.BlockRuleCost(); spent >= budget {
		return fmt.Errorf("%w: its rules cost %d, the limit is %d (max_block_rule_cost)", ErrBlockBudget, spent, budget)
	}
	return nil
}

// checkBatchBudget checks a batch against the block's budget as one
// entry: its items cannot wait apart, since the batch is signed as one.
// So that a batch cannot carry a block far over the budget, the
// worst-case cost of its items' rules must be within the budget; an
// executor splits what would not be (see BatchRuleCost).
func (m *Machine) checkBatchBudget(st *Overlay, b *AttestationBatch) error {
	worst := m.BatchRuleCost(st, b.Items)
	if worst == 0 {
		return nil // rollbacks only, or nothing that applies: no rule to run
	}
	if budget := m.genesis.Params.BlockRuleCost(); worst > budget {
		return fmt.Errorf("the rules of the batch's %d attestations may cost %d, over the limit of %d (max_block_rule_cost); an executor must split it", len(b.Items), worst, budget)
	}
	return m.checkBlockBudget(st)
}

// BatchRuleCost returns the sum of the worst-case costs of the rules that
// items would evaluate: each item's task rule's estimate, 0 for a rollback
// or an item whose operation or task is unknown (it would be skipped).
func (m *Machine) BatchRuleCost(st StateReader, items []AttestationItem) uint64 {
	var worst uint64
	for _, it := range items {
		if it.Rollback {
			continue
		}
		worst += m.ruleCostOf(st, it.Operation, it.Task)
	}
	return worst
}

// RuleCost returns the worst-case cost of the rule of task i of the
// operation r records, as the chain estimates it (0 if r cannot be
// compiled): what an executor adds up to keep a batch within
// max_block_rule_cost.
func (m *Machine) RuleCost(r *OpRecord, i int) uint64 {
	c, err := m.compile(r.ID, r.Operation)
	if err != nil || i < 0 || i >= len(c.costs) {
		return 0
	}
	return c.costs[i]
}

// ruleCostOf returns the worst-case cost of the rule of task in operation
// id, 0 when either is unknown.
func (m *Machine) ruleCostOf(st StateReader, id Hash, task string) uint64 {
	r, err := st.Operation(id)
	if err != nil {
		return 0
	}
	c, err := m.compile(r.ID, r.Operation)
	if err != nil {
		return 0
	}
	i, ok := c.plan.Index(task)
	if !ok || i >= len(c.costs) {
		return 0
	}
	return c.costs[i]
}

// follow records the kernel's new state and events in r and turns its
// actions into derived stage records.
func (m *Machine) follow(r *OpRecord, c *compiled, s *taskrt.Saga, ctx Context, hosts *Hosts, acts []taskrt.Action, evs []taskrt.Event, out *Applied) ([]Entry, error) {
	return m.followOwn(r, c, s, ctx, hosts, acts, evs, out, nil)
}

// followOwn is follow where own maps an event reason to the text the
// results root records instead (see rootReason); reasons it does not name
// are the machine's own or signed, and are hashed as they are.
func (m *Machine) followOwn(r *OpRecord, c *compiled, s *taskrt.Saga, ctx Context, hosts *Hosts, acts []taskrt.Action, evs []taskrt.Event, out *Applied, own map[string]string) ([]Entry, error) {
	var derived []Entry
	for _, a := range acts {
		var kind Kind
		switch a.Kind {
		case taskrt.ActionRunStage:
			kind = KindStageRelease
		case taskrt.ActionRollbackStage:
			kind = KindRollbackRelease
		default:
			continue // cancel and finish change no record: the state says it all
		}
		rec := StageRecord{Operation: r.ID, Stage: uint64(a.Stage), Prev: r.Last}
		for _, i := range a.Tasks {
			t := c.op.Tasks[i]
			fn := t.Run
			if kind == KindRollbackRelease {
				fn = t.Rollback
			}
			execs := hosts.Live(hosts.Of(fn, m.vals))
			if len(execs) == 0 {
				return nil, fmt.Errorf("task %q: function %q: %w", t.ID, fn, ErrNotHosted)
			}
			exec := Assign(execs, r.ID, t.ID, kind == KindRollbackRelease)
			if kind == KindRollbackRelease {
				// Each retry moves the rollback to the next host of its
				// function, so a retry after its executor died goes elsewhere.
				exec = execs[(indexOf(execs, exec)+retries(r.Events, evs))%len(execs)]
			}
			deadline := ctx.Time + uint64(taskrt.PolicyOf(c.op, t).Timeout.Milliseconds())
			if kind == KindStageRelease {
				r.Tasks[i].Executor, r.Tasks[i].Deadline, r.Tasks[i].Since = exec, deadline, ctx.Time
			} else {
				tr := &r.Tasks[i]
				tr.RollbackExecutor, tr.RollbackDeadline, tr.RollbackSince = exec, deadline, ctx.Time
			}
			rec.Tasks = append(rec.Tasks, TaskRef{ID: t.ID, Run: t.Run, Rollback: t.Rollback, Rule: t.Validate,
				RuleHash: crypto.Keccak256Hash([]byte(t.Validate)), Executor: exec, Deadline: deadline})
		}
		e, err := NewEntry(kind, &rec)
		if err != nil {
			return nil, err
		}
		h := e.Hash()
		if kind == KindStageRelease {
			r.Stages[a.Stage].Release, r.Stages[a.Stage].ReleasePrev = h, r.Last
		} else {
			r.Stages[a.Stage].Rollback, r.Stages[a.Stage].RollbackPrev = h, r.Last
		}
		r.Last = h
		derived = append(derived, e)
	}
	r.Saga = s.State()
	for _, ev := range evs {
		ev.Height = ctx.Height
		r.Events = append(r.Events, ev)
		reason := ev.Reason
		if t, ok := own[reason]; ok {
			reason = t
		}
		out.Results = append(out.Results, eventLeaf(r.ID, ev, reason))
	}
	return derived, nil
}

// retries counts the rollback retries in an operation's history and in
// the events being recorded.
func retries(history, recording []taskrt.Event) int {
	n := 0
	for _, evs := range [][]taskrt.Event{history, recording} {
		for _, e := range evs {
			if e.Type == taskrt.EventRollbackRetried {
				n++
			}
		}
	}
	return n
}

func indexOf(addrs []Address, a Address) int {
	for i, x := range addrs {
		if x == a {
			return i
		}
	}
	return 0
}

// eventLeaf encodes one decision for the results root; reason is the
// event's reason as the root records it (see rootReason).
func eventLeaf(op Hash, ev taskrt.Event, reason string) []byte {
	var stage uint64
	if ev.Stage != nil {
		stage = uint64(*ev.Stage) + 1 // 0 means none
	}
	valid := uint64(0)
	if ev.Valid != nil {
		valid = 1
		if *ev.Valid {
			valid = 2
		}
	}
	if ev.From != "" || ev.To != "" {
		return mustRLP([]any{op, uint64(ev.Seq), ev.Type, stage, ev.Task, valid, ev.Status, reason, ev.From, ev.To})
	}
	return mustRLP([]any{op, uint64(ev.Seq), ev.Type, stage, ev.Task, valid, ev.Status, reason})
}

// Assign picks the executor of a task (or of its rollback) among the
// validators hosting its function: by the hash of the operation id and task
// id, so every node computes the same choice and tasks spread over hosts.
func Assign(hosts []Address, op Hash, task string, rollback bool) Address {
	key := append(op.Bytes(), task...)
	if rollback {
		key = append(key, ":rollback"...)
	}
	h := crypto.Keccak256(key)
	return hosts[binary.BigEndian.Uint64(h[:8])%uint64(len(hosts))]
}

// functionsOf lists the distinct functions an operation names.
func functionsOf(op *taskrt.Operation) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range op.Tasks {
		for _, fn := range []string{t.Run, t.Rollback} {
			if fn != "" && !seen[fn] {
				seen[fn] = true
				out = append(out, fn)
			}
		}
	}
	return out
}

// EvidenceKey names the offence evidence proves: its validator, height,
// round and vote type. The store indexes it beside the entry hashes, so
// the machine records each offence once.
func EvidenceKey(ev *Evidence) Hash {
	a := ev.A
	return crypto.Keccak256Hash(mustRLP([]any{"sagachain/evidence-key/v1", a.Validator, a.Height, a.Round, uint8(a.Type)}))
}

// evidenceKeys returns, for each evidence entry among entries, its
// EvidenceKey and index. An entry that does not decode is left out: no
// valid block carries one, and a commit must not fail on data.
func evidenceKeys(entries []Entry) (keys []Hash, index []int) {
	for i, e := range entries {
		if e.Kind != KindEvidence {
			continue
		}
		var ev Evidence
		if rlp.DecodeBytes(e.Body, &ev) != nil {
			continue
		}
		keys, index = append(keys, EvidenceKey(&ev)), append(index, i)
	}
	return keys, index
}

// checkEvidence checks that two votes are conflicting signed votes of one
// validator.
func (m *Machine) checkEvidence(ev *Evidence) error {
	a, b := ev.A, ev.B
	if a.Validator != b.Validator || a.Height != b.Height || a.Round != b.Round || a.Type != b.Type {
		return errors.New("evidence: votes are not from one validator at one height, round and step")
	}
	if a.BlockHash == b.BlockHash {
		return errors.New("evidence: votes do not conflict")
	}
	if !m.vals.Has(a.Validator) {
		return fmt.Errorf("evidence: %s: %w", a.Validator.Hex(), ErrNotValidator)
	}
	for _, v := range []*Vote{&a, &b} {
		if err := v.Verify(m.genesis.ChainID); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
	}
	return nil
}
