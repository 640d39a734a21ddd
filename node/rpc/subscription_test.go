package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// submitTrip serves a test backend, submits the trip to it, and returns the
// backend, a client and the operation's id. The client dials http:// and
// opens a WebSocket for subscriptions.
func submitTrip(t *testing.T) (*testBackend, *Client, common.Hash) {
	t.Helper()
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	res, err := c.Submit(context.Background(), b.submission(b.user, tripYAML, 1))
	if err != nil {
		t.Fatal(err)
	}
	return b, c, *res.ID
}

// A client that submits and then subscribes sees the operation from the
// block that records it to its final status, one view per block that
// changes it, each the machine's view at that block; then the subscription
// ends by itself.
func TestOperationEventsFollowsAnOperationToItsEnd(t *testing.T) {
	b, c, id := submitTrip(t)
	ctx := context.Background()
	views := make(chan taskrt.OperationView)
	sub, err := c.SubscribeOperation(ctx, id, views)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server follows the commits", func() bool { return b.subscribers() == 1 })

	b.commit(b.drain()...)
	blocks := 1
	statuses := []taskrt.OpStatus{}
	for {
		v := recv(t, views)
		if got, want := mustJSON(t, v), b.viewJSON(id); got != want {
			t.Fatalf("view after block %d:\n%s\nthe machine renders\n%s", b.parent().Height, got, want)
		}
		statuses = append(statuses, v.Status)
		if v.Status.Final() {
			break
		}
		b.commit(b.attest(id, map[string]string{"hotel": "no rooms"})...)
		blocks++
	}
	if len(statuses) != blocks || !slices.Contains(statuses, taskrt.OpRollingBack) || statuses[len(statuses)-1] != taskrt.OpRolledBack {
		t.Fatalf("%d blocks changed the operation, the subscription sent %d views with statuses %v", blocks, len(statuses), statuses)
	}
	if err, open := <-sub.Err(); open || err != nil {
		t.Fatalf("after the final view the subscription reported %v, want a clean end", err)
	}
	eventually(t, "the server stops following the commits", func() bool { return b.subscribers() == 0 })
}

// operationStatus sends a status only when a block changes it: the trip
// that rolls back goes running, rolling_back, rolled_back, however many
// blocks it takes, and each status names the block that set it.
func TestOperationStatusSendsEachStatusOnce(t *testing.T) {
	b, c, id := submitTrip(t)
	ctx := context.Background()
	ch := make(chan OperationStatus, 16)
	sub, err := c.SubscribeOperationStatus(ctx, id, ch)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server follows the commits", func() bool { return b.subscribers() == 1 })

	b.commit(b.drain()...)
	blocks := 1
	var (
		got  []OperationStatus
		last taskrt.OpStatus
	)
	for {
		// A status is due exactly when the block changed it; a duplicate
		// sent for an unchanged one would show up here in its place.
		if now := b.record(id).Saga.Status; now != last {
			st := recv(t, ch)
			if st.Status != now {
				t.Fatalf("after block %d the subscription sent %s, the record says %s", b.parent().Height, st.Status, now)
			}
			got, last = append(got, st), now
			if now.Final() {
				break
			}
		}
		b.commit(b.attest(id, map[string]string{"hotel": "no rooms"})...)
		blocks++
	}
	var statuses []taskrt.OpStatus
	for i, st := range got {
		statuses = append(statuses, st.Status)
		if st.ID != id {
			t.Errorf("status %d is for %s, want %s", i, st.ID, id)
		}
		if i > 0 && st.Height <= got[i-1].Height {
			t.Errorf("status %d at height %d, not after the previous one's %d", i, st.Height, got[i-1].Height)
		}
	}
	want := []taskrt.OpStatus{taskrt.OpRunning, taskrt.OpRollingBack, taskrt.OpRolledBack}
	if !slices.Equal(statuses, want) {
		t.Fatalf("%d blocks sent the statuses %v, want %v", blocks, statuses, want)
	}
	if blocks <= len(want) {
		t.Fatalf("only %d blocks: the test shows nothing about unchanged statuses", blocks)
	}
	if last := got[len(got)-1]; last.Height != b.parent().Height {
		t.Errorf("the final status names height %d, the block that rolled it back is %d", last.Height, b.parent().Height)
	}
	if err, open := <-sub.Err(); open || err != nil {
		t.Fatalf("after the final status the subscription reported %v, want a clean end", err)
	}
	if len(ch) > 0 {
		t.Fatalf("%d statuses after the final one", len(ch))
	}
}

