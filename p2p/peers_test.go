package p2p

import (
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestRedialAfterPeerRestarts(t *testing.T) {
	keyA, idA := testKey(t, "a")
	keyB, idB := testKey(t, "b")
	b1, err := New(t.Context(), testConfig(keyB, idA))
	if err != nil {
		t.Fatalf("New(b): %v", err)
	}
	t.Cleanup(func() { b1.Close() })
	addrB := b1.Addrs()[0]

	events := newPeerEvents()
	cfgA := testConfig(keyA, idB)
	cfgA.Peers = []string{addrB}
	cfgA.DialBackoff, cfgA.DialBackoffMax = 20*time.Millisecond, 200*time.Millisecond
	cfgA.OnConnect, cfgA.OnDisconnect = events.onConnect, events.onDisconnect
	a := startHost(t, cfgA)
	eventually(t, "a to connect to b", func() bool { return connected(a, idB) })

	if err := b1.Close(); err != nil {
		t.Fatalf("Close(b): %v", err)
	}
	eventually(t, "a to see b go", func() bool {
		_, disconnects := events.counts(idB)
		return disconnects == 1 && !connected(a, idB)
	})

	// b comes back with the same key on the same address; a finds it without
	// being told.
	cfgB := testConfig(keyB, idA)
	cfgB.Listen = []string{strings.TrimSuffix(addrB, "/p2p/"+idB.String())}
	startHost(t, cfgB)
	eventually(t, "a to reconnect to the restarted b", func() bool {
		connects, _ := events.counts(idB)
		return connects == 2 && connected(a, idB)
	})
}

func TestStaticPeerConnectsOnce(t *testing.T) {
	// a dials b at start; both see the connection, and a's hook runs once.
	keyA, idA := testKey(t, "a")
	keyB, idB := testKey(t, "b")
	b := startHost(t, testConfig(keyB, idA))
	eventsA := newPeerEvents()
	cfgA := testConfig(keyA, idB)
	cfgA.Peers = b.Addrs()
	cfgA.OnConnect = eventsA.onConnect
	a := startHost(t, cfgA)
	eventually(t, "a and b to connect", func() bool { return connected(a, idB) && connected(b, idA) })
	if connects, _ := eventsA.counts(idB); connects != 1 {
		t.Errorf("a's OnConnect ran %d times for b, want 1", connects)
	}
	if got := a.Peers(); len(got) != 1 || got[0] != idB {
		t.Errorf("a.Peers() = %v, want [%s]", got, idB)
	}
}

func TestRedialDelay(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	prevCeil := time.Duration(0)
	for failures := range 100 {
		// The ceiling doubles from lo and stops at hi.
		ceil := hi
		if failures < 6 {
			ceil = min(lo<<failures, hi)
		}
		if ceil < prevCeil {
			t.Fatalf("ceiling shrank at %d failures", failures)
		}
		prevCeil = ceil
		seen := map[time.Duration]bool{}
		for range 200 {
			d := redialDelay(failures, lo, hi)
			if d < ceil/2 || d > ceil {
				t.Fatalf("redialDelay(%d) = %s, want within [%s, %s]", failures, d, ceil/2, ceil)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("redialDelay(%d) gave the same delay 200 times; want jitter", failures)
		}
	}
	// A failure count large enough to overflow a shift still gives the ceiling.
	if d := redialDelay(1<<20, time.Hour, 2*time.Hour); d < time.Hour || d > 2*time.Hour {
		t.Errorf("redialDelay(2^20, 1h, 2h) = %s, want within [1h, 2h]", d)
	}
}

func TestDialIgnoresSwarmBackoff(t *testing.T) {
	// libp2p refuses, for a few seconds, to redial a peer whose dial just
	// failed; a restarted validator must not wait for that.
	keyA, idA := testKey(t, "a")
	keyB, idB := testKey(t, "b")
	b1, err := New(t.Context(), testConfig(keyB, idA))
	if err != nil {
		t.Fatalf("New(b): %v", err)
	}
	listen := b1.host.Addrs()
	if err := b1.Close(); err != nil {
		t.Fatalf("Close(b): %v", err)
	}
	a := startHost(t, testConfig(keyA, idB))
	info := peer.AddrInfo{ID: idB, Addrs: listen}
	if err := a.dial(info); err == nil {
		t.Fatal("dial of a closed host succeeded")
	}
	cfgB := testConfig(keyB, idA)
	cfgB.Listen = []string{listen[0].String()}
	startHost(t, cfgB)
	if err := a.dial(info); err != nil {
		t.Errorf("dial right after a failed one: %v", err)
	}
}
