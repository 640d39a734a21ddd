package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/sagachain/sagachain/taskrt"
)

// mirror keeps a real badger store in step with a testChain: each block
// the chain applied over its MemState is applied again over the store, as
// a validator does, and saved with what its write budget measured
// (BlockWrite.Encoded). It checks on the way that the store's writes stay
// within what the budget charged, and counts both.
type mirror struct {
	c    *testChain
	sc   *storeChain
	seen int
	// measured is what the budget charged over the blocks saved, and
	// written the key and value bytes SaveBlock committed for them.
	measured, written uint64
	// perBlock is what each block was charged, in order.
	perBlock []uint64
}

func newMirror(t *testing.T, c *testChain, s *BadgerStore) *mirror {
	t.Helper()
	if err := s.InitGenesis(c.m.Genesis().Hash()); err != nil {
		t.Fatal(err)
	}
	return &mirror{c: c, sc: &storeChain{t: t, m: c.m, s: s, val: c.val, user: c.user, parent: GenesisParent(c.m.Genesis())}}
}

// sync saves every block the chain applied since the last sync.
func (mr *mirror) sync() {
	t, sc := mr.sc.t, mr.sc
	t.Helper()
	for ; mr.seen < len(mr.c.blocks); mr.seen++ {
		entries, ctx := mr.c.blocks[mr.seen], mr.c.ctxs[mr.seen]
		ov := NewOverlay(sc.s)
		res, err := sc.m.ApplyEntries(ov, ctx, entries)
		if err != nil {
			t.Fatalf("block %d over the store: %v", ctx.Height, err)
		}
		n, err := BlockWrites(ov, entries)
		if err != nil {
			t.Fatal(err)
		}
		g := sc.m.Genesis()
		b, err := NewBlock(sc.val, g.ChainID, ctx.Height, 0, ctx.Time, sc.parent.Hash, sc.parent.Results, sc.last, entries)
		if err != nil {
			t.Fatal(err)
		}
		v := Vote{Type: Precommit, Height: ctx.Height, BlockHash: b.Hash()}
		if err := v.Sign(sc.val, g.ChainID); err != nil {
			t.Fatal(err)
		}
		cm := &Commit{Height: ctx.Height, BlockHash: b.Hash(), Signatures: []CommitSig{{Validator: v.Validator, Signature: v.Signature}}}
		ops, hosts := ov.Changes()
		before := sc.s.written.Load()
		if err := sc.s.SaveBlock(BlockWrite{Block: b, Commit: cm, Results: res.Root(), Ops: ops, Hosts: hosts, Encoded: ov.Encoded()}); err != nil {
			t.Fatalf("save block %d: %v", ctx.Height, err)
		}
		w := sc.s.written.Load() - before
		// The budget bounds what is written: everything but the
		// certificate, which WriteReserve covers.
		if reserve := WriteReserve(len(g.Validators)); w > n+reserve {
			t.Fatalf("block %d: SaveBlock wrote %d bytes, the budget charged %d (and reserves %d)", ctx.Height, w, n, reserve)
		}
		mr.measured, mr.written = mr.measured+n, mr.written+w
		mr.perBlock = append(mr.perBlock, n)
		sc.parent = Parent{Height: ctx.Height, Hash: b.Hash(), Time: ctx.Time, Results: res.Root()}
		sc.last = *cm
	}
}

// same fails unless the store reads every record of the chain as the
// chain holds it, as `op get` would print it.
func (mr *mirror) same() {
	t := mr.sc.t
	t.Helper()
	for id, want := range mr.c.st.Ops {
		got, err := mr.sc.s.Operation(id)
		if err != nil {
			t.Fatalf("operation %s: %v", id.TerminalString(), err)
		}
		a, _ := json.Marshal(want)
		b, _ := json.Marshal(got)
		if !bytes.Equal(a, b) {
			t.Fatalf("operation %s reads back differently:\nchain %s\nstore %s", id.TerminalString(), a, b)
		}
		if !reflect.DeepEqual(want.Saga.Tasks, got.Saga.Tasks) {
			t.Fatalf("operation %s: task states differ in memory (output types?):\nchain %#v\nstore %#v", id.TerminalString(), want.Saga.Tasks, got.Saga.Tasks)
		}
	}
}

