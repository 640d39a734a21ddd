package p2p

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Topic is one of the gossip topics of a chain.
type Topic int

// The gossip topics. Their numbers are not on the wire; their names are.
const (
	// TopicEntries carries signed entries on their way into a block.
	TopicEntries Topic = iota + 1
	// TopicConsensus carries proposals and votes.
	TopicConsensus
)

// topics lists every Topic, in a fixed order.
var topics = []Topic{TopicEntries, TopicConsensus}

func (t Topic) valid() bool {
	return t == TopicEntries || t == TopicConsensus
}

// String returns the topic's short name: "entries" or "consensus".
func (t Topic) String() string {
	switch t {
	case TopicEntries:
		return "entries"
	case TopicConsensus:
		return "consensus"
	}
	return fmt.Sprintf("Topic(%d)", int(t))
}

// Name returns the gossipsub topic of t on chainID, for example
// /sagachain/sagachain-dev/consensus/1.
func (t Topic) Name(chainID string) string {
	return "/sagachain/" + chainID + "/" + t.String() + "/1"
}

// Verdict is a Validator's judgement of one gossip message.
type Verdict int

// The verdicts. The zero Verdict is not one of them and counts as Reject.
const (
	// Accept delivers the message to the local handler and forwards it.
	Accept Verdict = iota + 1
	// Ignore drops the message without blaming the peer that sent it: use it
	// for what an honest peer may send, such as a vote for a height already
	// decided or an entry already in a block.
	Ignore
	// Reject drops the message and lowers the sending peer's gossip score:
	// use it for what no honest peer sends, such as a bad signature, a signer
	// who is not a validator, or bytes that do not decode. A peer whose score
	// falls far enough is no longer gossiped with, then ignored altogether.
	Reject
)

// Validator judges a gossip message before it is delivered or forwarded. from
// is the peer that passed the message on, not necessarily its author; the
// author is whoever signed data. A Validator is called concurrently from many
// goroutines, and for the host's own publications too (with from = the
// host's id), so a node cannot gossip what it would refuse from others.
type Validator func(from peer.ID, data []byte) Verdict

// Gossip errors a caller may branch on, returned wrapped.
var (
	// ErrRejected reports a Publish whose message the local Validator rejected.
	ErrRejected = errors.New("message rejected by the topic validator")
	// ErrIgnored reports a Publish whose message the local Validator ignored.
	ErrIgnored = errors.New("message ignored by the topic validator")
	// ErrTooLarge reports a payload over Config.MaxMessageSize.
	ErrTooLarge = errors.New("message too large")
	// ErrUnknownTopic reports a Topic that is not TopicEntries or TopicConsensus.
	ErrUnknownTopic = errors.New("unknown topic")
	// ErrSubscribed reports a second Subscribe to one topic.
	ErrSubscribed = errors.New("topic already has a handler")
)

const (
	// rpcOverhead is room for the gossipsub envelope around the largest
	// payload: topic, framing and a piggybacked control message.
	rpcOverhead = 64 << 10
	// gossipQueue sizes the validation queue, each peer's outbound queue and
	// each subscription's buffer. gossipsub drops messages when one of them is
	// full, and its default of 32 is soon reached by a burst of entries.
	gossipQueue = 1024
	// scoreInspectInterval is how often Scores is refreshed.
	scoreInspectInterval = time.Second
)

// gossipParams shrinks the mesh to about two peers per topic, or, for a
// full mesh of peers (Config.FullMesh), to none. Every message goes from
// its publisher to every connected peer at once (flood publishing), so the
// mesh only carries a copy around a missing link; with gossipsub's default
// of six, four validators passed each message on to every other peer,
// sending it three times as often as needed, and a third of a loaded
// validator's time went to gossip. Messages a peer still misses reach it
// within a heartbeat through gossip's IHAVE/IWANT, and consensus
// re-publishes its own.
func gossipParams(fullMesh bool) pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.D, p.Dlo, p.Dhi, p.Dout, p.Dscore = 2, 1, 3, 0, 1
	if fullMesh {
		// All zero is gossipsub's mesh-less mode (its "bootstrapper"
		// setting): publish to all, relay nothing, gossip IHAVE to all.
		p.D, p.Dlo, p.Dhi, p.Dout, p.Dscore = 0, 0, 0, 0, 0
	}
	return p
}

