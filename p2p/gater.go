package p2p

import (
	"log/slog"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// allowList is a connection gater that admits only a fixed set of peer ids.
// Outgoing dials are refused before any packet is sent; incoming connections
// are refused right after the security handshake, the first point at which
// the remote peer id is authenticated, so no stream (and so no gossip or sync
// request) ever runs over a connection from outside the list.
type allowList struct {
	ids map[peer.ID]struct{}
	log *slog.Logger
}

var _ connmgr.ConnectionGater = (*allowList)(nil)

func newAllowList(ids []peer.ID, log *slog.Logger) *allowList {
	g := &allowList{ids: make(map[peer.ID]struct{}, len(ids)), log: log}
	for _, id := range ids {
		g.ids[id] = struct{}{}
	}
	return g
}

func (g *allowList) allowed(p peer.ID) bool {
	_, ok := g.ids[p]
	return ok
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

// InterceptAccept admits every incoming TCP connection: its peer id is not
// known until the handshake, and a private-network key, when configured, has
// already filtered out nodes of other networks.
func (g *allowList) InterceptAccept(network.ConnMultiaddrs) bool {
	return true
}

// InterceptSecured decides on the authenticated peer id, in both directions.
// A refusal of an incoming connection is logged at Info: it is what an
// operator sees when a node's key is missing from the genesis or observer list.
func (g *allowList) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	ok := g.allowed(p)
	if !ok && dir == network.DirInbound {
		g.log.Info("p2p: refused a connection from a peer outside the allow list", "peer", p, "addr", addrs.RemoteMultiaddr())
	}
	return ok
}

// InterceptUpgraded admits every connection that passed InterceptSecured.
func (g *allowList) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
