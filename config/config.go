package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/goccy/go-yaml"
)

// EnvPrefix prefixes every environment variable that overrides a setting:
// limits.max_tasks is SAGACHAIN_LIMITS_MAX_TASKS.
const EnvPrefix = "SAGACHAIN"

// Config is a node's configuration (SPEC §4).
type Config struct {
	// ChainID names the chain; signatures cover it so they never replay on another chain.
	ChainID string `mapstructure:"chain_id"`
	// KeyFile is the node's secp256k1 private key, relative to its home.
	KeyFile   string          `mapstructure:"key_file"`
	RPC       RPCConfig       `mapstructure:"rpc"`
	P2P       P2PConfig       `mapstructure:"p2p"`
	Consensus ConsensusConfig `mapstructure:"consensus"`
	// Functions are the functions this node hosts besides the builtins, by name.
	Functions map[string]FunctionConfig `mapstructure:"functions"`
	Limits    LimitsConfig              `mapstructure:"limits"`
	// Monitoring rules notify the owner of a task type when its tasks keep failing.
	Monitoring []MonitorRule `mapstructure:"monitoring"`

	// Flags holds the top-level keys that set command-line flags rather than
	// node settings (log_format: json), keyed by flag name, for the command
	// to read. Only the flag names given to [Load] are accepted.
	Flags map[string]any `mapstructure:",remain"`
}

// RPCConfig is the node's JSON-RPC, metrics and web UI endpoint.
type RPCConfig struct {
	// Listen is the host:port to serve on.
	Listen string `mapstructure:"listen"`
	// Pprof serves Go's profiles under /debug/pprof/ on the same address,
	// for profiling a node under load; off by default because a profile
	// shows the node's memory.
	Pprof bool `mapstructure:"pprof"`

	// What one client may make the node do, and which web pages may talk
	// to it (issue #10); see node/rpc.Limits.

	// BatchRequestLimit is the most calls of one JSON-RPC batch.
	BatchRequestLimit int `mapstructure:"batch_request_limit"`
	// BatchResponseMaxBytes bounds the results of one batch together.
	BatchResponseMaxBytes int `mapstructure:"batch_response_max_bytes"`
	// MaxResponseBytes bounds the JSON of one list call (sc_operations,
	// sc_blocks).
	MaxResponseBytes int `mapstructure:"max_response_bytes"`
	// WSOrigins are the web origins, besides the node's own UI, that may
	// open a WebSocket; "*" admits any (as geth's ws.origins).
	WSOrigins []string `mapstructure:"ws_origins"`
	// CORSDomains are the web origins, besides the node's own UI, that may
	// POST calls; "*" admits any (as geth's http.corsdomain).
	CORSDomains []string `mapstructure:"cors_domains"`
}

// P2PConfig is the node's peer-to-peer endpoint.
type P2PConfig struct {
	// Listen is the multiaddr to listen on.
	Listen string `mapstructure:"listen"`
	// Peers are the multiaddrs, with peer ids, of the nodes to dial.
	Peers []string `mapstructure:"peers"`
	// Observers are the peer ids of non-validator nodes (an auditor's) that
	// may connect and follow the chain.
	Observers []string `mapstructure:"observers"`
	// PSK is an optional private-network key: 64 hex digits shared by every
	// node of the network; nodes without it cannot even begin a handshake.
	PSK string `mapstructure:"psk"`
	// FullMesh says every validator lists every other among its peers, as
	// testnet init writes them: the node then relays no gossip, since each
	// message already reaches every validator from its publisher (see
	// p2p.Config.FullMesh).
	FullMesh bool `mapstructure:"full_mesh"`

	// How refused peers are kept cheap (issue #10); see p2p.Config.

	// RefusedBackoff is how long the IP of a peer outside the allow list
	// is refused before its handshake (unless an allowed peer uses it).
	RefusedBackoff time.Duration `mapstructure:"refused_backoff"`
	// RefusalLogInterval is the least time between two log lines about
	// one refused peer.
	RefusalLogInterval time.Duration `mapstructure:"refusal_log_interval"`
	// MaxConnsPerPeer bounds the connections to one peer.
	MaxConnsPerPeer int `mapstructure:"max_conns_per_peer"`
}

