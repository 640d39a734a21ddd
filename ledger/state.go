package ledger

import (
	"encoding/json"
	"errors"
	"slices"
	"sort"

	"github.com/sagachain/sagachain/taskrt"
)

// ErrNotFound reports a block, certificate, entry or operation the store
// does not hold.
var ErrNotFound = errors.New("not found")

// OpRecord is what the ledger keeps of one operation between blocks: the
// operation as submitted, the saga kernel's state, who runs each task and by
// when, the hashes of its record chain, and its history.
type OpRecord struct {
	ID        Hash             `json:"id"`
	Submitter Address          `json:"submitter"`
	Height    uint64           `json:"submitted_height"`
	Time      uint64           `json:"submitted_time"`
	Operation json.RawMessage  `json:"operation"`
	Saga      taskrt.SagaState `json:"saga"`
	Tasks     []TaskRecord     `json:"tasks"`
	Stages    []StageHashes    `json:"stages"`
	// Last is the hash of the operation's latest record entry; the next
	// stage record points back to it.
	Last   Hash           `json:"last"`
	Events []taskrt.Event `json:"events"`
}

// TaskRecord is the ledger's assignment of one task and of its rollback.
// Since is the block time of the current assignment, from which the
// executor's lease runs (see Machine.LeaseExpiry), and Moves counts the
// times it moved to another host because its executor went silent: an
// attestation names the assignment it answers (Attestation.Assignment),
// so one from before a move is refused.
type TaskRecord struct {
	Executor         Address `json:"executor"`
	Deadline         uint64  `json:"deadline,omitempty"`
	Since            uint64  `json:"since,omitempty"`
	Moves            uint64  `json:"moves,omitempty"`
	RollbackExecutor Address `json:"rollback_executor,omitzero"`
	RollbackDeadline uint64  `json:"rollback_deadline,omitempty"`
	RollbackSince    uint64  `json:"rollback_since,omitempty"`
	RollbackMoves    uint64  `json:"rollback_moves,omitempty"`
}

// assignment returns the executor, the time since which it holds the
// work, and the moves of the task's run or of its rollback.
func (t *TaskRecord) assignment(rollback bool) (exec Address, since, moves uint64) {
	if rollback {
		return t.RollbackExecutor, t.RollbackSince, t.RollbackMoves
	}
	return t.Executor, t.Since, t.Moves
}

// StageHashes are the entry hashes of a stage's records: its release and
// its latest rollback release, each with the hash it points back to.
type StageHashes struct {
	Release      Hash `json:"release"`
	ReleasePrev  Hash `json:"release_prev"`
	Rollback     Hash `json:"rollback,omitzero"`
	RollbackPrev Hash `json:"rollback_prev,omitzero"`
}

// ApproxSize estimates the heap bytes r holds once decoded: its operation
// file, and per task, stage and event its structs with what they point
// to (outputs walked, at a map entry's overhead each). It is an estimate
// for memory budgets (the node's record cache), in O(record), never for
// anything consensus decides.
func (r *OpRecord) ApproxSize() int {
	n := 512 + len(r.Operation) + len(r.Stages)*(4*32+16)
	for i := range r.Saga.Tasks {
		ts := &r.Saga.Tasks[i]
		n += 400 + len(ts.Validation) + len(ts.Error) + len(ts.RollbackError) + approxValueSize(ts.Output)
	}
	for i := range r.Events {
		e := &r.Events[i]
		n += 200 + len(e.Type) + len(e.Task) + len(e.Status) + len(e.Reason) + len(e.From) + len(e.To)
	}
	return n
}

// approxValueSize estimates the heap bytes of a decoded JSON value.
func approxValueSize(v any) int {
	switch x := v.(type) {
	case nil:
		return 0
	case string:
		return 16 + len(x)
	case map[string]any:
		n := 48
		for k, e := range x {
			n += 32 + len(k) + approxValueSize(e)
		}
		return n
	case []any:
		n := 24
		for _, e := range x {
			n += 16 + approxValueSize(e)
		}
		return n
	default:
		return 16 // numbers and booleans, boxed
	}
}

