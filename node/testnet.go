package node

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/p2p"
)

// TestnetNode describes one validator home that InitTestnet made.
type TestnetNode struct {
	Home    string `json:"home"`
	RPC     string `json:"rpc"`
	P2P     string `json:"p2p"`
	Address string `json:"address"`
	PeerID  string `json:"peer_id"`
}

// TestnetLayout says where the validators of a testnet listen.
type TestnetLayout struct {
	// BasePort is the first port on 127.0.0.1: validator i serves RPC on
	// BasePort+2i and p2p on BasePort+2i+1.
	BasePort int
	// Hosts, when set, are the validators' own addresses (one container
	// each): every validator then listens on all interfaces at the same
	// two ports, BasePort and BasePort+1, and dials the others' hosts.
	Hosts []string
}

// InitTestnet makes n validator homes dir/node0 … dir/node<n-1> sharing
// one genesis (all n validators, with client as the submitter), each
// configured with the others as static peers.
func InitTestnet(dir string, n int, chainID string, client ledger.Address, layout TestnetLayout) ([]TestnetNode, error) {
	if n < 1 {
		return nil, fmt.Errorf("testnet: --validators must be at least 1, got %d", n)
	}
	if layout.Hosts != nil && len(layout.Hosts) != n {
		return nil, fmt.Errorf("testnet: %d hosts for %d validators", len(layout.Hosts), n)
	}
	if layout.BasePort <= 0 || layout.BasePort+2*n > 65535 {
		return nil, fmt.Errorf("testnet: --base-port %d leaves no room for %d validators", layout.BasePort, n)
	}
	g := &ledger.Genesis{ChainID: chainID, Time: uint64(time.Now().UnixMilli()), Params: ledger.DefaultParams()}
	if client != (ledger.Address{}) {
		g.Submitters = []ledger.Address{client}
	}
	keys := make([]*ledger.PrivateKey, n)
	ids := make([]string, n)
	for i := range keys {
		k, err := ledger.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		id, err := p2p.PeerID(k.Bytes())
		if err != nil {
			return nil, err
		}
		keys[i], ids[i] = k, id.String()
		g.Validators = append(g.Validators, ledger.NewGenesisValidator(k, fmt.Sprintf("node%d", i)))
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	rpcAddr := func(i int, listen bool) string {
		if layout.Hosts != nil {
			if listen {
				return fmt.Sprintf("0.0.0.0:%d", layout.BasePort)
			}
			return fmt.Sprintf("%s:%d", layout.Hosts[i], layout.BasePort)
		}
		return fmt.Sprintf("127.0.0.1:%d", layout.BasePort+2*i)
	}
	p2pAddr := func(i int, listen bool) string {
		if layout.Hosts != nil {
			if listen {
				return fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", layout.BasePort+1)
			}
			return fmt.Sprintf("/ip4/%s/tcp/%d", layout.Hosts[i], layout.BasePort+1)
		}
		return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", layout.BasePort+2*i+1)
	}
	var out []TestnetNode
	for i, k := range keys {
		home := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if _, err := os.Stat(filepath.Join(home, GenesisFile)); err == nil {
			return nil, fmt.Errorf("testnet: %s is a home already; use another --dir", home)
		}
		if err := os.MkdirAll(home, 0o700); err != nil {
			return nil, err
		}
		if err := k.SaveKey(filepath.Join(home, KeyFile)); err != nil {
			return nil, err
		}
		if err := g.Save(filepath.Join(home, GenesisFile)); err != nil {
			return nil, err
		}
		cfg := config.Default()
		cfg.ChainID = chainID
		cfg.RPC.Listen = rpcAddr(i, true)
		cfg.P2P.Listen = p2pAddr(i, true)
		cfg.P2P.Peers = nil
		cfg.P2P.FullMesh = true
		for j := range keys {
			if j != i {
				cfg.P2P.Peers = append(cfg.P2P.Peers, p2pAddr(j, false)+"/p2p/"+ids[j])
			}
		}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(home, ConfigFile), []byte(testnetConfigText(cfg)), 0o644); err != nil {
			return nil, err
		}
		out = append(out, TestnetNode{Home: home, RPC: "http://" + rpcAddr(i, false), P2P: p2pAddr(i, false) + "/p2p/" + ids[i],
			Address: k.Address().Hex(), PeerID: ids[i]})
	}
	return out, nil
}

// testnetConfigText is a testnet validator's config.yaml.
func testnetConfigText(c config.Config) string {
	var peers strings.Builder
	for _, p := range c.P2P.Peers {
		fmt.Fprintf(&peers, "\n    - %s", p)
	}
	return fmt.Sprintf(`# sagachain testnet validator (SPEC §4); the other validators are its static peers.
chain_id: %s
key_file: %s
rpc: {listen: "%s"}
p2p:
  listen: %s
  full_mesh: %t
  peers:%s
consensus: {timeout_propose: %s, max_block_entries: %d, max_block_interval: %s}
`, c.ChainID, c.KeyFile, c.RPC.Listen, c.P2P.Listen, c.P2P.FullMesh, peers.String(),
		c.Consensus.TimeoutPropose, c.Consensus.MaxBlockEntries, c.Consensus.MaxBlockInterval)
}
