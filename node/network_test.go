package node

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
	nodes := newNetwork(t, n, observers, nil)
	for _, tn := range nodes {
		tn.launch()
	}
	for _, tn := range nodes {
		tn.ready(t)
	}
	return nodes
}

// newNetwork makes the nodes of startNetworkWith without starting them;
// configure, when not nil, changes node i's configuration.
func newNetwork(t testing.TB, n int, observers []*ledger.PrivateKey, configure func(i int, c *config.Config)) []*testNode {
	t.Helper()
	opts, user := networkOptions(t, n, observers, configure)
	var nodes []*testNode
	for _, o := range opts {
		nd, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, newTestNode(t, nd, user))
	}
	return nodes
}

// networkOptions returns the options of n validators on 127.0.0.1 that
// know each other as static peers, each with an in-memory ledger, and of
// one observer per key in observers, with the key of the chain's one
// submitter; configure, when not nil, changes node i's configuration.
func networkOptions(t testing.TB, n int, observers []*ledger.PrivateKey, configure func(i int, c *config.Config)) ([]Options, *ledger.PrivateKey) {
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
	var opts []Options
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
		if configure != nil {
			configure(i, &cfg)
		}
		var logw io.Writer = io.Discard
		// SAGACHAIN_TEST_LOG=1 shows the observers' logs, =all every node's.
		if (i >= n || os.Getenv("SAGACHAIN_TEST_LOG") == "all") && os.Getenv("SAGACHAIN_TEST_LOG") != "" {
			logw = os.Stderr
		}
		opts = append(opts, Options{Config: cfg, Genesis: g, Key: k, InMemory: true,
			Log: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	}
	return opts, user
}

// A validator that starts after the others have committed blocks, while
// the network is idle and sends no message that would show it is behind,
// still catches up: its probe asks the peers for what lies past its head.
func TestLateValidatorCatchesUpOnAnIdleNetwork(t *testing.T) {
	// The operation's function is hosted by the first three validators
	// only, so no task waits for the late one; hosting nothing, the late
	// one announces nothing when it starts, and so makes no block that
	// would show it the network's height.
	step := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"done": true, "again": true}`)
	}))
	t.Cleanup(step.Close)
	nodes := newNetwork(t, 4, nil, func(i int, c *config.Config) {
		if i < 3 {
			c.Functions = map[string]config.FunctionConfig{"late.step": {HTTP: step.URL}}
		}
	})
	for _, tn := range nodes[:3] {
		tn.launch()
	}
	for _, tn := range nodes[:3] {
		tn.ready(t)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		hosts, err := nodes[0].store.Hosts()
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts.ByValidator) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 validators announced their function", len(hosts.ByValidator))
		}
	}
	file := filepath.Join(t.TempDir(), "op.yaml")
	op := "name: late\ntasks:\n  - {id: a, run: late.step, outputs: [done]}\n  - {id: b, run: late.step, inputs: [done], outputs: [again]}\n"
	if err := os.WriteFile(file, []byte(op), 0o600); err != nil {
		t.Fatal(err)
	}
	id := nodes[0].submit(t, file)
	if r := nodes[0].wait(t, id); r.Saga.Status != taskrt.OpCompleted {
		t.Fatalf("trip: %s, want completed", r.Saga.Status)
	}
	want, err := nodes[0].store.Head()
	if err != nil || want == 0 {
		t.Fatalf("head %d, %v", want, err)
	}
	late := nodes[3]
	late.launch()
	late.ready(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := late.store.Head()
		if err != nil {
			t.Fatal(err)
		}
		if h >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the late validator is at height %d of %d", h, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, want := mustBlock(t, late, want).Hash(), mustBlock(t, nodes[0], want).Hash(); got != want {
		t.Fatalf("the late validator has block %s, want %s", got.TerminalString(), want.TerminalString())
	}
	if r, err := late.store.Operation(id); err != nil || r.Saga.Status != taskrt.OpCompleted {
		t.Fatalf("the late validator's record of the trip: %v, %v", r, err)
	}
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
		if _, err := ledger.VerifyChain(tn.Genesis(), ledger.StoreSource(tn.store)); err != nil {
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
	if _, err := ledger.VerifyChain(obs.Genesis(), ledger.StoreSource(obs.store)); err != nil {
		t.Fatalf("observer's chain: %v", err)
	}
	if obs.isValidator() || obs.driver == nil {
		t.Fatal("the observer runs as a validator")
	}
}
