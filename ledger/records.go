package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/dgraph-io/badger/v4"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/sagachain/sagachain/taskrt"
)

// An operation record is stored in parts, each under "o" id ‖ tag [‖ index]
// (see the key layout in store.go), so that a block writes what it changed
// of a record and not the whole record again: the bytes an operation costs
// the store grow with its changes, not with tasks × stages. Each part is
// RLP; a task's output, a map[string]any, is JSON inside it (encoding/json
// sorts map keys, so it is deterministic). Operation (readOp) assembles
// the OpRecord from its parts in one prefix iteration.
const (
	partHead    = 0x01 // immutable: submitter, height, time, operation JSON
	partSummary = 0x02 // the saga's status and counters, Last
	partTask    = 0x03 // ‖ index (4 bytes): TaskState and TaskRecord
	partStage   = 0x04 // ‖ index (4 bytes): StageHashes
	partEvent   = 0x05 // ‖ index (8 bytes): one event, appended
	partOutput  = 0x06 // ‖ index (4 bytes): a task's output, JSON
)

// opKeyLen is the length of the legacy key "o" id, which held the whole
// record as JSON (encodeLegacyOpRecord's format) before parts.
const opKeyLen = 1 + common.HashLength

func opPrefix(id Hash) []byte { return hashKey(prefixOp, id) }

func partKey(id Hash, tag byte) []byte {
	return append(opPrefix(id), tag)
}

func indexedPartKey(id Hash, tag byte, i int) []byte {
	k := partKey(id, tag)
	if tag == partEvent {
		return binary.BigEndian.AppendUint64(k, uint64(i))
	}
	return binary.BigEndian.AppendUint32(k, uint32(i))
}

type headRLP struct {
	Submitter Address
	Height    uint64
	Time      uint64
	Operation []byte
}

// summaryRLP is the mutable summary. Stage and RollbackStage are stored
// plus one (RLP has no negative numbers; -1 is "none").
type summaryRLP struct {
	Height        uint64
	Status        string
	Stage         uint64
	Failing       bool
	RollbackStage uint64
	Seq           uint64
	Last          Hash
	Tasks         uint64
	Stages        uint64
}

// taskRLP is one task's part: its kernel state and its assignment. Its
// output has a part of its own, written only when the output changes: a
// rollback or a move rewrites the tasks of a stage, and must not rewrite
// their outputs (up to max_output_bytes each) with them.
type taskRLP struct {
	Status           string
	Attempts         uint64
	Validation       string
	Error            string
	Outcome          string
	Undone           bool
	Undoing          bool
	RollbackAttempts uint64
	RollbackError    string
	Executor         Address
	Deadline         uint64
	Since            uint64
	Moves            uint64
	RollbackExecutor Address
	RollbackDeadline uint64
	RollbackSince    uint64
	RollbackMoves    uint64
}

// eventRLP is one event. Stage is stored plus one (0: none), Valid as 0
// (none), 1 (false) or 2 (true).
type eventRLP struct {
	Height uint64
	Seq    uint64
	Type   string
	Stage  uint64
	Task   string
	Valid  uint8
	Status string
	Reason string
	From   string
	To     string
}

func nonNegative(what string, v int) (uint64, error) {
	if v < 0 {
		return 0, fmt.Errorf("%s is negative (%d)", what, v)
	}
	return uint64(v), nil
}

func encodeHead(r *OpRecord) ([]byte, error) {
	return rlp.EncodeToBytes(&headRLP{Submitter: r.Submitter, Height: r.Height, Time: r.Time, Operation: r.Operation})
}

