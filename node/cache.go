package node

import (
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
}

var _ ledger.Store = (*cachedStore)(nil)

const maxCachedOps = 50_000

func newCachedStore(s ledger.Store) *cachedStore {
	return &cachedStore{Store: s, ops: make(map[ledger.Hash]*ledger.OpRecord)}
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

// SaveBlock writes through and then caches the records as committed.
func (c *cachedStore) SaveBlock(w ledger.BlockWrite) error {
	if err := c.Store.SaveBlock(w); err != nil {
		c.mu.Lock()
		clear(c.ops) // the store may or may not hold the block: forget all
		c.mu.Unlock()
		return err
	}
	for _, r := range w.Ops {
		c.put(r)
	}
	return nil
}

func (c *cachedStore) put(r *ledger.OpRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ops) >= maxCachedOps {
		clear(c.ops)
	}
	c.ops[r.ID] = r
}