// legacyJSON is the stored value of a record as the version before parts
// wrote it (encodeOpRecord then): height, status, and the record as JSON.
func legacyJSON(t testing.TB, r *OpRecord) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(binary.BigEndian.AppendUint64(nil, r.Height))
	buf.WriteByte(byte(len(r.Saga.Status)))
	buf.WriteString(string(r.Saga.Status))
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// putLegacy writes r as the version before parts did (putOp then): the
// whole record under "o" id, and its index keys.
func putLegacy(t testing.TB, s *BadgerStore, r *OpRecord) {
	t.Helper()
	err := s.db.Update(func(txn *badger.Txn) error {
		for _, kv := range []struct{ k, v []byte }{
			{hashKey(prefixOp, r.ID), legacyJSON(t, r)},
			{heightIDKey([]byte{prefixOpByHeight}, r.Height, r.ID), nil},
			{heightIDKey(statusPrefix(r.Saga.Status), r.Height, r.ID), nil},
		} {
			if err := txn.Set(kv.k, kv.v); err != nil {
				return err
			}
		}
		if !r.Saga.Status.Final() {
			return txn.Set(hashKey(prefixActive, r.ID), nil)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRecordsRoundTripInParts drives operations that complete, roll back,
// fail to roll back and are retried, through a real store that keeps them
// in parts, and reads each back after every block as the chain holds it.
func TestRecordsRoundTripInParts(t *testing.T) {
	c := newTestChain(t)
	mr := newMirror(t, c, stMemStore(t))
	trip, tripID := c.submit(tripYAML)
	c.height++ // another nonce
	stuck, stuckID := c.submit(`
name: stuck
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [x]}
  - {id: b, run: echo, inputs: [x], outputs: [y]}
  - {id: c, run: echo, rollback: noop, inputs: [x], outputs: [z]}
  - {id: d, run: fail, rollback: noop, inputs: [y, z], outputs: [w]}
`)
	c.height--
	c.block(10, trip, stuck)
	mr.sync()
	mr.same()
	broken := true
	outcome := func(task string, rb bool) (map[string]any, string) {
		switch {
		case task == "d" && !rb:
			return nil, "card declined"
		case task == "c" && rb && broken:
			return nil, "hotel API returned 503"
		case task == "flight" && !rb:
			return map[string]any{"flight": map[string]any{"confirmation": "QX12AB", "seats": int64(2), "price": 12.5, "ok": true}}, ""
		}
		return nil, ""
	}
	for n := 0; n < 50 && !(c.op(tripID).Saga.Status.Final() && c.op(stuckID).Saga.Status.Final()); n++ {
		c.block(10, append(c.attest(tripID, c.val, outcome), c.attest(stuckID, c.val, outcome)...)...)
		mr.sync()
		mr.same()
	}
	if st := c.op(stuckID).Saga.Status; st != taskrt.OpRollbackFailed {
		t.Fatalf("stuck is %s, want rollback_failed", st)
	}
	retry := &Retry{Operation: stuckID, Nonce: 1}
	if err := retry.Sign(c.user, "test-chain"); err != nil {
		t.Fatal(err)
	}
	re, _ := NewEntry(KindRetry, retry)
	broken = false
	c.block(10, re)
	c.run(stuckID, ok)
	mr.sync()
	mr.same()
	if st := c.op(stuckID).Saga.Status; st != taskrt.OpRolledBack {
		t.Fatalf("stuck is %s after its retry, want rolled_back", st)
	}
	if st := c.op(tripID).Saga.Status; st != taskrt.OpCompleted {
		t.Fatalf("trip is %s, want completed", st)
	}
	// The listing indexes follow the parts.
	for _, q := range []struct {
		st   taskrt.OpStatus
		want int
	}{{taskrt.OpCompleted, 1}, {taskrt.OpRolledBack, 1}, {taskrt.OpRollbackFailed, 0}, {taskrt.OpRunning, 0}} {
		if n, err := mr.sc.s.CountOperations(q.st); err != nil || n != q.want {
			t.Errorf("%d %s operations (%v), want %d", n, q.st, err, q.want)
		}
	}
	if all, err := mr.sc.s.Operations(OpQuery{}); err != nil || len(all) != 2 {
		t.Errorf("listing: %d records (%v), want 2", len(all), err)
	}
	if act, err := mr.sc.s.ActiveOperations(); err != nil || len(act) != 0 {
		t.Errorf("active: %v (%v), want none", act, err)
	}
}

// TestRecordsRoundTripFailoverMoves: a rollback whose executor went silent
// moves to another host; the moved assignment and the move's event come
// back from the store's parts.
func TestRecordsRoundTripFailoverMoves(t *testing.T) {
	f := newFleet(t, 3)
	mr := newMirror(t, f.testChain, stMemStore(t))
	sub, id := f.submit(undoOp)
	f.block(10, sub)
	f.round(10, []Hash{id}, failB)
	for n := 0; n < 5 && !f.op(id).Saga.Tasks[0].Undoing; n++ {
		f.round(10, []Hash{id}, failB)
	}
	released := f.time
	f.blockAt(released + f.m.Genesis().Params.ExecutorLease() + 1)
	mr.sync()
	mr.same()
	r, err := mr.sc.s.Operation(id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Tasks[0].RollbackMoves != 1 || len(eventsOf(r, taskrt.EventRollbackMoved)) != 1 {
		t.Fatalf("the store's record has %d rollback moves and events %s, want the move", r.Tasks[0].RollbackMoves, eventTypes(r))
	}
	f.block(10, f.work(id, f.key(r.Tasks[0].RollbackExecutor), nil)...)
	mr.sync()
	mr.same()
	if st := f.op(id).Saga.Status; st != taskrt.OpRolledBack {
		t.Fatalf("status %s, want rolled_back", st)
	}
}

// TestRecordsLegacyStore: a store written by the version before parts
// (whole JSON records under "o" id) opens and reads as it did; the first
// block that changes a record rewrites it in parts, charged only what the
// block changed, exactly as on a node whose store was in parts already,
// so nodes upgraded at different heights agree on every block.
func TestRecordsLegacyStore(t *testing.T) {
	c := newTestChain(t)
	sub, id := c.submit(tripYAML)
	c.block(10, sub)
	c.block(10, c.attest(id, c.val, ok)...) // stage 0 done, stage 1 running

	// The old version's store: blocks and records, the records whole.
	dir := t.TempDir()
	old, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	legacy := newMirror(t, c, old)
	legacy.sync()
	if err := old.db.DropPrefix([]byte{prefixOp}, []byte{prefixOpByHeight}, []byte{prefixOpStatus}, []byte{prefixActive}); err != nil {
		t.Fatal(err)
	}
	for _, r := range c.st.Ops {
		putLegacy(t, old, r)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	legacy.sc.s = s
	legacy.same()
	if all, err := s.Operations(OpQuery{Status: taskrt.OpRunning}); err != nil || len(all) != 1 || all[0].ID != id {
		t.Fatalf("listing the legacy store: %v (%v)", all, err)
	}

	// A node whose store is in parts, beside it.
	parts := newMirror(t, c, stMemStore(t))
	parts.sync()
	// The chain goes on; both stores follow it.
	c.run(id, ok)
	legacy.sync()
	parts.sync()
	legacy.same()
	if !slicesEqual(legacy.perBlock[2:], parts.perBlock[2:]) {
		t.Fatalf("the legacy store's node charges %v, the parts store's %v", legacy.perBlock[2:], parts.perBlock[2:])
	}
	err = s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(hashKey(prefixOp, id))
		return err
	})
	if err != badger.ErrKeyNotFound {
		t.Fatalf("the legacy key is still there after the record changed (%v)", err)
	}
	// And it reopens in parts.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = OpenBadger(dir); err != nil {
		t.Fatal(err)
	}
	legacy.sc.s = s
	legacy.same()
}

func slicesEqual(a, b []uint64) bool { return reflect.DeepEqual(a, b) }

// chainOp is an operation of n echo tasks in one chain: task i takes task
// i-1's output, so it is n stages of one task.
func chainOp(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "name: chain%d\ntasks:\n", n)
	for i := range n {
		in := ""
		if i > 0 {
			in = fmt.Sprintf(", inputs: [o%d]", i-1)
		}
		fmt.Fprintf(&b, "  - {id: t%d, run: echo, rollback: noop%s, outputs: [o%d]}\n", i, in, i)
	}
	return b.String()
}

// stagesOp is an operation of stages of k parallel echo tasks each.
func stagesOp(t *testing.T, stages, k int) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "name: wide%dx%d\ntasks:\n", stages, k)
	for s := range stages {
		for j := range k {
			in := ""
			if s > 0 {
				in = fmt.Sprintf(", inputs: [o%d_0]", s-1)
			}
			fmt.Fprintf(&b, "  - {id: t%d_%d, run: echo%s, outputs: [o%d_%d]}\n", s, j, in, s, j)
		}
	}
	return b.String()
}