func encodeSummary(r *OpRecord) ([]byte, error) {
	s := r.Saga
	if s.Stage < -1 || s.RollbackStage < -1 || s.Seq < 0 {
		return nil, fmt.Errorf("saga state out of range: stage %d, rollback stage %d, seq %d", s.Stage, s.RollbackStage, s.Seq)
	}
	if len(s.Tasks) != len(r.Tasks) {
		return nil, fmt.Errorf("%d task states for %d task records", len(s.Tasks), len(r.Tasks))
	}
	return rlp.EncodeToBytes(&summaryRLP{Height: r.Height, Status: string(s.Status), Stage: uint64(s.Stage + 1), Failing: s.Failing,
		RollbackStage: uint64(s.RollbackStage + 1), Seq: uint64(s.Seq), Last: r.Last, Tasks: uint64(len(r.Tasks)), Stages: uint64(len(r.Stages))})
}

func encodeTask(r *OpRecord, i int) ([]byte, error) {
	ts, tr := r.Saga.Tasks[i], r.Tasks[i]
	att, err := nonNegative("attempts", ts.Attempts)
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", i, err)
	}
	ratt, err := nonNegative("rollback attempts", ts.RollbackAttempts)
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", i, err)
	}
	return rlp.EncodeToBytes(&taskRLP{Status: string(ts.Status), Attempts: att, Validation: ts.Validation, Error: ts.Error,
		Outcome: string(ts.Outcome), Undone: ts.Undone, Undoing: ts.Undoing, RollbackAttempts: ratt, RollbackError: ts.RollbackError,
		Executor: tr.Executor, Deadline: tr.Deadline, Since: tr.Since, Moves: tr.Moves, RollbackExecutor: tr.RollbackExecutor,
		RollbackDeadline: tr.RollbackDeadline, RollbackSince: tr.RollbackSince, RollbackMoves: tr.RollbackMoves})
}

// encodeOutput is task i's output part: its JSON (encoding/json sorts map
// keys, so it is deterministic); nil for no output, whose part is
// deleted.
func encodeOutput(r *OpRecord, i int) ([]byte, error) {
	out := r.Saga.Tasks[i].Output
	if out == nil {
		return nil, nil
	}
	v, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("task %d: output: %w", i, err)
	}
	return v, nil
}

func encodeStage(sh StageHashes) ([]byte, error) { return rlp.EncodeToBytes(&sh) }

func encodeEvent(e taskrt.Event) ([]byte, error) {
	seq, err := nonNegative("event seq", e.Seq)
	if err != nil {
		return nil, err
	}
	v := eventRLP{Height: e.Height, Seq: seq, Type: e.Type, Task: e.Task, Status: e.Status, Reason: e.Reason, From: e.From, To: e.To}
	if e.Stage != nil {
		s, err := nonNegative("event stage", *e.Stage)
		if err != nil {
			return nil, err
		}
		v.Stage = s + 1
	}
	if e.Valid != nil {
		v.Valid = 1
		if *e.Valid {
			v.Valid = 2
		}
	}
	return rlp.EncodeToBytes(&v)
}

// RecordWrite is what the store writes of one operation record for a
// block: the parts that the block changed, encoded as the write budget
// measured them (see measureRecord). Overlay.Encoded hands them to
// BlockWrite.Encoded.
type RecordWrite struct {
	// created says the block created the record: its head and index
	// keys are written too.
	created bool
	head    []byte
	// summary is nil when the summary did not change.
	summary []byte
	tasks   map[int][]byte
	// outputs are the changed outputs; a nil value deletes the part.
	outputs map[int][]byte
	stages  map[int][]byte
	// events are the events the block appended, the first at index
	// eventFrom of the record's events.
	events    [][]byte
	eventFrom int
	// cost is what the parts cost the block (see partCost).
	cost uint64
	// of is the record these parts were encoded from (not modified
	// after), so that a later measure reuses an encoding only for a part
	// equal to the one encoded.
	of *OpRecord
}

// empty reports whether the block changed nothing of the record.
func (w *RecordWrite) empty() bool {
	return !w.created && w.summary == nil && len(w.tasks) == 0 && len(w.outputs) == 0 && len(w.stages) == 0 && len(w.events) == 0
}

