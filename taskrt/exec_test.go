//go:build unix

package taskrt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeScript writes a /bin/sh script into a fresh directory and returns its
// path.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fn.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func newExecTest(t *testing.T, body string, args ...string) *ExecFunction {
	t.Helper()
	f, err := NewExecFunction(append([]string{writeScript(t, body)}, args...))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestExecFunctionEchoesRequest(t *testing.T) {
	// The request on stdin is a JSON object, so it is a valid result too.
	f, err := NewExecFunction([]string{"cat"})
	if err != nil {
		t.Fatal(err)
	}
	req := testRequest()
	req.Outcome = "timed_out"
	req.Output = map[string]any{"flight": "AB12CD"}
	out, err := f.Call(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"operation": "op-1", "task": "flight", "attempt": int64(1), "idempotency_key": "op-1/flight",
		"inputs": map[string]any{"traveler": "Ada Lovelace"}, "params": map[string]any{"class": "economy"},
		"outcome": "timed_out", "output": map[string]any{"flight": "AB12CD"},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("output = %#v\nwant %#v", out, want)
	}
}

func TestExecFunctionScript(t *testing.T) {
	f := newExecTest(t, `
in=$(cat)
task=$(printf '%s' "$in" | sed -n 's/.*"task":"\([^"]*\)".*/\1/p')
printf '{"reserved": "%s-%s", "dir": "%s", "n": 3, "ok": true}\n' "$task" "$GREETING" "$PWD"
echo "diagnostics go to stderr" >&2
`)
	dir := t.TempDir()
	f.Env = []string{"GREETING=hello", "PATH=" + os.Getenv("PATH")}
	f.Dir = dir
	out, err := f.Call(context.Background(), testRequest())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"reserved": "flight-hello", "dir": dir, "n": int64(3), "ok": true}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("output = %#v, want %#v", out, want)
	}
}

func TestExecFunctionExitStatus(t *testing.T) {
	f := newExecTest(t, `cat >/dev/null; echo "seat map unavailable" >&2; exit 3`)
	_, err := f.Call(context.Background(), testRequest())
	if err == nil {
		t.Fatal("exit status 3 succeeded")
	}
	if IsPermanent(err) {
		t.Errorf("exit status 3 is permanent: %v", err)
	}
	for _, want := range []string{"exit status 3", "seat map unavailable"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("error %v does not wrap an *exec.ExitError with status 3", err)
	}
}

func TestExecFunctionUsageIsPermanent(t *testing.T) {
	f := newExecTest(t, `echo "unknown seat class" >&2; exit 64`)
	_, err := f.Call(context.Background(), testRequest())
	if !IsPermanent(err) {
		t.Fatalf("exit status 64 gave %v, want a permanent error", err)
	}
	if !strings.Contains(err.Error(), "exit status 64") || !strings.Contains(err.Error(), "unknown seat class") {
		t.Errorf("error %q should give the status and stderr", err)
	}
}

func TestExecFunctionStderrTail(t *testing.T) {
	f := newExecTest(t, `
echo "FIRST LINE" >&2
i=0
while [ $i -lt 100 ]; do echo "filler filler filler filler" >&2; i=$((i+1)); done
echo "LAST LINE" >&2
exit 1`)
	_, err := f.Call(context.Background(), testRequest())
	if err == nil {
		t.Fatal("exit status 1 succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "LAST LINE") || strings.Contains(msg, "FIRST LINE") {
		t.Errorf("error should quote the end of stderr only: %q", msg)
	}
	if len(msg) > 2*errorBodySize {
		t.Errorf("error is %d bytes long", len(msg))
	}
}

func TestExecFunctionBadStdout(t *testing.T) {
	scripts := map[string]string{
		"not json": `echo reserved`,
		"array":    `echo '[1, 2]'`,
		"empty":    `true`,
		"two":      `echo '{}'; echo '{}'`,
		"too big":  `head -c ` + strconv.Itoa(maxResultSize+1) + ` /dev/zero`,
	}
	for name, body := range scripts {
		t.Run(name, func(t *testing.T) {
			f := newExecTest(t, body)
			out, err := callPromptly(t, context.Background(), f, testRequest())
			if err == nil {
				t.Fatalf("gave output %v, want an error", out)
			}
			if !IsPermanent(err) {
				t.Errorf("gave a retryable error: %v", err)
			}
		})
	}
}

func TestExecFunctionMissingCommand(t *testing.T) {
	f := &ExecFunction{Argv: []string{filepath.Join(t.TempDir(), "missing")}}
	_, err := f.Call(context.Background(), testRequest())
	if !IsPermanent(err) {
		t.Errorf("a missing command gave %v, want a permanent error", err)
	}
}

func TestNewExecFunction(t *testing.T) {
	notExecutable := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, argv := range [][]string{nil, {}, {""}, {"/nonexistent/command"}, {"sagachain-no-such-command"}, {notExecutable}} {
		if f, err := NewExecFunction(argv); err == nil {
			t.Errorf("NewExecFunction(%q) = %+v, want an error", argv, f)
		}
	}
	argv := []string{"cat", "-u"}
	f, err := NewExecFunction(argv)
	if err != nil {
		t.Fatal(err)
	}
	argv[1] = "changed"
	if f.Argv[1] != "-u" {
		t.Errorf("NewExecFunction kept the caller's slice: Argv = %q", f.Argv)
	}
}

func TestExecFunctionDeadline(t *testing.T) {
	f := newExecTest(t, `exec sleep 30`)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := callPromptly(t, ctx, f, testRequest())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want context.DeadlineExceeded", err)
	}
	if IsPermanent(err) {
		t.Errorf("a timeout is permanent: %v", err)
	}
}

// TestExecFunctionKillsProcessGroup checks that cancelling a call kills the
// script's children too, which would otherwise outlive it holding stdout.
func TestExecFunctionKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	f := newExecTest(t, `
sleep 30 &
echo $! > "$1.tmp" && mv "$1.tmp" "$1"
sleep 30`, pidFile)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the child exists, so that the test does not race
		// the script's start.
		for ctx.Err() == nil {
			if _, err := os.Stat(pidFile); err == nil {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err := callPromptly(t, ctx, f, testRequest())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}

	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the script never wrote its child's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) }) // if the test fails
	deadline := time.Now().Add(callBound)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still alive %v after the call returned", pid, callBound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExecFunctionOrphanHoldingStdout checks that a call returns although a
// process the command left behind keeps its stdout open.
func TestExecFunctionOrphanHoldingStdout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "orphan.pid")
	f := newExecTest(t, `
sleep 30 &
echo $! > "$1"
echo '{}'`, pidFile)
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	_, err := callPromptly(t, context.Background(), f, testRequest())
	if err == nil || IsPermanent(err) {
		t.Fatalf("error %v, want a retryable error", err)
	}
	if !strings.Contains(err.Error(), "kept stdout open") {
		t.Errorf("error %q should say that stdout stayed open", err)
	}
}

// processAlive reports whether pid names a live process. A zombie counts as
// dead: it has exited and only waits for its new parent to reap it.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		// No /proc, or the process has just gone: the next Kill tells.
		return true
	}
	// The state follows the command name, which is in parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
