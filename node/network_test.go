package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/p2p"
	"github.com/sagachain/sagachain/taskrt"
)

// freePorts returns n TCP ports free on 127.0.0.1 right now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startNetwork runs n validators on 127.0.0.1 that know each other as
// static peers, each with its own in-memory ledger.
func startTestnet(t testing.TB, n int) []*testNode {
	t.Helper()
	return startNetworkWith(t, n, nil)
}

// startNetworkWith runs n validators and, after them, one observer node
// per key in observers, which the validators admit and the observer dials.
func startNetworkWith(t testing.TB, n int, observers []*ledger.PrivateKey) []*testNode {
	t.Helper()
	user := key(t, 100)
	var keys []*ledger.PrivateKey
	g := &ledger.Genesis{ChainID: "test-net", Time: 1, Submitters: []ledger.Address{user.Address()}, Params: ledger.DefaultParams()}
	for i := range n {
		k := key(t, byte(i+1))
		keys = append(keys, k)
		g.Validators = append(g.Validators, ledger.NewGenesisValidator(k, fmt.Sprintf("node%d", i)))
	}
	ports := freePorts(t, n+len(observers))
	var observerIDs []string
	for _, k := range observers {
		id, err := p2p.PeerID(k.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		observerIDs = append(observerIDs, id.String())
	}
	var addrs []string
	for i, k := range keys {
		id, err := p2p.PeerID(k.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", ports[i], id))
	}
	var nodes []*testNode
	for i, k := range append(keys, observers...) {
		cfg := config.Default()
		cfg.P2P.Observers = observerIDs
		cfg.ChainID = g.ChainID
		cfg.RPC.Listen = "127.0.0.1:0"
		cfg.P2P.Listen = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ports[i])
		cfg.Consensus.TimeoutPropose = 500 * time.Millisecond
		for j, a := range addrs {
			if j != i {
				cfg.P2P.Peers = append(cfg.P2P.Peers, a)
			}
		}
		var logw io.Writer = io.Discard
		if i >= n && os.Getenv("SAGACHAIN_TEST_LOG") != "" {
			logw = os.Stderr
		}
		nd, err := New(Options{Config: cfg, Genesis: g, Key: k, InMemory: true,
			Log: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		tn := &testNode{Node: nd, user: user, cancel: cancel, done: make(chan error, 1)}
		go func() { tn.done <- nd.Run(ctx) }()
		t.Cleanup(tn.stop)
		nodes = append(nodes, tn)
	}
	for _, tn := range nodes {
		select {
		case <-tn.Ready():
		case err := <-tn.done:
			t.Fatalf("node stopped: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("node did not start")
		}
	}
	return nodes
}

// Four validators agree on one chain, run the tasks assigned to each, and
// end every operation in the same state with the same head.
func TestNetworkOfFourRunsOperations(t *testing.T) {
	nodes := startTestnet(t, 4)
	deadline := time.Now().Add(20 * time.Second)
	for len(nodes[0].Peers()) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	ok := nodes[0].submit(t, "../testnet/ops/trip.yaml")
	bad := nodes[1].submit(t, "../testnet/ops/trip-hotel-fails.yaml")
	for _, tn := range nodes {
		if r := tn.wait(t, ok); r.Saga.Status != taskrt.OpCompleted {
			t.Fatalf("trip: %s, want completed", r.Saga.Status)
		}
		if r := tn.wait(t, bad); r.Saga.Status != taskrt.OpRolledBack {
			t.Fatalf("failing trip: %s, want rolled_back", r.Saga.Status)
		}
	}
	// Builtins are hosted by every validator, so tasks spread over them.
	r, _ := nodes[0].store.Operation(ok)
	execs := map[ledger.Address]bool{}
	for _, tr := range r.Tasks {
		execs[tr.Executor] = true
	}
	if len(execs) < 2 {
		t.Errorf("all tasks ran on %d executor(s)", len(execs))
	}
	// Same head everywhere once the last block has spread.
	var head uint64
	for i := 0; i < 100; i++ {
		h0, _ := nodes[0].store.Head()
		same := true
		for _, tn := range nodes[1:] {
			if h, _ := tn.store.Head(); h != h0 {
				same = false
			}
		}
		if same {
			head = h0
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if head == 0 {
		t.Fatal("nodes did not reach the same head")
	}
	for i, tn := range nodes {
		b, _ := tn.store.Block(head)
		if b.Hash() != mustBlock(t, nodes[0], head).Hash() {
			t.Fatalf("node %d has a different block %d", i, head)
		}
		if _, err := ledger.VerifyChain(tn.Genesis(), &storeSource{s: tn.store}); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
}

func mustBlock(t *testing.T, tn *testNode, h uint64) *ledger.Block {
	b, err := tn.store.Block(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An observer that validators admit follows the chain without voting, and
// its copy verifies from genesis alone.
func TestObserverFollowsTheChain(t *testing.T) {
	observer := key(t, 60)
	nodes := startNetworkWith(t, 4, []*ledger.PrivateKey{observer})
	id := nodes[0].submit(t, "../testnet/ops/trip.yaml")
	nodes[0].wait(t, id)
	obs := nodes[4]
	if r := obs.wait(t, id); r.Saga.Status != taskrt.OpCompleted {
		t.Fatalf("observer sees %s, want completed", r.Saga.Status)
	}
	if _, err := ledger.VerifyChain(obs.Genesis(), &storeSource{s: obs.store}); err != nil {
		t.Fatalf("observer's chain: %v", err)
	}
	if obs.isValidator() || obs.driver == nil {
		t.Fatal("the observer runs as a validator")
	}
}