// partCost is what writing one part costs the block: its key, its value,
// and writeOverhead.
func partCost(keyLen, valueLen int) uint64 { return uint64(keyLen+valueLen) + writeOverhead }

const (
	headKeyLen  = opKeyLen + 1
	taskKeyLen  = opKeyLen + 1 + 4
	eventKeyLen = opKeyLen + 1 + 8
)

// sameMap reports whether two maps are one map (or both nil): outputs the
// kernel did not replace are shared between a record and its clones, so
// identity says "unchanged" without walking them. A replaced output with
// the same contents counts as changed, alike on every node.
func sameMap(a, b map[string]any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func sameBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	return len(a) == 0 || &a[0] == &b[0] || bytes.Equal(a, b)
}

func headDiffers(a, b *OpRecord) bool {
	return a.Submitter != b.Submitter || a.Height != b.Height || a.Time != b.Time || !sameBytes(a.Operation, b.Operation)
}

func summaryDiffers(a, b *OpRecord) bool {
	x, y := a.Saga, b.Saga
	return x.Status != y.Status || x.Stage != y.Stage || x.Failing != y.Failing || x.RollbackStage != y.RollbackStage ||
		x.Seq != y.Seq || a.Last != b.Last || len(a.Tasks) != len(b.Tasks) || len(a.Stages) != len(b.Stages) || a.Height != b.Height
}

// taskDiffers compares task i of a and b field by field but for its
// output (TestRecordPartsCoverEveryField fails when TaskState gains a
// field this does not compare).
func taskDiffers(a, b *OpRecord, i int) bool {
	if i >= len(b.Saga.Tasks) || i >= len(b.Tasks) {
		return true
	}
	if a.Tasks[i] != b.Tasks[i] {
		return true
	}
	x, y := &a.Saga.Tasks[i], &b.Saga.Tasks[i]
	return x.Status != y.Status || x.Attempts != y.Attempts || x.Validation != y.Validation ||
		x.Error != y.Error || x.Outcome != y.Outcome || x.Undone != y.Undone || x.Undoing != y.Undoing ||
		x.RollbackAttempts != y.RollbackAttempts || x.RollbackError != y.RollbackError
}

