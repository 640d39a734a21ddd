package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// paddedOp is the canonical JSON of an operation of one noop task whose
// params carry size bytes of padding: a big record for little work.
func paddedOp(t *testing.T, i, size int) string {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"name": fmt.Sprintf("padded-%d", i), "tasks": []any{map[string]any{
		"id": "a", "run": "noop", "timeout": "1s", "params": map[string]any{"pad": strings.Repeat("x", size)}}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(canonicalOp(t, raw))
}

// TestBlockWriteBudget: on the merged h-write code a block took every
// entry that fitted the state, whatever its commit would write, and a
// block over badger's transaction limit failed to commit on every node.
// Now a proposer stops at max_block_write_bytes (the rest wait, refused
// with ErrBlockFull), a validator measures the same bytes, and a block
// over the budget is invalid.
func TestBlockWriteBudget(t *testing.T) {
	c := newTestChain(t)
	const budget = 300_000
	c.m.genesis.Params.MaxBlockWriteBytes = budget
	var subs []Entry
	for i := range 6 {
		c.height = uint64(i) // the nonce: six distinct submissions
		subs = append(subs, c.rawSubmission(paddedOp(t, i, 50_000)))
	}
	c.height = 0
	ctx := Context{Height: 1, Time: c.time + 10}
	prop, in, taken := c.proposeSome(ctx, subs, ErrBlockFull, "max_block_write_bytes", "submissions of ~100 KB of writes each")
	wrote, n := prop.BlockWrites()
	if wrote > budget || n != taken {
		t.Errorf("the proposer's block writes %d bytes with %d entries, want at most %d with %d", wrote, n, budget, taken)
	}
	// A validator measures exactly what the proposer did, after the fact.
	ov := NewOverlay(c.st)
	if _, err := c.m.ApplyEntries(ov, ctx, in); err != nil {
		t.Fatalf("the proposer's block: %v", err)
	}
	if got, err := BlockWrites(ov, in); err != nil || got != wrote {
		t.Errorf("the validator measures %d bytes (%v), the proposer %d", got, err, wrote)
	}
	t.Logf("%d submissions of a %d-byte file: %d bytes of writes, budget %d", taken, len(paddedOp(t, 0, 50_000)), wrote, budget)

	// One more makes the block invalid for every validator.
	c.m.genesis.Params.MaxBlockWriteBytes = 0 // the default: all six fit
	_, over, _ := c.propose(ctx, subs[:taken+1])
	c.m.genesis.Params.MaxBlockWriteBytes = budget
	if _, err := c.m.ApplyEntries(NewOverlay(c.st), ctx, over); !errors.Is(err, ErrBlockFull) || !strings.Contains(err.Error(), "(max_block_write_bytes)") {
		t.Errorf("a block over the budget: %v, want ErrBlockFull naming max_block_write_bytes", err)
	}

	// The rest fit the following blocks, and everything is recorded.
	for h := 0; len(subs) > 0; h++ {
		if h > 6 {
			t.Fatal("the submissions never all fitted")
		}
		ctx := Context{Height: c.height + 1, Time: c.time + 10}
		_, in, errs := c.propose(ctx, subs)
		c.apply(ctx, in)
		c.height, c.time = ctx.Height, ctx.Time
		subs = subs[len(subs)-len(errs):]
	}
	if len(c.st.Ops) != 6 {
		t.Errorf("%d operations recorded, want 6", len(c.st.Ops))
	}
}

// A budget smaller than any entry never starves one: an empty block takes
// any single entry, and a block of one entry is valid however much it
// writes; the next waits. This is also how a single record larger than
// the whole budget behaves (one operation of many tasks with large
// outputs): alone in its block, as before the budget.
func TestBlockWriteBudgetAlwaysTakesOne(t *testing.T) {
	c := newTestChain(t)
	c.m.genesis.Params.MaxBlockWriteBytes = 1
	var subs []Entry
	for i := range 3 {
		c.height = uint64(i)
		subs = append(subs, c.rawSubmission(paddedOp(t, i, 10_000)))
	}
	c.height = 0
	for n := 3; n > 0; n-- {
		ctx := Context{Height: c.height + 1, Time: c.time + 10}
		_, in, errs := c.propose(ctx, subs)
		if len(errs) != n-1 {
			t.Fatalf("with %d waiting, %d refused (%v), want %d", n, len(errs), errs, n-1)
		}
		c.apply(ctx, in) // valid, one entry over the budget
		c.height, c.time = ctx.Height, ctx.Time
		subs = subs[1:]
	}
	// Their timeouts, each writing its record, are due together and are
	// likewise recorded one per block; validators require each timeout a
	// block carries to be due, not every due one.
	c.time += 2_000
	for n := 3; n > 0; n-- {
		ctx := Context{Height: c.height + 1, Time: c.time + 10}
		due, err := c.m.DueTimeouts(c.st, ctx)
		if err != nil || len(due) != n {
			t.Fatalf("%d due timeouts (%v), want %d", len(due), err, n)
		}
		_, in, errs := c.propose(ctx, due)
		if len(errs) != n-1 {
			t.Fatalf("with %d due, %d refused (%v), want %d", n, len(errs), errs, n-1)
		}
		c.apply(ctx, in)
		c.height, c.time = ctx.Height, ctx.Time
	}
	for id, r := range c.st.Ops {
		if !r.Saga.Status.Final() {
			t.Errorf("operation %s is %s, want it ended by its timeout", id.TerminalString(), r.Saga.Status)
		}
	}
}

// The measure is of the store's own encoding: a new record costs its
// stored parts, which are what the store writes, and the budget is a
// chain param that keeps old genesis hashes.
func TestBlockWritesMeasureTheStoredRecord(t *testing.T) {
	c := newTestChain(t)
	sub := c.rawSubmission(paddedOp(t, 0, 20_000))
	ctx := Context{Height: 1, Time: c.time + 10}
	ov := NewOverlay(c.st)
	in, err := c.m.Try(ov, ctx, sub, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ov.Operation(sub.Hash())
	if err != nil {
		t.Fatal(err)
	}
	w := ov.Encoded()[r.ID]
	head, err := encodeHead(r)
	if err != nil {
		t.Fatal(err)
	}
	if w == nil || !w.created || string(w.head) != string(head) || len(w.tasks) != len(r.Tasks) || len(w.events) != len(r.Events) {
		t.Fatalf("the parts kept for the store are not the new record's: %+v", w)
	}
	var parts uint64
	if err := forEachPart(r.ID, w, func(k, v []byte) error { parts += partCost(len(k), len(v)); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	if w.cost != parts+recordWrites*(indexKeyBound+writeOverhead) {
		t.Errorf("the record is charged %d, its parts and index writes are %d", w.cost, parts+recordWrites*(indexKeyBound+writeOverhead))
	}
	want := uint64(blockWriteBase) + w.cost
	for _, e := range in {
		want += uint64(len(e.Body)) + entryFraming + entryIndexWrite
	}
	if ov.hosts != nil {
		hc, _ := hostsWriteCost(ov.hosts)
		want += hc
	}
	if got, _ := ov.BlockWrites(); got != want {
		t.Errorf("the block writes %d bytes by Try, %d by the store's encoding", got, want)
	}

	var p Params
	if err := json.Unmarshal([]byte(`{"max_block_entries":1}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.BlockWriteBytes() != DefaultMaxBlockWriteBytes {
		t.Errorf("absent max_block_write_bytes gives %d, want the default %d", p.BlockWriteBytes(), DefaultMaxBlockWriteBytes)
	}
	if b, _ := json.Marshal(p); strings.Contains(string(b), "max_block_write_bytes") {
		t.Errorf("an unset budget is encoded (%s): an old genesis would change its hash", b)
	}
}

// A node refuses a genesis whose write budget its store cannot commit in
// one transaction: with the default store that is about 9 MiB.
func TestStoreRefusesAWriteBudgetItCannotHold(t *testing.T) {
	st, err := OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := newTestChain(t).m.Genesis()
	if err := st.CheckWriteBudget(g); err != nil {
		t.Fatalf("the default budget: %v", err)
	}
	t.Logf("badger writes %d bytes, %d keys in one transaction; the reserve of %d validators is %d bytes",
		st.db.MaxBatchSize(), st.db.MaxBatchCount(), len(g.Validators), WriteReserve(len(g.Validators)))
	big := *g
	big.Params.MaxBlockWriteBytes = 9 << 20
	if err := st.CheckWriteBudget(&big); err == nil || !strings.Contains(err.Error(), "max_block_write_bytes") {
		t.Errorf("a 9 MiB budget: %v, want a refusal naming max_block_write_bytes", err)
	}
	big.Params.MaxBlockWriteBytes = 1 << 41
	if err := big.Validate(); err == nil || !strings.Contains(err.Error(), "max_block_write_bytes") {
		t.Errorf("a 2 TiB budget: %v, want a refusal naming max_block_write_bytes", err)
	}
}

// An attestation batch changes the record of every operation it attests,
// so a block of one batch could write more than any store holds: a batch
// of several operations over the budget alone is invalid and never fits
// (Check refuses it, so the mempool does not keep it), while a smaller one
// is taken, and so is a batch of one operation's tasks, which changes one
// record as a single entry does. Since records are written in parts, what
// a batch writes is its items' outputs (in the entry and in each task's
// part), not the records: the operations here are small and the outputs
// big.
func TestBlockWriteBudgetBatches(t *testing.T) {
	c := newTestChain(t)
	var subs []Entry
	for i := range 8 {
		c.height = uint64(i)
		subs = append(subs, c.rawSubmission(paddedOp(t, i, 10)))
	}
	c.height = 0
	c.block(10, subs...)
	large := func(string, bool) (map[string]any, string) {
		return map[string]any{"pad": strings.Repeat("y", 30_000)}, ""
	}
	var atts []Entry
	for _, s := range subs {
		atts = append(atts, c.attest(s.Hash(), c.val, large)...)
	}
	if len(atts) != 8 {
		t.Fatalf("%d attestations, want 8", len(atts))
	}
	const budget = 300_000
	c.m.genesis.Params.MaxBlockWriteBytes = budget
	ctx := Context{Height: c.height + 1, Time: c.time + 10}
	big := batchOf(t, c.val, atts) // eight 30 KB outputs, each written twice
	if err := c.m.Check(c.st, ctx, big); !errors.Is(err, ErrBatchTooBig) || !strings.Contains(err.Error(), "(max_block_write_bytes)") {
		t.Errorf("Check of a batch over the budget alone: %v, want ErrBatchTooBig naming max_block_write_bytes", err)
	}
	c.m.genesis.Params.MaxBlockWriteBytes = 0
	_, in, errs := c.propose(ctx, []Entry{big})
	c.m.genesis.Params.MaxBlockWriteBytes = budget
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if _, err := c.m.ApplyEntries(NewOverlay(c.st), ctx, in); !errors.Is(err, ErrBatchTooBig) {
		t.Errorf("a block of that batch alone: %v, want ErrBatchTooBig", err)
	}
	// Halves fit, one block each.
	for _, half := range [][]Entry{atts[:4], atts[4:]} {
		ctx := Context{Height: c.height + 1, Time: c.time + 10}
		_, in, errs := c.propose(ctx, []Entry{batchOf(t, c.val, half)})
		if len(errs) > 0 {
			t.Fatalf("a batch of four: %v", errs)
		}
		c.apply(ctx, in)
		c.height, c.time = ctx.Height, ctx.Time
	}
	for _, s := range subs {
		if st := c.op(s.Hash()).Saga.Status; st != taskrt.OpCompleted {
			t.Errorf("operation %s, want completed", st)
		}
	}
}

// twinOp is paddedOp with two tasks that run together.
func twinOp(t *testing.T, size int) string {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"name": "twins", "tasks": []any{
		map[string]any{"id": "a", "run": "noop", "params": map[string]any{"pad": strings.Repeat("x", size)}},
		map[string]any{"id": "b", "run": "noop"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(canonicalOp(t, raw))
}

func TestBlockWriteBudgetBatchOfOneOperation(t *testing.T) {
	c := newTestChain(t)
	sub := c.rawSubmission(twinOp(t, 50_000))
	c.block(10, sub)
	atts := c.attest(sub.Hash(), c.val, ok)
	if len(atts) != 2 {
		t.Fatalf("%d attestations, want 2", len(atts))
	}
	c.m.genesis.Params.MaxBlockWriteBytes = 1_000 // far below the record
	ctx := Context{Height: c.height + 1, Time: c.time + 10}
	batch := batchOf(t, c.val, atts)
	if err := c.m.Check(c.st, ctx, batch); err != nil {
		t.Fatalf("Check of a batch of one operation: %v", err)
	}
	_, in, errs := c.propose(ctx, []Entry{batch})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	c.apply(ctx, in) // valid alone
	if st := c.op(sub.Hash()).Saga.Status; st != taskrt.OpCompleted {
		t.Errorf("operation %s, want completed", st)
	}
}

// TestRefusedEntryLeavesTheBlockUntouched: an entry a proposer tries and
// leaves out must not leave the records it read in the block's overlay.
// Reading through an overlay used to keep a copy at every level, so the
// block rewrote records the write budget never measured: with failovers
// of twelve ~900 KB records the proposer's block went over badger's
// transaction limit and every node failed to commit it.
func TestRefusedEntryLeavesTheBlockUntouched(t *testing.T) {
	c := newTestChain(t)
	sub, id := c.submit(slowOp)
	c.block(10, sub)
	ctx := Context{Height: c.height + 1, Time: c.time + 10}
	block := NewOverlay(c.st)
	// Refused: task "a" is not a task the operation's stage runs as such
	// a rollback (the stage is not rolling back).
	if _, err := c.m.Try(NewOverlay(block), ctx, c.attestRunning(id, "a", true), nil); err == nil {
		t.Fatal("a rollback attestation of a running task was accepted")
	}
	if ops, _ := block.Changes(); len(ops) != 0 {
		t.Fatalf("the block holds %d records after a refused entry, want none", len(ops))
	}
	if _, err := block.Operation(id); err != nil {
		t.Fatal(err)
	}
	if ops, _ := block.Changes(); len(ops) != 1 {
		t.Fatalf("the block holds %d records after reading one, want it", len(ops))
	}
}