func (r *OpRecord) clone() *OpRecord {
	c := *r
	c.Saga = cloneSagaState(r.Saga)
	c.Tasks = slices.Clone(r.Tasks)
	c.Stages = slices.Clone(r.Stages)
	c.Events = slices.Clone(r.Events)
	return &c
}

func cloneSagaState(st taskrt.SagaState) taskrt.SagaState {
	st.Tasks = slices.Clone(st.Tasks)
	return st
}

// Hosts records which executor announced which functions, and what the
// chain knows of each executor's liveness.
type Hosts struct {
	// ByValidator holds each executor's latest announcement and liveness.
	ByValidator map[Address]HostEntry `json:"by_validator"`
}

// HostEntry is one executor's latest announcement (Seq 0 for none) and
// its liveness as the chain saw it: the block time of the last block that
// carried an entry it signed, and whether a lease of its expired since,
// at which height. An executor marked down gets no new work while another
// host of the function is up, and is up again with the next entry it
// signs that a block carries (a heartbeat, say).
type HostEntry struct {
	Seq        uint64   `json:"seq"`
	Functions  []string `json:"functions"`
	LastSeen   uint64   `json:"last_seen,omitempty"`
	Down       bool     `json:"down,omitempty"`
	DownHeight uint64   `json:"down_height,omitempty"`
}

// IsDown reports whether the chain marks executor a as down.
func (h *Hosts) IsDown(a Address) bool { return h.ByValidator[a].Down }

// LastSeen returns the block time of the last block that carried an entry
// a signed, 0 if none did.
func (h *Hosts) LastSeen(a Address) uint64 { return h.ByValidator[a].LastSeen }

// Down returns the executors marked down, sorted by address.
func (h *Hosts) Down() []Address {
	var out []Address
	for a, e := range h.ByValidator {
		if e.Down {
			out = append(out, a)
		}
	}
	return sortedAddrs(out)
}

