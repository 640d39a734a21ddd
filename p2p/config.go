package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Defaults applied by New to the zero fields of a Config.
const (
	// DefaultDialTimeout bounds one attempt to connect to a static peer.
	DefaultDialTimeout = 10 * time.Second
	// DefaultDialBackoff is the wait after the first failed dial of a static
	// peer; it doubles with every further failure.
	DefaultDialBackoff = 500 * time.Millisecond
	// DefaultDialBackoffMax caps the wait between dials of a static peer.
	DefaultDialBackoffMax = 30 * time.Second
	// DefaultMaxMessageSize bounds a gossip payload. A proposal carries a whole
	// block, so the block builder must keep blocks below it.
	DefaultMaxMessageSize = 4 << 20
	// DefaultSeenTTL is how long a message id is remembered. It must exceed
	// gossipsub's message-cache window (5 heartbeats of 1 s), or a message could
	// come back through gossip after being forgotten and be delivered twice.
	// Within it, publishing the same bytes again is a no-op; after it, the
	// bytes go out again, which lets a periodic re-publish reach peers that
	// were away.
	DefaultSeenTTL = 10 * time.Second
	// DefaultSyncTimeout bounds one block-sync exchange on either side.
	DefaultSyncTimeout = 15 * time.Second
	// DefaultKeepAlive is how long a connection may stay silent before the
	// host pings the peer over it, and DefaultKeepAliveTimeout how long the
	// answer (or any write) may take before the connection is closed as
	// dead. yamux's own 30s and 10s let a link that was cut without a
	// reset (a network disconnect, a paused container, a host gone) count
	// as connected for some 40s: every block-sync request to the peer then
	// hangs for the full SyncTimeout, gossip to it is queued and dropped,
	// and the node neither redials it nor counts it out as a proposer.
	DefaultKeepAlive        = 2 * time.Second
	DefaultKeepAliveTimeout = 5 * time.Second
	// DefaultSyncMaxRecords caps the records of one block-sync response.
	DefaultSyncMaxRecords = 256
	// DefaultSyncMaxBytes caps the record bytes of one block-sync response.
	DefaultSyncMaxBytes = 8 << 20
	// DefaultRefusedBackoff is how long the IP of a refused peer is refused
	// before its handshake (p2p.refused_backoff).
	DefaultRefusedBackoff = time.Minute
	// DefaultRefusalLogInterval is how often the refusals of one peer are
	// logged at most (p2p.refusal_log_interval).
	DefaultRefusalLogInterval = time.Minute
	// DefaultMaxConnsPerPeer bounds the connections to one peer, in the
	// resource manager (p2p.max_conns_per_peer). Two hosts dialling each
	// other at once hold two for a moment; a few more leave room for a
	// reconnect while the old connection closes.
	DefaultMaxConnsPerPeer = 8
	// stableConn is how long a connection must last for its dial to count
	// as a success: one that the other side closes sooner (it refuses our
	// key) counts as a failed dial, so that the redial backs off.
	stableConn = 5 * time.Second
)

// pskLen is the length of a libp2p private-network key.
const pskLen = 32

// ErrConfig is wrapped by every error New returns for a bad Config.
var ErrConfig = errors.New("invalid p2p configuration")

