package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sagachain/sagachain/taskrt"
)

// procWatch collects, while it runs, the processes whose command line
// names a directory: the nodes a bench started under its TMPDIR.
type procWatch struct {
	dir  string
	mu   sync.Mutex
	seen map[int]bool
	stop chan struct{}
	done chan struct{}
}

// watchProcs polls /proc every 20ms; a node process lives for seconds.
func watchProcs(t *testing.T, dir string) *procWatch {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("finds the processes a bench started in /proc")
	}
	w := &procWatch{dir: dir, seen: map[int]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			for _, pid := range procsNaming(dir) {
				w.mu.Lock()
				w.seen[pid] = true
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(w.close)
	return w
}

func (w *procWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// pids returns the processes seen so far.
func (w *procWatch) pids() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for pid := range w.seen {
		out = append(out, pid)
	}
	slices.Sort(out)
	return out
}

// waitGone fails the test unless every process seen is gone within
// timeout: none runs with the directory on its command line any more.
func (w *procWatch) waitGone(t *testing.T, timeout time.Duration) {
	t.Helper()
	w.close()
	deadline := time.Now().Add(timeout)
	for {
		left := procsNaming(w.dir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v still run %s after bench exited (seen: %v)", left, timeout, w.pids())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procsNaming lists the processes whose command line contains dir.
func procsNaming(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) {
			out = append(out, pid)
		}
	}
	return out
}

// benchTestnetArgs is the smallest run of bench --testnet that still has
// all three phases: with one validator in four down, most operations wait
// for a task on it, so --lost-after is short to keep the run short.
var benchTestnetArgs = []string{"bench", "--testnet", "4", "--kill", "1", "--ops", "5", "--concurrency", "1",
	"--scenario", "complete", "--lost-after", "2s"}

// bench --testnet runs all three phases on testnets of real node processes,
// and leaves none of them running, nor their homes. It is not parallel:
// four nodes of its own on a machine other tests load would make the all-up
// phase, which must finish every operation, slow enough to lose some.
func TestBenchTestnetPhases(t *testing.T) {
	if testing.Short() {
		t.Skip("runs testnets of node processes for about 30s")
	}
	tmp := t.TempDir()
	env, _ := userEnv(t)
	env = append(env, "TMPDIR="+tmp)
	w := watchProcs(t, tmp)
	start := time.Now()
	r := sagachain(t, env, append(benchTestnetArgs, "--seed", "7")...)
	t.Logf("bench --testnet ran %s", time.Since(start).Round(time.Millisecond))
	r.wantCode(t, exitOK)
	// 4 nodes all up, 3 down at start, 4 killed mid-run; the watch polls
	// far more often than a testnet lives.
	if n := len(w.pids()); n < 11 {
		t.Errorf("saw %d node processes, want the 11 of three testnets", n)
	}
	w.waitGone(t, 5*time.Second)
	if left, _ := filepath.Glob(filepath.Join(tmp, "sagachain-bench-*")); len(left) > 0 {
		t.Errorf("bench left the homes %v", left)
	}

	rows := map[string][]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		for _, p := range benchPhases {
			if strings.HasPrefix(l, p+"  ") {
				rows[p] = strings.Fields(strings.TrimPrefix(l, p))
			}
		}
	}
	for _, p := range benchPhases {
		// scenario, concurrency, ops, ops/s, vs all up, p50, p95,
		// completed, rolled_back, rollback_failed, lost, kill to moved.
		f := rows[p]
		if len(f) != 12 || f[0] != "complete" || f[1] != "1" || f[2] != "5" {
			t.Errorf("phase %q: row %q, want complete at concurrency 1, 5 ops, 12 columns\nstdout:\n%s", p, f, r.stdout)
			continue
		}
		if p == phaseAllUp && (f[7] != "5" || f[10] != "0") {
			t.Errorf("all up: %s completed, %s lost; want 5 and 0", f[7], f[10])
		}
		if moved := f[11]; (p == phaseKilled) != (moved != "-") {
			t.Errorf("phase %q: kill to moved %q", p, moved)
		}
	}
	if !strings.Contains(r.stdout, "seed 7;") || !strings.Contains(r.stdout, "killed mid-run, complete at 1: SIGKILL once ") {
		t.Errorf("stdout lacks the seed or the kill's note:\n%s", r.stdout)
	}
}

// An interrupted bench --testnet stops its nodes before it exits, and a
// killed one takes them with it (the parent-death signal).
func TestBenchTestnetStopsItsNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs testnets of node processes")
	}
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			env, _ := userEnv(t)
			w := watchProcs(t, tmp)
			cmd := command(t, append(env, "TMPDIR="+tmp), "bench", "--testnet", "4", "--ops", "100000", "--concurrency", "1")
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// Signal once the level runs: its nodes are all up then.
			deadline := time.After(time.Minute)
			for !strings.Contains(stderr.String(), `phase="all up"`) {
				select {
				case err := <-exited:
					t.Fatalf("bench exited before the level ran: %v\nstderr:\n%s", err, stderr.String())
				case <-deadline:
					t.Fatalf("bench ran no level within a minute\nstderr:\n%s", stderr.String())
				case <-time.After(20 * time.Millisecond):
				}
			}
			if n := len(procsNaming(tmp)); n != 4 {
				t.Errorf("%d node processes run, want 4", n)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("bench did not exit within 30s of %v", sig)
			}
			if sig != syscall.SIGKILL {
				if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(stderr.String(), "sagachain: interrupted; the testnets' nodes are stopped") {
					t.Errorf("exit code %d, want %d, and stderr to say so:\n%s", code, exitFailure, stderr.String())
				}
			}
			w.waitGone(t, 10*time.Second)
			if left, _ := filepath.Glob(filepath.Join(tmp, "sagachain-bench-*")); sig != syscall.SIGKILL && len(left) > 0 {
				t.Errorf("bench left the homes %v", left)
			}
		})
	}
}