// startGossip creates the gossipsub router, registers the validators and joins
// both topics as a relay, so the host forwards valid messages from the start,
// whether or not it has a handler yet.
func (h *Host) startGossip() error {
	names := make([]string, 0, len(topics))
	for _, t := range topics {
		names = append(names, t.Name(h.cfg.ChainID))
	}
	h.mesh = newMeshTracer(h.cfg.Logger)
	ps, err := pubsub.NewGossipSub(h.ctx, h.host,
		// Payloads are signed by the application; a libp2p signature on top
		// would only cost a signature and a check per message and hop.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithFloodPublish(true),
		pubsub.WithGossipSubParams(gossipParams(h.cfg.FullMesh)),
		pubsub.WithPeerExchange(false),
		pubsub.WithMaxMessageSize(h.cfg.MaxMessageSize+rpcOverhead),
		pubsub.WithSeenMessagesTTL(h.cfg.SeenTTL),
		pubsub.WithPeerScore(scoreParams(names, h.cfg.SeenTTL), scoreThresholds()),
		pubsub.WithPeerScoreInspect(h.recordScores, scoreInspectInterval),
		pubsub.WithSubscriptionFilter(pubsub.NewAllowlistSubscriptionFilter(names...)),
		pubsub.WithValidateQueueSize(gossipQueue),
		pubsub.WithPeerOutboundQueueSize(gossipQueue),
		pubsub.WithRawTracer(h.mesh),
		pubsub.WithLogger(h.cfg.Logger),
	)
	if err != nil {
		return fmt.Errorf("p2p: start gossipsub: %w", err)
	}
	for i, t := range topics {
		if err := ps.RegisterTopicValidator(names[i], wrapValidator(h.cfg.Validators[t])); err != nil {
			return fmt.Errorf("p2p: register the %s validator: %w", t, err)
		}
		pt, err := ps.Join(names[i])
		if err != nil {
			return fmt.Errorf("p2p: join the %s topic: %w", t, err)
		}
		if _, err := pt.Relay(); err != nil {
			return fmt.Errorf("p2p: relay the %s topic: %w", t, err)
		}
		h.topics[t] = pt
	}
	return nil
}

// wrapValidator adapts a Validator to gossipsub, mapping anything but Accept
// and Ignore to Reject.
func wrapValidator(v Validator) pubsub.ValidatorEx {
	return func(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		switch v(from, m.Data) {
		case Accept:
			return pubsub.ValidationAccept
		case Ignore:
			return pubsub.ValidationIgnore
		default:
			return pubsub.ValidationReject
		}
	}
}

// messageID is SHA-256 over the topic (length-prefixed) and the payload, so
// identical bytes are one message however often and by whomever they are
// published, while the same bytes on two topics stay two messages.
func messageID(m *pb.Message) string {
	topic := m.GetTopic()
	var n [binary.MaxVarintLen64]byte
	d := sha256.New()
	d.Write(n[:binary.PutUvarint(n[:], uint64(len(topic)))])
	io.WriteString(d, topic)
	d.Write(m.GetData())
	return string(d.Sum(nil))
}

// Publish sends data to every peer on topic. It first runs the topic's
// Validator on data, and returns an error wrapping ErrRejected or ErrIgnored
// if that does not accept it. Publishing bytes that this host has published
// or received within Config.SeenTTL does nothing and returns nil. The host's
// own handler is not called for what it publishes. Publish copies data.
func (h *Host) Publish(topic Topic, data []byte) error {
	t, ok := h.topics[topic]
	if !ok {
		return fmt.Errorf("p2p: publish: %w %d", ErrUnknownTopic, int(topic))
	}
	if h.isClosed() {
		return fmt.Errorf("p2p: publish on %s: %w", topic, ErrClosed)
	}
	if len(data) > h.cfg.MaxMessageSize {
		return fmt.Errorf("p2p: publish on %s: %d bytes, over the limit of %d: %w", topic, len(data), h.cfg.MaxMessageSize, ErrTooLarge)
	}
	if err := t.Publish(h.ctx, slices.Clone(data)); err != nil {
		var ve pubsub.ValidationError
		switch {
		case errors.As(err, &ve) && ve.Reason == pubsub.RejectValidationIgnored:
			err = ErrIgnored
		case errors.As(err, &ve) && ve.Reason == pubsub.RejectValidationFailed:
			err = ErrRejected
		case h.ctx.Err() != nil:
			err = ErrClosed
		}
		return fmt.Errorf("p2p: publish on %s: %w", topic, err)
	}
	return nil
}

// Subscribe calls handler with every message of topic that the Validator
// accepted and that came from another peer; from is the peer that passed it
// on. Calls are made in arrival order from one goroutine per topic until
// Close; a slow handler makes gossipsub drop messages for it, so a handler
// should hand its work off and return. A topic takes one handler.
func (h *Host) Subscribe(topic Topic, handler func(from peer.ID, data []byte)) error {
	t, ok := h.topics[topic]
	if !ok {
		return fmt.Errorf("p2p: subscribe: %w %d", ErrUnknownTopic, int(topic))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("p2p: subscribe to %s: %w", topic, ErrClosed)
	}
	if h.subscribed[topic] {
		return fmt.Errorf("p2p: subscribe to %s: %w", topic, ErrSubscribed)
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(gossipQueue))
	if err != nil {
		return fmt.Errorf("p2p: subscribe to %s: %w", topic, err)
	}
	h.subscribed[topic] = true
	h.wg.Add(1)
	go h.deliver(sub, handler)
	return nil
}

