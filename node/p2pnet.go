package node

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/sagachain/sagachain/consensus"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/p2p"
)

// p2pNetwork is the node's Network over libp2p: entries and consensus
// messages travel by gossip, checked before they are delivered or
// forwarded, and blocks by the block-sync protocol.
type p2pNetwork struct {
	host   *p2p.Host
	self   peer.ID
	n      *Node
	byPeer map[peer.ID]ledger.Address // validators' peer ids
	// connected counts open peers from the connection hooks, which may run
	// before New returns the host.
	connected atomic.Int64
	// published numbers this node's consensus publications (see
	// consensusPayload).
	published atomic.Uint64
	// out batches the entries this node gossips; its sender runs until
	// close.
	out     *outbox
	stopOut context.CancelFunc
	outDone chan struct{}
}

// consensusPayload is the gossip payload of a consensus message: its
// encoding followed by a big-endian publication number that is not signed
// and means nothing to the receiver. Gossip drops bytes it has seen within
// its seen-TTL, so without the number a re-published vote, byte for byte
// the first (signatures are deterministic), would not go out again to the
// peer that missed the first: a prevote lost while the peers were still
// connecting stalled a height for as long as the TTL, or for good while
// the sender kept refreshing its own seen entry. Forwarding by other peers
// keeps the bytes, so gossip still drops those duplicates.
func (p *p2pNetwork) consensusPayload(m consensus.Message) ([]byte, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return binary.BigEndian.AppendUint64(b, p.published.Add(1)), nil
}

// decodeConsensus decodes a consensus gossip payload.
func decodeConsensus(data []byte) (consensus.Message, error) {
	var m consensus.Message
	if len(data) < 8 {
		return m, errors.New("consensus payload shorter than its publication number")
	}
	return m, m.UnmarshalBinary(data[:len(data)-8])
}

var _ Network = (*p2pNetwork)(nil)

// syncRecord is one block-sync record: a block and its certificate.
type syncRecord struct {
	Block  *ledger.Block
	Commit *ledger.Commit
}

func startNetwork(ctx context.Context, n *Node) (*p2pNetwork, error) {
	g := n.machine.Genesis()
	self, err := p2p.PeerID(n.opts.Key.Bytes())
	if err != nil {
		return nil, err
	}
	net := &p2pNetwork{n: n, self: self, byPeer: make(map[peer.ID]ledger.Address), out: newOutbox()}
	var allowed []peer.ID
	for i, v := range g.Validators {
		pk, err := v.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("genesis validators[%d]: a network needs every validator's pub_key: %w", i, err)
		}
		id, err := p2p.PeerIDFromPubkey(pk.Compressed())
		if err != nil {
			return nil, fmt.Errorf("genesis validators[%d]: %w", i, err)
		}
		allowed = append(allowed, id)
		net.byPeer[id] = v.Address
	}
	for i, s := range n.opts.Config.P2P.Observers {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("p2p.observers[%d]: %w", i, err)
		}
		allowed = append(allowed, id)
	}
	var psk []byte
	if k := n.opts.Config.P2P.PSK; k != "" {
		b, err := hex.DecodeString(strings.TrimPrefix(k, "0x"))
		if err != nil {
			return nil, fmt.Errorf("p2p.psk: %w", err)
		}
		psk = b
	}
	cfg := p2p.Config{
		PrivKey:  n.opts.Key.Bytes(),
		Listen:   []string{n.opts.Config.P2P.Listen},
		Peers:    n.opts.Config.P2P.Peers,
		Allowed:  allowed,
		PSK:      psk,
		FullMesh: n.opts.Config.P2P.FullMesh,
		ChainID:  g.ChainID,
		Validators: map[p2p.Topic]p2p.Validator{
			p2p.TopicEntries:   net.validateEntry,
			p2p.TopicConsensus: net.validateConsensus,
		},
		OnConnect:    func(peer.ID) { n.metrics.Peers(int(net.connected.Add(1))) },
		OnDisconnect: func(peer.ID) { n.metrics.Peers(int(net.connected.Add(-1))) },
		// A proposal carries a whole block.
		MaxMessageSize: g.Params.MaxBlockBytes + 1<<20,
		// Shorter than p2p's default from when a re-published vote was the
		// same bytes as the first and had to wait out the TTL; the
		// publication number (consensusPayload) makes each re-publish new
		// now. A message delivered twice is harmless: the core and the
		// mempool drop duplicates.
		SeenTTL: 3 * time.Second,
		Logger:  n.log.With("component", "p2p"),
		// Refused peers are cheap and logged at a bounded rate (issue #10).
		RefusedBackoff:     n.opts.Config.P2P.RefusedBackoff,
		RefusalLogInterval: n.opts.Config.P2P.RefusalLogInterval,
		MaxConnsPerPeer:    n.opts.Config.P2P.MaxConnsPerPeer,
	}
	h, err := p2p.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	net.host = h
	h.ServeSync(net.serveRange)
	if err := h.Subscribe(p2p.TopicEntries, net.onEntry); err != nil {
		h.Close()
		return nil, err
	}
	if err := h.Subscribe(p2p.TopicConsensus, net.onConsensus); err != nil {
		h.Close()
		return nil, err
	}
	outCtx, stop := context.WithCancel(ctx)
	net.stopOut, net.outDone = stop, make(chan struct{})
	go func() {
		defer close(net.outDone)
		net.out.run(outCtx, net.sendEntries)
	}()
	return net, nil
}

