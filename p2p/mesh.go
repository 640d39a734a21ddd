package p2p

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// meshTracer follows gossipsub's internal events: it keeps each topic's mesh
// (the peers this host forwards messages to) and logs messages that gossipsub
// drops because a queue is full, which would otherwise go unnoticed.
type meshTracer struct {
	log *slog.Logger

	mu   sync.Mutex
	mesh map[string]map[peer.ID]struct{} // topic name -> peers
}

var _ pubsub.RawTracer = (*meshTracer)(nil)

func newMeshTracer(log *slog.Logger) *meshTracer {
	return &meshTracer{log: log, mesh: map[string]map[peer.ID]struct{}{}}
}

// peers returns the mesh of topic, sorted.
func (m *meshTracer) peers(topic string) []peer.ID {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]peer.ID, 0, len(m.mesh[topic]))
	for p := range m.mesh[topic] {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Graft records p joining the mesh of topic.
func (m *meshTracer) Graft(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mesh[topic] == nil {
		m.mesh[topic] = map[peer.ID]struct{}{}
	}
	m.mesh[topic][p] = struct{}{}
}

// Prune records p leaving the mesh of topic.
func (m *meshTracer) Prune(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh[topic], p)
}

// OnClosedOutboundStream records p leaving every mesh, as gossipsub drops a
// peer whose stream closed without a Prune.
func (m *meshTracer) OnClosedOutboundStream(p peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, peers := range m.mesh {
		delete(peers, p)
	}
}

// Leave forgets the mesh of a topic the host left.
func (m *meshTracer) Leave(topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh, topic)
}

// DropRPC reports an outgoing RPC dropped because p's queue was full.
func (m *meshTracer) DropRPC(_ *pubsub.RPC, p peer.ID) {
	m.log.Warn("p2p: gossip to a peer dropped: its outbound queue is full", "peer", p)
}

// UndeliverableMessage reports a message dropped because a handler was too
// slow.
func (m *meshTracer) UndeliverableMessage(msg *pubsub.Message) {
	m.log.Warn("p2p: gossip message dropped: the topic handler is too slow", "topic", msg.GetTopic())
}

// The remaining events are of no interest.

func (m *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (m *meshTracer) Join(string)                                          {}
func (m *meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (m *meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (m *meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (m *meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (m *meshTracer) ThrottlePeer(peer.ID)                                 {}
func (m *meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (m *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (m *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