// measureRecord returns what the store writes of r for a block that found
// it as base (nil: the block created it), and what that costs. A part is
// written when it differs from base; prev, when not nil, is what was
// measured after the entries before, whose encodings are reused for parts
// equal to those it encoded (prev.of): each entry costs encodings of what
// it changed, not of every part the block changed so far. Comparing costs
// O(tasks + stages) per record measured, with no encoding. The result, and
// so the charge, depends only on r and base, identical on every node.
func measureRecord(r, base *OpRecord, prev *RecordWrite) (*RecordWrite, error) {
	if len(r.Saga.Tasks) != len(r.Tasks) {
		return nil, fmt.Errorf("operation %s: record cannot be stored: %d task states for %d task records", r.ID.Hex(), len(r.Saga.Tasks), len(r.Tasks))
	}
	var from *OpRecord
	if prev != nil {
		from = prev.of
	}
	fail := func(err error) (*RecordWrite, error) {
		return nil, fmt.Errorf("operation %s: record cannot be stored: %w", r.ID.Hex(), err)
	}
	w := &RecordWrite{created: base == nil, of: r}
	var err error
	if base == nil || headDiffers(r, base) {
		if base != nil {
			w.created = true // a changed head is written as a new record
		}
		if prev != nil && prev.head != nil && !headDiffers(r, from) {
			w.head = prev.head
		} else if w.head, err = encodeHead(r); err != nil {
			return fail(err)
		}
		w.cost += partCost(headKeyLen, len(w.head))
	}
	if w.created || summaryDiffers(r, base) {
		if w.summary, err = encodeSummary(r); err != nil {
			return fail(err)
		}
		w.cost += partCost(headKeyLen, len(w.summary)) + recordWrites*(indexKeyBound+writeOverhead)
	}
	for i := range r.Tasks {
		if !w.created && !taskDiffers(r, base, i) {
			continue
		}
		var v []byte
		ok := false
		if prev != nil {
			v, ok = prev.tasks[i]
		}
		if !ok || taskDiffers(r, from, i) {
			if v, err = encodeTask(r, i); err != nil {
				return fail(err)
			}
		}
		if w.tasks == nil {
			w.tasks = make(map[int][]byte)
		}
		w.tasks[i] = v
		w.cost += partCost(taskKeyLen, len(v))
	}
	for i := range r.Tasks {
		out := r.Saga.Tasks[i].Output
		if w.created && out == nil {
			continue
		}
		if !w.created && i < len(base.Saga.Tasks) && sameMap(out, base.Saga.Tasks[i].Output) {
			continue
		}
		var v []byte
		ok := false
		if prev != nil && i < len(from.Saga.Tasks) && sameMap(out, from.Saga.Tasks[i].Output) {
			v, ok = prev.outputs[i]
		}
		if !ok {
			if v, err = encodeOutput(r, i); err != nil {
				return fail(err)
			}
		}
		if w.outputs == nil {
			w.outputs = make(map[int][]byte)
		}
		w.outputs[i] = v
		w.cost += partCost(taskKeyLen, len(v))
	}
	for i, sh := range r.Stages {
		if !w.created && i < len(base.Stages) && base.Stages[i] == sh {
			continue
		}
		v, err := encodeStage(sh)
		if err != nil {
			return fail(err)
		}
		if w.stages == nil {
			w.stages = make(map[int][]byte)
		}
		w.stages[i] = v
		w.cost += partCost(taskKeyLen, len(v))
	}
	if !w.created {
		w.eventFrom = len(base.Events)
		if len(r.Events) < w.eventFrom {
			return fail(fmt.Errorf("%d events, fewer than the %d stored: events are only appended", len(r.Events), w.eventFrom))
		}
	}
	for i := w.eventFrom; i < len(r.Events); i++ {
		var v []byte
		if j := i - w.eventFrom; prev != nil && prev.eventFrom == w.eventFrom && j < len(prev.events) {
			v = prev.events[j]
		} else if v, err = encodeEvent(r.Events[i]); err != nil {
			return fail(err)
		}
		w.events = append(w.events, v)
		w.cost += partCost(eventKeyLen, len(v))
	}
	return w, nil
}

// fullWrite is every part of r, for a record written without a measured
// RecordWrite and for migrating a legacy record.
func fullWrite(r *OpRecord) (*RecordWrite, error) { return measureRecord(r, nil, nil) }

// writeRecord writes what w says of record r and moves it between the
// status and active indexes when its status changed.
func writeRecord(txn *badger.Txn, set func(k, v []byte) error, r *OpRecord, w *RecordWrite) error {
	fail := func(err error) error { return fmt.Errorf("operation %s: %w", r.ID.Hex(), err) }
	if w.empty() {
		return nil
	}
	id := r.ID
	if w.summary != nil {
		// The old summary says which index keys to move.
		old, err := getCopy(txn, partKey(id, partSummary))
		switch {
		case err == nil:
			var s summaryRLP
			if err := rlp.DecodeBytes(old, &s); err != nil {
				return fail(fmt.Errorf("stored summary: %w", err))
			}
			if taskrt.OpStatus(s.Status) != r.Saga.Status || s.Height != r.Height {
				if err := txn.Delete(heightIDKey(statusPrefix(taskrt.OpStatus(s.Status)), s.Height, id)); err != nil {
					return fail(err)
				}
			}
			if s.Height != r.Height {
				if err := txn.Delete(heightIDKey([]byte{prefixOpByHeight}, s.Height, id)); err != nil {
					return fail(err)
				}
			}
		case !errors.Is(err, ErrNotFound):
			return fail(err)
		}
		active := hashKey(prefixActive, id)
		for _, op := range []func() error{
			func() error { return set(partKey(id, partSummary), w.summary) },
			func() error { return set(heightIDKey([]byte{prefixOpByHeight}, r.Height, id), nil) },
			func() error { return set(heightIDKey(statusPrefix(r.Saga.Status), r.Height, id), nil) },
			func() error {
				// Active means not final: running or rolling_back, the
				// same rule MemState and Overlay apply.
				if r.Saga.Status.Final() {
					return txn.Delete(active)
				}
				return set(active, nil)
			},
		} {
			if err := op(); err != nil {
				return fail(err)
			}
		}
	}
	// The summary is set above, with the index keys.
	parts := *w
	parts.summary = nil
	if err := forEachPart(id, &parts, set, txn.Delete); err != nil {
		return fail(err)
	}
	return nil
}