func TestOperationEventsSendsTheCurrentViewAtOnce(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, wsURL(serve(t, b)))
	ctx := context.Background()
	running, done := b.submission(b.user, tripYAML, 1), b.submission(b.user, tripYAML, 2)
	b.commit(running, done)
	b.run(done.Hash(), nil)

	views := make(chan taskrt.OperationView, 1)
	sub, err := c.SubscribeOperation(ctx, running.Hash(), views)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustJSON(t, recv(t, views)), b.viewJSON(running.Hash()); got != want {
		t.Fatalf("first view\n%s\nwant the stored one\n%s", got, want)
	}
	sub.Unsubscribe()
	if err, open := <-sub.Err(); open || err != nil {
		t.Fatalf("after Unsubscribe: %v", err)
	}

	// An operation that has already ended: its final view, then the end.
	sub, err = c.SubscribeOperation(ctx, done.Hash(), views)
	if err != nil {
		t.Fatal(err)
	}
	if v := recv(t, views); v.Status != taskrt.OpCompleted || mustJSON(t, v) != b.viewJSON(done.Hash()) {
		t.Fatalf("view of a completed operation: %s", mustJSON(t, v))
	}
	select {
	case err, open := <-sub.Err():
		if open || err != nil {
			t.Fatalf("subscription of a completed operation ended with %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the subscription of a completed operation did not end")
	}
	eventually(t, "the server stops following the commits", func() bool { return b.subscribers() == 0 })

	// The server ends its side by itself after the final view, without
	// waiting for the client to unsubscribe.
	raw, err := gethrpc.DialContext(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rawViews := make(chan json.RawMessage, 1)
	rawSub, err := raw.Subscribe(ctx, Namespace, rawViews, "operationEvents", done.Hash())
	if err != nil {
		t.Fatal(err)
	}
	defer rawSub.Unsubscribe()
	if got := string(recv(t, rawViews)); got != b.viewJSON(done.Hash()) {
		t.Fatalf("raw view %s", got)
	}
	eventually(t, "the server ends the subscription after the final view", func() bool { return b.subscribers() == 0 })
}

func TestOperationEventsRefusesAnUnknownOperation(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	missing := common.Hash{0xee}
	_, err := c.SubscribeOperation(context.Background(), missing, make(chan taskrt.OperationView))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("subscribing to %s: got %v, want not found", missing.Hex(), err)
	}
	eventually(t, "the refused subscription leaves nothing behind", func() bool { return b.subscribers() == 0 })
}

// A client that goes away ends its subscriptions on the server.
func TestSubscriptionsEndWhenTheClientDisconnects(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	ctx := context.Background()
	e := b.submission(b.user, tripYAML, 1)
	b.commit(e)
	views := make(chan taskrt.OperationView, 1)
	sub, err := c.SubscribeOperation(ctx, e.Hash(), views)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, views)
	if _, err := c.SubscribeBlocks(ctx, make(chan BlockSummary)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two subscriptions follow the commits", func() bool { return b.subscribers() == 2 })
	c.Close()
	if err := recv(t, sub.Err()); !errors.Is(err, gethrpc.ErrClientQuit) {
		t.Fatalf("subscription of a closed client ended with %v, want ErrClientQuit", err)
	}
	eventually(t, "the server stops following the commits", func() bool { return b.subscribers() == 0 })
}

func TestNewBlocksSummarizesEveryBlock(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	ctx := context.Background()
	summaries := make(chan BlockSummary, 8)
	sub, err := c.SubscribeBlocks(ctx, summaries)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server follows the commits", func() bool { return b.subscribers() == 1 })
	e := b.submission(b.user, tripYAML, 1)
	blocks := []*ledger.Block{b.commit(e), b.commit(), b.commit(b.attest(e.Hash(), nil)...)}
	for i, blk := range blocks {
		s := recv(t, summaries)
		want := BlockSummary{Height: blk.Header.Height, Hash: blk.Hash(), Time: blk.Header.Time, Proposer: b.val.Address(),
			Entries: len(blk.Entries), Operations: []common.Hash{}}
		if i != 1 {
			want.Operations = []common.Hash{e.Hash()}
		}
		if mustJSON(t, s) != mustJSON(t, want) {
			t.Fatalf("summary of block %d: %s, want %s", blk.Header.Height, mustJSON(t, s), mustJSON(t, want))
		}
	}
	sub.Unsubscribe()
	eventually(t, "the server stops following the commits", func() bool { return b.subscribers() == 0 })
}
