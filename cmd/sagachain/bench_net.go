package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node"
	"github.com/sagachain/sagachain/node/rpc"
)

// benchChainID is the chain id of bench's testnets.
const benchChainID = "sagachain-bench"

const (
	// benchReadyTimeout bounds a testnet's start: every node answering and
	// holding the first block. Four nodes on two busy cores take a few
	// seconds.
	benchReadyTimeout = time.Minute
	// benchExitTimeout bounds the wait for a killed node process to exit.
	benchExitTimeout = 10 * time.Second
	// benchStartAttempts is how often a testnet start is tried when a port
	// that was free when bench looked was taken before the node bound it.
	benchStartAttempts = 3
)

// benchReadyFile is the operation whose block tells that a testnet commits.
const benchReadyFile = `name: bench-ready
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [a]}
`

// errPortTaken says a node could not listen on the port its home names.
var errPortTaken = errors.New("a port of the testnet was taken")

// benchNet is a testnet bench made and runs: the homes in a temporary
// directory, and a node process for each validator that is not down.
type benchNet struct {
	dir   string
	nodes []node.TestnetNode
	// procs holds validator i's process, nil for one never started.
	procs []*benchProc
	// key signs the operations: the genesis's one submitter.
	key *ledger.PrivateKey
}

// benchProc is one node process.
type benchProc struct {
	name   string
	log    string // the file its stdout and stderr go to
	cmd    *exec.Cmd
	exited chan struct{}
}

func benchNodeName(i int) string { return fmt.Sprintf("node%d", i) }

// startBenchNet makes a testnet of n validators, starts all but down and
// waits until it commits blocks. On an error nothing it started is left.
func startBenchNet(ctx context.Context, n int, down []int) (*benchNet, error) {
	for attempt := 1; ; attempt++ {
		net, err := tryBenchNet(ctx, n, down)
		if err == nil || attempt == benchStartAttempts || !errors.Is(err, errPortTaken) {
			return net, err
		}
	}
}

func tryBenchNet(ctx context.Context, n int, down []int) (_ *benchNet, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("testnet: find the sagachain binary to run the nodes with: %w", err)
	}
	dir, err := os.MkdirTemp("", "sagachain-bench-")
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	net := &benchNet{dir: dir, procs: make([]*benchProc, n)}
	defer func() {
		if err != nil {
			err = errors.Join(err, net.close())
		}
	}()
	// A key of the testnet's own: bench neither needs nor touches the
	// user's client key, which no other chain need know.
	if net.key, err = ledger.GenerateKey(rand.Reader); err != nil {
		return nil, fmt.Errorf("testnet: submitter key: %w", err)
	}
	base, err := freeBasePort(2 * n)
	if err != nil {
		return nil, err
	}
	// The homes testnet init makes, by the same function.
	if net.nodes, err = node.InitTestnet(dir, n, benchChainID, net.key.Address(), node.TestnetLayout{BasePort: base}); err != nil {
		return nil, err
	}
	for i, tn := range net.nodes {
		if containsInt(down, i) {
			continue
		}
		if net.procs[i], err = startBenchNode(exe, benchNodeName(i), tn.Home); err != nil {
			return nil, err
		}
	}
	if err := net.ready(ctx); err != nil {
		return nil, err
	}
	return net, nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// freeBasePort picks a port from which count ports are free on 127.0.0.1
// right now, below the range Linux gives out for outgoing connections
// (32768 on), so that no connection of another program takes one before
// the nodes bind them.
func freeBasePort(count int) (int, error) {
	for range 50 {
		base := 20000 + 2*mathrand.IntN(6000)
		if portsFree(base, count) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("testnet: no %d free consecutive ports on 127.0.0.1 from 20000 after 50 tries", count)
}

// portsFree reports whether the count ports from base are free on
// 127.0.0.1.
func portsFree(base, count int) bool {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for port := base; port < base+count; port++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return false
		}
		ls = append(ls, l)
	}
	return true
}

