package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// copyHome copies a home with its store, sparsely: badger preallocates a
// 2 GiB value log that is mostly a hole.
func copyHome(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "home")
	if out, err := exec.Command("cp", "-a", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v: %s", src, err, out)
	}
	os.Remove(filepath.Join(dst, "data", "LOCK"))
	return dst
}

func globOne(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("no %s: %v", pattern, err)
	}
	return m
}

// After a kill -9, a dev node whose store was damaged refuses to start with
// one sentence, and verify --home names the fault with exit code 5: a torn
// WAL that lost acknowledged blocks, a lost MANIFEST, a table cut short or
// with a flipped bit. An undamaged home comes back whole and verifies.
func TestVerifyHomeNamesStoreFaults(t *testing.T) {
	t.Parallel()
	env, _ := userEnv(t)
	home := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, env, home)
	d.run(t, "submit", "testnet/ops/fig4.yaml", "--wait").wantCode(t, exitOK)
	height, ids := d.ledgerState(t)
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	killed := copyHome(t, home)

	// The undamaged home comes back with everything it acknowledged.
	d = startDev(t, env, home)
	if h, after := d.ledgerState(t); h != height || len(after) != len(ids) {
		t.Fatalf("after kill -9: head %d, operations %v; want %d and %v", h, after, height, ids)
	}
	d.stop(t)
	sagachain(t, env, "verify", "--home", home).wantCode(t, exitOK)
	// Stopped cleanly, the store has a table file.
	globOne(t, filepath.Join(home, "data", "*.sst"))

	for _, tc := range []struct {
		name   string
		from   string
		damage func(t *testing.T, data string)
		reason string
	}{
		{"zeroed WAL", killed, func(t *testing.T, data string) {
			for _, p := range globOne(t, filepath.Join(data, "*.mem")) {
				fi, _ := os.Stat(p)
				if err := os.WriteFile(p, make([]byte, fi.Size()), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}, "lost from it, probably by a torn write"},
		{"deleted MANIFEST", home, func(t *testing.T, data string) {
			if err := os.Remove(filepath.Join(data, "MANIFEST")); err != nil {
				t.Fatal(err)
			}
		}, "its MANIFEST is missing"},
		{"truncated table", home, func(t *testing.T, data string) {
			p := globOne(t, filepath.Join(data, "*.sst"))[0]
			fi, _ := os.Stat(p)
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "is corrupt or cut short"},
		{"flipped table", home, func(t *testing.T, data string) {
			p := globOne(t, filepath.Join(data, "*.sst"))[0]
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/4] ^= 0x01
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is corrupt or cut short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := copyHome(t, tc.from)
			tc.damage(t, filepath.Join(h, "data"))
			r := sagachain(t, env, "verify", "--home", h)
			r.wantCode(t, exitFault)
			if !strings.Contains(r.stderr, tc.reason) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Errorf("verify --home: stderr %q, want one line with %q", r.stderr, tc.reason)
			}
			r = sagachain(t, env, "dev", "--home", h, "--rpc", "127.0.0.1:0")
			if r.code == exitOK || !strings.Contains(r.stderr, tc.reason) || strings.Contains(r.stderr, "goroutine") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Errorf("dev on the damaged home: exit %d, stderr %q; want a refusal in one line with %q", r.code, r.stderr, tc.reason)
			}
			t.Logf("dev: %s", strings.TrimSpace(r.stderr))
		})
	}
}
