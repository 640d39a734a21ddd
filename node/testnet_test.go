package node

import (
	"testing"
)

func TestInitTestnetHomesLoad(t *testing.T) {
	dir := t.TempDir()
	client := key(t, 50).Address()
	nodes, err := InitTestnet(dir, 4, "test-net", client, TestnetLayout{BasePort: 27000})
	if err != nil {
		t.Fatal(err)
	}
	for i, tn := range nodes {
		opts, err := LoadHome(tn.Home, "")
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if got := len(opts.Config.P2P.Peers); got != 3 {
			t.Fatalf("node %d has %d peers, want 3", i, got)
		}
		if opts.Key.Address().Hex() != tn.Address || opts.Genesis.Validators[i].Address.Hex() != tn.Address {
			t.Fatalf("node %d: key and genesis disagree", i)
		}
		if !opts.Genesis.AllowedSubmitter(client) {
			t.Fatalf("node %d: client is not an allowed submitter", i)
		}
	}
	if _, err := InitTestnet(dir, 4, "test-net", client, TestnetLayout{BasePort: 27000}); err == nil {
		t.Fatal("a second init over the same directory was accepted")
	}
	if _, err := InitTestnet(t.TempDir(), 0, "x", client, TestnetLayout{BasePort: 27000}); err == nil {
		t.Fatal("zero validators accepted")
	}
}