// growth runs one operation to completion with one attestation per
// block, the store following, and returns the bytes the store wrote for
// it, what the budget charged, and what the version before parts would
// have written (the whole record, header and JSON, at every block).
func growth(t *testing.T, opYAML string) (written, measured, legacy uint64, blocks int) {
	t.Helper()
	c := newTestChain(t)
	c.m.genesis.Params.MaxBlockEntries = 1 << 20
	mr := newMirror(t, c, stMemStore(t))
	sub, id := c.submit(opYAML)
	c.block(10, sub)
	legacy += uint64(len(legacyJSON(t, c.op(id))))
	for n := 0; !c.op(id).Saga.Status.Final(); n++ {
		if n > 10_000 {
			t.Fatal("the operation did not complete")
		}
		atts := c.attest(id, c.val, ok)
		c.block(10, atts[0])
		legacy += uint64(len(legacyJSON(t, c.op(id))))
	}
	mr.sync()
	mr.same()
	if st := c.op(id).Saga.Status; st != taskrt.OpCompleted {
		t.Fatalf("status %s, want completed", st)
	}
	return mr.written, mr.measured, legacy, len(c.blocks)
}

// TestRecordGrowthWithStages: an operation of N tasks in one chain of N
// stages costs the store bytes linear in N. Rewriting the whole record at
// every block made them quadratic: four times the stages wrote sixteen
// times the bytes. The assertion is a ratio of bytes, not a time: at
// most 5 for 4x the stages (linear is about 4; quadratic is about 16).
func TestRecordGrowthWithStages(t *testing.T) {
	w1, m1, l1, b1 := growth(t, chainOp(t, 100))
	w4, m4, l4, b4 := growth(t, chainOp(t, 400))
	t.Logf("N=100: %d blocks, %d bytes written (%d per task), %d charged; whole-record rewrites would write %d", b1, w1, w1/100, m1, l1)
	t.Logf("N=400: %d blocks, %d bytes written (%d per task), %d charged; whole-record rewrites would write %d", b4, w4, w4/400, m4, l4)
	t.Logf("ratio 400/100: written %.2f, charged %.2f, whole-record %.2f", float64(w4)/float64(w1), float64(m4)/float64(m1), float64(l4)/float64(l1))
	checkLinear(t, "the stages", w1, m1, w4, m4, 400)
}

