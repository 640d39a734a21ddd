package p2p

import (
	"context"
	"crypto/sha256"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// testChain is the chain id of every test host.
const testChain = "p2p-test"

// waitBound bounds every wait of the tests; it is a limit for a hung test,
// not an expectation of speed.
const waitBound = 15 * time.Second

// testKey derives a valid secp256k1 key from name, so every test host has a
// stable identity.
func testKey(t testing.TB, name string) ([]byte, peer.ID) {
	t.Helper()
	sum := sha256.Sum256([]byte("p2p test key " + name))
	key := sum[:]
	id, err := PeerID(key)
	if err != nil {
		t.Fatalf("key %s: %v", name, err)
	}
	return key, id
}

func acceptAll(peer.ID, []byte) Verdict { return Accept }

// testConfig returns a config for a host on 127.0.0.1 with an OS-chosen port
// that accepts every message.
func testConfig(key []byte, allowed ...peer.ID) Config {
	return Config{
		PrivKey:    key,
		Listen:     []string{"/ip4/127.0.0.1/tcp/0"},
		Allowed:    allowed,
		ChainID:    testChain,
		Validators: map[Topic]Validator{TopicEntries: acceptAll, TopicConsensus: acceptAll},
	}
}

// startHost starts a host and closes it when the test ends.
func startHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	h, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// eventually polls cond until it holds or waitBound passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", waitBound, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// received is one message a handler or validator saw.
type received struct {
	from peer.ID
	data string
}

// recorder keeps what a handler or validator was given.
type recorder struct {
	mu   sync.Mutex
	msgs []received
}

func (r *recorder) handle(from peer.ID, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, received{from, string(data)})
}

// validator records every call and judges by prefix: "bad" is rejected,
// "ign" ignored, anything else accepted.
func (r *recorder) validator(from peer.ID, data []byte) Verdict {
	r.handle(from, data)
	switch {
	case strings.HasPrefix(string(data), "bad"):
		return Reject
	case strings.HasPrefix(string(data), "ign"):
		return Ignore
	}
	return Accept
}

// count returns how many recorded messages carry data.
func (r *recorder) count(data string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m.data == data {
			n++
		}
	}
	return n
}

// hasPrefix reports whether a recorded message starts with prefix.
func (r *recorder) hasPrefix(prefix string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.msgs, func(m received) bool { return strings.HasPrefix(m.data, prefix) })
}

// senders returns the peers that passed on data.
func (r *recorder) senders(data string) []peer.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []peer.ID
	for _, m := range r.msgs {
		if m.data == data {
			out = append(out, m.from)
		}
	}
	return out
}

// await waits until r has data.
func (r *recorder) await(t testing.TB, who, data string) {
	t.Helper()
	eventually(t, who+" to receive "+data, func() bool { return r.count(data) > 0 })
}

// peerEvents records connect and disconnect hook calls.
type peerEvents struct {
	mu                    sync.Mutex
	connects, disconnects map[peer.ID]int
}

func newPeerEvents() *peerEvents {
	return &peerEvents{connects: map[peer.ID]int{}, disconnects: map[peer.ID]int{}}
}

func (e *peerEvents) onConnect(p peer.ID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.connects[p]++
}

func (e *peerEvents) onDisconnect(p peer.ID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.disconnects[p]++
}

func (e *peerEvents) counts(p peer.ID) (connects, disconnects int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.connects[p], e.disconnects[p]
}

// connected reports whether a has a connection to b.
func connected(a *Host, b peer.ID) bool {
	return slices.Contains(a.Peers(), b)
}
