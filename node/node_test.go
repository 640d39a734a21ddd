package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

type testNode struct {
	*Node
	user   *ledger.PrivateKey
	cancel context.CancelFunc
	done   chan error
	// launch starts the node; ready waits until it serves.
	launch func()
}

func key(t testing.TB, seed byte) *ledger.PrivateKey {
	t.Helper()
	b := make([]byte, 32)
	b[31] = seed
	k, err := ledger.PrivateKeyFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startNode runs a one-validator node over home (in memory when home is
// empty) until the test ends.
func startNode(t testing.TB, home string) *testNode {
	t.Helper()
	return startNodeWith(t, home, nil)
}

// startNodeWith is startNode with a change to the default configuration.
func startNodeWith(t testing.TB, home string, configure func(*config.Config)) *testNode {
	t.Helper()
	g, cfg, val, user := oneValidator(t)
	cfg.RPC.Listen = "127.0.0.1:0"
	if configure != nil {
		configure(&cfg)
	}
	n, err := New(Options{Home: home, Config: cfg, Genesis: g, Key: val, InMemory: home == "",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	tn := newTestNode(t, n, user)
	tn.launch()
	tn.ready(t)
	return tn
}

// oneValidator is the network of startNode: a genesis with one validator
// and one submitter, the default config for its chain, and their keys.
func oneValidator(t testing.TB) (*ledger.Genesis, config.Config, *ledger.PrivateKey, *ledger.PrivateKey) {
	t.Helper()
	val, user := key(t, 1), key(t, 2)
	g := &ledger.Genesis{ChainID: "test-chain", Time: 1, Validators: []ledger.GenesisValidator{{Address: val.Address()}},
		Submitters: []ledger.Address{user.Address()}, Params: ledger.DefaultParams()}
	cfg := config.Default()
	cfg.ChainID = "test-chain"
	return g, cfg, val, user
}

// newIdleNode makes the one-validator node of startNode, in memory, without
// running it, for tests that call its parts; it returns the submitter key.
func newIdleNode(t testing.TB) (*Node, *ledger.PrivateKey) {
	t.Helper()
	g, cfg, val, user := oneValidator(t)
	n, err := New(Options{Config: cfg, Genesis: g, Key: val, InMemory: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.store.Close() })
	return n, user
}

// newTestNode wraps n, ready to launch, and stops it when the test ends.
func newTestNode(t testing.TB, n *Node, user *ledger.PrivateKey) *testNode {
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, user: user, cancel: cancel, done: make(chan error, 1)}
	tn.launch = func() { go func() { tn.done <- n.Run(ctx) }() }
	t.Cleanup(tn.stop)
	return tn
}

// ready waits until a launched node serves.
func (tn *testNode) ready(t testing.TB) {
	t.Helper()
	select {
	case <-tn.Ready():
	case err := <-tn.done:
		t.Fatalf("node stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("node did not start")
	}
}

func (tn *testNode) stop() {
	tn.cancel()
	select {
	case <-tn.done:
	case <-time.After(10 * time.Second):
	}
}

// submitText signs and submits an operation file's text.
func (tn *testNode) submitText(t *testing.T, text string) ledger.Hash {
	t.Helper()
	s := &ledger.Submission{Operation: canonicalOp(t, []byte(text)), Nonce: uint64(time.Now().UnixNano())}
	if err := s.Sign(tn.user, tn.Genesis().ChainID); err != nil {
		t.Fatal(err)
	}
	e, _ := ledger.NewEntry(ledger.KindSubmission, s)
	if err := tn.Submit(e); err != nil {
		t.Fatal(err)
	}
	return e.Hash()
}

func (tn *testNode) submit(t *testing.T, path string) ledger.Hash {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return tn.submitText(t, string(data))
}

// wait polls the store until the operation reaches a final status.
func (tn *testNode) wait(t *testing.T, id ledger.Hash) *ledger.OpRecord {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := tn.store.Operation(id); err == nil && r.Saga.Status.Final() {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("operation %s did not finish", id)
	return nil
}

func TestNodeRunsOperationsToTheirEnd(t *testing.T) {
	tn := startNode(t, "")
	ok := tn.submit(t, "../testnet/ops/trip.yaml")
	bad := tn.submit(t, "../testnet/ops/trip-hotel-fails.yaml")
	if r := tn.wait(t, ok); r.Saga.Status != taskrt.OpCompleted {
		t.Fatalf("trip: %s, want completed", r.Saga.Status)
	}
	if r := tn.wait(t, bad); r.Saga.Status != taskrt.OpRolledBack {
		t.Fatalf("failing trip: %s, want rolled_back", r.Saga.Status)
	}
	// What the node committed verifies from genesis alone.
	head, _ := tn.store.Head()
	rep, err := ledger.VerifyChain(tn.Genesis(), ledger.StoreSource(tn.store))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blocks != head || rep.Operations != 2 {
		t.Fatalf("verified %d blocks and %d operations, want %d and 2", rep.Blocks, rep.Operations, head)
	}
}

// A node restarted on the same home carries on where it stopped.
func TestNodeResumesAfterRestart(t *testing.T) {
	home := t.TempDir()
	tn := startNode(t, home)
	id := tn.submit(t, "../testnet/ops/trip.yaml")
	tn.wait(t, id)
	before, _ := tn.store.Head()
	tn.stop()

	tn = startNode(t, home)
	if head, _ := tn.store.Head(); head != before {
		t.Fatalf("head %d after restart, want %d", head, before)
	}
	id2 := tn.submit(t, "../testnet/ops/trip.yaml")
	if r := tn.wait(t, id2); r.Saga.Status != taskrt.OpCompleted {
		t.Fatalf("after restart: %s, want completed", r.Saga.Status)
	}
}

// canonicalOp is an operation file (YAML or JSON) as the client signs it:
// parsed, then encoded, the only form the ledger admits.
func canonicalOp(t testing.TB, file []byte) []byte {
	t.Helper()
	op, err := taskrt.Load(file, nil, taskrt.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