// ConsensusConfig tunes the consensus protocol.
type ConsensusConfig struct {
	// TimeoutPropose is how long a round waits for a proposal before voting nil.
	TimeoutPropose time.Duration `mapstructure:"timeout_propose"`
	// TimeoutProposeDown is how long a round waits for a proposal from a
	// validator the chain marks down (its executor lease expired) or this
	// node has no connection to: it only has to cover one that proposes
	// anyway, one gossip hop and a block's building, not a busy live
	// proposer; a validator wrongly taken for down loses its round, not
	// the chain's safety.
	TimeoutProposeDown time.Duration `mapstructure:"timeout_propose_down"`
	// MaxBlockEntries caps the entries of a block this node proposes; the
	// genesis max_block_entries, which every validator holds blocks to,
	// caps it in turn.
	MaxBlockEntries int `mapstructure:"max_block_entries"`
	// MaxBlockInterval bounds how long work that no arriving entry
	// announces, a task deadline that has passed, waits before an idle
	// validator starts a block for it: how often it looks for such work.
	// An observer looks as often for the blocks it has seen messages of.
	MaxBlockInterval time.Duration `mapstructure:"max_block_interval"`
}

// FunctionConfig says how a hosted function is called: exactly one of HTTP
// and Exec is set.
type FunctionConfig struct {
	// HTTP is the URL the request is POSTed to.
	HTTP string `mapstructure:"http"`
	// Exec is the command (argv) run with the request on stdin.
	Exec []string `mapstructure:"exec"`
}

// LimitsConfig bounds what an operation may be (SPEC §1).
type LimitsConfig struct {
	// MaxTasks bounds the tasks of one operation.
	MaxTasks int `mapstructure:"max_tasks"`
	// MaxFileBytes bounds the size of an operation file.
	MaxFileBytes int `mapstructure:"max_file_bytes"`
	// MaxOutputBytes bounds one task's output, as JSON.
	MaxOutputBytes int `mapstructure:"max_output_bytes"`
	// Work limits that `run` and the client side of `submit` check; a
	// chain enforces its own, the genesis params of the same names.

	// MaxAttempts bounds "attempts" of a retry policy.
	MaxAttempts int `mapstructure:"max_attempts"`
	// MinBackoff is the least "backoff" of a retry of more than one attempt.
	MinBackoff time.Duration `mapstructure:"min_backoff"`
	// MaxSleep bounds the sleep builtin's params.ms.
	MaxSleep time.Duration `mapstructure:"max_sleep"`
	// MaxOperationRuleCost bounds the worst-case CEL cost of an operation's rules.
	MaxOperationRuleCost uint64 `mapstructure:"max_operation_rule_cost"`
}

// MonitorRule posts an alert to Webhook when tasks whose function matches
// one of Functions fail Threshold times within Window of block time.
type MonitorRule struct {
	// Functions are function names or path.Match patterns ("airline.*").
	Functions []string      `mapstructure:"functions"`
	Threshold int           `mapstructure:"threshold"`
	Window    time.Duration `mapstructure:"window"`
	Webhook   string        `mapstructure:"webhook"`
}

// Default returns the configuration of a node whose file sets nothing.
func Default() Config {
	return Config{
		ChainID: "sagachain-dev",
		KeyFile: "key.hex",
		RPC: RPCConfig{Listen: "127.0.0.1:8645",
			BatchRequestLimit: 100, BatchResponseMaxBytes: 32 << 20, MaxResponseBytes: 24 << 20,
			WSOrigins: []string{}, CORSDomains: []string{}},
		P2P: P2PConfig{Listen: "/ip4/127.0.0.1/tcp/26656", Peers: []string{},
			RefusedBackoff: time.Minute, RefusalLogInterval: time.Minute, MaxConnsPerPeer: 8},
		Consensus: ConsensusConfig{
			TimeoutPropose:     time.Second,
			TimeoutProposeDown: 20 * time.Millisecond,
			MaxBlockEntries:    5000,
			MaxBlockInterval:   200 * time.Millisecond,
		},
		Limits: LimitsConfig{MaxTasks: 10_000, MaxFileBytes: 1 << 20, MaxOutputBytes: 64 << 10,
			MaxAttempts: 100, MinBackoff: 10 * time.Millisecond, MaxSleep: time.Hour, MaxOperationRuleCost: 10_000_000},
	}
}

