package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/node"
)

// An export is a backup: imported into a new home that holds the chain's
// genesis, key and config, it verifies, the node starts at its head, and
// every operation reads as it did on the original node. A tampered export
// and one of another chain are refused with exit 5 and leave the home as
// it was; a home with chain data is refused.
func TestImportRoundTrip(t *testing.T) {
	t.Parallel()
	env, _ := userEnv(t)
	home := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, env, home)
	d.run(t, "submit", "testnet/ops/trip.yaml", "--wait").wantCode(t, exitOK)
	d.run(t, "submit", "testnet/ops/trip-hotel-fails.yaml", "--wait").wantCode(t, exitRolledBack)
	d.run(t, "submit", "testnet/ops/fig4.yaml", "--wait").wantCode(t, exitOK)
	height, ids := d.ledgerState(t)
	if len(ids) != 3 {
		t.Fatalf("operations %v, want the three submitted", ids)
	}
	views := make(map[string]string)
	for _, id := range ids {
		r := d.run(t, "op", "get", id, "--json")
		r.wantCode(t, exitOK)
		views[id] = r.stdout
	}
	d.stop(t)
	file := filepath.Join(t.TempDir(), "chain.export")
	sagachain(t, env, "export", "--home", home, "--out", file).wantCode(t, exitOK)

	// The new home: what the old one was made with, and no data.
	restored := filepath.Join(t.TempDir(), "restored")
	if err := os.MkdirAll(restored, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{node.GenesisFile, node.KeyFile, node.ConfigFile} {
		b, err := os.ReadFile(filepath.Join(home, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(restored, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := homeEntries(t, restored)

	// One flipped byte in the middle: refused as verify refuses it, and
	// nothing written.
	whole, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tampered := slices.Clone(whole)
	tampered[len(tampered)/2] ^= 0x01
	bad := writeFile(t, "tampered.export", string(tampered))
	r := sagachain(t, env, "import", "--home", restored, "--file", bad)
	r.wantCode(t, exitFault)
	if !strings.Contains(r.stderr, "refused, nothing written") || !strings.Contains(r.stderr, "block ") {
		t.Errorf("import of a tampered export: stderr %q, want the bad block named", r.stderr)
	}
	if after := homeEntries(t, restored); !slices.Equal(after, before) {
		t.Errorf("a refused import changed the home: %v, was %v", after, before)
	}

	// An export of another chain: both genesis hashes named.
	other := filepath.Join(t.TempDir(), "other")
	sagachain(t, env, "init", "--home", other).wantCode(t, exitOK)
	otherBefore := homeEntries(t, other)
	r = sagachain(t, env, "import", "--home", other, "--file", file)
	r.wantCode(t, exitFault)
	if !strings.Contains(r.stderr, `export of chain "sagachain-dev"`) || strings.Count(r.stderr, "genesis 0x") != 2 {
		t.Errorf("import of another chain's export: stderr %q, want both chains and genesis hashes named", r.stderr)
	}
	if after := homeEntries(t, other); !slices.Equal(after, otherBefore) {
		t.Errorf("a refused import changed the home: %v, was %v", after, otherBefore)
	}

	// A home with chain data is refused, not overwritten.
	r = sagachain(t, env, "import", "--home", home, "--file", file)
	r.wantCode(t, exitUsage)
	if !strings.Contains(r.stderr, "already has chain data") {
		t.Errorf("import into a home with data: stderr %q", r.stderr)
	}

	r = sagachain(t, env, "import", "--home", restored, "--file", file)
	r.wantCode(t, exitOK)
	if want := "head " + strconv.FormatUint(height, 10) + " 0x"; !strings.Contains(r.stdout, want) {
		t.Errorf("import printed %q, want %q", r.stdout, want)
	}
	if ents := homeEntries(t, restored); slices.ContainsFunc(ents, func(e string) bool { return strings.HasPrefix(e, ".import-") }) {
		t.Errorf("import left its staging directory: %v", ents)
	}
	r = sagachain(t, env, "verify", "--home", restored)
	r.wantCode(t, exitOK)
	if want := "head " + strconv.FormatUint(height, 10) + " "; !strings.Contains(r.stdout, want) {
		t.Errorf("verify --home of the restored home printed %q, want %q", r.stdout, want)
	}

	d = startDev(t, env, restored)
	if !strings.HasSuffix(d.banner[0], ", height "+strconv.FormatUint(height, 10)) {
		t.Errorf("restored node: banner %q, want it to start at height %d", d.banner[0], height)
	}
	for _, id := range ids {
		r := d.run(t, "op", "get", id, "--json")
		r.wantCode(t, exitOK)
		if r.stdout != views[id] {
			t.Errorf("op get %s on the restored node:\n%s\nwant, as on the original:\n%s", id, r.stdout, views[id])
		}
	}
	// The restored node carries on from there.
	d.run(t, "submit", "testnet/ops/fig4.yaml", "--wait").wantCode(t, exitOK)
	d.stop(t)
}

// homeEntries lists the names in dir.
func homeEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names
}