// validateEntry admits a batch of authentic entries (see outbox). Whether
// one fits the state is left to the proposer and the mempool's pruning: a
// peer may have committed the block that makes an entry valid before this
// node has. One entry that is not authentic rejects the batch: an honest
// node gossips only entries it has authenticated. The signatures of a
// batch are checked on all cores at once, as gossip checks those of
// separate messages.
func (p *p2pNetwork) validateEntry(from peer.ID, data []byte) p2p.Verdict {
	if from == p.self {
		return p2p.Accept // queue checked them before publishing
	}
	es, err := decodeEntryBatch(data)
	if err != nil {
		return p2p.Reject
	}
	fresh := es[:0]
	for _, e := range es {
		if !p.n.mempool.Known(e.Hash()) { // queued or committed: nothing new to forward
			fresh = append(fresh, e)
		}
	}
	if len(fresh) == 0 {
		return p2p.Ignore
	}
	if onAllCores(len(fresh), func(i int) error { return p.n.machine.Authenticate(fresh[i]) }) != nil {
		return p2p.Reject
	}
	return p2p.Accept
}

func (p *p2pNetwork) onEntry(_ peer.ID, data []byte) {
	es, err := decodeEntryBatch(data)
	if err != nil {
		return
	}
	head, err := p.n.store.Head()
	if err != nil {
		p.n.log.Debug("gossiped entries not queued", "err", err)
		return
	}
	for _, e := range es {
		if err := p.n.mempool.Add(e, head); err != nil {
			p.n.log.Debug("gossiped entry not queued", "err", err)
		}
	}
}

// validateConsensus admits proposals and votes signed by validators, and
// proposals only with the body their block's header commits to.
// Height is not judged here: a message from ahead is how a node learns it
// must catch up, and the core ignores what is behind.
func (p *p2pNetwork) validateConsensus(from peer.ID, data []byte) p2p.Verdict {
	m, err := decodeConsensus(data)
	if err != nil {
		return p2p.Reject
	}
	chainID, vals := p.n.machine.Genesis().ChainID, p.n.machine.Validators()
	switch {
	case m.Vote != nil:
		if !vals.Has(m.Vote.Validator) || p.n.machine.VerifyVote(m.Vote) != nil {
			return p2p.Reject
		}
	case m.Proposal != nil:
		if m.Proposal.Verify(chainID, vals.Proposer(m.Proposal.Height, m.Proposal.Round)) != nil {
			return p2p.Reject
		}
		// The proposal's signature covers the block hash, the header's: a
		// copy whose body a relay changed verifies as well. No honest peer
		// forwards one, so it is refused here, before it is passed on or
		// reaches the core, and the relay's score pays for it.
		// This node's own proposals carry the block it built, which is
		// whole by construction; re-publishing them must not cost an
		// entries root each time.
		if from != p.self && p.n.app.wholeBlock(&m.Proposal.Block) != nil {
			return p2p.Reject
		}
	}
	return p2p.Accept
}