// Load reads the YAML file at path (none when path is empty) over
// [Default], applies SAGACHAIN_* environment variables over both, and checks
// the result with [Config.Validate]. flagNames are the command-line flags the
// caller also accepts from the file (log-format may be written log_format);
// their values come back in Config.Flags. Any other unknown key is an error
// naming it.
//
// Every setting of a fixed name can come from the environment: rpc.listen
// from SAGACHAIN_RPC_LISTEN, a list as comma-separated values. Functions and
// monitoring rules, whose keys are the user's, come from the file alone.
func Load(path string, flagNames ...string) (Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := decodeFile(data, &c, flagNames); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&c); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		if path != "" {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// decodeFile decodes a config file over c. The file is parsed as YAML
// first, rather than through viper, because viper lowercases keys (function
// names are case-sensitive) and drops empty maps, so that `functons: {}` or
// `airline.reserve: {}` would vanish instead of being refused.
func decodeFile(data []byte, c *Config, flagNames []string) error {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return yamlError(err)
	}
	var md mapstructure.Metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(strictDuration, mapstructure.StringToTimeDurationHookFunc(), scalarToString),
		Metadata:   &md,
		Result:     c,
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(raw); err != nil {
		return decodeError(err)
	}
	if err := unknownKeys(md.Unused); err != nil {
		return err
	}
	c.Flags, err = flagSettings(c.Flags, flagNames)
	return err
}

// strictDuration refuses a bare number for a duration: `window: 300` would
// otherwise be 300 nanoseconds.
func strictDuration(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil, fmt.Errorf("want a duration with its unit, such as 5m or 250ms, got %v", data)
	}
	return data, nil
}

// yamlError says where in the file a YAML error is, as the operation file
// errors do: "line 2, column 1: ...".
func yamlError(err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil {
		p := ye.GetToken().Position
		return fmt.Errorf("line %d, column %d: %s", p.Line, p.Column, ye.GetMessage())
	}
	return err
}

// scalarToString lets a number or a boolean stand where a string is wanted,
// as YAML writes them unquoted: exec: [build-report, --pages, 3].
func scalarToString(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.String {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return fmt.Sprint(data), nil
	}
	return data, nil
}

// decodeError rewrites mapstructure's errors as "key: problem", one line
// each, keys spelt as in the file.
func decodeError(err error) error {
	var lines []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var de *mapstructure.DecodeError
		if errors.As(err, &de) {
			lines = append(lines, fmt.Sprintf("%s: %v", userKey(de.Name()), de.Unwrap()))
			return
		}
		lines = append(lines, err.Error())
	}
	walk(err)
	return errors.New(strings.Join(lines, "\n"))
}

// envVar is the environment variable of a setting's key path.
func envVar(path []string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.Join(path, "_"))
}

// applyEnv sets over c every setting whose SAGACHAIN_* variable is set.
// Values are strings, converted to the setting's type (numbers, durations,
// comma-separated lists).
func applyEnv(c *Config) error {
	for _, path := range settingPaths(reflect.TypeFor[Config](), nil) {
		val, ok := os.LookupEnv(envVar(path))
		if !ok {
			continue
		}
		var tree any = val
		for i := len(path) - 1; i >= 0; i-- {
			tree = map[string]any{path[i]: tree}
		}
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				mapstructure.StringToTimeDurationHookFunc(),
				mapstructure.StringToSliceHookFunc(","),
			),
			WeaklyTypedInput: true,
			Result:           c,
		})
		if err != nil {
			return err
		}
		if err := dec.Decode(tree); err != nil {
			return fmt.Errorf("%s: %w", envVar(path), decodeError(err))
		}
	}
	return nil
}

// settingPaths lists the key paths of the settings of fixed name under t:
// the leaves of its structs, but no map (functions) or list of structs
// (monitoring rules), whose keys are the user's.
func settingPaths(t reflect.Type, prefix []string) [][]string {
	var paths [][]string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "" {
			continue // Flags
		}
		path := append(slices.Clip(prefix), name)
		switch {
		case f.Type.Kind() == reflect.Struct:
			paths = append(paths, settingPaths(f.Type, path)...)
		case f.Type.Kind() == reflect.Map, f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
		default:
			paths = append(paths, path)
		}
	}
	return paths
}

