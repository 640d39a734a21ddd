package node

import (
	"testing"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// TestCacheBoundedByBytes: the record cache keeps its records' estimated
// size within maxCachedBytes however big they are, caches no record over
// maxCachedRecordBytes, and forgets finished ones. The records here share
// one operation file, so the test itself holds little.
func TestCacheBoundedByBytes(t *testing.T) {
	st, err := ledger.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := newCachedStore(st)
	file := make([]byte, maxCachedBytes/10)
	rec := func(i byte, status taskrt.OpStatus, op []byte) *ledger.OpRecord {
		return &ledger.OpRecord{ID: ledger.Hash{i}, Operation: op, Saga: taskrt.SagaState{Status: status}}
	}
	for i := range byte(40) {
		c.put(rec(i+1, taskrt.OpRunning, file))
		if c.bytes > maxCachedBytes {
			t.Fatalf("after %d records the cache holds %d bytes, over %d", i+1, c.bytes, maxCachedBytes)
		}
	}
	if len(c.ops) == 0 || len(c.ops) > 10 {
		t.Fatalf("%d records of %d bytes cached, want between 1 and 10", len(c.ops), len(file))
	}
	sum := 0
	for id, r := range c.ops {
		if c.sizes[id] != r.ApproxSize() {
			t.Fatalf("record %x: size %d kept, %d estimated", id[:1], c.sizes[id], r.ApproxSize())
		}
		sum += c.sizes[id]
	}
	if sum != c.bytes {
		t.Fatalf("sizes add up to %d, the cache counts %d", sum, c.bytes)
	}
	// Replacing a record counts it once; finishing it forgets it.
	var last ledger.Hash
	for id := range c.ops {
		last = id
	}
	before := c.bytes
	c.put(rec(last[0], taskrt.OpRunning, file))
	if c.bytes != before {
		t.Fatalf("replacing a record moved the count from %d to %d", before, c.bytes)
	}
	size := c.sizes[last]
	c.put(rec(last[0], taskrt.OpCompleted, file))
	if _, ok := c.ops[last]; ok || c.bytes != before-size {
		t.Fatalf("a finished record is still cached (%t) or still counted (%d of %d)", ok, c.bytes, before)
	}
	// One record over a quarter of the budget is never cached.
	huge := rec(200, taskrt.OpRunning, make([]byte, maxCachedRecordBytes+1))
	c.put(huge)
	if _, ok := c.ops[huge.ID]; ok {
		t.Fatalf("a record of %d bytes was cached", huge.ApproxSize())
	}
}

// The estimate grows with tasks, outputs and events.
func TestApproxSizeGrowsWithTheRecord(t *testing.T) {
	small := &ledger.OpRecord{Saga: taskrt.SagaState{Tasks: make([]taskrt.TaskState, 10)}, Tasks: make([]ledger.TaskRecord, 10)}
	big := &ledger.OpRecord{Saga: taskrt.SagaState{Tasks: make([]taskrt.TaskState, 1000)}, Tasks: make([]ledger.TaskRecord, 1000)}
	big.Saga.Tasks[0].Output = map[string]any{"x": string(make([]byte, 100_000))}
	if s, b := small.ApproxSize(), big.ApproxSize(); b < 100*s/2 || b < 100_000 {
		t.Fatalf("10 tasks estimate %d bytes, 1000 tasks with a 100 KB output %d", s, b)
	}
}