func (p *p2pNetwork) onConsensus(from peer.ID, data []byte) {
	if from == p.self {
		return // the core has applied its own messages already
	}
	m, err := decodeConsensus(data)
	if err != nil || p.n.driver == nil {
		return
	}
	p.n.driver.Deliver(m, from.String())
}

// serveRange answers block sync from the store.
func (p *p2pNetwork) serveRange(from, to uint64) ([][]byte, error) {
	head, err := p.n.store.Head()
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for h := from; h <= min(to, head); h++ {
		b, err := p.n.store.Block(h)
		if err != nil {
			return nil, err
		}
		c, err := p.n.store.Commit(h)
		if err != nil {
			return nil, err
		}
		rec, err := rlp.EncodeToBytes(&syncRecord{Block: b, Commit: c})
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// FetchBlocks implements Network.
func (p *p2pNetwork) FetchBlocks(ctx context.Context, from string, lo, hi uint64) ([]BlockRecord, error) {
	id, err := peer.Decode(from)
	if err != nil {
		return nil, fmt.Errorf("peer %q: %w", from, err)
	}
	raw, err := p.host.FetchRange(ctx, id, lo, hi)
	if errors.Is(err, p2p.ErrNoRecords) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]BlockRecord, 0, len(raw))
	for i, b := range raw {
		var rec syncRecord
		if err := rlp.DecodeBytes(b, &rec); err != nil {
			return nil, fmt.Errorf("block %d from %s: %w", lo+uint64(i), from, err)
		}
		out = append(out, BlockRecord{Block: rec.Block, Commit: rec.Commit})
	}
	return out, nil
}

// Peers implements Network: the validators connected now.
func (p *p2pNetwork) Peers() []ledger.Address {
	var out []ledger.Address
	for _, id := range p.host.Peers() {
		if a, ok := p.byPeer[id]; ok {
			out = append(out, a)
		}
	}
	return out
}

// PeerIDs implements Network.
func (p *p2pNetwork) PeerIDs() []string {
	var out []string
	for _, id := range p.host.Peers() {
		out = append(out, id.String())
	}
	return out
}

// publishEntry queues e for the next entries batch.
func (p *p2pNetwork) publishEntry(e ledger.Entry) {
	b, err := rlp.EncodeToBytes(&e)
	if err != nil {
		p.n.log.Debug("entry not gossiped", "err", err)
		return
	}
	p.out.add(b)
}

// sendEntries gossips one batch.
func (p *p2pNetwork) sendEntries(batch []rlp.RawValue) {
	b, err := encodeEntryBatch(batch)
	if err == nil {
		err = p.host.Publish(p2p.TopicEntries, b)
	}
	if err != nil {
		p.n.log.Debug("entries not gossiped", "entries", len(batch), "err", err)
	}
}

func (p *p2pNetwork) publishConsensus(m consensus.Message) {
	b, err := p.consensusPayload(m)
	if err == nil {
		err = p.host.Publish(p2p.TopicConsensus, b)
	}
	if err != nil {
		p.n.log.Debug("consensus message not gossiped", "msg", m.String(), "err", err)
	}
}

func (p *p2pNetwork) close() error {
	p.stopOut()
	<-p.outDone
	return p.host.Close()
}
