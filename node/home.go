package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
)

// The files of a node's home directory. key_file in config.yaml may name
// another key file; the others have fixed names.
const (
	// GenesisFile is the chain's trust anchor.
	GenesisFile = "genesis.json"
	// ConfigFile is the node's configuration (SPEC §4).
	ConfigFile = "config.yaml"
	// KeyFile is the node's validator key, as InitHome writes it.
	KeyFile = "key.hex"
	// DataDir holds the node's store.
	DataDir = "data"
)

// Home is a validator's home directory as InitHome made it.
type Home struct {
	// Dir is the directory.
	Dir string
	// Validator is the address of the node's key.
	Validator ledger.Address
	// Genesis is the genesis written to Dir/genesis.json.
	Genesis *ledger.Genesis
}

// ErrNotInitialised reports a directory that holds no genesis.json, so no
// node can run from it.
var ErrNotInitialised = errors.New("not an initialised home")

// InitHome makes dir (mode 0700) the home of a one-validator chain: a new
// validator key (key.hex, mode 0600), a genesis naming that validator, with
// client as its only submitter (none when client is the zero address), the
// default params and the current time, and a config.yaml that sets
// chain_id and rpc.listen and shows every other setting as a commented
// default. It refuses a dir that already holds any of these files, or a
// data directory, naming the first it finds: initialising over a home would
// change the node's identity or chain. On failure it removes what it wrote.
func InitHome(dir, chainID string, client ledger.Address) (*Home, error) {
	key, err := ledger.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	g := &ledger.Genesis{ChainID: chainID, Time: uint64(time.Now().UnixMilli()), Params: ledger.DefaultParams(),
		Validators: []ledger.GenesisValidator{ledger.NewGenesisValidator(key, "node0")}, Submitters: []ledger.Address{}}
	if client != (ledger.Address{}) {
		g.Submitters = append(g.Submitters, client)
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	cfg := config.Default()
	cfg.ChainID = chainID
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	for _, name := range []string{GenesisFile, KeyFile, ConfigFile, DataDir} {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("init %s: %s exists: the directory is a home already; use another directory", dir, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("init %s: %w", dir, err)
		}
	}

	var written []string
	fail := func(err error) (*Home, error) {
		for _, p := range written {
			os.Remove(p)
		}
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	keyPath := filepath.Join(dir, KeyFile)
	if err := key.SaveKey(keyPath); err != nil {
		return fail(err)
	}
	written = append(written, keyPath)
	genesisPath := filepath.Join(dir, GenesisFile)
	if err := g.Save(genesisPath); err != nil {
		return fail(err)
	}
	written = append(written, genesisPath)
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(configText(cfg)), 0o644); err != nil {
		return fail(err)
	}
	return &Home{Dir: dir, Validator: key.Address(), Genesis: g}, nil
}

// configText is the config.yaml InitHome writes: what it sets, then every
// other setting commented out at its default, so the file documents itself.
func configText(c config.Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# sagachain node configuration (SPEC §4). Every setting can also come from the
# environment: rpc.listen from SAGACHAIN_RPC_LISTEN, and so on. Commented
# lines show the defaults.
chain_id: %s
key_file: %s
rpc: {listen: %s}  # JSON-RPC over HTTP and WebSocket, web UI at /
# rpc also takes: batch_request_limit: %d, batch_response_max_bytes: %d,
#   max_response_bytes: %d, ws_origins: [], cors_domains: [] (web pages
#   besides the node's own UI that may connect; "*" admits any)

# p2p: {listen: %s, peers: [], refused_backoff: %s, refusal_log_interval: %s, max_conns_per_peer: %d}
# consensus: {timeout_propose: %s, max_block_entries: %d, max_block_interval: %s}
# limits: {max_tasks: %d, max_file_bytes: %d, max_output_bytes: %d,
#          max_attempts: %d, min_backoff: %s, max_sleep: %s, max_operation_rule_cost: %d}
#
# Functions this node hosts besides the builtins (echo, sleep, fail, noop):
# functions:
#   airline.reserve: {http: "http://127.0.0.1:9001/reserve"}
#   report.build:    {exec: ["/usr/local/bin/build-report"]}
#
# Failure watch: notify the owner of a task type when its tasks keep failing.
# monitoring:
#   - functions: ["airline.*"]
#     threshold: 10
#     window: 5m
#     webhook: http://127.0.0.1:9100/alerts
`, c.ChainID, c.KeyFile, c.RPC.Listen,
		c.RPC.BatchRequestLimit, c.RPC.BatchResponseMaxBytes, c.RPC.MaxResponseBytes,
		c.P2P.Listen, c.P2P.RefusedBackoff, c.P2P.RefusalLogInterval, c.P2P.MaxConnsPerPeer, c.Consensus.TimeoutPropose, c.Consensus.MaxBlockEntries, c.Consensus.MaxBlockInterval,
		c.Limits.MaxTasks, c.Limits.MaxFileBytes, c.Limits.MaxOutputBytes,
		c.Limits.MaxAttempts, c.Limits.MinBackoff, c.Limits.MaxSleep, c.Limits.MaxOperationRuleCost)
	return b.String()
}

// LoadHome reads a node's home: its config.yaml, or extraConfig instead
// when it is not empty (the config package reads one file, so the extra
// file replaces the home's rather than layering over it), the genesis, and
// the key named by key_file (relative to dir unless absolute). flagNames
// are the command-line flags the config file may also set (see
// config.Load); their values come back in Options.Config.Flags. A dir
// without genesis.json gives an error wrapping ErrNotInitialised. The
// returned Options have Home, Config, Genesis and Key set.
func LoadHome(dir, extraConfig string, flagNames ...string) (Options, error) {
	genesisPath := filepath.Join(dir, GenesisFile)
	if _, err := os.Stat(genesisPath); errors.Is(err, fs.ErrNotExist) {
		return Options{}, fmt.Errorf("home %s: %w: it has no %s (make one with sagachain init --home %s)", dir, ErrNotInitialised, GenesisFile, dir)
	} else if err != nil {
		return Options{}, fmt.Errorf("home %s: %w", dir, err)
	}
	path := extraConfig
	if path == "" {
		path = filepath.Join(dir, ConfigFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			path = "" // the defaults
		}
	}
	cfg, err := config.Load(path, flagNames...)
	if err != nil {
		return Options{}, fmt.Errorf("home %s: %w", dir, err)
	}
	g, err := ledger.LoadGenesis(genesisPath)
	if err != nil {
		return Options{}, fmt.Errorf("home %s: %w", dir, err)
	}
	keyPath := cfg.KeyFile
	if !filepath.IsAbs(keyPath) {
		keyPath = filepath.Join(dir, keyPath)
	}
	key, err := ledger.LoadKey(keyPath)
	if err != nil {
		return Options{}, fmt.Errorf("home %s: key_file: %w", dir, err)
	}
	return Options{Home: dir, Config: cfg, Genesis: g, Key: key}, nil
}