// Config describes a Host. Zero durations and sizes take the defaults above.
type Config struct {
	// PrivKey is the node's secp256k1 private key, 32 big-endian bytes. The
	// host's peer id derives from it (see PeerID).
	PrivKey []byte
	// Listen are the multiaddrs to accept connections on, for example
	// /ip4/0.0.0.0/tcp/26656. Only TCP is supported. Empty means the host
	// only dials out.
	Listen []string
	// Peers are the multiaddrs, each ending in /p2p/<peer id>, of the nodes to
	// keep connected to. Every one must be in Allowed. Several addresses of one
	// peer id are merged.
	Peers []string
	// Allowed are the only peer ids that may connect to or be dialled by this
	// host: the genesis validators and the configured observers. Other nodes
	// are refused after the security handshake.
	Allowed []peer.ID
	// PSK is an optional 32-byte private-network key. When set, only hosts
	// with the same key can even begin a handshake with this one.
	PSK []byte
	// FullMesh says that every node this host gossips with peers with every
	// other, as the validators of a testnet do. A host then keeps no gossip
	// mesh and relays nothing: its publications already reach every peer
	// directly (flood publishing), and relaying would only send each
	// message again over links that carried it. A peer that some publisher
	// is not connected to still gets the message, through gossip's
	// IHAVE/IWANT within a heartbeat. Leave it false when the peers are not
	// all connected to each other.
	FullMesh bool
	// ChainID names the chain; it is part of every topic and protocol id, so
	// nodes of different chains never exchange messages.
	ChainID string
	// Validators judge every gossip message before it is delivered or
	// forwarded, one per topic; both topics must have one. They may be called
	// before New returns, as soon as a peer connects.
	Validators map[Topic]Validator
	// OnConnect, when set, is called when the first connection to a peer
	// opens; OnDisconnect when its last connection closes. They are called in
	// order from one goroutine, must not block, and may be called before New
	// returns, so they must not use the Host that New is about to return.
	OnConnect    func(peer.ID)
	OnDisconnect func(peer.ID)
	// Logger receives background events (dial failures, refused peers). Nil
	// discards them.
	Logger *slog.Logger

	// DialTimeout bounds one dial of a static peer.
	DialTimeout time.Duration
	// DialBackoff and DialBackoffMax bound the jittered exponential wait
	// between dials of a static peer that is down.
	DialBackoff    time.Duration
	DialBackoffMax time.Duration
	// MaxMessageSize bounds a gossip payload in bytes.
	MaxMessageSize int
	// SeenTTL is how long gossip remembers a message id (see DefaultSeenTTL).
	SeenTTL time.Duration
	// SyncTimeout bounds one block-sync request on either side.
	SyncTimeout time.Duration
	// KeepAlive and KeepAliveTimeout bound how long a dead connection
	// counts as open (see DefaultKeepAlive): at most about their sum.
	KeepAlive        time.Duration
	KeepAliveTimeout time.Duration
	// SyncMaxRecords and SyncMaxBytes cap one block-sync response, both the
	// ones this host serves and the ones it accepts.
	SyncMaxRecords int
	SyncMaxBytes   int

	// RefusedBackoff is how long an IP that presented a peer outside
	// Allowed is refused at accept, before any handshake, unless an
	// allowed peer uses it too.
	RefusedBackoff time.Duration
	// RefusalLogInterval is the least time between two log lines about
	// refusals of one peer; each line says how many it stands for.
	RefusalLogInterval time.Duration
	// MaxConnsPerPeer bounds the connections to one peer (the resource
	// manager's per-peer limit).
	MaxConnsPerPeer int

	// now is the gater's clock; nil is time.Now. Tests set it.
	now func() time.Time
}

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.DialBackoff, DefaultDialBackoff)
	setDefault(&c.DialBackoffMax, DefaultDialBackoffMax)
	setDefault(&c.MaxMessageSize, DefaultMaxMessageSize)
	setDefault(&c.SeenTTL, DefaultSeenTTL)
	setDefault(&c.SyncTimeout, DefaultSyncTimeout)
	setDefault(&c.KeepAlive, DefaultKeepAlive)
	setDefault(&c.KeepAliveTimeout, DefaultKeepAliveTimeout)
	setDefault(&c.SyncMaxRecords, DefaultSyncMaxRecords)
	setDefault(&c.SyncMaxBytes, DefaultSyncMaxBytes)
	setDefault(&c.RefusedBackoff, DefaultRefusedBackoff)
	setDefault(&c.RefusalLogInterval, DefaultRefusalLogInterval)
	setDefault(&c.MaxConnsPerPeer, DefaultMaxConnsPerPeer)
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