// unknownKeys turns unused keys into an error naming them as a user writes
// them: functions.airline.reserve.htp, monitoring[0].windw.
func unknownKeys(unused []string) error {
	if len(unused) == 0 {
		return nil
	}
	keys := make([]string, len(unused))
	for i, k := range unused {
		keys[i] = userKey(k)
	}
	slices.Sort(keys)
	if len(keys) == 1 {
		return fmt.Errorf("unknown key %s", keys[0])
	}
	return fmt.Errorf("unknown keys %s", strings.Join(keys, ", "))
}

// userKey rewrites the map subscripts of a mapstructure field path
// (functions[a.b].http) as dotted keys, keeping list indexes.
func userKey(k string) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(k, '[')
		if open < 0 {
			break
		}
		n := strings.IndexByte(k[open:], ']')
		if n < 0 {
			break
		}
		sub := k[open+1 : open+n]
		b.WriteString(k[:open])
		if sub != "" && strings.Trim(sub, "0123456789") == "" {
			b.WriteString("[" + sub + "]")
		} else {
			b.WriteString("." + sub)
		}
		k = k[open+n+1:]
	}
	b.WriteString(k)
	return b.String()
}

// flagSettings keeps the top-level keys that name accepted flags, keyed by
// flag name, and refuses the rest.
func flagSettings(rest map[string]any, flagNames []string) (map[string]any, error) {
	byKey := make(map[string]string, len(flagNames))
	for _, f := range flagNames {
		byKey[strings.ReplaceAll(strings.ToLower(f), "-", "_")] = f
	}
	flags := make(map[string]any)
	var unknown []string
	for k, val := range rest {
		f, ok := byKey[strings.ReplaceAll(k, "-", "_")]
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		flags[f] = val
	}
	if err := unknownKeys(unknown); err != nil {
		return nil, err
	}
	return flags, nil
}

// Validate checks every setting. It reports every bad key, one line each,
// each line starting with the key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.ChainID == "" || len(c.ChainID) > 64 || strings.ContainsFunc(c.ChainID, isSpaceOrControl) {
		bad("chain_id", "want 1 to 64 characters without spaces, got %q", c.ChainID)
	}
	if c.KeyFile == "" {
		bad("key_file", "is empty")
	}
	if _, _, err := net.SplitHostPort(c.RPC.Listen); err != nil {
		bad("rpc.listen", "want host:port, got %q", c.RPC.Listen)
	}
	positive := func(key string, v int) {
		if v <= 0 {
			bad(key, "want a positive number, got %d", v)
		}
	}
	positiveDuration := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "want a positive duration, got %s", d)
		}
	}
	positive("rpc.batch_request_limit", c.RPC.BatchRequestLimit)
	positive("rpc.batch_response_max_bytes", c.RPC.BatchResponseMaxBytes)
	positive("rpc.max_response_bytes", c.RPC.MaxResponseBytes)
	origins := func(key string, list []string) {
		for i, o := range list {
			if o != "*" && !isOrigin(o) {
				bad(fmt.Sprintf("%s[%d]", key, i), "want \"*\" or an origin such as http://127.0.0.1:3000, got %q", o)
			}
		}
	}
	origins("rpc.ws_origins", c.RPC.WSOrigins)
	origins("rpc.cors_domains", c.RPC.CORSDomains)
	if !strings.HasPrefix(c.P2P.Listen, "/") {
		bad("p2p.listen", "want a multiaddr such as /ip4/127.0.0.1/tcp/26656, got %q", c.P2P.Listen)
	}
	for i, p := range c.P2P.Peers {
		if !strings.HasPrefix(p, "/") {
			bad(fmt.Sprintf("p2p.peers[%d]", i), "want a multiaddr such as /ip4/127.0.0.1/tcp/26657/p2p/<peer id>, got %q", p)
		}
	}
	positiveDuration("p2p.refused_backoff", c.P2P.RefusedBackoff)
	positiveDuration("p2p.refusal_log_interval", c.P2P.RefusalLogInterval)
	positive("p2p.max_conns_per_peer", c.P2P.MaxConnsPerPeer)
	if k := c.P2P.PSK; k != "" {
		if b, err := hex.DecodeString(strings.TrimPrefix(k, "0x")); err != nil || len(b) != 32 {
			bad("p2p.psk", "want 64 hex digits (32 bytes)")
		}
	}
	positiveDuration("consensus.timeout_propose", c.Consensus.TimeoutPropose)
	positiveDuration("consensus.timeout_propose_down", c.Consensus.TimeoutProposeDown)
	if c.Consensus.TimeoutProposeDown > c.Consensus.TimeoutPropose {
		bad("consensus.timeout_propose_down", "%s is longer than consensus.timeout_propose (%s)", c.Consensus.TimeoutProposeDown, c.Consensus.TimeoutPropose)
	}
	positive("consensus.max_block_entries", c.Consensus.MaxBlockEntries)
	positiveDuration("consensus.max_block_interval", c.Consensus.MaxBlockInterval)
	for _, name := range slices.Sorted(maps.Keys(c.Functions)) {
		if name == "" {
			bad("functions", "a function name is empty")
			continue
		}
		if err := c.Functions[name].validate(); err != nil {
			errs = append(errs, fmt.Errorf("functions.%s%w", name, err))
		}
	}
	positive("limits.max_tasks", c.Limits.MaxTasks)
	positive("limits.max_file_bytes", c.Limits.MaxFileBytes)
	positive("limits.max_output_bytes", c.Limits.MaxOutputBytes)
	positive("limits.max_attempts", c.Limits.MaxAttempts)
	if c.Limits.MinBackoff <= 0 {
		bad("limits.min_backoff", "want a positive duration (1ns for practically none), got %s", c.Limits.MinBackoff)
	}
	positiveDuration("limits.max_sleep", c.Limits.MaxSleep)
	if c.Limits.MaxOperationRuleCost == 0 {
		bad("limits.max_operation_rule_cost", "want a positive number, got 0")
	}
	for i, m := range c.Monitoring {
		if err := m.validate(); err != nil {
			errs = append(errs, fmt.Errorf("monitoring[%d]%w", i, err))
		}
	}
	return errors.Join(errs...)
}

