package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

// Node is one node of a running testnet.
type Node struct {
	// Name is node0 … for the validators, observer0 … for the others.
	Name string
	Home string
	// Host is the node's own address: its container's, or 127.0.0.1.
	Host string
	// RPC is the URL of its RPC; P2P its multiaddr with its peer id.
	RPC     string
	P2P     string
	Address ledger.Address
	client  *rpc.Client
}

// Client is the node's RPC client.
func (n *Node) Client() *rpc.Client { return n.client }

// Network is a running testnet: its nodes, the genesis they share and the
// client key the genesis lists as its submitter.
type Network struct {
	Testnet    Testnet
	Backend    Backend
	Validators []*Node
	Observers  []*Node
	Genesis    *ledger.Genesis
	ClientKey  *ledger.PrivateKey
	// Outages are the validators the steps took out and brought back, in
	// order.
	Outages []Outage

	env  Env
	user string // HOME of the test's user: ~/.sagachain/client.key
	dir  string
	// finals remembers, per node, the operations seen final there, as the
	// node showed them then: final is forever, so Check asks each node
	// about each operation until then.
	finals map[string]map[ledger.Hash]*taskrt.OperationView
}

// Readiness bounds.
const (
	// startWait bounds how long a started node may take to answer RPC.
	startWait = time.Minute
	// meshWait bounds how long the validators may take to see each other.
	meshWait = time.Minute
	// callTimeout bounds one RPC call of the runner.
	callTimeout = 5 * time.Second
)

// initNode is one element of `sagachain testnet init --json`.
type initNode struct {
	Home    string `json:"home"`
	RPC     string `json:"rpc"`
	P2P     string `json:"p2p"`
	Address string `json:"address"`
}

// Start makes the testnet's homes with `sagachain testnet init` (the client
// key in a temporary HOME), starts every validator on the backend env
// names, and waits until each answers RPC and sees all the others. The
// test's cleanup stops and removes everything, and, when the test failed,
// logs the last lines of every node first.
func Start(t testing.TB, env Env, tn Testnet) *Network {
	t.Helper()
	if tn.Validators < 1 {
		t.Fatalf("testnet: %d validators", tn.Validators)
	}
	n := &Network{Testnet: tn, env: env, user: t.TempDir(), dir: t.TempDir(),
		finals: map[string]map[ledger.Hash]*taskrt.OperationView{}}
	logs := t.TempDir()
	var err error
	switch env.Backend {
	case Docker:
		n.Backend, err = newDockerBackend(context.Background(), env.Image)
	case Process:
		n.Backend = newProcessBackend(env.Binary, n.user, logs)
	default:
		err = fmt.Errorf("backend %q: want %s or %s", env.Backend, Docker, Process)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			n.dumpLogs(t)
		}
		for _, nd := range n.nodes() {
			nd.client.Close()
		}
		if err := n.Backend.Close(); err != nil {
			t.Errorf("removing the testnet: %v", err)
		}
	})

	flags, err := n.Backend.InitFlags(tn.Validators)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"testnet", "init", "--validators", fmt.Sprint(tn.Validators),
		"--dir", filepath.Join(n.dir, "testnet"), "--json"}, flags...)
	out, err := n.sagachain(args...)
	if err != nil {
		t.Fatal(err)
	}
	var made struct{ Nodes []initNode }
	if err := json.Unmarshal(out, &made); err != nil {
		t.Fatalf("testnet init --json printed %q: %v", out, err)
	}
	if len(made.Nodes) != tn.Validators {
		t.Fatalf("testnet init made %d homes, want %d", len(made.Nodes), tn.Validators)
	}
	if n.Genesis, err = ledger.LoadGenesis(filepath.Join(made.Nodes[0].Home, "genesis.json")); err != nil {
		t.Fatal(err)
	}
	if n.ClientKey, err = ledger.LoadKey(filepath.Join(n.user, ".sagachain", "client.key")); err != nil {
		t.Fatal(err)
	}
	if !n.Genesis.AllowedSubmitter(n.ClientKey.Address()) {
		t.Fatalf("the genesis testnet init wrote does not list the client key %s as a submitter", n.ClientKey.Address().Hex())
	}
	for i, m := range made.Nodes {
		u, err := url.Parse(m.RPC)
		if err != nil {
			t.Fatalf("testnet init: node %d: rpc %q: %v", i, m.RPC, err)
		}
		addr, err := ledger.ParseAddress(m.Address)
		if err != nil {
			t.Fatalf("testnet init: node %d: %v", i, err)
		}
		nd := &Node{Name: fmt.Sprintf("node%d", i), Home: m.Home, Host: u.Hostname(), RPC: m.RPC, P2P: m.P2P, Address: addr}
		if nd.client, err = rpc.Dial(context.Background(), m.RPC); err != nil {
			t.Fatal(err)
		}
		n.Validators = append(n.Validators, nd)
	}
	if len(tn.Functions) > 0 {
		if err := n.serveFunctions(t); err != nil {
			t.Fatal(err)
		}
	}
	// All at once: validators started one after another begin their first
	// height at different times, before they have peers.
	errs := make([]error, len(n.Validators))
	var wg sync.WaitGroup
	for i, nd := range n.Validators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = n.Backend.Start(nd); errs[i] == nil {
				errs[i] = n.WaitReady(nd)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := n.waitMesh(); err != nil {
		t.Fatal(err)
	}
	return n
}

