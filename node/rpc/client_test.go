package rpc

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/sagachain/sagachain/ledger"
)

func TestDialRefusesWhatIsNotAnRPCURL(t *testing.T) {
	for _, url := range []string{"127.0.0.1:8645", "ftp://127.0.0.1:8645", "", "http://"} {
		if _, err := Dial(context.Background(), url); err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("Dial(%q): got %v, want an error saying what a URL must be", url, err)
		}
	}
}

func TestClientWorksOverWebSocketToo(t *testing.T) {
	b := newTestBackend(t)
	b.commit()
	c := dial(t, wsURL(serve(t, b)))
	head, err := c.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if head.Height != 1 {
		t.Fatalf("head over WebSocket at %d, want 1", head.Height)
	}
}

// A chain longer than one page of sc_blocks, read back through the client's
// BlockSource, passes the auditor's verification from the genesis the
// node serves.
func TestBlockSourceFeedsVerifyChain(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	ctx := context.Background()
	okOp, failOp := b.submission(b.user, tripYAML, 1), b.submission(b.user, tripYAML, 2)
	b.commit(okOp, failOp)
	b.run(okOp.Hash(), nil)
	b.run(failOp.Hash(), map[string]string{"hotel": "no rooms"})
	for {
		h, err := b.store.Head()
		if err != nil {
			t.Fatal(err)
		}
		if h > MaxBlocksPerCall+5 {
			break
		}
		b.commit()
	}
	head, err := b.store.Head()
	if err != nil {
		t.Fatal(err)
	}

	page, err := c.Blocks(ctx, 1, head)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != MaxBlocksPerCall || page[0].Height != 1 {
		t.Fatalf("one call returned %d blocks from %d, want %d from 1", len(page), page[0].Height, MaxBlocksPerCall)
	}

	g, err := c.Genesis(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src := c.BlockSource(ctx)
	rep, err := ledger.VerifyChain(g, src)
	if err != nil {
		t.Fatal(err)
	}
	last, err := b.store.Block(head)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blocks != head || rep.HeadHash != last.Hash() || rep.Operations != 2 {
		t.Fatalf("verified %+v, want %d blocks up to %s and 2 operations", rep, head, last.Hash().Hex())
	}
	root, err := b.store.ResultsRoot(head)
	if err != nil {
		t.Fatal(err)
	}
	if src.Results() != root {
		t.Fatalf("results root of the last block %s, the store's %s", src.Results().Hex(), root.Hex())
	}
	if _, _, err := src.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last block: %v, want io.EOF", err)
	}

	// Blocks committed after the source fixed its head are not read.
	b.commit()
	src = c.BlockSource(ctx)
	n, err := src.Head()
	if err != nil {
		t.Fatal(err)
	}
	b.commit()
	count := uint64(0)
	for {
		_, _, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		count++
	}
	if count != n {
		t.Fatalf("read %d blocks, want the %d up to the head when asked", count, n)
	}
}

func TestBlocksRefusesABadRange(t *testing.T) {
	b := newTestBackend(t)
	b.commit()
	b.commit()
	c := dial(t, serve(t, b))
	ctx := context.Background()
	for _, r := range [][2]uint64{{0, 2}, {2, 1}} {
		if _, err := c.Blocks(ctx, r[0], r[1]); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("blocks %d..%d: got %v, want invalid input", r[0], r[1], err)
		}
	}
	got, err := c.Blocks(ctx, 3, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("blocks above the head: %d blocks, %v; want none", len(got), err)
	}
	got, err = c.Blocks(ctx, 2, 10)
	if err != nil || len(got) != 1 || got[0].Height != 2 {
		t.Fatalf("blocks 2..10 of a 2-block chain: %+v, %v", got, err)
	}
}

// A page of sc_blocks stops before it grows past its byte budget, yet
// holds at least one block, and the pager reads every block across such
// pages.
func TestBlocksPagesByBytes(t *testing.T) {
	b := newTestBackend(t)
	const n = 6
	b.commitAnnouncements(n, 10<<10)
	api := &API{b: b, pageBytes: 25 << 10}
	page, err := api.Blocks(1, n)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, raw := range page {
		size += len(raw.Block) + len(raw.Commit)
	}
	if len(page) != 2 || size > api.pageBytes {
		t.Fatalf("a page of 10 KiB blocks within 25 KiB holds %d blocks, %d bytes; want 2", len(page), size)
	}
	api.pageBytes = 1
	if page, err := api.Blocks(3, n); err != nil || len(page) != 1 || page[0].Height != 3 {
		t.Fatalf("a page smaller than one block: %d blocks, %v; want block 3 alone", len(page), err)
	}

	srv := gethrpc.NewServer()
	defer srv.Stop()
	if err := srv.RegisterName(Namespace, api); err != nil {
		t.Fatal(err)
	}
	c := &Client{url: "inproc", c: gethrpc.DialInProc(srv)}
	defer c.Close()
	rep, err := ledger.VerifyChain(b.genesis, c.BlockSource(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blocks != n || rep.Entries != n {
		t.Fatalf("verified %d blocks and %d entries, want %d of each", rep.Blocks, rep.Entries, n)
	}
}