// readOp assembles record id from its parts in one prefix iteration, or
// decodes it from the legacy whole-record key when that is there.
func readOp(txn *badger.Txn, id Hash) (*OpRecord, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: opPrefix(id), PrefetchValues: false})
	defer it.Close()
	r := &OpRecord{ID: id}
	var (
		sum                   *summaryRLP
		haveHead              bool
		tasksSeen, stagesSeen int
	)
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, fmt.Errorf("operation %s: %w", id.Hex(), err)
		}
		if len(k) == opKeyLen {
			// Written by a version before parts; it is rewritten in
			// parts before the record next changes (migrateLegacy), and
			// until then it is the whole record.
			lr, err := decodeLegacyOpRecord(v)
			if err != nil {
				return nil, fmt.Errorf("operation %s: %w", id.Hex(), err)
			}
			return lr, nil
		}
		if err := decodePart(r, k[opKeyLen:], v, &sum, &haveHead, &tasksSeen, &stagesSeen); err != nil {
			return nil, fmt.Errorf("operation %s: %w", id.Hex(), err)
		}
	}
	if !haveHead && sum == nil {
		return nil, fmt.Errorf("operation %s: %w", id.Hex(), ErrNotFound)
	}
	if !haveHead || sum == nil || tasksSeen != len(r.Tasks) || stagesSeen != len(r.Stages) {
		return nil, fmt.Errorf("operation %s: stored record is incomplete (head %t, summary %t, %d tasks and %d stages of %d and %d)",
			id.Hex(), haveHead, sum != nil, tasksSeen, stagesSeen, len(r.Tasks), len(r.Stages))
	}
	return r, nil
}

