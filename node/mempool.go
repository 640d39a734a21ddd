package node

import (
	"errors"
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

// Pending returns up to limit queued entries, oldest first.
func (m *Mempool) Pending(limit int) []ledger.Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := min(limit, len(m.order))
	out := make([]ledger.Entry, 0, n)
	for _, h := range m.order[:n] {
		out = append(out, m.entries[h].entry)
	}
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