// subkeyError is a problem with a key below the one its caller names. Its
// message starts with the rest of the key path (".http: ..."), or with ": "
// when the problem is the named key itself.
type subkeyError struct {
	sub string
	msg string
}

func (e *subkeyError) Error() string { return e.sub + ": " + e.msg }

func (f FunctionConfig) validate() error {
	switch {
	case f.HTTP == "" && len(f.Exec) == 0:
		return &subkeyError{msg: "set exactly one of http or exec, got neither"}
	case f.HTTP != "" && len(f.Exec) > 0:
		return &subkeyError{msg: "set exactly one of http or exec, got both"}
	case f.HTTP != "":
		if !isHTTPURL(f.HTTP) {
			return &subkeyError{sub: ".http", msg: fmt.Sprintf("want an http:// or https:// URL, got %q", f.HTTP)}
		}
	case f.Exec[0] == "":
		return &subkeyError{sub: ".exec", msg: "the command (first element) is empty"}
	}
	return nil
}

func (m MonitorRule) validate() error {
	if len(m.Functions) == 0 {
		return &subkeyError{sub: ".functions", msg: "list at least one function name or pattern"}
	}
	for i, p := range m.Functions {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return &subkeyError{sub: fmt.Sprintf(".functions[%d]", i), msg: fmt.Sprintf("bad pattern %q", p)}
		}
	}
	switch {
	case m.Threshold <= 0:
		return &subkeyError{sub: ".threshold", msg: fmt.Sprintf("want a positive number, got %d", m.Threshold)}
	case m.Window <= 0:
		return &subkeyError{sub: ".window", msg: fmt.Sprintf("want a positive duration, got %s", m.Window)}
	case !isHTTPURL(m.Webhook):
		return &subkeyError{sub: ".webhook", msg: fmt.Sprintf("want an http:// or https:// URL, got %q", m.Webhook)}
	}
	return nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// isOrigin reports whether s is a web origin as a browser sends it:
// scheme://host[:port], nothing more.
func isOrigin(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != "" && u.User == nil && (u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == ""
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }
