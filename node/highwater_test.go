package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// copyDir copies the regular files of src whose names keep accepts into
// dst, which it makes. It copies sparsely: badger preallocates a 2 GiB
// value log that is mostly a hole.
func copyDir(t *testing.T, src, dst string, keep func(name string) bool) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !keep(e.Name()) {
			continue
		}
		out, err := exec.Command("cp", "--sparse=always", filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())).CombinedOutput()
		if err != nil {
			t.Fatalf("copy %s: %v: %s", e.Name(), err, out)
		}
	}
}

// isMarkFile reports whether a data directory's file belongs to the node
// rather than to badger: the high-water mark and the consensus state.
func isMarkFile(name string) bool {
	return strings.HasPrefix(name, HighWaterFile+".") || strings.HasPrefix(name, "consensus-state")
}

// crashImage copies a running node's data directory as a kill -9 would
// leave it: badger's files as they are in the page cache. The marks are
// copied first, so the image's store is never behind them by the copy's
// own doing.
func crashImage(t *testing.T, home, dst string) {
	t.Helper()
	data := filepath.Join(home, DataDir)
	copyDir(t, data, filepath.Join(dst, DataDir), isMarkFile)
	copyDir(t, data, filepath.Join(dst, DataDir), func(n string) bool { return !isMarkFile(n) && n != "LOCK" })
}

