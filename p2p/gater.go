package p2p

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

const (
	// maxTracked bounds the refused addresses and the peers whose refusals
	// the gater remembers, since peer ids cost an attacker nothing: past
	// it, expired entries are dropped, and new ones are not remembered
	// (their refusals are still refused, and counted).
	maxTracked = 4096
	// maxRefusalLines bounds the refusal lines of one log interval over all
	// peers, so that a peer changing its id at every dial cannot flood the
	// log either.
	maxRefusalLines = 8
)

// allowList is a connection gater that admits only a fixed set of peer ids.
// Outgoing dials are refused before any packet is sent; incoming connections
// are refused right after the security handshake, the first point at which
// the remote peer id is authenticated, so no stream (and so no gossip or sync
// request) ever runs over a connection from outside the list.
//
// A refused peer is made cheap (issue #10: one outside the genesis redialled
// hundreds of times a second, and each refusal was a log line): the IP it
// came from is refused at accept, before any handshake, for the backoff
// window, unless an allowed peer was configured or seen at that IP (testnets
// share 127.0.0.1); and refusals are logged once per peer per log interval,
// with the number left unlogged.
type allowList struct {
	ids      map[peer.ID]struct{}
	log      *slog.Logger
	backoff  time.Duration
	logEvery time.Duration
	now      func() time.Time

	// refusedAccepts and refusedHandshakes count the incoming connections
	// refused before and after the handshake.
	refusedAccepts, refusedHandshakes atomic.Int64

	mu sync.Mutex
	// goodIPs are the IPs of allowed peers: configured, or seen on a
	// connection that passed the handshake. They are never refused at
	// accept.
	goodIPs map[netip.Addr]struct{}
	// badIPs are the IPs a refused peer came from, refused at accept until
	// the time they map to.
	badIPs map[netip.Addr]time.Time
	// lines is when the refusals of a peer may be logged again, and how
	// many were not logged since the last line.
	lines map[peer.ID]*refusalLine
	// window is the start of the current log interval, and used the lines
	// logged in it; unlogged counts the refusals of peers not remembered
	// or over the budget of the interval.
	window   time.Time
	used     int
	unlogged int
}

type refusalLine struct {
	next       time.Time
	suppressed int
}

var _ connmgr.ConnectionGater = (*allowList)(nil)

func newAllowList(ids []peer.ID, log *slog.Logger) *allowList {
	return newAllowListWith(ids, log, DefaultRefusedBackoff, DefaultRefusalLogInterval, time.Now)
}

func newAllowListWith(ids []peer.ID, log *slog.Logger, backoff, logEvery time.Duration, now func() time.Time) *allowList {
	g := &allowList{ids: make(map[peer.ID]struct{}, len(ids)), log: log, backoff: backoff, logEvery: logEvery, now: now,
		goodIPs: map[netip.Addr]struct{}{}, badIPs: map[netip.Addr]time.Time{}, lines: map[peer.ID]*refusalLine{}}
	for _, id := range ids {
		g.ids[id] = struct{}{}
	}
	return g
}

func (g *allowList) allowed(p peer.ID) bool {
	_, ok := g.ids[p]
	return ok
}

// trust marks the IPs of addrs, those of allowed peers, as never to be
// refused at accept.
func (g *allowList) trust(addrs []ma.Multiaddr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range addrs {
		if ip, ok := ipOf(a); ok {
			g.markGood(ip)
		}
	}
}

// markGood records ip as an allowed peer's, never refused at accept.
// g.mu is held.
func (g *allowList) markGood(ip netip.Addr) {
	g.goodIPs[ip] = struct{}{}
	delete(g.badIPs, ip)
}