func setDefault[T time.Duration | int](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// check reports the first problem of a defaulted Config, naming the field.
func (c *Config) check() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	if c.ChainID == "" {
		return bad("ChainID", "empty")
	}
	if c.PSK != nil && len(c.PSK) != pskLen {
		return bad("PSK", "want %d bytes, got %d", pskLen, len(c.PSK))
	}
	for i, s := range c.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return bad(fmt.Sprintf("Listen[%d]", i), "%q is not a multiaddr: %v", s, err)
		}
	}
	for i, id := range c.Allowed {
		if err := id.Validate(); err != nil {
			return bad(fmt.Sprintf("Allowed[%d]", i), "%v", err)
		}
	}
	for _, t := range topics {
		if c.Validators[t] == nil {
			return bad("Validators", "no validator for the %s topic", t)
		}
	}
	for t := range c.Validators {
		if !t.valid() {
			return bad("Validators", "unknown topic %d", int(t))
		}
	}
	durations := []struct {
		name string
		v    time.Duration
	}{
		{"DialTimeout", c.DialTimeout},
		{"DialBackoff", c.DialBackoff},
		{"DialBackoffMax", c.DialBackoffMax},
		{"SeenTTL", c.SeenTTL},
		{"SyncTimeout", c.SyncTimeout},
		{"KeepAlive", c.KeepAlive},
		{"KeepAliveTimeout", c.KeepAliveTimeout},
		{"RefusedBackoff", c.RefusedBackoff},
		{"RefusalLogInterval", c.RefusalLogInterval},
	}
	for _, d := range durations {
		if d.v < 0 {
			return bad(d.name, "negative duration %s", d.v)
		}
	}
	if c.DialBackoffMax < c.DialBackoff {
		return bad("DialBackoffMax", "%s is below DialBackoff %s", c.DialBackoffMax, c.DialBackoff)
	}
	sizes := []struct {
		name string
		v    int
	}{
		{"MaxMessageSize", c.MaxMessageSize},
		{"SyncMaxRecords", c.SyncMaxRecords},
		{"SyncMaxBytes", c.SyncMaxBytes},
		{"MaxConnsPerPeer", c.MaxConnsPerPeer},
	}
	for _, s := range sizes {
		if s.v < 0 {
			return bad(s.name, "negative size %d", s.v)
		}
	}
	return nil
}

// staticPeers parses c.Peers, merging the addresses of repeated peer ids and
// keeping the order of first appearance. self is the host's own id, which may
// not appear.
func (c *Config) staticPeers(self peer.ID, allowed *allowList) ([]peer.AddrInfo, error) {
	var (
		out   []peer.AddrInfo
		index = map[peer.ID]int{}
	)
	for i, s := range c.Peers {
		field := fmt.Sprintf("Peers[%d]", i)
		addr, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %q is not a multiaddr: %v", ErrConfig, field, s, err)
		}
		info, err := peer.AddrInfoFromP2pAddr(addr)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %q: want an address ending in /p2p/<peer id>: %v", ErrConfig, field, s, err)
		}
		if len(info.Addrs) == 0 {
			return nil, fmt.Errorf("%w: %s: %q has a peer id but no transport address", ErrConfig, field, s)
		}
		if info.ID == self {
			return nil, fmt.Errorf("%w: %s: %q is this node itself", ErrConfig, field, s)
		}
		if !allowed.allowed(info.ID) {
			return nil, fmt.Errorf("%w: %s: peer %s is not in Allowed, so it could never be dialled", ErrConfig, field, info.ID)
		}
		if j, ok := index[info.ID]; ok {
			out[j].Addrs = append(out[j].Addrs, info.Addrs...)
			continue
		}
		index[info.ID] = len(out)
		out = append(out, *info)
	}
	return out, nil
}