// Live returns the executors of hosts that are not marked down, in order;
// all of hosts when every one is, so that work still has somewhere to go
// (it waits there for the host to return, or for its timeout).
func (h *Hosts) Live(hosts []Address) []Address {
	var out []Address
	for _, a := range hosts {
		if !h.IsDown(a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return hosts
	}
	return out
}

// seen records that a block at time t carried an entry a signed, and
// reports whether that brought a back up.
func (h *Hosts) seen(a Address, t uint64) (up bool) {
	e := h.ByValidator[a]
	up = e.Down
	e.LastSeen, e.Down, e.DownHeight = max(e.LastSeen, t), false, 0
	h.ByValidator[a] = e
	return up
}

// markDown records that a lease of executor a expired at height.
func (h *Hosts) markDown(a Address, height uint64) {
	e := h.ByValidator[a]
	e.Down, e.DownHeight = true, height
	h.ByValidator[a] = e
}

// Of returns, sorted by address, the validators hosting fn besides the
// builtins, which every validator hosts.
func (h *Hosts) Of(fn string, vals *ValidatorSet) []Address {
	if _, builtin := taskrt.Builtins()[fn]; builtin {
		return sortedAddrs(vals.List())
	}
	var out []Address
	for a, e := range h.ByValidator {
		if vals.Has(a) && slices.Contains(e.Functions, fn) {
			out = append(out, a)
		}
	}
	return sortedAddrs(out)
}

func (h *Hosts) clone() *Hosts {
	c := &Hosts{ByValidator: make(map[Address]HostEntry, len(h.ByValidator))}
	for a, e := range h.ByValidator {
		c.ByValidator[a] = e
	}
	return c
}

func sortedAddrs(a []Address) []Address {
	sort.Slice(a, func(i, j int) bool { return string(a[i][:]) < string(a[j][:]) })
	return a
}

// StateReader reads the state a block applies to.
type StateReader interface {
	// Operation returns an operation's record, or ErrNotFound.
	Operation(id Hash) (*OpRecord, error)
	// ActiveOperations returns the ids of operations not in a final state,
	// in ascending order.
	ActiveOperations() ([]Hash, error)
	// Hosts returns the function announcements.
	Hosts() (*Hosts, error)
	// Recorded reports whether a committed block recorded key: the hash
	// of an entry it carries, or the EvidenceKey of evidence it carries.
	// The machine refuses what is recorded already, so no entry applies
	// twice and no offence is recorded twice.
	Recorded(key Hash) (bool, error)
}

// Overlay is a StateReader that keeps the writes of a block over a base
// state, so that a block can be applied, or tried by a proposer, without
// touching the store.
type Overlay struct {
	base  StateReader
	ops   map[Hash]*OpRecord
	hosts *Hosts
	// keys are what the block records so far (see Recorded), so a
	// repeat inside one block is refused as one in a later block is.
	keys map[Hash]struct{}
	// timeouts are the tasks and rollbacks the block timed out so far.
	timeouts map[taskKey]bool
	// ruleCost is the CEL cost of the rules evaluated in this overlay, and
	// baseCost what the overlay it was made over had spent then: together,
	// what the block has spent of max_block_rule_cost.
	ruleCost, baseCost uint64
	// track says, for each record in ops, what the block found and what
	// the overlay's entries started from (see recTrack).
	track map[Hash]recTrack
	// The block's store writes so far (see BlockWrites), kept by Try as a
	// proposer adds entries: enc holds what was measured of each record
	// changed (its changed parts, encoded, and their cost), which is what
	// the store writes; w and w0 are the totals, cumulative over the
	// overlays this one was made over, now and when it was made.
	enc   map[Hash]*RecordWrite
	w, w0 writeTally
}

// recTrack is what an overlay knows of where a record of its came from:
// base is the record as the block found it in the committed state (nil
// when the block created it), which is what the store holds and what the
// block's writes are measured against. It is never modified.
type recTrack struct {
	base *OpRecord
}

// writeTally is the running measure of a block's store writes.
type writeTally struct {
	records, entries, hosts uint64
	// hostsMeasured is set once the announcements were measured.
	hostsMeasured bool
	// count is the number of entries (submitted or timeouts, not derived)
	// the block holds.
	count int
}

func (t writeTally) total() uint64 { return blockWriteBase + t.records + t.entries + t.hosts }

var _ StateReader = (*Overlay)(nil)

// NewOverlay returns an empty overlay over base.
func NewOverlay(base StateReader) *Overlay {
	o := &Overlay{base: base, ops: make(map[Hash]*OpRecord), keys: make(map[Hash]struct{})}
	if parent, ok := base.(*Overlay); ok {
		o.baseCost = parent.RuleCost()
		o.w, o.w0 = parent.w, parent.w
	}
	return o
}

// BlockWrites returns what the block so far makes the store write, as Try
// measured it (see the function BlockWrites), and how many entries it
// holds.
func (o *Overlay) BlockWrites() (bytes uint64, entries int) { return o.w.total(), o.w.count }

// measured returns what was measured of record id, in o or the overlays
// it was made over.
func (o *Overlay) measured(id Hash) *RecordWrite {
	if w, ok := o.enc[id]; ok {
		return w
	}
	if p, ok := o.base.(*Overlay); ok {
		return p.measured(id)
	}
	return nil
}

func (o *Overlay) keepEncoded(id Hash, w *RecordWrite) {
	if o.enc == nil {
		o.enc = make(map[Hash]*RecordWrite)
	}
	o.enc[id] = w
}

// Encoded returns what the block changed of the records Changes returns,
// by id, as the write budget measured it after the block's last entry;
// records it did not measure are missing. BlockWrite.Encoded takes it.
func (o *Overlay) Encoded() map[Hash]*RecordWrite { return o.enc }

// measureOp measures record id of o against what the block found, reusing
// what was measured after the entries before (see measureRecord).
func (o *Overlay) measureOp(id Hash, r *OpRecord) (*RecordWrite, error) {
	var prev *RecordWrite
	if p, ok := o.base.(*Overlay); ok {
		prev = p.measured(id)
	}
	return measureRecord(r, o.track[id].base, prev)
}

// measure brings o's write tally up to date with the records and
// announcements o holds and the entries just applied in it: entries are
// the entry applied and the records it derived.
func (o *Overlay) measure(entries []Entry) error {
	for id, r := range o.ops {
		w, err := o.measureOp(id, r)
		if err != nil {
			return err
		}
		var old uint64
		if p, ok := o.base.(*Overlay); ok {
			if pw := p.measured(id); pw != nil {
				old = pw.cost
			}
		}
		o.keepEncoded(id, w)
		o.w.records += w.cost - old // wraps correctly when the record shrank
	}
	if o.hosts != nil {
		n, err := hostsWriteCost(o.hosts)
		if err != nil {
			return err
		}
		o.w.hosts, o.w.hostsMeasured = n, true
	}
	for _, e := range entries {
		o.w.entries += entryWriteCost(e)
	}
	o.w.count++
	return nil
}

// Recorded reports whether the block so far or the base recorded key.
func (o *Overlay) Recorded(key Hash) (bool, error) {
	if _, ok := o.keys[key]; ok {
		return true, nil
	}
	return o.base.Recorded(key)
}

// timedOut notes that the block timed out a task or rollback.
func (o *Overlay) timedOut(k taskKey) {
	if o.timeouts == nil {
		o.timeouts = make(map[taskKey]bool)
	}
	o.timeouts[k] = true
}

// timedOutHere reports whether the block, in this overlay or the
// overlays it was made over, timed out a task or rollback.
func (o *Overlay) timedOutHere(k taskKey) bool {
	if o.timeouts[k] {
		return true
	}
	if p, ok := o.base.(*Overlay); ok {
		return p.timedOutHere(k)
	}
	return false
}

// record notes that the block records key.
func (o *Overlay) record(key Hash) { o.keys[key] = struct{}{} }

// RecordedKeys returns the keys the overlay's block recorded, sorted.
func (o *Overlay) RecordedKeys() []Hash {
	out := make([]Hash, 0, len(o.keys))
	for k := range o.keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i][:]) < string(out[j][:]) })
	return out
}

