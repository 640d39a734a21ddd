package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeConfig writes a config file into a fresh temporary directory.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestLoadWithoutFileIsDefault(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Flags) != 0 {
		t.Errorf("Flags = %v, want none", c.Flags)
	}
	c.Flags = nil
	if want := Default(); !reflect.DeepEqual(c, want) {
		t.Errorf("Load(\"\") = %+v\nwant %+v", c, want)
	}
}

func TestLoadEmptyFileIsDefault(t *testing.T) {
	for _, body := range []string{"", "# nothing set yet\n"} {
		c, err := Load(writeConfig(t, body))
		if err != nil {
			t.Fatalf("Load(%q) = %v", body, err)
		}
		c.Flags = nil
		if want := Default(); !reflect.DeepEqual(c, want) {
			t.Errorf("Load(%q) = %+v\nwant %+v", body, c, want)
		}
	}
	if _, err := Load(writeConfig(t, "- a\n- b\n")); err == nil {
		t.Error("Load accepted a list for a config")
	}
}

func TestLoadFile(t *testing.T) {
	p := writeConfig(t, `
chain_id: sagachain-test
rpc: {listen: 127.0.0.1:9645}
p2p: {listen: /ip4/127.0.0.1/tcp/36656, peers: [/ip4/127.0.0.1/tcp/36657/p2p/12D3KooW]}
consensus: {timeout_propose: 250ms}
limits: {max_tasks: 20}
monitoring:
  - functions: ["airline.*"]
    threshold: 10
    window: 5m
    webhook: http://127.0.0.1:9100/alerts
`)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.ChainID = "sagachain-test"
	want.RPC.Listen = "127.0.0.1:9645"
	want.P2P.Listen, want.P2P.Peers = "/ip4/127.0.0.1/tcp/36656", []string{"/ip4/127.0.0.1/tcp/36657/p2p/12D3KooW"}
	want.Consensus.TimeoutPropose = 250 * time.Millisecond
	want.Limits.MaxTasks = 20
	want.Monitoring = []MonitorRule{{Functions: []string{"airline.*"}, Threshold: 10, Window: 5 * time.Minute, Webhook: "http://127.0.0.1:9100/alerts"}}
	c.Flags = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load = %+v\nwant %+v", c, want)
	}
}

func TestLoadKeepsDottedFunctionNames(t *testing.T) {
	p := writeConfig(t, `
functions:
  airline.reserve: {http: "http://127.0.0.1:9001/reserve"}
  Airline.Cancel:  {http: "http://127.0.0.1:9001/cancel"}
  report.build.v2: {exec: ["/usr/local/bin/build-report", "--fast"]}
`)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]FunctionConfig{
		"airline.reserve": {HTTP: "http://127.0.0.1:9001/reserve"},
		"Airline.Cancel":  {HTTP: "http://127.0.0.1:9001/cancel"},
		"report.build.v2": {Exec: []string{"/usr/local/bin/build-report", "--fast"}},
	}
	if len(c.Functions) != len(want) {
		t.Fatalf("Functions = %+v, want %+v", c.Functions, want)
	}
	for name, w := range want {
		got, ok := c.Functions[name]
		if !ok {
			t.Errorf("function %q missing from %+v", name, c.Functions)
			continue
		}
		if got.HTTP != w.HTTP || !slices.Equal(got.Exec, w.Exec) {
			t.Errorf("function %q = %+v, want %+v", name, got, w)
		}
	}
}

func TestLoadKeepsNamesDifferingInCaseApart(t *testing.T) {
	p := writeConfig(t, `
functions:
  airline.reserve: {http: "http://127.0.0.1:9001/a"}
  Airline.Reserve: {http: "http://127.0.0.1:9001/b"}
`)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Functions["airline.reserve"].HTTP != "http://127.0.0.1:9001/a" || c.Functions["Airline.Reserve"].HTTP != "http://127.0.0.1:9001/b" {
		t.Errorf("Functions = %+v, want two functions", c.Functions)
	}
}

func TestLoadRefusesUnknownKeys(t *testing.T) {
	for _, tc := range []struct {
		name, body, key string
	}{
		{"top level", "chian_id: x\n", "unknown key chian_id"},
		{"nested", "rpc: {listn: 127.0.0.1:1}\n", "unknown key rpc.listn"},
		{"function", "functions:\n  airline.reserve: {htp: http://127.0.0.1:1/}\n", "unknown key functions.airline.reserve.htp"},
		{"monitoring rule", "monitoring:\n  - {functions: [a], threshold: 1, windw: 1m, webhook: http://127.0.0.1:1/}\n", "unknown key monitoring[0].windw"},
		{"flag of no command", "log_format: json\n", "unknown key log_format"},
		{"empty map", "functons: {}\n", "unknown key functons"},
		{"null", "rpc: {listn: null}\n", "unknown key rpc.listn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.body)
			_, err := Load(p)
			if err == nil {
				t.Fatal("Load accepted an unknown key")
			}
			if !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), p) {
				t.Errorf("Load = %q, want it to name the file and %q", err, tc.key)
			}
		})
	}
}