// ipOf returns the IP a multiaddr starts with; a DNS name or another
// transport has none.
func ipOf(a ma.Multiaddr) (netip.Addr, bool) {
	if a == nil {
		return netip.Addr{}, false
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	return addr.Unmap(), ok
}

// InterceptPeerDial refuses to dial a peer outside the list.
func (g *allowList) InterceptPeerDial(p peer.ID) bool {
	ok := g.allowed(p)
	if !ok {
		g.log.Debug("p2p: refused to dial a peer outside the allow list", "peer", p)
	}
	return ok
}

// InterceptAddrDial applies the same rule per address, since some dial paths
// reach the transport without a preceding InterceptPeerDial.
func (g *allowList) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool {
	return g.allowed(p)
}

// InterceptAccept refuses, before any handshake, a connection from an IP
// that presented a peer outside the list within the backoff window, unless
// an allowed peer uses that IP too. Any other connection is admitted: its
// peer id is not known until the handshake, and a private-network key, when
// configured, has already filtered out nodes of other networks.
func (g *allowList) InterceptAccept(addrs network.ConnMultiaddrs) bool {
	ip, ok := ipOf(addrs.RemoteMultiaddr())
	if !ok {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	until, bad := g.badIPs[ip]
	if !bad {
		return true
	}
	if _, good := g.goodIPs[ip]; good || !g.now().Before(until) {
		delete(g.badIPs, ip)
		return true
	}
	g.refusedAccepts.Add(1)
	return false
}

// InterceptSecured decides on the authenticated peer id, in both directions.
// An allowed peer's IP is remembered as good. An incoming peer outside the
// list is refused, its IP backed off (see InterceptAccept), and the refusal
// logged at Info at a bounded rate: it is what an operator sees when a
// node's key is missing from the genesis or observer list.
func (g *allowList) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	ip, hasIP := ipOf(addrs.RemoteMultiaddr())
	if g.allowed(p) {
		if hasIP {
			g.mu.Lock()
			g.markGood(ip)
			g.mu.Unlock()
		}
		return true
	}
	if dir != network.DirInbound {
		return false
	}
	g.refusedHandshakes.Add(1)
	now := g.now()
	g.mu.Lock()
	if _, good := g.goodIPs[ip]; hasIP && !good {
		g.prune(now)
		if len(g.badIPs) < maxTracked {
			g.badIPs[ip] = now.Add(g.backoff)
		}
	}
	suppressed, others, logIt := g.countRefusal(p, now)
	g.mu.Unlock()
	if logIt {
		g.log.Info("p2p: refused a connection from a peer outside the allow list", "peer", p, "addr", addrs.RemoteMultiaddr(),
			"suppressed", suppressed, "others_suppressed", others, "backoff", g.backoff)
	}
	return false
}

// countRefusal decides whether a refusal of p at now gets a log line, and
// with how many refusals of p, and of peers without a line, it stands for.
// g.mu is held.
func (g *allowList) countRefusal(p peer.ID, now time.Time) (suppressed, others int, logIt bool) {
	if now.Sub(g.window) >= g.logEvery || now.Before(g.window) {
		g.window, g.used = now, 0
	}
	l, known := g.lines[p]
	if known && now.Before(l.next) {
		l.suppressed++
		return 0, 0, false
	}
	if !known {
		g.prune(now)
		if len(g.lines) >= maxTracked {
			g.unlogged++
			return 0, 0, false
		}
		l = &refusalLine{}
		g.lines[p] = l
	}
	if g.used >= maxRefusalLines {
		l.suppressed++
		return 0, 0, false
	}
	g.used++
	suppressed, others = l.suppressed, g.unlogged
	l.next, l.suppressed, g.unlogged = now.Add(g.logEvery), 0, 0
	return suppressed, others, true
}

// prune drops what has expired once the maps are full. g.mu is held.
func (g *allowList) prune(now time.Time) {
	if len(g.badIPs) >= maxTracked {
		for ip, until := range g.badIPs {
			if !now.Before(until) {
				delete(g.badIPs, ip)
			}
		}
	}
	if len(g.lines) >= maxTracked {
		for p, l := range g.lines {
			// A peer with refusals not yet logged keeps its entry, so that
			// its count is reported.
			if !now.Before(l.next) && l.suppressed == 0 {
				delete(g.lines, p)
			}
		}
	}
}

// InterceptUpgraded admits every connection that passed InterceptSecured.
func (g *allowList) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