// RuleCost returns the CEL cost of the rules evaluated so far in the block
// this overlay applies: its own and those of the overlays it was made over.
func (o *Overlay) RuleCost() uint64 { return o.baseCost + o.ruleCost }

// addRuleCost counts the cost of a rule evaluated in the overlay.
func (o *Overlay) addRuleCost(c uint64) { o.ruleCost += c }

// Operation returns the overlay's copy of the record, reading through to
// the base the first time. Callers may modify the returned record.
func (o *Overlay) Operation(id Hash) (*OpRecord, error) {
	if r, ok := o.ops[id]; ok {
		return r, nil
	}
	from, base, err := o.peekBaseTrack(id)
	if err != nil {
		return nil, err
	}
	r := from.clone()
	o.ops[id] = r
	o.setTrack(id, recTrack{base: base})
	return r, nil
}

func (o *Overlay) setTrack(id Hash, t recTrack) {
	if o.track == nil {
		o.track = make(map[Hash]recTrack)
	}
	o.track[id] = t
}

// peekBaseTrack is peekBase that also returns the record as the block
// found it (nil: the block created it).
func (o *Overlay) peekBaseTrack(id Hash) (from, base *OpRecord, err error) {
	p, ok := o.base.(*Overlay)
	if !ok {
		r, err := o.base.Operation(id)
		return r, r, err
	}
	if r, ok := p.ops[id]; ok {
		return r, p.track[id].base, nil
	}
	return p.peekBaseTrack(id)
}

// peekBase reads record id from the base without making an overlay it
// was made over keep a copy: an entry a proposer tries and leaves out
// must not make its block rewrite the records it read, which the write
// budget never measured. The record returned is not to be modified.
func (o *Overlay) peekBase(id Hash) (*OpRecord, error) {
	p, ok := o.base.(*Overlay)
	if !ok {
		return o.base.Operation(id)
	}
	if r, ok := p.ops[id]; ok {
		return r, nil
	}
	return p.peekBase(id)
}

// Absorb moves the changes of child, an overlay made over o, into o.
func (o *Overlay) Absorb(child *Overlay) {
	for id, r := range child.ops {
		o.ops[id] = r
	}
	if child.hosts != nil {
		o.hosts = child.hosts
	}
	for k := range child.keys {
		o.keys[k] = struct{}{}
	}
	for k := range child.timeouts {
		o.timedOut(k)
	}
	o.ruleCost += child.ruleCost
	for id, t := range child.track {
		o.setTrack(id, t)
	}
	for id, w := range child.enc {
		o.keepEncoded(id, w)
	}
	o.w.records += child.w.records - child.w0.records
	o.w.entries += child.w.entries - child.w0.entries
	o.w.count += child.w.count - child.w0.count
	if child.w.hostsMeasured {
		o.w.hosts, o.w.hostsMeasured = child.w.hosts, true
	}
}