// checkLinear fails unless 4x the input (what) wrote and was charged at
// most 5x the bytes of 1x, and, in absolute terms, a few KB per task of
// the 4x run (its block, its parts, its events), independent of size.
func checkLinear(t *testing.T, what string, w1, m1, w4, m4, tasks4 uint64) {
	t.Helper()
	if r := float64(w4) / float64(w1); r > 5 {
		t.Errorf("4x %s wrote %.1fx the bytes, want linear (at most 5x)", what, r)
	}
	if r := float64(m4) / float64(m1); r > 5 {
		t.Errorf("4x %s were charged %.1fx the bytes, want linear (at most 5x)", what, r)
	}
	if per := w4 / tasks4; per > 4_000 {
		t.Errorf("%d bytes written per task, want at most 4000", per)
	}
}

// TestRecordGrowthWithTasksPerStage: the same as a function of the tasks
// of each stage, attested one per block: 4 stages of K tasks, K=25 and
// K=100.
func TestRecordGrowthWithTasksPerStage(t *testing.T) {
	w1, m1, l1, b1 := growth(t, stagesOp(t, 4, 25))
	w4, m4, l4, b4 := growth(t, stagesOp(t, 4, 100))
	t.Logf("4x25: %d blocks, %d bytes written (%d per task), %d charged; whole-record rewrites would write %d", b1, w1, w1/100, m1, l1)
	t.Logf("4x100: %d blocks, %d bytes written (%d per task), %d charged; whole-record rewrites would write %d", b4, w4, w4/400, m4, l4)
	t.Logf("ratio: written %.2f, charged %.2f, whole-record %.2f", float64(w4)/float64(w1), float64(m4)/float64(m1), float64(l4)/float64(l1))
	checkLinear(t, "the tasks per stage", w1, m1, w4, m4, 400)
}