// startBenchNode starts `sagachain node --home home` with this binary, its
// output into home/node.log.
func startBenchNode(exe, name, home string) (*benchProc, error) {
	logPath := filepath.Join(home, "node.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// The child has its own copy of the descriptor.
	defer log.Close()
	cmd := exec.Command(exe, "node", "--home", home)
	cmd.Env = benchNodeEnv()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = benchProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &benchProc{name: name, log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		defer close(p.exited)
		cmd.Wait()
	}()
	return p, nil
}

// benchNodeEnv is bench's environment without SAGACHAIN_* variables: a
// SAGACHAIN_RPC or SAGACHAIN_CONFIG meant for bench's own use would move a
// node's RPC or replace its config.
func benchNodeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAGACHAIN_") {
			env = append(env, kv)
		}
	}
	return env
}

// running reports whether the process has not exited.
func (p *benchProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// exitError says that the process exited when it should not have, with the
// end of its log.
func (p *benchProc) exitError() error {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	tail := strings.Join(lines[max(0, len(lines)-10):], "\n")
	err := fmt.Errorf("%s exited (%s); the end of its log:\n%s", p.name, p.cmd.ProcessState, tail)
	if strings.Contains(tail, "address already in use") {
		err = fmt.Errorf("%w: %w", errPortTaken, err)
	}
	return err
}

// kill sends SIGKILL to the process and waits, bounded, for it to exit.
func (p *benchProc) kill() error {
	if !p.running() {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(benchExitTimeout):
		return fmt.Errorf("%s (pid %d) did not exit within %s of SIGKILL", p.name, p.cmd.Process.Pid, benchExitTimeout)
	}
}

// ready waits until every started node answers and holds a block that
// an operation sent to node0 made: then the validators that are up found
// each other and commit.
func (n *benchNet) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, benchReadyTimeout)
	defer cancel()
	clients := map[int]*rpc.Client{}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i, p := range n.procs {
		if p == nil {
			continue
		}
		c, err := rpc.Dial(ctx, n.nodes[i].RPC)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		clients[i] = c
	}
	op, err := benchScenario{name: "ready", file: benchReadyFile}.load()
	if err != nil {
		return err
	}
	entry, err := submission(op, n.key, benchChainID)
	if err != nil {
		return err
	}
	submitted := false
	var last error // why the testnet is not ready yet, for the timeout
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pending := 0
		for i, c := range clients {
			p := n.procs[i]
			if !p.running() {
				return p.exitError()
			}
			h, err := c.Head(ctx)
			switch {
			case err != nil:
				pending, last = pending+1, fmt.Errorf("%s does not answer: %w", p.name, err)
			case h.Height == 0:
				pending, last = pending+1, fmt.Errorf("%s holds no block", p.name)
			}
		}
		if pending == 0 {
			return nil
		}
		if !submitted && clients[0] != nil {
			if _, err := clients[0].Submit(ctx, entry); err != nil {
				last = fmt.Errorf("node0 refuses the first operation: %w", err)
			} else {
				submitted = true
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("testnet not ready within %s: %w", benchReadyTimeout, last)
			}
			return ctx.Err()
		}
	}
}

// kill sends SIGKILL to the nodes of validators, waits for them to exit,
// and returns when the last was sent its signal.
func (n *benchNet) kill(validators []int) (time.Time, error) {
	for _, i := range validators {
		if p := n.procs[i]; p != nil && p.running() {
			if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				return time.Now(), fmt.Errorf("kill %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
			}
		}
	}
	at := time.Now()
	var errs []error
	for _, i := range validators {
		if p := n.procs[i]; p != nil {
			errs = append(errs, p.kill())
		}
	}
	return at, errors.Join(errs...)
}

// close kills every node still running, waits for each, and removes the
// homes. SIGKILL, not SIGTERM: the chain is thrown away, so there is
// nothing a clean stop would keep, and it cannot hang.
func (n *benchNet) close() error {
	var errs []error
	for _, p := range n.procs {
		if p != nil {
			errs = append(errs, p.kill())
		}
	}
	if err := errors.Join(errs...); err != nil {
		// A node that may still run keeps its home, which its log is in.
		return fmt.Errorf("testnet in %s: %w", n.dir, err)
	}
	if err := os.RemoveAll(n.dir); err != nil {
		return fmt.Errorf("remove the testnet's homes: %w", err)
	}
	return nil
}