// sagachain runs the sagachain binary as the test's user and returns its
// stdout.
func (n *Network) sagachain(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.env.Binary, args...)
	cmd.Env = []string{"HOME=" + n.user, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return nil, fmt.Errorf("sagachain %s: %w: %s", strings.Join(args, " "), err, exit.Stderr)
		}
		return nil, fmt.Errorf("sagachain %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

// serveFunctions serves the testnet's functions from the test process, at
// the address the nodes reach it by, and lists them in every validator's
// config.yaml.
func (n *Network) serveFunctions(t testing.TB) error {
	l, err := net.Listen("tcp", net.JoinHostPort(n.Backend.HostAddr(), "0"))
	if err != nil {
		return fmt.Errorf("functions: %w", err)
	}
	mux := http.NewServeMux()
	var conf strings.Builder
	conf.WriteString("functions:\n")
	names := make([]string, 0, len(n.Testnet.Functions))
	for name := range n.Testnet.Functions {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		mux.Handle("/"+name, n.Testnet.Functions[name])
		fmt.Fprintf(&conf, "  %s: {http: \"http://%s/%s\"}\n", name, l.Addr(), name)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	for _, nd := range n.Validators {
		f, err := os.OpenFile(filepath.Join(nd.Home, "config.yaml"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(conf.String())
		if err := errors.Join(err, f.Close()); err != nil {
			return err
		}
	}
	return nil
}

// nodes returns the validators and then the observers.
func (n *Network) nodes() []*Node { return append(slices.Clip(n.Validators), n.Observers...) }

// WaitReady waits until the node answers RPC.
func (n *Network) WaitReady(nd *Node) error {
	var last error
	for deadline := time.Now().Add(startWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, last = nd.client.Head(ctx)
		cancel()
		if last == nil {
			return nil
		}
	}
	return fmt.Errorf("%s did not answer RPC within %s: %w", nd.Name, startWait, last)
}

// waitMesh waits until every validator sees every other online.
func (n *Network) waitMesh() error {
	for _, nd := range n.Validators {
		var online int
		for deadline := time.Now().Add(meshWait); ; time.Sleep(100 * time.Millisecond) {
			online = n.onlineValidators(nd)
			if online == len(n.Validators) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s sees %d of %d validators online after %s", nd.Name, online, len(n.Validators), meshWait)
			}
		}
	}
	return nil
}

// onlineValidators counts the validators the node reports online
// (itself included, if it is one); -1 when it does not answer.
func (n *Network) onlineValidators(nd *Node) int {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	vs, err := nd.client.Validators(ctx)
	if err != nil {
		return -1
	}
	online := 0
	for _, v := range vs {
		if v.Online {
			online++
		}
	}
	return online
}

// StartObserver starts a node that no validator lists: a fresh key, the
// testnet's genesis, every validator as a static peer. It waits until the
// node answers RPC.
func (n *Network) StartObserver(t testing.TB) *Node {
	t.Helper()
	i := len(n.Validators) + len(n.Observers)
	pl, err := n.Backend.Place(i)
	if err != nil {
		t.Fatal(err)
	}
	nd := &Node{Name: fmt.Sprintf("observer%d", len(n.Observers)), Home: filepath.Join(n.dir, fmt.Sprintf("observer%d", len(n.Observers))),
		Host: pl.Host, RPC: pl.RPC}
	if err := os.MkdirAll(nd.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := ledger.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nd.Address = key.Address()
	if err := key.SaveKey(filepath.Join(nd.Home, "key.hex")); err != nil {
		t.Fatal(err)
	}
	if err := n.Genesis.Save(filepath.Join(nd.Home, "genesis.json")); err != nil {
		t.Fatal(err)
	}
	var peers strings.Builder
	for _, v := range n.Validators {
		fmt.Fprintf(&peers, "\n    - %s", v.P2P)
	}
	conf := fmt.Sprintf("# an observer no validator lists\nchain_id: %s\nkey_file: key.hex\nrpc: {listen: %q}\np2p:\n  listen: %s\n  peers:%s\n",
		n.Genesis.ChainID, pl.RPCListen, pl.P2PListen, peers.String())
	if err := os.WriteFile(filepath.Join(nd.Home, "config.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if nd.client, err = rpc.Dial(context.Background(), nd.RPC); err != nil {
		t.Fatal(err)
	}
	n.Observers = append(n.Observers, nd)
	if err := n.Backend.Start(nd); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(nd); err != nil {
		t.Fatal(err)
	}
	return nd
}

// NodeByAddress returns the validator of address a, or nil.
func (n *Network) NodeByAddress(a ledger.Address) *Node {
	for _, nd := range n.Validators {
		if nd.Address == a {
			return nd
		}
	}
	return nil
}

// LoadOperation reads and checks an operation file.
func LoadOperation(path string) (*taskrt.Operation, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	op, err := taskrt.Load(data, nil, taskrt.DefaultLimits())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return op, nil
}

// Submission signs op with the client key as a new submission: a random
// nonce makes every call a distinct operation, whose id is the entry's
// hash.
func (n *Network) Submission(op *taskrt.Operation) (ledger.Entry, error) {
	raw, err := json.Marshal(op)
	if err != nil {
		return ledger.Entry{}, fmt.Errorf("encode operation %q: %w", op.Name, err)
	}
	s := &ledger.Submission{Operation: raw, Nonce: mathrand.Uint64()}
	if err := s.Sign(n.ClientKey, n.Genesis.ChainID); err != nil {
		return ledger.Entry{}, err
	}
	return ledger.NewEntry(ledger.KindSubmission, s)
}

// Heads asks each node for its head; a node that does not answer gets an
// error in errs at its index.
func Heads(nodes []*Node) (heads []rpc.HeadInfo, errs []error) {
	heads, errs = make([]rpc.HeadInfo, len(nodes)), make([]error, len(nodes))
	for i, nd := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		heads[i], errs[i] = nd.client.Head(ctx)
		cancel()
	}
	return heads, errs
}

// BlockHash returns the hash of the node's block at height h.
func BlockHash(nd *Node, h uint64) (ledger.Hash, error) {
	b, err := blockInfo(nd, h)
	if err != nil {
		return ledger.Hash{}, err
	}
	return b.Hash, nil
}

func blockInfo(nd *Node, h uint64) (*rpc.BlockInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	b, err := nd.client.Block(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("%s: block %d: %w", nd.Name, h, err)
	}
	return b, nil
}

// dumpLogs logs the last lines of every node.
func (n *Network) dumpLogs(t testing.TB) {
	for _, nd := range n.nodes() {
		t.Logf("--- %s (%s backend), last lines ---\n%s", nd.Name, n.Backend.Name(), n.Backend.Logs(nd, 40))
	}
}
