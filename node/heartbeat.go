package node

import (
	"context"
	"time"

	"github.com/sagachain/sagachain/ledger"
)

// heartbeat keeps this validator's executor lease (params.executor_lease_ms)
// while it holds work: every entry it signs that a block carries renews
// the lease, and attestations do so as a side effect, so a heartbeat is
// sent only while a run goes on and nothing was attested for a quarter of
// the lease, or when the chain marks this node down (after a pause, say),
// to be given work again. A quarter leaves room for two heartbeats lost
// or late, and an idle chain gets no traffic from it.
type heartbeat struct {
	n     *Node
	every time.Duration
	// sent is when the last heartbeat was queued; kick asks for a look
	// before the next tick (a block marked an executor down).
	sent time.Time
	kick chan struct{}
}

func newHeartbeat(n *Node) *heartbeat {
	lease := time.Duration(n.machine.Genesis().Params.ExecutorLease()) * time.Millisecond
	return &heartbeat{n: n, every: max(lease/4, time.Millisecond), kick: make(chan struct{}, 1)}
}

// poke asks for a look at once, without waiting for it.
func (h *heartbeat) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// run sends heartbeats until ctx ends.
func (h *heartbeat) run(ctx context.Context) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
		}
		if err := h.beat(); err != nil && ctx.Err() == nil {
			h.n.log.Warn("heartbeat not sent", "err", err)
		}
	}
}

// beat sends a heartbeat if this node's lease needs one now.
func (h *heartbeat) beat() error {
	n := h.n
	now := n.opts.Now()
	if now.Sub(h.sent) < h.every {
		return nil
	}
	running, attested := n.executor.Busy()
	if running && now.Sub(attested) < h.every {
		running = false // its attestations renew the lease
	}
	if !running {
		hosts, err := n.store.Hosts()
		if err != nil {
			return err
		}
		if !hosts.IsDown(n.opts.Key.Address()) {
			return nil
		}
	}
	hb := &ledger.Heartbeat{Time: uint64(now.UnixMilli())}
	if err := hb.Sign(n.opts.Key, n.machine.Genesis().ChainID); err != nil {
		return err
	}
	e, err := ledger.NewEntry(ledger.KindHeartbeat, hb)
	if err != nil {
		return err
	}
	if err := n.queue(e); err != nil {
		return err
	}
	h.sent = now
	return nil
}
