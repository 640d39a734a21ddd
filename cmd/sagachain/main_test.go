package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// binary is the sagachain binary built once for every test, which runs it
// as a real process.
var binary string

// buildFlags are the flags TestMain builds the binary with; a race build of
// the tests builds a race binary (race_test.go).
var buildFlags []string

// repoRoot is the module root: the example operations live under it.
var repoRoot = filepath.Join("..", "..")

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sagachain-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "sagachain")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	args := append([]string{"build", "-o", binary}, buildFlags...)
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building sagachain: %v\n", err)
		return 1
	}
	return m.Run()
}

// result is what one run of the binary left behind.
type result struct {
	stdout, stderr string
	code           int
}

// sagachain runs the binary (see command) and waits for it to exit.
func sagachain(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := command(t, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("sagachain %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// command prepares a run of the binary in the module root with args and the
// extra environment variables env ("KEY=value"); it is killed if it outlives
// the test. SAGACHAIN_* variables of the test's own environment are not
// passed on.
func command(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = repoRoot
	// A race binary sleeps a second at exit by default, for other threads
	// to report races; the tests wait for the process, which reports all.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(append(cleanEnv(), "GORACE="+gorace), env...)
	return cmd
}

// cleanEnv is the test's environment without SAGACHAIN_* variables, so that
// a developer's settings do not change what the tests see.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAGACHAIN_") && !strings.HasPrefix(kv, "NO_COLOR=") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	return env
}

// writeFile writes body to name in a fresh temporary directory and returns
// its absolute path.
func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantCode fails the test unless r exited with code, showing its output.
func (r result) wantCode(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

func TestCommandLineErrorsExit2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"bogus"}, `unknown command "bogus"`},
		{"unknown flag", []string{"plan", "testnet/ops/trip.yaml", "--jsn"}, "unknown flag: --jsn"},
		{"no file", []string{"plan"}, "plan takes one operation file, got 0 arguments"},
		{"two files", []string{"run", "testnet/ops/trip.yaml", "testnet/ops/fig4.yaml"}, "run takes one operation file, got 2 arguments"},
		{"json and dot", []string{"plan", "testnet/ops/trip.yaml", "--json", "--dot"}, "--json and --dot"},
		{"bad log format", []string{"--log-format", "xml", "plan", "testnet/ops/trip.yaml"}, `--log-format: want text or json, got "xml"`},
		{"bad log level", []string{"--log-level", "loud", "plan", "testnet/ops/trip.yaml"}, `--log-level: want debug, info, warn or error, got "loud"`},
		{"bad flag value", []string{"plan", "testnet/ops/trip.yaml", "--json=maybe"}, "--json"},
		{"missing file", []string{"plan", "testnet/ops/absent.yaml"}, "testnet/ops/absent.yaml"},
		{"bad input", []string{"run", "testnet/ops/trip.yaml", "--input", "traveler"}, `--input "traveler": want label=value`},
		{"unknown input label", []string{"run", "testnet/ops/trip.yaml", "--input", "travller=Ada"}, "travller"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := sagachain(t, nil, tc.args...)
			r.wantCode(t, exitUsage)
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			first, _, _ := strings.Cut(r.stderr, "\n")
			if !strings.HasPrefix(first, "sagachain: ") || !strings.Contains(first, tc.want) {
				t.Errorf("first line of stderr = %q, want sagachain: ...%s...", first, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := sagachain(t, nil, "version")
	r.wantCode(t, exitOK)
	if !strings.HasPrefix(r.stdout, "sagachain ") || !strings.Contains(r.stdout, runtime.Version()) {
		t.Errorf("version printed %q, want sagachain <version> (%s ...)", r.stdout, runtime.Version())
	}
}

func TestConfigErrorsExit2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown key", "functons: {}\n", "unknown key functons"},
		{"bad function", "functions:\n  airline.reserve: {}\n", "functions.airline.reserve: set exactly one of http or exec"},
		{"builtin redefined", "functions:\n  echo: {http: \"http://127.0.0.1:1/echo\"}\n", "functions.echo"},
		{"absent command", "functions:\n  report.build: {exec: [/nonexistent/build-report]}\n", "functions.report.build"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := writeFile(t, "config.yaml", tc.body)
			r := sagachain(t, nil, "run", "testnet/ops/trip.yaml", "--config", cfg)
			r.wantCode(t, exitUsage)
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want it to name %q", r.stderr, tc.want)
			}
		})
	}
}

func TestFlagsFromEnvironmentAndConfig(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "config.yaml", "json: true\nlog_format: json\n")
	for _, tc := range []struct {
		name     string
		env      []string
		args     []string
		wantJSON bool
	}{
		{"environment", []string{"SAGACHAIN_JSON=true"}, nil, true},
		{"flag over environment", []string{"SAGACHAIN_JSON=true"}, []string{"--json=false"}, false},
		{"config file", nil, []string{"--config", cfg}, true},
		{"environment over config file", []string{"SAGACHAIN_CONFIG=" + cfg, "SAGACHAIN_JSON=false"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := sagachain(t, tc.env, append([]string{"plan", "testnet/ops/fig4.yaml"}, tc.args...)...)
			r.wantCode(t, exitOK)
			if isJSON := strings.HasPrefix(r.stdout, `{"name":`); isJSON != tc.wantJSON {
				t.Errorf("plan printed %q, want JSON: %v", r.stdout, tc.wantJSON)
			}
		})
	}
}
