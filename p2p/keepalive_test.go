package p2p

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// cutRelay forwards TCP connections on 127.0.0.1 to a target until cut;
// from then on it reads and drops whatever either side sends and sends
// nothing, keeping every socket open: a link cut without a reset, as a
// network disconnect or a paused peer leaves it.
type cutRelay struct {
	l      net.Listener
	target string
	cut    atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func startCutRelay(t *testing.T, target string) *cutRelay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &cutRelay{l: l, target: target}
	go r.accept()
	t.Cleanup(func() {
		l.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.conns {
			c.Close()
		}
	})
	return r
}

func (r *cutRelay) accept() {
	for {
		in, err := r.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", r.target)
		if err != nil {
			in.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, in, out)
		r.mu.Unlock()
		go r.pipe(in, out)
		go r.pipe(out, in)
	}
}

// pipe copies src to dst until the relay is cut, then only drains src.
func (r *cutRelay) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !r.cut.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				io.Copy(io.Discard, src)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestSilentConnectionIsDropped: a connection over which the peer has
// gone silent without closing it is closed by the keepalive, with the
// default settings well within the test's wait bound (yamux's own
// keepalive took some 40s), so the host stops counting the peer as
// connected: it no longer sends it block-sync requests that hang for the
// sync timeout, and it redials it.
func TestSilentConnectionIsDropped(t *testing.T) {
	keyA, idA := testKey(t, "silent-a")
	keyB, idB := testKey(t, "silent-b")
	b := startHost(t, testConfig(keyB, idA))
	var target string
	for _, a := range b.Addrs() {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			target = "127.0.0.1:" + strings.SplitN(strings.TrimPrefix(a, "/ip4/127.0.0.1/tcp/"), "/", 2)[0]
		}
	}
	if target == "" {
		t.Fatalf("host b listens on %v, no 127.0.0.1 TCP address", b.Addrs())
	}
	relay := startCutRelay(t, target)
	cfgA := testConfig(keyA, idB)
	cfgA.Peers = []string{"/ip4/127.0.0.1/tcp/" + strings.TrimPrefix(relay.l.Addr().String(), "127.0.0.1:") + "/p2p/" + idB.String()}
	a := startHost(t, cfgA)
	eventually(t, "a and b connected through the relay", func() bool { return connected(a, idB) && connected(b, idA) })
	relay.cut.Store(true)
	eventually(t, "a dropping its silent connection to b", func() bool { return !connected(a, idB) })
	eventually(t, "b dropping its silent connection to a", func() bool { return !connected(b, idA) })
}
