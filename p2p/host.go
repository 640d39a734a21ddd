package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// ErrClosed is returned by the methods of a Host after Close.
var ErrClosed = errors.New("p2p host is closed")

// connEventBuffer is how many connectedness changes may queue for the
// goroutine that runs the hooks and wakes the redialers before libp2p blocks.
const connEventBuffer = 256

// Host is a running libp2p node: its connections, gossip topics and block-sync
// protocol. Its methods are safe for concurrent use.
type Host struct {
	cfg    Config
	host   host.Host
	gater  *allowList
	mesh   *meshTracer
	topics map[Topic]*pubsub.Topic // fixed after New
	static map[peer.ID]*staticPeer // fixed after New
	events event.Subscription

	// ctx ends at Close; every goroutine of the Host watches it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	subscribed map[Topic]bool

	scoresMu sync.Mutex
	scores   map[peer.ID]float64

	// syncSlots bounds the block-sync requests served at once.
	syncSlots chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// New starts a host: it listens on cfg.Listen, joins and relays both gossip
// topics, and begins dialling cfg.Peers in the background. ctx is used only
// for its values; the host runs until Close.
func New(ctx context.Context, cfg Config) (*Host, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	key, err := identityKey(cfg.PrivKey)
	if err != nil {
		return nil, fmt.Errorf("%w: PrivKey: %w", ErrConfig, err)
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: PrivKey: %w", ErrConfig, err)
	}
	gater := newAllowListWith(cfg.Allowed, cfg.Logger, cfg.RefusedBackoff, cfg.RefusalLogInterval, cfg.now)
	static, err := cfg.staticPeers(self, gater)
	if err != nil {
		return nil, err
	}
	for _, sp := range static {
		gater.trust(sp.Addrs)
	}
	rm, err := resourceManager(cfg.MaxConnsPerPeer)
	if err != nil {
		return nil, err
	}

	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, muxer(cfg.KeepAlive, cfg.KeepAliveTimeout)),
		libp2p.ConnectionGater(gater),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		// libp2p's metrics register in the global Prometheus registry, which
		// would tie every host of a process (and of a test) together.
		libp2p.DisableMetrics(),
		// Peers are configured, never discovered, so what a peer claims to see
		// as our address is of no use.
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.UserAgent("sagachain"),
	}
	if len(cfg.Listen) > 0 {
		opts = append(opts, libp2p.ListenAddrStrings(cfg.Listen...))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	if cfg.PSK != nil {
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(slices.Clone(cfg.PSK))))
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("p2p: start host: %w", err)
	}

	// The host keeps no copy of the secret beyond libp2p's own.
	cfg.PrivKey = nil
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Host{
		cfg:        cfg,
		host:       lh,
		gater:      gater,
		topics:     make(map[Topic]*pubsub.Topic, len(topics)),
		static:     make(map[peer.ID]*staticPeer, len(static)),
		ctx:        hctx,
		cancel:     cancel,
		subscribed: make(map[Topic]bool, len(topics)),
		syncSlots:  make(chan struct{}, maxConcurrentSyncServes),
	}
	fail := func(err error) (*Host, error) {
		cancel()
		if h.events != nil {
			h.events.Close()
		}
		lh.Close()
		return nil, err
	}
	// Subscribe before dialling, so that no connection event is missed.
	h.events, err = lh.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged), eventbus.BufSize(connEventBuffer))
	if err != nil {
		return fail(fmt.Errorf("p2p: subscribe to connection events: %w", err))
	}
	if err := h.startGossip(); err != nil {
		return fail(err)
	}
	h.addStaticPeers(static)
	h.wg.Add(1)
	go h.watchConnections()
	h.startRedialers(static)
	return h, nil
}

// muxer returns libp2p's yamux transport with a keepalive of its own: a
// ping after keepAlive without a frame from the peer, and the connection
// closed when the pong or a write takes longer than timeout (see
// DefaultKeepAlive for why yamux's defaults are too slow).
func muxer(keepAlive, timeout time.Duration) *yamux.Transport {
	c := *yamux.DefaultTransport.Config()
	c.EnableKeepAlive = true
	c.KeepAliveInterval = keepAlive
	c.ConnectionWriteTimeout = timeout
	return (*yamux.Transport)(&c)
}

// resourceManager is libp2p's resource manager with its default limits,
// scaled to the machine as libp2p.New would, but at most maxConnsPerPeer
// connections to one peer: a permissioned network needs a few, and a
// peer opening more is not one of its nodes. libp2p's default limits per
// IP and its connection rate limit stay (they exempt loopback, which the
// gater's backoff covers).
func resourceManager(maxConnsPerPeer int) (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	n := rcmgr.LimitVal(maxConnsPerPeer)
	partial := rcmgr.PartialLimitConfig{PeerDefault: rcmgr.ResourceLimits{Conns: n, ConnsInbound: n, ConnsOutbound: n}}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(scaling.AutoScale())))
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	return rm, nil
}

// Close stops the host: it closes every connection and stream, stops the
// redialers and the gossip handlers, and waits for them. It is safe to call
// more than once; it must not be called from a gossip handler or a hook.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		h.cancel()
		// The host's own goroutines stop before libp2p's: a redialer that
		// dialled while the swarm closed could reach a dial worker after
		// the swarm had dropped its transports, which panics inside
		// libp2p (swarm.nonProxyAddr, go-libp2p v0.51).
		h.wg.Wait()
		if err := h.host.Close(); err != nil {
			h.closeErr = fmt.Errorf("p2p: close host: %w", err)
		}
		h.events.Close()
	})
	return h.closeErr
}

// ID returns the host's peer id.
func (h *Host) ID() peer.ID {
	return h.host.ID()
}

// Addrs returns the addresses the host listens on, each ending in
// /p2p/<peer id>, in the form Config.Peers of another node takes.
func (h *Host) Addrs() []string {
	suffix := "/p2p/" + h.host.ID().String()
	addrs := h.host.Addrs()
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String()+suffix)
	}
	slices.Sort(out)
	return out
}

// Peers returns the peers this host has a connection to, sorted. They are all
// in Config.Allowed, since the gater admits no others.
func (h *Host) Peers() []peer.ID {
	ps := h.host.Network().Peers()
	slices.Sort(ps)
	return ps
}

// isClosed reports whether Close has begun.
func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}