func TestLoadAcceptsFlagKeys(t *testing.T) {
	p := writeConfig(t, "log_format: json\njson: true\n")
	c, err := Load(p, "log-format", "json", "dot")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"log-format": "json", "json": true}
	if !reflect.DeepEqual(c.Flags, want) {
		t.Errorf("Flags = %#v, want %#v", c.Flags, want)
	}
}

func TestLoadEnvOverrides(t *testing.T) {
	p := writeConfig(t, "chain_id: from-file\nlimits: {max_tasks: 20}\n")
	t.Setenv("SAGACHAIN_CHAIN_ID", "from-env")
	t.Setenv("SAGACHAIN_LIMITS_MAX_OUTPUT_BYTES", "1024")
	t.Setenv("SAGACHAIN_CONSENSUS_TIMEOUT_PROPOSE", "3s")
	t.Setenv("SAGACHAIN_P2P_PEERS", "/ip4/127.0.0.1/tcp/1/p2p/A,/ip4/127.0.0.1/tcp/2/p2p/B")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.ChainID != "from-env" {
		t.Errorf("ChainID = %q, want the environment's over the file's", c.ChainID)
	}
	if c.Limits.MaxTasks != 20 {
		t.Errorf("MaxTasks = %d, want the file's 20", c.Limits.MaxTasks)
	}
	if c.Limits.MaxOutputBytes != 1024 {
		t.Errorf("MaxOutputBytes = %d, want the environment's 1024", c.Limits.MaxOutputBytes)
	}
	if c.Consensus.TimeoutPropose != 3*time.Second {
		t.Errorf("TimeoutPropose = %s, want 3s", c.Consensus.TimeoutPropose)
	}
	if want := []string{"/ip4/127.0.0.1/tcp/1/p2p/A", "/ip4/127.0.0.1/tcp/2/p2p/B"}; !reflect.DeepEqual(c.P2P.Peers, want) {
		t.Errorf("Peers = %q, want %q", c.P2P.Peers, want)
	}
}

func TestLoadBadEnvValueIsAnError(t *testing.T) {
	t.Setenv("SAGACHAIN_LIMITS_MAX_TASKS", "many")
	_, err := Load("")
	if err == nil || !strings.HasPrefix(err.Error(), "SAGACHAIN_LIMITS_MAX_TASKS: ") {
		t.Fatalf("Load = %v, want an error naming SAGACHAIN_LIMITS_MAX_TASKS", err)
	}
}

func TestLoadFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.yaml")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v, want an error naming %s", err, missing)
	}
	p := writeConfig(t, "functions: [\n")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("Load(bad YAML) = %v, want an error naming %s", err, p)
	}
	p = writeConfig(t, "rpc: {listen: a}\nrpc: {listen: b}\n")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "rpc") {
		t.Errorf("Load(duplicate key) = %v, want an error naming rpc", err)
	}
	p = writeConfig(t, "consensus: {timeout_propose: 300}\n")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "timeout_propose") || !strings.Contains(err.Error(), "unit") {
		t.Errorf("Load(duration without unit) = %v, want an error naming timeout_propose", err)
	}
	p = writeConfig(t, "consensus: {timeout_propose: 100ms, timeout_propose_down: 200ms}\n")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "consensus.timeout_propose_down") {
		t.Errorf("Load(a down proposer waited for longer than a live one) = %v, want an error naming consensus.timeout_propose_down", err)
	}
	p = writeConfig(t, "limits: {max_tasks: lots}\n")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "max_tasks") {
		t.Errorf("Load(bad type) = %v, want an error naming max_tasks", err)
	}
}

func TestValidateNamesTheBadKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"function with neither", func(c *Config) { c.Functions = map[string]FunctionConfig{"airline.reserve": {}} },
			"functions.airline.reserve: set exactly one of http or exec"},
		{"function with both", func(c *Config) {
			c.Functions = map[string]FunctionConfig{"airline.reserve": {HTTP: "http://127.0.0.1:1/", Exec: []string{"x"}}}
		}, "functions.airline.reserve: set exactly one of http or exec"},
		{"bad URL", func(c *Config) { c.Functions = map[string]FunctionConfig{"x": {HTTP: "ftp://host/x"}} },
			`functions.x.http: want an http:// or https:// URL, got "ftp://host/x"`},
		{"URL without host", func(c *Config) { c.Functions = map[string]FunctionConfig{"x": {HTTP: "http:///x"}} },
			"functions.x.http:"},
		{"empty command", func(c *Config) { c.Functions = map[string]FunctionConfig{"x": {Exec: []string{""}}} },
			"functions.x.exec:"},
		{"chain id", func(c *Config) { c.ChainID = "" }, "chain_id:"},
		{"rpc listen", func(c *Config) { c.RPC.Listen = "8645" }, "rpc.listen:"},
		{"p2p listen", func(c *Config) { c.P2P.Listen = "127.0.0.1:26656" }, "p2p.listen:"},
		{"peer", func(c *Config) { c.P2P.Peers = []string{"/ip4/127.0.0.1/tcp/1", "node1"} }, "p2p.peers[1]:"},
		{"timeout", func(c *Config) { c.Consensus.TimeoutPropose = 0 }, "consensus.timeout_propose:"},
		{"block entries", func(c *Config) { c.Consensus.MaxBlockEntries = -1 }, "consensus.max_block_entries:"},
		{"max tasks", func(c *Config) { c.Limits.MaxTasks = 0 }, "limits.max_tasks:"},
		{"max output", func(c *Config) { c.Limits.MaxOutputBytes = 0 }, "limits.max_output_bytes:"},
		{"max attempts", func(c *Config) { c.Limits.MaxAttempts = 0 }, "limits.max_attempts:"},
		{"min backoff", func(c *Config) { c.Limits.MinBackoff = -time.Millisecond }, "limits.min_backoff:"},
		{"max sleep", func(c *Config) { c.Limits.MaxSleep = 0 }, "limits.max_sleep:"},
		{"max rule cost", func(c *Config) { c.Limits.MaxOperationRuleCost = 0 }, "limits.max_operation_rule_cost:"},
		{"monitoring pattern", func(c *Config) {
			c.Monitoring = []MonitorRule{{Functions: []string{"a["}, Threshold: 1, Window: time.Minute, Webhook: "http://127.0.0.1:1/"}}
		}, "monitoring[0].functions[0]:"},
		{"monitoring webhook", func(c *Config) {
			c.Monitoring = []MonitorRule{{Functions: []string{"a.*"}, Threshold: 1, Window: time.Minute, Webhook: "alerts"}}
		}, "monitoring[0].webhook:"},
		{"monitoring threshold", func(c *Config) {
			c.Monitoring = []MonitorRule{{Functions: []string{"a.*"}, Window: time.Minute, Webhook: "http://127.0.0.1:1/"}}
		}, "monitoring[0].threshold:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryBadKey(t *testing.T) {
	c := Default()
	c.ChainID = ""
	c.Limits.MaxTasks = 0
	c.Functions = map[string]FunctionConfig{"b": {}, "a": {HTTP: "nope"}}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted four bad keys")
	}
	lines := strings.Split(err.Error(), "\n")
	var keys []string
	for _, l := range lines {
		k, _, _ := strings.Cut(l, ":")
		keys = append(keys, k)
	}
	want := []string{"chain_id", "functions.a.http", "functions.b", "limits.max_tasks"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("Validate named %q, want %q (error %q)", keys, want, err)
	}
}

func TestLoadRefusesInvalidFunction(t *testing.T) {
	for _, body := range []string{
		"functions:\n  airline.reserve: {http: \"http://127.0.0.1:1/r\", exec: [/bin/true]}\n",
		"functions:\n  airline.reserve: {}\n",
		"functions:\n  airline.reserve:\n",
	} {
		p := writeConfig(t, body)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), "functions.airline.reserve: set exactly one of http or exec") {
			t.Errorf("Load(%q) = %v, want the function's key named", body, err)
		}
	}
}

// The rpc and p2p limits of issue #10 have defaults that validate, come from the
// file and the environment, and are refused naming their key.
func TestRPCLimits(t *testing.T) {
	c, err := Load(writeConfig(t, "rpc: {listen: 127.0.0.1:1, batch_request_limit: 7, ws_origins: [\"http://127.0.0.1:3000\"], cors_domains: [\"*\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.RPC.BatchRequestLimit != 7 || !slices.Equal(c.RPC.WSOrigins, []string{"http://127.0.0.1:3000"}) || !slices.Equal(c.RPC.CORSDomains, []string{"*"}) ||
		c.RPC.MaxResponseBytes != Default().RPC.MaxResponseBytes {
		t.Errorf("rpc = %+v", c.RPC)
	}
	t.Setenv("SAGACHAIN_RPC_WS_ORIGINS", "http://a.example,https://b.example:8443")
	if c, err := Load(""); err != nil || !slices.Equal(c.RPC.WSOrigins, []string{"http://a.example", "https://b.example:8443"}) {
		t.Errorf("SAGACHAIN_RPC_WS_ORIGINS: %v, %v", c.RPC.WSOrigins, err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.RPC.BatchRequestLimit = 0 }, "rpc.batch_request_limit:"},
		{func(c *Config) { c.RPC.BatchResponseMaxBytes = -1 }, "rpc.batch_response_max_bytes:"},
		{func(c *Config) { c.RPC.MaxResponseBytes = 0 }, "rpc.max_response_bytes:"},
		{func(c *Config) { c.RPC.WSOrigins = []string{"*", "evil.example"} }, "rpc.ws_origins[1]:"},
		{func(c *Config) { c.RPC.CORSDomains = []string{"http://a.example/app"} }, "rpc.cors_domains[0]:"},
		{func(c *Config) { c.P2P.RefusedBackoff = 0 }, "p2p.refused_backoff:"},
		{func(c *Config) { c.P2P.RefusalLogInterval = -time.Second }, "p2p.refusal_log_interval:"},
		{func(c *Config) { c.P2P.MaxConnsPerPeer = 0 }, "p2p.max_conns_per_peer:"},
	} {
		c := Default()
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want an error containing %q", err, tc.want)
		}
	}
}
