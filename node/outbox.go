package node

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/sagachain/sagachain/ledger"
)

// An entries gossip message carries a batch: the RLP list of one or more
// entries, each encoded as in a block. Every gossip message costs its
// sender and each receiver a fixed price (framing, encryption, a system
// call per peer, message id, seen cache, a validation goroutine) that was
// most of a loaded validator's gossip time when each entry went alone; the
// executor attests the tasks a block released in one burst, so a batch
// pays that price once for the burst.
const (
	// maxBatchEntries and maxBatchBytes bound one entries message.
	maxBatchEntries = 512
	maxBatchBytes   = 1 << 20
)

// encodeEntryBatch encodes already encoded entries as one gossip payload.
func encodeEntryBatch(raw []rlp.RawValue) ([]byte, error) { return rlp.EncodeToBytes(raw) }

// decodeEntryBatch decodes an entries gossip payload; an empty batch is an
// error, as no honest node sends one.
func decodeEntryBatch(data []byte) ([]ledger.Entry, error) {
	var es []ledger.Entry
	if err := rlp.DecodeBytes(data, &es); err != nil {
		return nil, fmt.Errorf("entry batch: %w", err)
	}
	if len(es) == 0 {
		return nil, errors.New("entry batch: empty")
	}
	return es, nil
}

// outbox collects the entries this node gossips and hands them to a
// sender in batches. It adds no fixed delay: the sender yields once before
// it takes what is queued, so entries made together (the attestations of
// one block's tasks) leave together, and under load whatever queued while
// the sender was busy goes in the next batch.
type outbox struct {
	mu      sync.Mutex
	pending []rlp.RawValue
	wake    chan struct{}
}

func newOutbox() *outbox { return &outbox{wake: make(chan struct{}, 1)} }

// add queues an encoded entry.
func (o *outbox) add(raw []byte) {
	o.mu.Lock()
	o.pending = append(o.pending, raw)
	first := len(o.pending) == 1
	o.mu.Unlock()
	if first {
		select {
		case o.wake <- struct{}{}:
		default:
		}
	}
}

// take removes and returns the oldest batch's worth of queued entries, or
// nil when none is queued.
func (o *outbox) take() []rlp.RawValue {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, size := 0, 0
	for n < len(o.pending) && n < maxBatchEntries {
		if n > 0 && size+len(o.pending[n]) > maxBatchBytes {
			break
		}
		size += len(o.pending[n])
		n++
	}
	if n == 0 {
		return nil
	}
	batch := o.pending[:n:n]
	o.pending = o.pending[n:]
	if len(o.pending) == 0 {
		o.pending = nil // let the backing array go
	}
	return batch
}

// run sends batches with send until ctx is done.
func (o *outbox) run(ctx context.Context, send func([]rlp.RawValue)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		}
		runtime.Gosched()
		for batch := o.take(); batch != nil; batch = o.take() {
			send(batch)
		}
	}
}
