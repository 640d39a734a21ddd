package p2p

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestPeerIDMatchesPubkey(t *testing.T) {
	key, id := testKey(t, "identity")
	ecdsaKey, err := ethcrypto.ToECDSA(key)
	if err != nil {
		t.Fatal(err)
	}
	// The ledger derives public keys with go-ethereum; both of its encodings
	// must give the host's id.
	for name, pub := range map[string][]byte{
		"compressed":   ethcrypto.CompressPubkey(&ecdsaKey.PublicKey),
		"uncompressed": ethcrypto.FromECDSAPub(&ecdsaKey.PublicKey),
	} {
		got, err := PeerIDFromPubkey(pub)
		if err != nil {
			t.Fatalf("PeerIDFromPubkey(%s): %v", name, err)
		}
		if got != id {
			t.Errorf("PeerIDFromPubkey(%s) = %s, want PeerID(key) = %s", name, got, id)
		}
	}
	h := startHost(t, testConfig(key))
	if h.ID() != id {
		t.Errorf("host id %s, want PeerID(key) = %s", h.ID(), id)
	}
	for _, a := range h.Addrs() {
		if !strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(a, "/p2p/"+id.String()) {
			t.Errorf("Addrs has %q, want /ip4/127.0.0.1/tcp/<port>/p2p/%s", a, id)
		}
	}
	if len(h.Addrs()) == 0 {
		t.Error("Addrs is empty for a listening host")
	}
}

func TestPeerIDRejectsBadKeys(t *testing.T) {
	order := ethcrypto.S256().Params().N.FillBytes(make([]byte, 32))
	for name, key := range map[string][]byte{
		"short":           make([]byte, 31),
		"long":            make([]byte, 33),
		"zero":            make([]byte, 32),
		"order":           order,
		"above the order": bytes.Repeat([]byte{0xff}, 32),
	} {
		if id, err := PeerID(key); err == nil {
			t.Errorf("PeerID(%s) = %s, want an error", name, id)
		}
	}
	notOnCurve := append([]byte{0x02}, bytes.Repeat([]byte{0xff}, 32)...)
	for name, pub := range map[string][]byte{
		"empty":        nil,
		"32 bytes":     make([]byte, 32),
		"not on curve": notOnCurve,
	} {
		if id, err := PeerIDFromPubkey(pub); err == nil {
			t.Errorf("PeerIDFromPubkey(%s) = %s, want an error", name, id)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	key, self := testKey(t, "self")
	_, other := testKey(t, "other")
	otherAddr := "/ip4/127.0.0.1/tcp/1/p2p/" + other.String()
	cases := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"no chain id", func(c *Config) { c.ChainID = "" }, "ChainID"},
		{"short key", func(c *Config) { c.PrivKey = key[:31] }, "PrivKey"},
		{"zero key", func(c *Config) { c.PrivKey = make([]byte, 32) }, "PrivKey"},
		{"short psk", func(c *Config) { c.PSK = make([]byte, 31) }, "PSK"},
		{"bad listen", func(c *Config) { c.Listen = []string{"127.0.0.1:26656"} }, "Listen[0]"},
		{"peer without id", func(c *Config) { c.Peers = []string{"/ip4/127.0.0.1/tcp/1"} }, "Peers[0]"},
		{"peer without address", func(c *Config) { c.Peers = []string{"/p2p/" + other.String()} }, "Peers[0]"},
		{"peer not allowed", func(c *Config) { c.Allowed = nil; c.Peers = []string{otherAddr} }, "Peers[0]"},
		{"peer is self", func(c *Config) { c.Peers = []string{otherAddr, "/ip4/127.0.0.1/tcp/2/p2p/" + self.String()} }, "Peers[1]"},
		{"bad allowed id", func(c *Config) { c.Allowed = []peer.ID{other, ""} }, "Allowed[1]"},
		{"no consensus validator", func(c *Config) { delete(c.Validators, TopicConsensus) }, "consensus"},
		{"unknown topic validator", func(c *Config) { c.Validators[Topic(9)] = acceptAll }, "unknown topic 9"},
		{"negative timeout", func(c *Config) { c.SyncTimeout = -time.Second }, "SyncTimeout"},
		{"backoff above max", func(c *Config) { c.DialBackoff, c.DialBackoffMax = time.Minute, time.Second }, "DialBackoffMax"},
		{"negative size", func(c *Config) { c.SyncMaxBytes = -1 }, "SyncMaxBytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(key, other)
			tc.edit(&cfg)
			h, err := New(context.Background(), cfg)
			if err == nil {
				h.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("New = %v, want ErrConfig naming %q", err, tc.field)
			}
		})
	}
}

