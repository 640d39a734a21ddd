package node

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
)

func TestInitHomeMakesAHomeLoadHomeReads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	client := key(t, 9).Address()
	before := uint64(time.Now().UnixMilli())
	h, err := InitHome(dir, "test-chain", client)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{".": 0o700, KeyFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %04o, want %04o", name, got, want)
		}
	}
	g, err := ledger.LoadGenesis(filepath.Join(dir, GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	if g.ChainID != "test-chain" || len(g.Validators) != 1 || g.Validators[0].Address != h.Validator ||
		!slices.Equal(g.Submitters, []ledger.Address{client}) || g.Params != ledger.DefaultParams() ||
		g.Time < before || g.Hash() != h.Genesis.Hash() {
		t.Errorf("genesis %+v: want test-chain, validator %s, submitter %s, default params, time >= %d", g, h.Validator, client, before)
	}

	opts, err := LoadHome(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Home != dir || opts.Key.Address() != h.Validator || opts.Genesis.Hash() != g.Hash() {
		t.Errorf("LoadHome: home %q, key %s, genesis %s; want %q, %s, %s", opts.Home, opts.Key.Address(), opts.Genesis.Hash(), dir, h.Validator, g.Hash())
	}
	// config.yaml sets the chain id; the rest are the defaults it shows
	// commented out.
	want := config.Default()
	want.ChainID = "test-chain"
	if opts.Config.ChainID != want.ChainID || !reflect.DeepEqual(opts.Config.RPC, want.RPC) || opts.Config.Consensus != want.Consensus ||
		opts.Config.Limits != want.Limits || opts.Config.KeyFile != want.KeyFile {
		t.Errorf("config %+v, want %+v", opts.Config, want)
	}
	// The home runs: the node accepts its config, genesis and key together.
	opts.InMemory = true
	opts.Config.RPC.Listen = "127.0.0.1:0"
	n, err := New(opts)
	if err != nil {
		t.Fatalf("New over the home: %v", err)
	}
	n.store.Close()
}

func TestInitHomeRefusesAnExistingHome(t *testing.T) {
	for _, name := range []string{GenesisFile, KeyFile, ConfigFile, DataDir} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := InitHome(dir, "test-chain", ledger.Address{})
			if err == nil || !strings.Contains(err.Error(), p+" exists") {
				t.Fatalf("InitHome over %s: %v, want an error naming it", name, err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("InitHome left %d entries, want only the %s that was there", len(entries), name)
			}
		})
	}
}

func TestInitHomeRefusesABadChainIDBeforeWriting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	_, err := InitHome(dir, "bad chain", ledger.Address{})
	if err == nil || !strings.Contains(err.Error(), "chain_id") {
		t.Fatalf("InitHome with a bad chain id: %v, want an error naming chain_id", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("InitHome made %s although it failed (stat: %v)", dir, err)
	}
}

func TestInitHomeWithoutClientHasNoSubmitters(t *testing.T) {
	h, err := InitHome(t.TempDir(), "test-chain", ledger.Address{})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Genesis.Submitters) != 0 {
		t.Errorf("submitters %v, want none", h.Genesis.Submitters)
	}
}

func TestLoadHomeErrors(t *testing.T) {
	t.Run("not initialised", func(t *testing.T) {
		dir := t.TempDir()
		_, err := LoadHome(dir, "")
		if !errors.Is(err, ErrNotInitialised) || !strings.Contains(err.Error(), "sagachain init --home "+dir) {
			t.Fatalf("LoadHome of an empty dir: %v, want ErrNotInitialised and the fix", err)
		}
	})
	t.Run("extra config replaces the home's", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := InitHome(dir, "test-chain", ledger.Address{}); err != nil {
			t.Fatal(err)
		}
		extra := filepath.Join(t.TempDir(), "extra.yaml")
		body := "chain_id: test-chain\nrpc: {listen: 127.0.0.1:9999}\nlog_format: json\n"
		if err := os.WriteFile(extra, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		opts, err := LoadHome(dir, extra, "log-format")
		if err != nil {
			t.Fatal(err)
		}
		if opts.Config.RPC.Listen != "127.0.0.1:9999" || opts.Config.Flags["log-format"] != "json" {
			t.Errorf("rpc.listen %q, flags %v; want the extra file's", opts.Config.RPC.Listen, opts.Config.Flags)
		}
	})
	t.Run("bad config key", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := InitHome(dir, "test-chain", ledger.Address{}); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(filepath.Join(dir, ConfigFile), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("rcp: {}\n")
		f.Close()
		if _, err := LoadHome(dir, ""); err == nil || !strings.Contains(err.Error(), "rcp") {
			t.Fatalf("LoadHome with a misspelt key: %v, want an error naming rcp", err)
		}
	})
	t.Run("key readable by others", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := InitHome(dir, "test-chain", ledger.Address{}); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, KeyFile), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadHome(dir, ""); !errors.Is(err, ledger.ErrKeyFileMode) {
			t.Fatalf("LoadHome with a key of mode 0644: %v, want ErrKeyFileMode", err)
		}
	})
	t.Run("absolute key_file", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := InitHome(dir, "test-chain", ledger.Address{}); err != nil {
			t.Fatal(err)
		}
		moved := filepath.Join(t.TempDir(), "validator.key")
		if err := os.Rename(filepath.Join(dir, KeyFile), moved); err != nil {
			t.Fatal(err)
		}
		extra := filepath.Join(t.TempDir(), "extra.yaml")
		if err := os.WriteFile(extra, []byte("chain_id: test-chain\nkey_file: "+moved+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadHome(dir, ""); err == nil || !strings.Contains(err.Error(), "key_file") {
			t.Fatalf("LoadHome without its key: %v, want an error naming key_file", err)
		}
		if _, err := LoadHome(dir, extra); err != nil {
			t.Fatalf("LoadHome with key_file %s: %v", moved, err)
		}
	})
}
