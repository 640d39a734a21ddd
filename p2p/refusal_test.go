package p2p

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// logRecords is a slog handler that keeps every record.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// refusals returns the Info records about refused connections, with their
// "suppressed" counts.
func (l *logRecords) refusals() (n int, suppressed []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.Level < slog.LevelInfo || !strings.Contains(r.Message, "refused") {
			continue
		}
		n++
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "suppressed" {
				suppressed = append(suppressed, a.Value.Int64())
			}
			return true
		})
	}
	return n, suppressed
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// dialLoop has x dial a n times, each attempt bounded, as a hostile peer
// that ignores every backoff would.
func dialLoop(t *testing.T, x *Host, a *Host, n int) {
	t.Helper()
	info := peer.AddrInfo{ID: a.ID(), Addrs: a.host.Addrs()}
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = x.host.Connect(ctx, info)
		cancel()
		// Forget the failure, or libp2p's own dial backoff would keep the
		// loop from reaching a at all.
		x.host.Network().ClosePeer(a.ID())
		x.host.Network().(*swarm.Swarm).Backoff().Clear(a.ID())
	}
}

// Finding (#10): "each validator logs ~140 refused lines per second". A
// host outside the allow list dials a real host 60 times, over the same IP
// as an allowed peer (as on a testnet, where everything is 127.0.0.1, so
// no refusal can happen before the handshake): every dial is refused, and
// the refusals make one log line per peer per interval, the next one
// saying how many it stands for. On a2a74ac every refusal was a line.
func TestRefusalsAreLoggedAtABoundedRate(t *testing.T) {
	keyA, idA := testKey(t, "a")
	keyB, idB := testKey(t, "b")
	keyX, idX := testKey(t, "x")
	logs := &logRecords{}
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	cfgA := testConfig(keyA, idB)
	cfgA.Logger, cfgA.now = slog.New(logs), clock.Now
	events := newPeerEvents()
	cfgA.OnConnect, cfgA.OnDisconnect = events.onConnect, events.onDisconnect
	a := startHost(t, cfgA)
	cfgB := testConfig(keyB, idA)
	cfgB.Peers = a.Addrs()
	b := startHost(t, cfgB)
	eventually(t, "b to connect to a", func() bool { return connected(a, idB) && connected(b, idA) })
	x := startHost(t, testConfig(keyX, idA))

	const dials = 60
	dialLoop(t, x, a, dials)
	if got := a.gater.refusedHandshakes.Load() + a.gater.refusedAccepts.Load(); got < dials {
		t.Errorf("a refused %d of x's %d dials", got, dials)
	}
	if c, _ := events.counts(idX); c != 0 || connected(a, idX) {
		t.Errorf("a admitted x (%d connect events)", c)
	}
	if n, _ := logs.refusals(); n != 1 {
		t.Fatalf("%d dials refused within one log interval made %d log lines, want 1", dials, n)
	}

	clock.Advance(DefaultRefusalLogInterval)
	dialLoop(t, x, a, 1)
	n, suppressed := logs.refusals()
	if n != 2 || len(suppressed) != 2 || suppressed[1] < dials-1 {
		t.Errorf("after the interval: %d lines, suppressed counts %v; want 2 lines, the second standing for the %d unlogged", n, suppressed, dials-1)
	}
	// The allowed peer is untouched by all this.
	if !connected(a, idB) {
		t.Error("a lost b while refusing x")
	}
}

