package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/p2p"
)

// userEnv is the environment of a test user whose home directory is a
// fresh temporary one, so the client key lives there.
func userEnv(t *testing.T) (env []string, home string) {
	t.Helper()
	home = t.TempDir()
	return []string{"HOME=" + home}, home
}

// clientAddress reads the client key of a test user.
func clientAddress(t *testing.T, home string) ledger.Address {
	t.Helper()
	k, err := ledger.LoadKey(filepath.Join(home, ".sagachain", "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k.Address()
}

func TestInitMakesAHomeForTheClient(t *testing.T) {
	t.Parallel()
	env, user := userEnv(t)
	dir := filepath.Join(t.TempDir(), "node")
	r := sagachain(t, env, "init", "--home", dir, "--chain-id", "acme-test")
	r.wantCode(t, exitOK)
	g, err := ledger.LoadGenesis(filepath.Join(dir, "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	client := clientAddress(t, user)
	if g.ChainID != "acme-test" || len(g.Validators) != 1 || !g.AllowedSubmitter(client) {
		t.Fatalf("genesis %+v: want chain acme-test, one validator, submitter %s", g, client)
	}
	if !strings.Contains(r.stdout, g.Validators[0].Address.Hex()) || !strings.Contains(r.stdout, client.Hex()) {
		t.Errorf("init printed %q, want the validator %s and the submitter %s", r.stdout, g.Validators[0].Address.Hex(), client.Hex())
	}

	// keys show prints the validator of the genesis.
	r = sagachain(t, env, "keys", "show", "--home", dir, "--json")
	r.wantCode(t, exitOK)
	var shown struct{ Address, File string }
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatalf("keys show --json printed %q: %v", r.stdout, err)
	}
	if shown.Address != g.Validators[0].Address.Hex() || shown.File != filepath.Join(dir, "key.hex") {
		t.Errorf("keys show = %+v, want %s in %s", shown, g.Validators[0].Address.Hex(), filepath.Join(dir, "key.hex"))
	}

	// A home is never initialised twice, and its key never replaced.
	before, err := os.ReadFile(filepath.Join(dir, "key.hex"))
	if err != nil {
		t.Fatal(err)
	}
	r = sagachain(t, env, "init", "--home", dir)
	r.wantCode(t, exitUsage)
	if !strings.Contains(r.stderr, filepath.Join(dir, "genesis.json")+" exists") {
		t.Errorf("second init: stderr %q, want it to name genesis.json", r.stderr)
	}
	r = sagachain(t, env, "keys", "new", "--home", dir)
	r.wantCode(t, exitUsage)
	if !strings.Contains(r.stderr, "refusing to replace a key") {
		t.Errorf("keys new over a key: stderr %q, want a refusal", r.stderr)
	}
	after, err := os.ReadFile(filepath.Join(dir, "key.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("the validator key changed")
	}

	// A second home of the same user shares the client key.
	r = sagachain(t, env, "init", "--home", filepath.Join(t.TempDir(), "node2"))
	r.wantCode(t, exitOK)
	if !strings.Contains(r.stdout, client.Hex()) || !strings.Contains(r.stdout, "sagachain-local") {
		t.Errorf("second home: init printed %q, want the same submitter %s and chain sagachain-local", r.stdout, client.Hex())
	}
}

func TestKeysNewMakesAKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "fresh")
	r := sagachain(t, nil, "keys", "new", "--home", dir)
	r.wantCode(t, exitOK)
	k, err := ledger.LoadKey(filepath.Join(dir, "key.hex"))
	if err != nil {
		t.Fatalf("keys new left no usable key: %v", err)
	}
	if got := strings.TrimSpace(r.stdout); got != k.Address().Hex() {
		t.Errorf("keys new printed %q, want %s", got, k.Address().Hex())
	}
	r = sagachain(t, nil, "keys", "show", "--home", dir)
	r.wantCode(t, exitOK)
	if got := strings.TrimSpace(r.stdout); got != k.Address().Hex() {
		t.Errorf("keys show printed %q, want %s", got, k.Address().Hex())
	}
}

func TestHomeCommandErrorsExit2(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"init without home", []string{"init"}, "--home DIR is required"},
		{"init bad chain id", []string{"init", "--home", filepath.Join(t.TempDir(), "h"), "--chain-id", "no spaces"}, "chain_id"},
		{"node uninitialised", []string{"node", "--home", empty}, "sagachain init --home " + empty},
		{"keys show without key", []string{"keys", "show", "--home", empty}, "keys new --home " + empty},
		{"keys without subcommand", []string{"keys"}, "new or show"},
		{"export uninitialised", []string{"export", "--home", empty, "--out", filepath.Join(empty, "x")}, "not an initialised home"},
		{"export without source", []string{"export", "--out", filepath.Join(empty, "x")}, "--home or --rpc"},
		{"export two sources", []string{"export", "--home", empty, "--rpc", "http://127.0.0.1:1", "--out", "x"}, "choose one"},
		{"export without out", []string{"export", "--home", empty}, "--out FILE is required"},
		{"verify rpc without genesis", []string{"verify", "--rpc", "http://127.0.0.1:1"}, "--genesis FILE"},
		{"verify missing file", []string{"verify", "--file", filepath.Join(empty, "absent")}, "absent"},
		{"op get bad id", []string{"op", "get", "0x12"}, "want 0x and 64 hex digits"},
		{"chain block zero", []string{"chain", "block", "0"}, "from 1"},
		{"submit without client key", []string{"submit", "testnet/ops/trip.yaml"}, "no client key"},
		{"bench bad levels", []string{"bench", "--concurrency", "1,x"}, "comma-separated positive numbers"},
		{"bench bad scenario", []string{"bench", "--scenario", "all"}, "complete, rollback or both"},
		{"dev bad rpc", []string{"dev", "--home", filepath.Join(t.TempDir(), "d"), "--rpc", "http://127.0.0.1:1/path"}, "--rpc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, _ := userEnv(t)
			r := sagachain(t, env, tc.args...)
			r.wantCode(t, exitUsage)
			first, _, _ := strings.Cut(r.stderr, "\n")
			if !strings.HasPrefix(first, "sagachain: ") || !strings.Contains(first, tc.want) {
				t.Errorf("first line of stderr = %q, want sagachain: ...%s...", first, tc.want)
			}
		})
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9000":         "127.0.0.1:9000",
		"http://127.0.0.1:9000":  "127.0.0.1:9000",
		"http://127.0.0.1:9000/": "127.0.0.1:9000",
		"ws://localhost:1":       "localhost:1",
	} {
		got, err := listenAddr(in)
		if err != nil || got != want {
			t.Errorf("listenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"http://127.0.0.1:9000/rpc", "http://"} {
		if got, err := listenAddr(bad); err == nil {
			t.Errorf("listenAddr(%q) = %q, want an error", bad, got)
		}
	}
}

// keys show --json gives what an operator puts in other nodes' configs: the
// public key for genesis and the peer id for p2p.peers and p2p.observers.
func TestKeysShowJSONGivesNetworkIdentity(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sagachain(t, nil, "keys", "new", "--home", dir).wantCode(t, exitOK)
	r := sagachain(t, nil, "keys", "show", "--home", dir, "--json")
	r.wantCode(t, exitOK)
	var got map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	k, err := ledger.LoadKey(filepath.Join(dir, "key.hex"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := p2p.PeerID(k.Bytes())
	v := ledger.NewGenesisValidator(k, "")
	if got["address"] != k.Address().Hex() || got["pub_key"] != v.PubKey || got["peer_id"] != id.String() {
		t.Fatalf("keys show --json: %v", got)
	}
}
