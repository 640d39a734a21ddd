package node

import (
	"errors"
	"fmt"
	"sync"

	"github.com/sagachain/sagachain/ledger"
)

// ErrMempoolFull reports a mempool at its bound; the client may retry.
var ErrMempoolFull = errors.New("mempool is full")

// Mempool holds checked entries waiting for a block, in arrival order. It
// is safe for concurrent use.
type Mempool struct {
	mu      sync.Mutex
	max     int
	order   []ledger.Hash
	entries map[ledger.Hash]pending
	ready   chan struct{}
	// committed, when set, reports whether a committed block carries an
	// entry (see DropCommitted).
	committed func(ledger.Hash) bool
}

// ErrCommitted reports an entry a committed block already carries: the
// ledger never applies an entry twice, so queueing it again would only
// cost every proposer a try. It is a ledger.ErrReplay.
var ErrCommitted = fmt.Errorf("mempool: %w", ledger.ErrReplay)

// DropCommitted makes the mempool refuse entries for which committed
// reports true, and drop them from what Pending hands a proposer: a peer
// that re-gossips, or a client that resends, an entry already in a block
// then costs nothing more. The node passes the store's entry index, e.g.
// func(h) bool { ok, err := store.Recorded(h); return err == nil && ok }.
func (m *Mempool) DropCommitted(committed func(ledger.Hash) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.committed = committed
}

// pending is a queued entry and the head height when it arrived.
type pending struct {
	entry ledger.Entry
	since uint64
}

// NewMempool returns a mempool holding at most max entries.
func NewMempool(max int) *Mempool {
	return &Mempool{max: max, entries: make(map[ledger.Hash]pending), ready: make(chan struct{}, 1)}
}

// Add queues an entry that arrived when the head was at height head.
// Adding an entry already queued is a no-op, so a client may resend.
func (m *Mempool) Add(e ledger.Entry, head uint64) error {
	h := e.Hash()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[h]; ok {
		return nil
	}
	if m.committed != nil && m.committed(h) {
		return fmt.Errorf("entry %s: %w", h.Hex(), ErrCommitted)
	}
	if len(m.entries) >= m.max {
		return ErrMempoolFull
	}
	m.entries[h] = pending{entry: e, since: head}
	m.order = append(m.order, h)
	select {
	case m.ready <- struct{}{}:
	default:
	}
	return nil
}

// Ready is signalled when an entry arrives.
func (m *Mempool) Ready() <-chan struct{} { return m.ready }

// Pending returns up to limit queued entries, oldest first. Entries a
// committed block carries (see DropCommitted) are dropped, not returned.
func (m *Mempool) Pending(limit int) []ledger.Entry {
	m.mu.Lock()
	n := min(limit, len(m.order))
	out := make([]ledger.Entry, 0, n)
	var done []ledger.Hash
	for _, h := range m.order {
		if len(out) >= n {
			break
		}
		if m.committed != nil && m.committed(h) {
			done = append(done, h)
			continue
		}
		out = append(out, m.entries[h].entry)
	}
	m.mu.Unlock()
	m.Remove(done...)
	return out
}

// Queued is an entry waiting in the mempool and the head height when it
// arrived.
type Queued struct {
	Entry ledger.Entry
	Since uint64
}

// All returns every queued entry, oldest first.
func (m *Mempool) All() []Queued {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Queued, 0, len(m.order))
	for _, h := range m.order {
		p := m.entries[h]
		out = append(out, Queued{Entry: p.entry, Since: p.since})
	}
	return out
}

// Len returns the number of queued entries.
func (m *Mempool) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// Has reports whether an entry is queued.
func (m *Mempool) Has(h ledger.Hash) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.entries[h]
	return ok
}

// Known reports whether an entry is queued or, when DropCommitted was
// set, committed: gossip then neither queues nor forwards a committed
// entry a peer relays again.
func (m *Mempool) Known(h ledger.Hash) bool {
	m.mu.Lock()
	_, queued := m.entries[h]
	committed := m.committed
	m.mu.Unlock()
	// The store is read outside the lock: gossip validates messages
	// concurrently, and one entry's read need not hold up the others.
	return queued || (committed != nil && committed(h))
}

// Remove drops entries, once committed or found stale.
func (m *Mempool) Remove(hashes ...ledger.Hash) {
	m.mu.Lock()
	defer m.mu.Unlock()
	removed := 0
	for _, h := range hashes {
		if _, ok := m.entries[h]; ok {
			delete(m.entries, h)
			removed++
		}
	}
	if removed == 0 {
		return
	}
	kept := m.order[:0]
	for _, h := range m.order {
		if _, ok := m.entries[h]; ok {
			kept = append(kept, h)
		}
	}
	clear(m.order[len(kept):])
	m.order = kept
}
