package node

import (
	"bytes"
	"slices"
	"sync"

	"github.com/sagachain/sagachain/ledger"
)

// cachedStore keeps decoded operation records of the committed state in
// memory: every entry of an operation reads its record, and decoding it
// from the store each time dominated the profile. Records it returns are
// shared and must not be modified (an Overlay clones before it writes).
type cachedStore struct {
	ledger.Store
	mu  sync.Mutex
	ops map[ledger.Hash]*ledger.OpRecord
	// sizes are the cached records' estimated heap bytes
	// (OpRecord.ApproxSize), and bytes their sum.
	sizes map[ledger.Hash]int
	bytes int
	// active mirrors the store's index of operations not yet final; it is
	// read for every block (due timeouts) and loaded once.
	active map[ledger.Hash]bool
}

var _ ledger.Store = (*cachedStore)(nil)

// The cache's memory budget: at most maxCachedOps records and at most
// maxCachedBytes of them by their estimated heap size (OpRecord.ApproxSize:
// the operation file, ~400 bytes per task plus its output, ~200 per event),
// whichever comes first. Reaching either empties the cache (records are
// read again from the store as entries need them), and a record larger
// than maxCachedRecordBytes alone is not cached at all, so one huge
// operation cannot hold the budget. Only operations not yet final are
// cached (see put). So the cache holds at most about 256 MiB, whatever the
// operations' sizes; before the byte bound, 50,000 records of 500 tasks
// each could hold gigabytes.
const (
	maxCachedOps         = 50_000
	maxCachedBytes       = 256 << 20
	maxCachedRecordBytes = maxCachedBytes / 4
)

func newCachedStore(s ledger.Store) *cachedStore {
	return &cachedStore{Store: s, ops: make(map[ledger.Hash]*ledger.OpRecord), sizes: make(map[ledger.Hash]int)}
}

// Operation returns a committed record, from memory when it can.
func (c *cachedStore) Operation(id ledger.Hash) (*ledger.OpRecord, error) {
	c.mu.Lock()
	r, ok := c.ops[id]
	c.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := c.Store.Operation(id)
	if err != nil {
		return nil, err
	}
	c.put(r)
	return r, nil
}

// ActiveOperations returns the active operations from memory.
func (c *cachedStore) ActiveOperations() ([]ledger.Hash, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active == nil {
		ids, err := c.Store.ActiveOperations()
		if err != nil {
			return nil, err
		}
		c.active = make(map[ledger.Hash]bool, len(ids))
		for _, id := range ids {
			c.active[id] = true
		}
	}
	out := make([]ledger.Hash, 0, len(c.active))
	for id := range c.active {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b ledger.Hash) int { return bytes.Compare(a[:], b[:]) })
	return out, nil
}

// SaveBlock writes through and then caches the records as committed.
func (c *cachedStore) SaveBlock(w ledger.BlockWrite) error {
	if err := c.Store.SaveBlock(w); err != nil {
		c.mu.Lock()
		c.forgetAll() // the store may or may not hold the block
		c.active = nil
		c.mu.Unlock()
		return err
	}
	for _, r := range w.Ops {
		c.put(r)
	}
	c.mu.Lock()
	if c.active != nil {
		for _, r := range w.Ops {
			if r.Saga.Status.Final() {
				delete(c.active, r.ID)
			} else {
				c.active[r.ID] = true
			}
		}
	}
	c.mu.Unlock()
	return nil
}

// put caches a record, or forgets it once final: no entry but a retry
// reads a finished operation again, and keeping every finished one made
// each garbage collection walk all their task outputs, until collection
// took a fifth of a loaded validator's time.
//
// The size is estimated outside the lock: it walks the record, O(its
// tasks and events), which is of the order of what applying an entry of
// it costs already.
func (c *cachedStore) put(r *ledger.OpRecord) {
	size := 0
	if !r.Saga.Status.Final() {
		size = r.ApproxSize()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes -= c.sizes[r.ID]
	delete(c.ops, r.ID)
	delete(c.sizes, r.ID)
	if r.Saga.Status.Final() || size > maxCachedRecordBytes {
		return
	}
	if len(c.ops) >= maxCachedOps || c.bytes+size > maxCachedBytes {
		c.forgetAll()
	}
	c.ops[r.ID] = r
	c.sizes[r.ID] = size
	c.bytes += size
}

// forgetAll empties the record cache; c.mu is held.
func (c *cachedStore) forgetAll() {
	clear(c.ops)
	clear(c.sizes)
	c.bytes = 0
}