func TestGaterRefusesPeersOutsideAllowList(t *testing.T) {
	keyA, idA := testKey(t, "a")
	keyB, idB := testKey(t, "b")
	keyX, idX := testKey(t, "x")
	// a and b allow each other; x allows a, but a does not allow x.
	eventsA := newPeerEvents()
	cfgA := testConfig(keyA, idB)
	cfgA.OnConnect, cfgA.OnDisconnect = eventsA.onConnect, eventsA.onDisconnect
	a := newGossipNode(t, cfgA, false)
	cfgB := testConfig(keyB, idA)
	cfgB.Peers = a.Addrs()
	b := newGossipNode(t, cfgB, false)
	cfgX := testConfig(keyX, idA)
	cfgX.Peers = a.Addrs() // x keeps dialling a in the background, too
	x := newGossipNode(t, cfgX, false)
	eventually(t, "a and b to see each other on the entries topic", func() bool {
		return slices.Contains(a.TopicPeers(TopicEntries), idB) && slices.Contains(b.TopicPeers(TopicEntries), idA)
	})

	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	// x dials a. With the muxer negotiated inside the handshake, x may count
	// the connection as made before a has checked x's id; a then closes it,
	// so x holds it for a moment at most (and x's redialer keeps trying).
	_ = x.host.Connect(ctx, peer.AddrInfo{ID: idA, Addrs: a.host.Addrs()})
	eventually(t, "x to hold no connection to a", func() bool { return !connected(x.Host, idA) })
	// a dials x: a's gater refuses before dialling.
	if err := a.host.Connect(ctx, peer.AddrInfo{ID: idX, Addrs: x.host.Addrs()}); err == nil {
		t.Error("a connected to x, which it does not allow")
	}

	// Messages flow between a and b but never reach x or come from it.
	if err := x.Publish(TopicEntries, []byte("from x")); err != nil {
		t.Fatalf("x.Publish: %v", err)
	}
	if err := a.Publish(TopicEntries, []byte("a to all")); err != nil {
		t.Fatalf("a.Publish: %v", err)
	}
	if err := b.Publish(TopicEntries, []byte("b to all")); err != nil {
		t.Fatalf("b.Publish: %v", err)
	}
	b.got[TopicEntries].await(t, "b", "a to all")
	a.got[TopicEntries].await(t, "a", "b to all")
	if x.judged[TopicEntries].hasPrefix("a to") || x.judged[TopicEntries].hasPrefix("b to") {
		t.Error("x received a message from hosts that do not allow it")
	}
	if a.judged[TopicEntries].count("from x") > 0 || b.judged[TopicEntries].count("from x") > 0 {
		t.Error("a message from x reached an allowed host")
	}
	// a never admitted x, not even for a moment.
	if c, _ := eventsA.counts(idX); c != 0 || connected(a.Host, idX) {
		t.Errorf("a admitted x (%d connect events)", c)
	}
}

func TestGaterDecisions(t *testing.T) {
	_, allowed := testKey(t, "allowed")
	_, stranger := testKey(t, "stranger")
	g := newAllowList([]peer.ID{allowed}, slog.New(slog.DiscardHandler))
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/1")
	conn := &tcpConnAddrs{local: addr, remote: addr}
	for _, dir := range []network.Direction{network.DirInbound, network.DirOutbound} {
		if !g.InterceptSecured(dir, allowed, conn) {
			t.Errorf("gater refuses a secured %s connection of an allowed peer", dir)
		}
		if g.InterceptSecured(dir, stranger, conn) {
			t.Errorf("gater admits a secured %s connection of a peer outside the list", dir)
		}
	}
	if !g.InterceptPeerDial(allowed) || !g.InterceptAddrDial(allowed, addr) {
		t.Error("gater refuses to dial an allowed peer")
	}
	if g.InterceptPeerDial(stranger) || g.InterceptAddrDial(stranger, addr) {
		t.Error("gater lets us dial a peer outside the list")
	}
}

func TestPrivateNetworkKey(t *testing.T) {
	psk1, psk2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	keys := map[string][]byte{}
	var all []peer.ID
	for _, n := range []string{"a", "same", "other", "none"} {
		key, id := testKey(t, n)
		keys[n], all = key, append(all, id)
	}
	start := func(name string, psk []byte) *Host {
		cfg := testConfig(keys[name], all...)
		cfg.PSK = psk
		return startHost(t, cfg)
	}
	a := start("a", psk1)
	target := peer.AddrInfo{ID: a.ID(), Addrs: a.host.Addrs()}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()

	same := start("same", psk1)
	if err := same.dial(target); err != nil {
		t.Errorf("host with the same PSK: dial: %v", err)
	}
	for name, psk := range map[string][]byte{"other": psk2, "none": nil} {
		h := start(name, psk)
		// Without a PSK the dialler waits for an answer the other side never
		// sends; a short bound makes that a prompt failure too.
		short, cancel := context.WithTimeout(ctx, time.Second)
		err := h.host.Connect(short, target)
		cancel()
		if err == nil {
			t.Errorf("host with PSK %q connected to a host with another", name)
		}
		if connected(a, h.ID()) {
			t.Errorf("a is connected to the host with PSK %q", name)
		}
	}
	eventually(t, "a to see the host with the same PSK", func() bool { return connected(a, same.ID()) })
}

// tcpConnAddrs is the addresses of a connection, for calling the gater
// directly.
type tcpConnAddrs struct{ local, remote ma.Multiaddr }

func (c *tcpConnAddrs) LocalMultiaddr() ma.Multiaddr  { return c.local }
func (c *tcpConnAddrs) RemoteMultiaddr() ma.Multiaddr { return c.remote }