// Where no allowed peer uses the IP, a refused peer's later dials are
// refused at accept, before any handshake, for the backoff window; after
// it, a new handshake is tried (and refused) once.
func TestRefusedAddressIsBackedOffBeforeTheHandshake(t *testing.T) {
	keyA, idA := testKey(t, "a")
	_, idB := testKey(t, "b")
	keyX, _ := testKey(t, "x")
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	cfgA := testConfig(keyA, idB)
	cfgA.now = clock.Now
	a := startHost(t, cfgA)
	x := startHost(t, testConfig(keyX, idA))

	const dials = 30
	dialLoop(t, x, a, dials)
	if hs, acc := a.gater.refusedHandshakes.Load(), a.gater.refusedAccepts.Load(); hs != 1 || hs+acc < dials {
		t.Errorf("%d dials: %d refused after a handshake, %d at accept; want 1 handshake and the rest refused at accept", dials, hs, acc)
	}
	clock.Advance(DefaultRefusedBackoff)
	dialLoop(t, x, a, 1)
	if hs := a.gater.refusedHandshakes.Load(); hs != 2 {
		t.Errorf("after the backoff window: %d handshakes refused, want 2", hs)
	}
}

// Finding (#10): "a peer with a key outside genesis redials ~350 times/s".
// x, outside a's allow list, keeps a among its static peers: its redialer
// completes the handshake, then a closes the connection. Such a dial now
// counts as failed, so x waits its backoff (a minute here) instead of
// redialling at once. On a2a74ac it redialled in a loop.
func TestRefusedStaticPeerIsRedialledWithBackoff(t *testing.T) {
	keyA, idA := testKey(t, "a")
	keyB, idB := testKey(t, "b")
	keyX, _ := testKey(t, "x")
	a := startHost(t, testConfig(keyA, idB))
	cfgB := testConfig(keyB, idA)
	cfgB.Peers = a.Addrs()
	b := startHost(t, cfgB) // makes 127.0.0.1 an allowed peer's IP: no refusal at accept
	eventually(t, "b to connect to a", func() bool { return connected(a, idB) && connected(b, idA) })
	cfgX := testConfig(keyX, idA)
	cfgX.Peers = a.Addrs()
	cfgX.DialBackoff, cfgX.DialBackoffMax = time.Minute, time.Minute
	startHost(t, cfgX)
	eventually(t, "a to refuse x", func() bool { return a.gater.refusedHandshakes.Load() > 0 })
	time.Sleep(time.Second)
	if n := a.gater.refusedHandshakes.Load() + a.gater.refusedAccepts.Load(); n > 2 {
		t.Errorf("x dialled a %d times within a second of its first refusal; want at most 2 with a one-minute backoff", n)
	}
}

// The gater alone: the log budget holds for peers that change their id at
// every dial, and an allowed peer's IP is never refused at accept.
func TestGaterBoundsRefusalsOfChangingIDs(t *testing.T) {
	_, allowed := testKey(t, "allowed")
	logs := &logRecords{}
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	g := newAllowListWith([]peer.ID{allowed}, slog.New(logs), time.Minute, time.Minute, clock.Now)
	bad := &tcpConnAddrs{local: ma.StringCast("/ip4/10.0.0.1/tcp/1"), remote: ma.StringCast("/ip4/10.0.0.9/tcp/4000")}
	good := &tcpConnAddrs{local: bad.local, remote: ma.StringCast("/ip4/10.0.0.7/tcp/4000")}
	for i := range 100 {
		_, id := testKey(t, "stranger "+string(rune('a'+i%26))+string(rune('a'+i/26)))
		if g.InterceptSecured(network.DirInbound, id, bad) {
			t.Fatal("a stranger was admitted")
		}
	}
	if n, _ := logs.refusals(); n != maxRefusalLines {
		t.Errorf("100 strangers in one interval made %d lines, want the budget of %d", n, maxRefusalLines)
	}
	if g.InterceptAccept(bad) {
		t.Error("the strangers' IP was admitted at accept within the backoff window")
	}
	if !g.InterceptSecured(network.DirInbound, allowed, good) || !g.InterceptAccept(good) {
		t.Error("an allowed peer's IP was refused")
	}
	// An allowed peer seen at the strangers' IP clears it.
	if !g.InterceptSecured(network.DirInbound, allowed, bad) || !g.InterceptAccept(bad) {
		t.Error("an IP shared with an allowed peer was refused at accept")
	}
}