// TestRecordPartsCoverEveryField: the parts encode, and taskDiffers and
// summaryDiffers compare, the fields these types have; a field added to
// one of them must be added there too, or it would be lost on disk or
// its change not written.
func TestRecordPartsCoverEveryField(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int
	}{
		{OpRecord{}, 10}, {taskrt.SagaState{}, 6}, {taskrt.TaskState{}, 10}, {TaskRecord{}, 8},
		{StageHashes{}, 4}, {taskrt.Event{}, 10},
	} {
		if n := reflect.TypeOf(c.v).NumField(); n != c.want {
			t.Errorf("%T has %d fields, the record parts know %d: update records.go", c.v, n, c.want)
		}
	}
}

// TestRecordRollbackDoesNotRewriteOutputs: a failure that rolls back a
// stage of fifty tasks with 10 KB outputs rewrites their task parts (now
// undoing), not their outputs, which have parts of their own; and what
// an executor's estimate adds up for a batch of a stage (RecordWriteCost
// once, each output) bounds what the batch's record writes.
func TestRecordRollbackDoesNotRewriteOutputs(t *testing.T) {
	const k, outBytes = 50, 10_000
	var b strings.Builder
	b.WriteString("name: wide-undo\ntasks:\n")
	for j := range k {
		fmt.Fprintf(&b, "  - {id: a%d, run: echo, rollback: noop, outputs: [x%d]}\n", j, j)
	}
	b.WriteString("  - {id: z, run: fail, rollback: noop, inputs: [x0], outputs: [y]}\n")
	c := newTestChain(t)
	mr := newMirror(t, c, stMemStore(t))
	sub, id := c.submit(b.String())
	c.block(10, sub)
	outcome := func(task string, rb bool) (map[string]any, string) {
		if task == "z" && !rb {
			return nil, "declined"
		}
		if !rb {
			return map[string]any{"x" + task[1:]: strings.Repeat("v", outBytes)}, ""
		}
		return nil, ""
	}
	before := c.op(id)
	estimate := c.m.RecordWriteCost(before)
	batch := batchOf(t, c.val, c.attest(id, c.val, outcome))
	ctx := Context{Height: c.height + 1, Time: c.time + 10}
	ov := NewOverlay(c.st)
	if _, err := c.m.Try(ov, ctx, batch, nil); err != nil {
		t.Fatal(err)
	}
	var outputs uint64
	r, _ := ov.Operation(id)
	for j := range k {
		o, _ := json.Marshal(r.Saga.Tasks[j].Output)
		outputs += uint64(len(o))
	}
	if got := ov.Encoded()[id].cost; got > estimate+outputs+k*partCost(taskKeyLen, 0) {
		t.Errorf("the batch of a stage writes %d bytes of its record; the executor's estimate is %d and the outputs %d", got, estimate, outputs)
	}
	c.block(10, batch)
	mr.sync()
	batchCharge := mr.perBlock[len(mr.perBlock)-1]
	// z fails and its rollback ends: stage 0 rolls back, every a undoing.
	c.block(10, c.attest(id, c.val, outcome)...)
	c.block(10, c.attest(id, c.val, outcome)...)
	mr.sync()
	mr.same()
	if r := c.op(id); !r.Saga.Tasks[0].Undoing && !r.Saga.Tasks[0].Undone {
		t.Fatalf("a0 neither undoing nor undone; events %s", eventTypes(r))
	}
	if last := mr.perBlock[len(mr.perBlock)-1]; last > k*outBytes/4 {
		t.Errorf("the block that rolls back fifty tasks writes %d bytes, as if it rewrote their %d bytes of outputs", last, k*outBytes)
	}
	t.Logf("batch of %d outputs of %d bytes: %d bytes charged (estimate %d + outputs); the block that rolls stage 0 back: %d", k, outBytes, batchCharge, estimate, mr.perBlock[len(mr.perBlock)-1])
	c.run(id, outcome)
	mr.sync()
	mr.same()
}