func TestFirstMovedAttestation(t *testing.T) {
	t.Parallel()
	stage := func(i int) *int { return &i }
	views := []*taskrt.OperationView{
		{ID: "0xa", Events: []taskrt.Event{
			// Before the kill: not counted.
			{Height: 4, Type: taskrt.EventTaskMoved, Stage: stage(0), Task: "a"},
			{Height: 5, Type: taskrt.EventTaskAttested, Stage: stage(0), Task: "a"},
			{Height: 12, Type: taskrt.EventTaskMoved, Stage: stage(1), Task: "c"},
			{Height: 13, Type: taskrt.EventTaskAttested, Stage: stage(1), Task: "d"},
			{Height: 15, Type: taskrt.EventTaskAttested, Stage: stage(1), Task: "c"},
		}},
		{ID: "0xb", Events: []taskrt.Event{
			// Moved first, but never attested: not the first failover.
			{Height: 10, Type: taskrt.EventTaskMoved, Stage: stage(0), Task: "b"},
			// Moved at the same height as 0xa's c, attested sooner.
			{Height: 12, Type: taskrt.EventRollbackMoved, Stage: stage(0), Task: "a"},
			{Height: 13, Type: taskrt.EventTaskAttested, Stage: stage(0), Task: "a"},
			{Height: 14, Type: taskrt.EventTaskRolledBack, Stage: stage(0), Task: "a"},
		}},
	}
	moves, first := firstMovedAttestation(views, 10)
	if moves != 3 || first == nil || *first != (movedAttestation{op: "0xb", task: "a", moveHeight: 12, attestHeight: 14}) {
		t.Errorf("got %d moves, first %+v; want 3, 0xb's rollback of a moved at 12, rolled back at 14", moves, first)
	}
	if moves, first := firstMovedAttestation(views, 20); moves != 0 || first != nil {
		t.Errorf("after every event: got %d moves, first %+v; want none", moves, first)
	}
}