// put adds a new record.
func (o *Overlay) put(r *OpRecord) {
	o.ops[r.ID] = r
	o.setTrack(r.ID, recTrack{})
}

// ActiveOperations merges the base's active operations with the overlay's.
func (o *Overlay) ActiveOperations() ([]Hash, error) {
	base, err := o.base.ActiveOperations()
	if err != nil {
		return nil, err
	}
	set := make(map[Hash]bool, len(base)+len(o.ops))
	for _, id := range base {
		set[id] = true
	}
	for id, r := range o.ops {
		set[id] = !r.Saga.Status.Final()
	}
	var out []Hash
	for id, active := range set {
		if active {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i][:]) < string(out[j][:]) })
	return out, nil
}

// Hosts returns the overlay's copy of the announcements.
func (o *Overlay) Hosts() (*Hosts, error) {
	if o.hosts != nil {
		return o.hosts, nil
	}
	h, err := o.peekHosts()
	if err != nil {
		return nil, err
	}
	o.hosts = h.clone()
	return o.hosts, nil
}

// peekHosts returns the announcements as o sees them without keeping a
// copy in o or the overlays it was made over: an entry a proposer tries
// and leaves out must not make the block write them (or write more than
// BlockWrites measured).
func (o *Overlay) peekHosts() (*Hosts, error) {
	if o.hosts != nil {
		return o.hosts, nil
	}
	if p, ok := o.base.(*Overlay); ok {
		return p.peekHosts()
	}
	return o.base.Hosts()
}

// Changes returns the records the overlay touched, sorted by id, and the
// announcements if they were read (and so may have changed).
func (o *Overlay) Changes() ([]*OpRecord, *Hosts) {
	out := make([]*OpRecord, 0, len(o.ops))
	for _, r := range o.ops {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].ID[:]) < string(out[j].ID[:]) })
	return out, o.hosts
}

// MemState is a StateReader held in memory: the genesis state of a replay,
// and the base of tests.
type MemState struct {
	Ops       map[Hash]*OpRecord
	HostTable *Hosts
	// Keys are the recorded keys (see StateReader.Recorded).
	Keys map[Hash]struct{}
}

var _ StateReader = (*MemState)(nil)

// NewMemState returns an empty state.
func NewMemState() *MemState {
	return &MemState{Ops: map[Hash]*OpRecord{}, HostTable: &Hosts{ByValidator: map[Address]HostEntry{}}, Keys: map[Hash]struct{}{}}
}

// Operation implements StateReader.
func (m *MemState) Operation(id Hash) (*OpRecord, error) {
	if r, ok := m.Ops[id]; ok {
		return r.clone(), nil
	}
	return nil, ErrNotFound
}

// ActiveOperations implements StateReader.
func (m *MemState) ActiveOperations() ([]Hash, error) {
	var out []Hash
	for id, r := range m.Ops {
		if !r.Saga.Status.Final() {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i][:]) < string(out[j][:]) })
	return out, nil
}

// Hosts implements StateReader.
func (m *MemState) Hosts() (*Hosts, error) { return m.HostTable.clone(), nil }

// Recorded implements StateReader.
func (m *MemState) Recorded(key Hash) (bool, error) {
	_, ok := m.Keys[key]
	return ok, nil
}

// CommitOverlay writes everything a block's overlay holds into m: its
// records, announcements and recorded keys.
func (m *MemState) CommitOverlay(o *Overlay) {
	m.Commit(o.Changes())
	if m.Keys == nil {
		m.Keys = map[Hash]struct{}{}
	}
	for k := range o.keys {
		m.Keys[k] = struct{}{}
	}
}

// Commit writes an overlay's changes into m.
func (m *MemState) Commit(ops []*OpRecord, hosts *Hosts) {
	for _, r := range ops {
		m.Ops[r.ID] = r
	}
	if hosts != nil {
		m.HostTable = hosts
	}
}
