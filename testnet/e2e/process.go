package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// processBackend runs each node as a `sagachain node` process on
// 127.0.0.1, on the ports testnet init --base-port gave it. It kills with
// SIGKILL, pauses with SIGSTOP and SIGCONT and stops with SIGTERM. It cannot
// disconnect a node: every process shares the loopback interface, and a
// frozen process is a paused node, not a partitioned one.
type processBackend struct {
	binary string
	user   string // HOME of the processes
	logDir string

	mu    sync.Mutex
	procs map[string]*process
}

var _ Backend = (*processBackend)(nil)

// process is one run of a node; a node started again gets a new one.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// exitWait bounds how long a signalled process may take to exit.
const exitWait = 30 * time.Second

func newProcessBackend(binary, user, logDir string) *processBackend {
	return &processBackend{binary: binary, user: user, logDir: logDir, procs: map[string]*process{}}
}

func (p *processBackend) Name() string { return Process }

// InitFlags picks a base port with the 2n ports from it free right now.
func (p *processBackend) InitFlags(n int) ([]string, error) {
	for range 50 {
		base := 20000 + 2*rand.IntN(10000)
		if portsFree(base, 2*n) {
			return []string{"--base-port", fmt.Sprint(base)}, nil
		}
	}
	return nil, fmt.Errorf("no %d free consecutive ports on 127.0.0.1 after 50 tries", 2*n)
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

func (p *processBackend) HostAddr() string { return "127.0.0.1" }

// Place gives node i two ports the system calls free.
func (p *processBackend) Place(int) (Placement, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return Placement{}, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return Placement{Host: "127.0.0.1",
		RPCListen: fmt.Sprintf("127.0.0.1:%d", ports[0]), P2PListen: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ports[1]),
		RPC: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), P2P: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ports[1])}, nil
}

func (p *processBackend) logFile(n *Node) string { return filepath.Join(p.logDir, n.Name+".log") }

// environ is the processes' environment: HOME set to the test's user, and
// none of the developer's SAGACHAIN_* settings.
func (p *processBackend) environ() []string {
	env := []string{"HOME=" + p.user}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAGACHAIN_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *processBackend) Start(n *Node) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr := p.procs[n.Name]; pr != nil {
		select {
		case <-pr.exited:
		default:
			return fmt.Errorf("%s is running already (pid %d)", n.Name, pr.cmd.Process.Pid)
		}
	}
	log, err := os.OpenFile(p.logFile(n), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "=== %s: start\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.binary, "node", "--home", n.Home)
	cmd.Env = p.environ()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = nodeProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	pr := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		defer close(pr.exited)
		defer log.Close()
		cmd.Wait()
	}()
	p.procs[n.Name] = pr
	return nil
}

// running returns the node's process, or an error if it is not running.
func (p *processBackend) running(n *Node) (*process, error) {
	p.mu.Lock()
	pr := p.procs[n.Name]
	p.mu.Unlock()
	if pr == nil {
		return nil, fmt.Errorf("%s was never started", n.Name)
	}
	select {
	case <-pr.exited:
		return nil, fmt.Errorf("%s is not running: %s", n.Name, pr.cmd.ProcessState)
	default:
		return pr, nil
	}
}

func (p *processBackend) signal(n *Node, sig syscall.Signal) (*process, error) {
	pr, err := p.running(n)
	if err != nil {
		return nil, err
	}
	if err := pr.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", n.Name, sig, err)
	}
	return pr, nil
}

func (p *processBackend) await(n *Node, pr *process, sig syscall.Signal) error {
	select {
	case <-pr.exited:
		return nil
	case <-time.After(exitWait):
		pr.cmd.Process.Kill()
		<-pr.exited
		return fmt.Errorf("%s did not exit within %s of %v; killed it", n.Name, exitWait, sig)
	}
}

func (p *processBackend) Kill(n *Node) error {
	pr, err := p.signal(n, syscall.SIGKILL)
	if err != nil {
		return err
	}
	return p.await(n, pr, syscall.SIGKILL)
}

func (p *processBackend) Stop(n *Node) error {
	pr, err := p.signal(n, syscall.SIGTERM)
	if err != nil {
		return err
	}
	if err := p.await(n, pr, syscall.SIGTERM); err != nil {
		return err
	}
	if code := pr.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited %d after SIGTERM, want 0", n.Name, code)
	}
	return nil
}

func (p *processBackend) Pause(n *Node) error {
	_, err := p.signal(n, syscall.SIGSTOP)
	return err
}

func (p *processBackend) Resume(n *Node) error {
	_, err := p.signal(n, syscall.SIGCONT)
	return err
}

func (p *processBackend) Disconnect(*Node) error {
	return errUnsupported(Process, "disconnect a node (processes share 127.0.0.1, and SIGSTOP is a pause)")
}

func (p *processBackend) Connect(*Node) error {
	return errUnsupported(Process, "reconnect a node")
}

func (p *processBackend) Logs(n *Node, lines int) string {
	b, err := os.ReadFile(p.logFile(n))
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n") + "\n"
}

// Close kills every process still running (thawing it first) and waits
// for each.
func (p *processBackend) Close() error {
	p.mu.Lock()
	procs := p.procs
	p.procs = map[string]*process{}
	p.mu.Unlock()
	var errs []error
	for name, pr := range procs {
		select {
		case <-pr.exited:
			continue
		default:
		}
		pr.cmd.Process.Signal(syscall.SIGCONT)
		pr.cmd.Process.Kill()
		select {
		case <-pr.exited:
		case <-time.After(exitWait):
			errs = append(errs, fmt.Errorf("%s (pid %d) did not exit after SIGKILL", name, pr.cmd.Process.Pid))
		}
	}
	return errors.Join(errs...)
}
