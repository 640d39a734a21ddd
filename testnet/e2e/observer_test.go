package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sagachain/sagachain/node/rpc"
)

// A node whose key the genesis does not list, given the testnet's genesis
// and every validator as a peer, gets nowhere: no validator keeps a
// connection with it (each counts only the other validators as peers), so
// it never syncs a block, and a valid submission handed to it
// never reaches the validators, who go on committing their own load
// untouched.
func TestUnlistedPeerIsRefused(t *testing.T) {
	skipShort(t)
	net := Start(t, env, Testnet{Validators: 4,
		Load: Load{Operations: []string{"testdata/echo.yaml"}, Outcomes: loadOutcomes, Workers: 1, Interval: 200 * time.Millisecond,
			Max: 1000, Duration: 2 * time.Minute, Attempt: 4 * time.Second, GiveUp: 20 * time.Second}})
	load, err := net.StartLoad(net.Testnet.Load)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(load.Stop)
	before, err := waitProgress(net.Validators, 0)
	if err != nil {
		t.Fatal(err)
	}

	obs := net.StartObserver(t)
	op, err := LoadOperation("testdata/echo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	smuggled, err := net.Submission(op)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err = obs.Client().Submit(ctx, smuggled)
	cancel()
	if err == nil {
		t.Fatal("the observer acknowledged a submission: a block holds it, so some validator took it from the observer")
	}
	t.Logf("the observer did not acknowledge a valid submission: %v", err)

	const watch = 5 * time.Second
	samples := 0
	for end := time.Now().Add(watch); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		heads, errs := Heads([]*Node{obs})
		if errs[0] != nil {
			t.Fatal(errs[0])
		}
		if heads[0].Height != 0 {
			t.Fatalf("the observer synced to height %d", heads[0].Height)
		}
		for _, nd := range net.Validators {
			peers, err := peerCount(nd)
			if err != nil {
				t.Fatal(err)
			}
			if peers > len(net.Validators)-1 {
				t.Fatalf("%s has %d peers: more than the other %d validators", nd.Name, peers, len(net.Validators)-1)
			}
		}
		samples++
	}
	load.Pause()
	s, err := net.Check(net.Validators, load.Acked())
	if err != nil {
		t.Fatal(err)
	}
	if s.Height <= before {
		t.Errorf("the validators stood at height %d while the observer tried to join", s.Height)
	}
	for _, nd := range net.Validators {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, err := nd.Client().Operation(ctx, smuggled.Hash())
		cancel()
		if !errors.Is(err, rpc.ErrNotFound) {
			t.Errorf("%s: the submission handed to the observer: got %v, want not found", nd.Name, err)
		}
	}
	t.Logf("observer %s (%s) at height 0, and no validator with more than %d peers, in %d samples over %s; validators went from %d on: %s; load: %s",
		obs.Address.Hex(), obs.Host, len(net.Validators)-1, samples, watch, before, s, load.Stats())
}

// peerCount reads the node's sagachain_peers gauge from its /metrics,
// which counts connections as they open and close.
func peerCount(nd *Node) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, nd.RPC+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: metrics: %w", nd.Name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "sagachain_peers "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: metrics: sagachain_peers %q: %w", nd.Name, v, err)
			}
			return int(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: metrics: %w", nd.Name, err)
	}
	return 0, fmt.Errorf("%s: metrics: no sagachain_peers", nd.Name)
}