// deliver runs a topic's handler until Close.
func (h *Host) deliver(sub *pubsub.Subscription, handler func(peer.ID, []byte)) {
	defer h.wg.Done()
	defer sub.Cancel()
	self := h.host.ID()
	for {
		m, err := sub.Next(h.ctx)
		if err != nil {
			return
		}
		if m.ReceivedFrom == self {
			continue
		}
		handler(m.ReceivedFrom, m.Data)
	}
}

// TopicPeers returns the connected peers known to be on topic, sorted: those
// a Publish reaches directly.
func (h *Host) TopicPeers(topic Topic) []peer.ID {
	t, ok := h.topics[topic]
	if !ok {
		return nil
	}
	ps := t.ListPeers()
	slices.Sort(ps)
	return ps
}

// MeshPeers returns the peers this host forwards topic's messages to, sorted:
// its gossipsub mesh for the topic. A peer joins it up to a heartbeat (1 s)
// after it joins the topic; until then messages this host relays skip it,
// though those this host publishes reach it.
func (h *Host) MeshPeers(topic Topic) []peer.ID {
	if !topic.valid() {
		return nil
	}
	return h.mesh.peers(topic.Name(h.cfg.ChainID))
}

// Scores returns the gossipsub score of every known peer as last computed;
// it is refreshed every second. A negative score means the peer has sent
// messages the validators rejected, or misbehaved in the gossip protocol.
func (h *Host) Scores() map[peer.ID]float64 {
	h.scoresMu.Lock()
	defer h.scoresMu.Unlock()
	return maps.Clone(h.scores)
}

func (h *Host) recordScores(m map[peer.ID]float64) {
	h.scoresMu.Lock()
	defer h.scoresMu.Unlock()
	h.scores = maps.Clone(m)
}

// scoreParams weighs peers for gossipsub. All peers are known validators or
// observers, so the scoring is there to notice a faulty or compromised one:
// every message its validator rejects costs it 10·n² (n rejected messages,
// decaying over an hour), against at most 20 earned by delivering messages
// first and staying in the mesh. See scoreThresholds for what a score costs.
func scoreParams(topicNames []string, seenTTL time.Duration) *pubsub.PeerScoreParams {
	perTopic := make(map[string]*pubsub.TopicScoreParams, len(topicNames))
	for _, name := range topicNames {
		perTopic[name] = &pubsub.TopicScoreParams{
			TopicWeight: 1,
			// P1: up to +1 after 100 s in the mesh.
			TimeInMeshWeight:  0.01,
			TimeInMeshQuantum: time.Second,
			TimeInMeshCap:     100,
			// P2: up to +10 for messages delivered first.
			FirstMessageDeliveriesWeight: 1,
			FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
			FirstMessageDeliveriesCap:    10,
			// P3 and P3b (mesh delivery rates) stay off: a block is cut only
			// when there is something to carry, so a quiet mesh peer is normal.
			// P4: rejected messages.
			InvalidMessageDeliveriesWeight: -10,
			InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
		}
	}
	return &pubsub.PeerScoreParams{
		Topics:            perTopic,
		TopicScoreCap:     20,
		AppSpecificScore:  func(peer.ID) float64 { return 0 },
		AppSpecificWeight: 1,
		// P6 off: every peer is on the allow list, and several of them behind
		// one address (a single-machine testnet, a test) are legitimate.
		IPColocationFactorWeight: 0,
		// P7: broken promises (IHAVE without the message) and early re-grafts.
		BehaviourPenaltyWeight:    -1,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             pubsub.DefaultDecayInterval,
		DecayToZero:               pubsub.DefaultDecayToZero,
		// Remembered across reconnections, so a peer cannot wipe its record
		// by reconnecting.
		RetainScore: time.Hour,
		SeenMsgTTL:  seenTTL,
	}
}

// scoreThresholds: below -50 (three recent rejected messages) a peer gets no
// gossip (IHAVE) from us; below -100 (four) we stop publishing to it; below
// -200 (five) everything it sends is ignored until its score recovers.
func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:   -50,
		PublishThreshold:  -100,
		GraylistThreshold: -200,
		// Peer exchange is off; no score is high enough to trust its records.
		AcceptPXThreshold:           1000,
		OpportunisticGraftThreshold: 2,
	}
}