// decodePart decodes one part (tag and index in rest) into r. Parts come
// in key order: head, summary (which sizes the tasks and stages), tasks,
// stages, events.
func decodePart(r *OpRecord, rest, v []byte, sum **summaryRLP, haveHead *bool, tasksSeen, stagesSeen *int) error {
	index := func(n int) (int, error) {
		if len(rest) != 1+n {
			return 0, fmt.Errorf("malformed part key %x", rest)
		}
		if n == 4 {
			return int(binary.BigEndian.Uint32(rest[1:])), nil
		}
		return int(binary.BigEndian.Uint64(rest[1:])), nil
	}
	switch rest[0] {
	case partHead:
		var h headRLP
		if err := rlp.DecodeBytes(v, &h); err != nil {
			return fmt.Errorf("head: %w", err)
		}
		r.Submitter, r.Height, r.Time, r.Operation = h.Submitter, h.Height, h.Time, h.Operation
		*haveHead = true
	case partSummary:
		s := new(summaryRLP)
		if err := rlp.DecodeBytes(v, s); err != nil {
			return fmt.Errorf("summary: %w", err)
		}
		const maxParts = 1 << 24 // a sanity bound before allocating
		if s.Tasks > maxParts || s.Stages > maxParts {
			return fmt.Errorf("summary: %d tasks and %d stages", s.Tasks, s.Stages)
		}
		r.Saga = taskrt.SagaState{Status: taskrt.OpStatus(s.Status), Stage: int(s.Stage) - 1, Failing: s.Failing,
			RollbackStage: int(s.RollbackStage) - 1, Seq: int(s.Seq), Tasks: make([]taskrt.TaskState, s.Tasks)}
		r.Tasks, r.Stages, r.Last = make([]TaskRecord, s.Tasks), make([]StageHashes, s.Stages), s.Last
		*sum = s
	case partTask:
		i, err := index(4)
		if err != nil {
			return err
		}
		if *sum == nil || i >= len(r.Tasks) {
			return fmt.Errorf("task part %d outside the summary's tasks", i)
		}
		var t taskRLP
		if err := rlp.DecodeBytes(v, &t); err != nil {
			return fmt.Errorf("task %d: %w", i, err)
		}
		out := r.Saga.Tasks[i].Output // an output part may come first
		r.Saga.Tasks[i] = taskrt.TaskState{Status: taskrt.TaskStatus(t.Status), Attempts: int(t.Attempts), Validation: t.Validation, Error: t.Error,
			Outcome: taskrt.TaskStatus(t.Outcome), Undone: t.Undone, Undoing: t.Undoing, RollbackAttempts: int(t.RollbackAttempts), RollbackError: t.RollbackError,
			Output: out}
		r.Tasks[i] = TaskRecord{Executor: t.Executor, Deadline: t.Deadline, Since: t.Since, Moves: t.Moves, RollbackExecutor: t.RollbackExecutor,
			RollbackDeadline: t.RollbackDeadline, RollbackSince: t.RollbackSince, RollbackMoves: t.RollbackMoves}
		*tasksSeen++
	case partOutput:
		i, err := index(4)
		if err != nil {
			return err
		}
		if *sum == nil || i >= len(r.Tasks) {
			return fmt.Errorf("output part %d outside the summary's tasks", i)
		}
		out, err := decodeOutput(v)
		if err != nil {
			return fmt.Errorf("task %d output: %w", i, err)
		}
		r.Saga.Tasks[i].Output = out
	case partStage:
		i, err := index(4)
		if err != nil {
			return err
		}
		if *sum == nil || i >= len(r.Stages) {
			return fmt.Errorf("stage part %d outside the summary's stages", i)
		}
		if err := rlp.DecodeBytes(v, &r.Stages[i]); err != nil {
			return fmt.Errorf("stage %d: %w", i, err)
		}
		*stagesSeen++
	case partEvent:
		i, err := index(8)
		if err != nil {
			return err
		}
		if i != len(r.Events) {
			return fmt.Errorf("event %d where event %d belongs", i, len(r.Events))
		}
		var e eventRLP
		if err := rlp.DecodeBytes(v, &e); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		ev := taskrt.Event{Height: e.Height, Seq: int(e.Seq), Type: e.Type, Task: e.Task, Status: e.Status, Reason: e.Reason, From: e.From, To: e.To}
		if e.Stage > 0 {
			s := int(e.Stage - 1)
			ev.Stage = &s
		}
		if e.Valid > 0 {
			b := e.Valid == 2
			ev.Valid = &b
		}
		r.Events = append(r.Events, ev)
	default:
		return fmt.Errorf("unknown part key %x", rest)
	}
	return nil
}

// decodeOutput decodes a task output. Numbers go back through
// taskrt.NormalizeObject so that they come back as the int64 and float64
// the saga kernel made them, not as the float64 plain JSON decoding would
// give: a rule comparing an output must judge the same whether the record
// came from memory or from disk.
func decodeOutput(v []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{} // "null" is never written; keep non-nil
	}
	return taskrt.NormalizeObject(m)
}

