package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

// A commit the node does not confirm in time is no failure: submit says so
// with the id, waits for the commit, and exits 0 with one operation
// recorded. The late answer is made by an answer timeout of 1ns, not by
// waiting out the node's 30s. Sending the same signed bytes again, before
// and after their commit, returns the same id and records nothing more.
func TestSubmitSlowCommitIsNotAFailure(t *testing.T) {
	t.Parallel()
	env, user := userEnv(t)
	d := startDev(t, env, filepath.Join(t.TempDir(), "dev"), "--no-demo")

	r := d.run(t, "submit", "testnet/ops/fig4.yaml", "--answer-timeout", "1ns")
	r.wantCode(t, exitOK)
	id := strings.TrimSpace(r.stdout)
	if !hashPattern.MatchString(id) {
		t.Fatalf("submit printed %q, want the operation id", r.stdout)
	}
	for _, want := range []string{"operation " + id + " was sent", "sagachain op get " + id, "Do not submit the file again"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("submit with a late answer: stderr %q lacks %q", r.stderr, want)
		}
	}
	d.run(t, "op", "get", id, "--json").wantCode(t, exitOK)
	if _, ids := d.ledgerState(t); len(ids) != 1 || ids[0] != id {
		t.Errorf("operations %v, want %s alone", ids, id)
	}

	// With --wait it follows on to the end.
	r = d.run(t, "submit", "testnet/ops/fig4.yaml", "--answer-timeout", "1ns", "--wait", "--json")
	r.wantCode(t, exitOK)
	if v := decodeOp(t, r); v.Status != taskrt.OpCompleted {
		t.Errorf("submit --wait with a late answer: status %s, want completed", v.Status)
	}

	// The same signed bytes, twice at once and once after their commit.
	key, err := ledger.LoadKey(filepath.Join(user, ".sagachain", "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(repoRoot, "testnet", "ops", "fig4.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	op, err := taskrt.Load(data, nil, (&app{cfg: config.Default()}).limits())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := rpc.Dial(ctx, d.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e, err := submission(op, key, devChainID)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 2)
	for range 2 {
		go func() {
			res, err := c.Submit(ctx, e)
			if err == nil && *res.ID != e.Hash() {
				t.Errorf("submit returned id %s, want %s", res.ID.Hex(), e.Hash().Hex())
			}
			results <- err
		}()
	}
	for range 2 {
		if err := <-results; err != nil {
			t.Errorf("a send of the same bytes: %v", err)
		}
	}
	res, err := c.Submit(ctx, e)
	if err != nil || *res.ID != e.Hash() {
		t.Errorf("the same bytes after their commit: id %v, %v; want %s and no error", res.ID, err, e.Hash().Hex())
	}
	if _, ids := d.ledgerState(t); len(ids) != 3 {
		t.Errorf("operations %v, want 3: resends record nothing", ids)
	}
	d.stop(t)
}