func withSuffix(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A lone node whose store was damaged after a kill either comes back with
// every operation it acknowledged or refuses to start with one sentence
// saying why; it never starts behind what it acknowledged, and it deletes
// nothing of the damaged store.
func TestLoneNodeNeverStartsBehindWhatItAcknowledged(t *testing.T) {
	home := t.TempDir()
	tn := startNode(t, home)
	var acked []ledger.Hash
	for i := range 3 {
		id := tn.submitText(t, fmt.Sprintf("name: op%d\ntasks:\n  - {id: a, run: echo}\n", i))
		tn.wait(t, id)
		acked = append(acked, id)
	}
	image := t.TempDir()
	crashImage(t, home, image)
	running := filepath.Join(image, DataDir)
	tn.stop()
	// Stopped cleanly, badger has flushed its memtable into a table file.
	stopped := filepath.Join(home, DataDir)
	if len(withSuffix(t, stopped, ".sst")) == 0 {
		t.Fatal("no table file after a clean stop")
	}

	for _, tc := range []struct {
		name   string
		image  string // the data directory to damage
		damage func(t *testing.T, data string)
		// refusal is a phrase of the one-sentence refusal; "" means the
		// node must come back with everything.
		refusal string
	}{
		{"intact crash image", running, func(*testing.T, string) {}, ""},
		{"zeroed WAL", running, func(t *testing.T, data string) {
			for _, p := range withSuffix(t, data, ".mem") {
				fi, _ := os.Stat(p)
				if err := os.WriteFile(p, make([]byte, fi.Size()), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}, "lost from it, probably by a torn write"},
		{"truncated WAL", running, func(t *testing.T, data string) {
			for _, p := range withSuffix(t, data, ".mem") {
				if err := os.Truncate(p, 4096); err != nil {
					t.Fatal(err)
				}
			}
		}, "lost from it, probably by a torn write"},
		{"deleted MANIFEST", stopped, func(t *testing.T, data string) {
			if err := os.Remove(filepath.Join(data, "MANIFEST")); err != nil {
				t.Fatal(err)
			}
		}, "its MANIFEST is missing"},
		{"truncated table", stopped, func(t *testing.T, data string) {
			p := withSuffix(t, data, ".sst")[0]
			fi, _ := os.Stat(p)
			if err := os.Truncate(p, fi.Size()*2/3); err != nil {
				t.Fatal(err)
			}
		}, "is corrupt or cut short"},
		{"flipped table", stopped, func(t *testing.T, data string) {
			p := withSuffix(t, data, ".sst")[0]
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/3] ^= 0x04
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is corrupt or cut short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := t.TempDir()
			copyDir(t, tc.image, filepath.Join(h, DataDir), func(string) bool { return true })
			tc.damage(t, filepath.Join(h, DataDir))
			before := dirListing(t, filepath.Join(h, DataDir))
			g, cfg, val, _ := oneValidator(t)
			cfg.RPC.Listen = "127.0.0.1:0"
			n, err := New(Options{Home: h, Config: cfg, Genesis: g, Key: val, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if tc.refusal == "" {
				if err != nil {
					t.Fatalf("an intact crash image refused: %v", err)
				}
				for _, id := range acked {
					if r, err := n.store.Operation(id); err != nil || r.Saga.Status != taskrt.OpCompleted {
						n.store.Close()
						t.Fatalf("acknowledged operation %s: %v, %v", id.TerminalString(), r, err)
					}
				}
				n.store.Close()
				return
			}
			if err == nil {
				head, _ := n.store.Head()
				n.store.Close()
				t.Fatalf("the node opened the damaged store at height %d", head)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.refusal) || strings.Contains(msg, "\n") || strings.Contains(msg, "goroutine") {
				t.Fatalf("refusal %q, want one line with %q", msg, tc.refusal)
			}
			t.Logf("refused: %s", msg)
			// A WAL that badger accepted, torn, was replayed and flushed
			// when the store was closed again; the other faults are
			// refused before badger touches the directory.
			if after := dirListing(t, filepath.Join(h, DataDir)); tc.image == stopped && !slices.Equal(before, after) {
				t.Fatalf("refusing changed the store:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// dirListing lists a directory's badger files (.sst, .vlog, MANIFEST)
// with their sizes: what a refusal must leave alone.
func dirListing(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".sst") && !strings.HasSuffix(n, ".vlog") && n != "MANIFEST" {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s:%d", n, fi.Size()))
	}
	return out
}

// A home from before high-water marks takes its store's head as its mark,
// and a mark is raised with every block committed.
func TestHighWaterMarkFollowsCommits(t *testing.T) {
	home := t.TempDir()
	tn := startNode(t, home)
	id := tn.submitText(t, "name: one\ntasks:\n  - {id: a, run: echo}\n")
	tn.wait(t, id)
	tn.stop()
	check := func(what string) {
		t.Helper()
		s := newSlotFile(highWaterPath(home))
		defer s.Close()
		m, ok, err := loadHighWater(s)
		if err != nil || !ok {
			t.Fatalf("%s: mark %v, %v", what, ok, err)
		}
		st, err := ledger.OpenBadger(filepath.Join(home, DataDir))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		head, _ := st.Head()
		b, err := st.Block(head)
		if err != nil {
			t.Fatal(err)
		}
		if m.Height != head || m.Hash != b.Hash() {
			t.Fatalf("%s: mark %d %s, store head %d %s", what, m.Height, m.Hash.TerminalString(), head, b.Hash().TerminalString())
		}
		if err := CheckHighWater(home, st); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	check("after commits")
	for _, p := range withSuffix(t, filepath.Join(home, DataDir), "") {
		if strings.HasPrefix(filepath.Base(p), HighWaterFile+".") {
			os.Remove(p)
		}
	}
	tn = startNode(t, home)
	tn.stop()
	check("a home without a mark")

	// A mark naming another block at the store's head: the store holds
	// something this node did not commit, and no node starts on it.
	s := newSlotFile(highWaterPath(home))
	m, _, err := loadHighWater(s)
	if err != nil {
		t.Fatal(err)
	}
	m.Hash[0] ^= 1
	if err := s.Save(m.encode()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	g, cfg, val, _ := oneValidator(t)
	n, err := New(Options{Home: home, Config: cfg, Genesis: g, Key: val, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var behind *StoreBehindError
	if err == nil {
		n.store.Close()
		t.Fatal("a node started on a store that contradicts its mark")
	}
	if !errors.As(err, &behind) || behind.Other == nil || !strings.Contains(err.Error(), "the node does not start on a store that contradicts what it committed") {
		t.Fatalf("refusal %v, want a StoreBehindError naming the other block", err)
	}
	t.Logf("refused: %v", err)
}