// decodeLegacyOpRecord decodes a record stored whole under "o" id by a
// version before parts: a header (submission height, 8 bytes; status, a
// length byte and the string) and the record as JSON.
func decodeLegacyOpRecord(v []byte) (*OpRecord, error) {
	if len(v) < 9 || len(v) < 9+int(v[8]) {
		return nil, fmt.Errorf("decode legacy record: %d bytes, too short for its header", len(v))
	}
	dec := json.NewDecoder(bytes.NewReader(v[9+int(v[8]):]))
	dec.UseNumber()
	r := new(OpRecord)
	if err := dec.Decode(r); err != nil {
		return nil, fmt.Errorf("decode legacy record: %w", err)
	}
	for i := range r.Saga.Tasks {
		out, err := taskrt.NormalizeObject(r.Saga.Tasks[i].Output)
		if err != nil {
			return nil, fmt.Errorf("decode legacy record: task %d output: %w", i, err)
		}
		r.Saga.Tasks[i].Output = out
	}
	return r, nil
}

// migrateLegacy rewrites in parts, with the same contents, every record
// of ids still stored whole under the legacy key, and deletes that key
// last. SaveBlock calls it before a block's own transaction, so the block
// then writes only what it changed (what the write budget charged): a
// record's first change after an upgrade must not cost its whole record
// on some nodes and not on others. A WriteBatch splits a big record over
// transactions; until the legacy key goes, reads take the legacy record,
// and the parts written hold the same contents, so a crash in between
// loses nothing.
func (s *BadgerStore) migrateLegacy(ids []Hash) error {
	var legacy []*OpRecord
	err := s.db.View(func(txn *badger.Txn) error {
		for _, id := range ids {
			v, err := getCopy(txn, opPrefix(id))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("operation %s: %w", id.Hex(), err)
			}
			r, err := decodeLegacyOpRecord(v)
			if err != nil {
				return fmt.Errorf("operation %s: %w", id.Hex(), err)
			}
			legacy = append(legacy, r)
		}
		return nil
	})
	if err != nil || len(legacy) == 0 {
		return err
	}
	for _, r := range legacy {
		w, err := fullWrite(r)
		if err != nil {
			return err
		}
		// Index keys stay as the legacy version wrote them: same layout.
		wb := s.db.NewWriteBatch()
		set := func(k, v []byte) error { return wb.Set(k, v) }
		if err := forEachPart(r.ID, w, set, wb.Delete); err != nil {
			wb.Cancel()
			return fmt.Errorf("migrate operation %s: %w", r.ID.Hex(), err)
		}
		if err := wb.Delete(opPrefix(r.ID)); err != nil {
			wb.Cancel()
			return fmt.Errorf("migrate operation %s: %w", r.ID.Hex(), err)
		}
		if err := wb.Flush(); err != nil {
			return fmt.Errorf("migrate operation %s: %w", r.ID.Hex(), err)
		}
	}
	return nil
}

// forEachPart calls set for every part key and value w holds, and del for
// every part it deletes.
func forEachPart(id Hash, w *RecordWrite, set func(k, v []byte) error, del func(k []byte) error) error {
	if w.head != nil {
		if err := set(partKey(id, partHead), w.head); err != nil {
			return err
		}
	}
	if w.summary != nil {
		if err := set(partKey(id, partSummary), w.summary); err != nil {
			return err
		}
	}
	for i, v := range w.tasks {
		if err := set(indexedPartKey(id, partTask, i), v); err != nil {
			return err
		}
	}
	for i, v := range w.outputs {
		if v == nil {
			if err := del(indexedPartKey(id, partOutput, i)); err != nil {
				return err
			}
		} else if err := set(indexedPartKey(id, partOutput, i), v); err != nil {
			return err
		}
	}
	for i, v := range w.stages {
		if err := set(indexedPartKey(id, partStage, i), v); err != nil {
			return err
		}
	}
	for j, v := range w.events {
		if err := set(indexedPartKey(id, partEvent, w.eventFrom+j), v); err != nil {
			return err
		}
	}
	return nil
}
