package p2p

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// staticPeer is a configured peer that the host keeps connected.
type staticPeer struct {
	info peer.AddrInfo
	// wake is signalled whenever the peer's connectedness changes, so its
	// redialer reacts at once instead of polling.
	wake chan struct{}
}

// addStaticPeers records the static peers and their addresses for good. It
// runs before watchConnections starts, which reads h.static unlocked.
func (h *Host) addStaticPeers(static []peer.AddrInfo) {
	for _, info := range static {
		h.host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.PermanentAddrTTL)
		// The connection manager trims connections above its high-water mark;
		// a configured peer is never one to trim.
		h.host.ConnManager().Protect(info.ID, "sagachain-static-peer")
		h.static[info.ID] = &staticPeer{info: info, wake: make(chan struct{}, 1)}
	}
}

// startRedialers starts one redialer per static peer, in configuration order.
func (h *Host) startRedialers(static []peer.AddrInfo) {
	for _, info := range static {
		h.wg.Add(1)
		go h.keepConnected(h.static[info.ID])
	}
}

// keepConnected dials sp whenever it is not connected, waiting a jittered,
// exponentially growing delay after each failure, until Close. A dial whose
// connection closes within stableConn counts as a failure too: that is how
// a peer that refuses our key looks from here (the handshake completes on
// our side before the other checks our id), and redialling it at once made
// a node outside the genesis dial hundreds of times a second.
func (h *Host) keepConnected(sp *staticPeer) {
	defer h.wg.Done()
	failures := 0
	var dialed time.Time // when our last successful dial was made, if it is still to be judged
	for {
		if h.host.Network().Connectedness(sp.info.ID) == network.Connected {
			if dialed.IsZero() {
				failures = 0 // the peer dialled us: it is up and allows us
			}
			select {
			case <-h.ctx.Done():
				return
			case <-sp.wake:
			}
			continue
		}
		if !dialed.IsZero() {
			lasted := time.Since(dialed)
			dialed = time.Time{}
			if lasted >= stableConn {
				failures = 0
			} else if !h.backOff(sp, &failures, "the peer closed the connection at once; it may not allow this node's key", nil) {
				return
			}
		}
		err := h.dial(sp.info)
		if err == nil {
			dialed = time.Now()
			continue
		}
		if h.ctx.Err() != nil {
			return
		}
		if !h.backOff(sp, &failures, "dial of a static peer failed", err) {
			return
		}
	}
}

// backOff waits the redial delay after one more failure of sp, or less if
// sp dials us meanwhile; it returns false when the host closes. A wake that
// leaves sp unconnected (the close of the connection just judged) does not
// end the wait, or a refusing peer would be redialled at once.
func (h *Host) backOff(sp *staticPeer, failures *int, what string, err error) bool {
	delay := redialDelay(*failures, h.cfg.DialBackoff, h.cfg.DialBackoffMax)
	*failures++
	h.cfg.Logger.Debug("p2p: "+what, "peer", sp.info.ID, "failures", *failures, "retry_in", delay, "err", err)
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return false
		case <-t.C:
			return true
		case <-sp.wake:
			if h.host.Network().Connectedness(sp.info.ID) == network.Connected {
				return true
			}
		}
	}
}

func (h *Host) dial(info peer.AddrInfo) error {
	ctx := network.WithForceDirectDial(h.ctx, "sagachain static peer")
	ctx, cancel := context.WithTimeout(ctx, h.cfg.DialTimeout)
	defer cancel()
	return h.host.Connect(ctx, info)
}

// redialDelay is the wait after failures+1 failed dials: min·2^failures capped
// at max, of which a random half is taken away ("equal jitter"), so peers that
// lost each other at the same moment do not redial in lockstep while the wait
// still grows. The result lies in [d/2, d] for that capped d.
func redialDelay(failures int, min, max time.Duration) time.Duration {
	d := min
	for i := 0; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max || d <= 0 {
		d = max
	}
	half := d / 2
	return d - half + rand.N(half+1)
}

// watchConnections runs the connect and disconnect hooks and wakes the
// redialer of a static peer whose connectedness changed.
func (h *Host) watchConnections() {
	defer h.wg.Done()
	for {
		select {
		case <-h.ctx.Done():
			return
		case e, ok := <-h.events.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtPeerConnectednessChanged)
			switch ev.Connectedness {
			case network.Connected:
				h.cfg.Logger.Debug("p2p: peer connected", "peer", ev.Peer)
				if h.cfg.OnConnect != nil {
					h.cfg.OnConnect(ev.Peer)
				}
			case network.NotConnected:
				h.cfg.Logger.Debug("p2p: peer disconnected", "peer", ev.Peer)
				if h.cfg.OnDisconnect != nil {
					h.cfg.OnDisconnect(ev.Peer)
				}
			}
			if sp, ok := h.static[ev.Peer]; ok {
				select {
				case sp.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}
