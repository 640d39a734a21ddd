package testnet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sagachain/sagachain/taskrt"
)

// sagachainBin is the sagachain binary TestMain builds for the tests that
// run it as real processes.
var sagachainBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sagachain-testnet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	sagachainBin = filepath.Join(dir, "sagachain")
	args := []string{"build", "-o", sagachainBin}
	if raceEnabled() {
		// The processes of a race build of the tests are race builds too,
		// so the races of a real crash and restart are caught.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/sagachain")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building sagachain: %v\n", err)
		return 1
	}
	return m.Run()
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// environ is the test's environment for a sagachain process: HOME set to
// home (the client key lives there), no SAGACHAIN_* settings of the
// developer's, and no exit delay of a race binary.
func environ(home string) []string {
	env := []string{"HOME=" + home, "GORACE=atexit_sleep_ms=0"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAGACHAIN_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is a sagachain process that outlives one call: a node.
type proc struct {
	cmd    *exec.Cmd
	url    string // the RPC URL its banner names
	stderr *lockedBuffer
	exited chan struct{}
}

// lockedBuffer is written by exec's copying goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDev starts `sagachain dev` on home with an RPC port of its own
// choosing, and waits (a minute at most) for the banner that names it. The
// process is killed if the test leaves it running.
func startDev(t *testing.T, user, home string) *proc {
	t.Helper()
	cmd := exec.Command(sagachainBin, "dev", "--home", home, "--rpc", "127.0.0.1:0")
	cmd.Env = environ(user)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: new(lockedBuffer), exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	urls := make(chan string, 1)
	go func() {
		defer close(p.exited)
		defer cmd.Wait()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "RPC: "); ok {
				urls <- u
			}
		}
	}()
	select {
	case p.url = <-urls:
		return p
	case <-p.exited:
		t.Fatalf("dev exited before it was ready; stderr:\n%s", p.stderr)
	case <-time.After(time.Minute):
		t.Fatalf("dev printed no RPC address within a minute; stderr:\n%s", p.stderr)
	}
	return nil
}

// kill ends the process with SIGKILL: a crash, with no chance to clean up.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// interrupt stops the process with SIGINT and wants it to exit 0.
func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30s of SIGINT")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("dev exited %d after SIGINT, want 0; stderr:\n%s", code, p.stderr)
	}
}

// run runs a sagachain command to its end (a minute at most) and returns
// its stdout, stderr and exit code.
func run(t *testing.T, user string, args ...string) (string, string, int) {
	t.Helper()
	stdout, stderr, code, err := runProcess(user, args...)
	if err != nil {
		t.Fatal(err)
	}
	return stdout, stderr, code
}

// runProcess is run for any goroutine: it returns the error of a command
// that could not be run at all.
func runProcess(user string, args ...string) (string, string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sagachainBin, args...)
	cmd.Env = environ(user)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return "", "", -1, fmt.Errorf("sagachain %s: %w", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode(), nil
}

// opGet reads an operation with `op get --json`; ok is false when the node
// does not know it (or cannot be asked).
func opGet(t *testing.T, user, url, id string) (v taskrt.OperationView, ok bool) {
	t.Helper()
	out, _, code := run(t, user, "op", "get", id, "--json", "--rpc", url)
	if code != 0 {
		return v, false
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("op get --json printed %q: %v", out, err)
	}
	return v, true
}

// await polls op get every 50ms until cond holds of the operation, for at
// most limit.
func await(t *testing.T, user, url, id, what string, limit time.Duration, cond func(taskrt.OperationView) bool) taskrt.OperationView {
	t.Helper()
	var last taskrt.OperationView
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		v, ok := opGet(t, user, url, id)
		if ok && cond(v) {
			return v
		}
		last = v
	}
	t.Fatalf("operation %s: not %s within %s; last seen %+v", id, what, limit, last)
	return last
}

// A node killed with SIGKILL while a task runs, and while submissions
// arrive, loses nothing it acknowledged: restarted on the same home, it
// runs the interrupted task again and completes the operation, and every
// operation whose submission it acknowledged is on the chain, which
// verifies.
func TestDevSurvivesKill9(t *testing.T) {
	user := t.TempDir()
	home := filepath.Join(t.TempDir(), "dev")
	dir := t.TempDir()
	slow := filepath.Join(dir, "slow.yaml")
	if err := os.WriteFile(slow, []byte(`name: crash-during-sleep
tasks:
  - {id: first, run: echo, rollback: noop, outputs: [x]}
  - {id: slow, run: sleep, rollback: noop, inputs: [x], outputs: [y], params: {ms: 3000}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	quick := filepath.Join(dir, "quick.yaml")
	if err := os.WriteFile(quick, []byte("name: quick\ntasks:\n  - {id: a, run: echo, outputs: [a]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	node := startDev(t, user, home)
	out, stderr, code := run(t, user, "submit", slow, "--rpc", node.url)
	if code != 0 {
		t.Fatalf("submit exited %d: %s", code, stderr)
	}
	id := strings.TrimSpace(out)
	await(t, user, node.url, id, "running stage 1", 30*time.Second, func(v taskrt.OperationView) bool {
		for _, e := range v.Events {
			if e.Type == taskrt.EventStageReleased && e.Stage != nil && *e.Stage == 1 {
				return true
			}
		}
		return false
	})

	// Submissions race the crash: some are acknowledged before it, some
	// are cut off by it.
	const racers = 8
	type outcome struct {
		id   string
		code int
		err  error
	}
	outcomes := make(chan outcome, racers)
	for range racers {
		go func() {
			out, _, code, err := runProcess(user, "submit", quick, "--rpc", node.url)
			outcomes <- outcome{strings.TrimSpace(out), code, err}
		}()
	}
	var acked []string
	collect := func(o outcome) {
		if o.err != nil {
			t.Fatal(o.err)
		}
		if o.code == 0 {
			acked = append(acked, o.id)
		}
	}
	// Kill once the first submission is acknowledged (or fails), while the
	// others are still on their way.
	collect(<-outcomes)
	node.kill(t)
	for range racers - 1 {
		collect(<-outcomes)
	}
	t.Logf("%d of %d racing submissions were acknowledged before the kill", len(acked), racers)

	node = startDev(t, user, home)
	v := await(t, user, node.url, id, "finished", time.Minute, func(v taskrt.OperationView) bool { return v.Status.Final() })
	if v.Status != taskrt.OpCompleted {
		t.Fatalf("after the crash the operation is %s, want completed: %+v", v.Status, v)
	}
	for _, s := range v.Stages {
		for _, task := range s.Tasks {
			if task.Status != taskrt.TaskSucceeded || task.Attempts < 1 {
				t.Errorf("task %s: %s after %d attempts, want succeeded", task.ID, task.Status, task.Attempts)
			}
		}
	}
	for _, a := range acked {
		if v := await(t, user, node.url, a, "finished", time.Minute, func(v taskrt.OperationView) bool { return v.Status.Final() }); v.Status != taskrt.OpCompleted {
			t.Errorf("acknowledged operation %s is %s after the crash, want completed", a, v.Status)
		}
	}
	node.interrupt(t)

	out, stderr, code = run(t, user, "verify", "--home", home)
	if code != 0 || !strings.HasPrefix(out, "verified ") {
		t.Fatalf("verify --home after the crash: exit %d\n%s%s", code, out, stderr)
	}
}
