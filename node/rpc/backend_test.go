package rpc

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/event"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

const testChainID = "rpc-test"

// testBackend is a one-validator node in miniature: a real in-memory store
// and state machine, a mempool that is a slice, and a commit feed. Blocks are
// built the way a proposer builds them and saved with the store's
// SaveBlock.
type testBackend struct {
	t         *testing.T
	genesis   *ledger.Genesis
	machine   *ledger.Machine
	store     *ledger.BadgerStore
	val, user *ledger.PrivateKey
	peers     []ledger.Address

	// advance is the block time between two commits, in ms (0 for 10).
	advance uint64

	mu      sync.Mutex
	mempool []ledger.Entry
	maxPool int

	feed  event.Feed
	scope event.SubscriptionScope
	close sync.Once
}

var _ Backend = (*testBackend)(nil)
var _ PendingChecker = (*testBackend)(nil)

func testKey(t testing.TB, seed uint64) *ledger.PrivateKey {
	t.Helper()
	k, err := ledger.GenerateKey(rand.NewChaCha8([32]byte{byte(seed), 0x5c}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestBackend(t *testing.T) *testBackend {
	t.Helper()
	val, user := testKey(t, 1), testKey(t, 2)
	g := &ledger.Genesis{ChainID: testChainID, Time: 1_000_000,
		Validators: []ledger.GenesisValidator{{Address: val.Address(), Name: "val0"}},
		Submitters: []ledger.Address{user.Address()}, Params: ledger.DefaultParams()}
	return newBackendFor(t, g, val, user)
}

func newBackendFor(t *testing.T, g *ledger.Genesis, val, user *ledger.PrivateKey) *testBackend {
	t.Helper()
	m, err := ledger.NewMachine(g)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InitGenesis(g.Hash()); err != nil {
		t.Fatal(err)
	}
	b := &testBackend{t: t, genesis: g, machine: m, store: s, val: val, user: user, maxPool: 100}
	t.Cleanup(b.shutdown)
	return b
}

func (b *testBackend) shutdown() {
	b.close.Do(func() {
		b.scope.Close()
		if err := b.store.Close(); err != nil {
			b.t.Error(err)
		}
	})
}

func (b *testBackend) Genesis() *ledger.Genesis { return b.genesis }
func (b *testBackend) Machine() *ledger.Machine { return b.machine }
func (b *testBackend) Store() ledger.Store      { return b.store }
func (b *testBackend) Self() ledger.Address     { return b.val.Address() }
func (b *testBackend) Peers() []ledger.Address  { return b.peers }

func (b *testBackend) MempoolSize() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.mempool)
}

func (b *testBackend) Pending(h ledger.Hash) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.ContainsFunc(b.mempool, func(e ledger.Entry) bool { return e.Hash() == h })
}

// Submit checks the entry as the next block would apply it and queues it.
func (b *testBackend) Submit(e ledger.Entry) error {
	p := b.parent()
	if err := b.machine.Check(b.store, ledger.Context{Height: p.Height + 1, Time: p.Time + 1}, e); err != nil {
		return InvalidInput(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.mempool) >= b.maxPool {
		return fmt.Errorf("%d entries queued: %w", len(b.mempool), ErrMempoolFull)
	}
	b.mempool = append(b.mempool, e)
	return nil
}

func (b *testBackend) SubscribeCommits(ch chan<- CommitEvent) event.Subscription {
	return b.scope.Track(b.feed.Subscribe(ch))
}

// subscribers is the number of commit subscriptions still open.
func (b *testBackend) subscribers() int { return b.scope.Count() }

func (b *testBackend) parent() ledger.Parent {
	b.t.Helper()
	head, err := b.store.Head()
	if err != nil {
		b.t.Fatal(err)
	}
	if head == 0 {
		return ledger.GenesisParent(b.genesis)
	}
	blk, err := b.store.Block(head)
	if err != nil {
		b.t.Fatal(err)
	}
	res, err := b.store.ResultsRoot(head)
	if err != nil {
		b.t.Fatal(err)
	}
	return ledger.Parent{Height: head, Hash: blk.Hash(), Time: blk.Header.Time, Results: res}
}

// drain empties the mempool and returns what it held.
func (b *testBackend) drain() []ledger.Entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.mempool
	b.mempool = nil
	return out
}

// commit builds the next block from pending entries and due timeouts,
// applies it, signs it and its certificate, saves it, and publishes it.
// commitAnnouncements commits n blocks, each of one announcement of a
// function named by size bytes: announcements are the cheapest large
// entries to apply.
func (b *testBackend) commitAnnouncements(n, size int) {
	b.t.Helper()
	for i := range n {
		a := &ledger.Announcement{Functions: []string{strings.Repeat("x", size)}, Seq: uint64(i + 1)}
		if err := a.Sign(b.val, testChainID); err != nil {
			b.t.Fatal(err)
		}
		e, err := ledger.NewEntry(ledger.KindAnnouncement, a)
		if err != nil {
			b.t.Fatal(err)
		}
		b.commit(e)
	}
}

func (b *testBackend) commit(pending ...ledger.Entry) *ledger.Block {
	b.t.Helper()
	p := b.parent()
	ctx := ledger.Context{Height: p.Height + 1, Time: p.Time + cmp.Or(b.advance, 10)}
	due, err := b.machine.DueTimeouts(b.store, ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	prop := ledger.NewOverlay(b.store)
	var entries []ledger.Entry
	for _, e := range append(due, pending...) {
		got, err := b.machine.Try(prop, ctx, e, nil)
		if err != nil {
			b.t.Fatalf("block %d: %s entry does not fit: %v", ctx.Height, e.Kind, err)
		}
		entries = append(entries, got...)
	}
	ov := ledger.NewOverlay(b.store)
	res, err := b.machine.ApplyEntries(ov, ctx, entries)
	if err != nil {
		b.t.Fatal(err)
	}
	var last ledger.Commit
	if p.Height > 0 {
		c, err := b.store.Commit(p.Height)
		if err != nil {
			b.t.Fatal(err)
		}
		last = *c
	}
	blk, err := ledger.NewBlock(b.val, testChainID, ctx.Height, 0, ctx.Time, p.Hash, p.Results, last, entries)
	if err != nil {
		b.t.Fatal(err)
	}
	v := ledger.Vote{Type: ledger.Precommit, Height: ctx.Height, BlockHash: blk.Hash()}
	if err := v.Sign(b.val, testChainID); err != nil {
		b.t.Fatal(err)
	}
	cert := &ledger.Commit{Height: ctx.Height, BlockHash: blk.Hash(), Signatures: []ledger.CommitSig{{Validator: v.Validator, Signature: v.Signature}}}
	ops, hosts := ov.Changes()
	if err := b.store.SaveBlock(ledger.BlockWrite{Block: blk, Commit: cert, Results: res.Root(), Ops: ops, Hosts: hosts}); err != nil {
		b.t.Fatal(err)
	}
	b.feed.Send(CommitEvent{Block: blk, Ops: ops})
	return blk
}

const tripYAML = `
name: trip
inputs: {traveler: Ada}
tasks:
  - {id: flight, run: echo, rollback: noop, inputs: [traveler], outputs: [flight],
     params: {flight: {confirmation: QX12AB}}, validate: 'output.flight.confirmation.matches("^[A-Z0-9]{6}$")'}
  - {id: hotel, run: echo, rollback: noop, inputs: [flight], outputs: [hotel]}
`

// submission returns a submission of the operation file, signed by key.
func (b *testBackend) submission(key *ledger.PrivateKey, opYAML string, nonce uint64) ledger.Entry {
	b.t.Helper()
	op, err := taskrt.Load([]byte(opYAML), nil, taskrt.DefaultLimits())
	if err != nil {
		b.t.Fatal(err)
	}
	raw, err := json.Marshal(op)
	if err != nil {
		b.t.Fatal(err)
	}
	s := &ledger.Submission{Operation: raw, Nonce: nonce}
	if err := s.Sign(key, testChainID); err != nil {
		b.t.Fatal(err)
	}
	e, err := ledger.NewEntry(ledger.KindSubmission, s)
	if err != nil {
		b.t.Fatal(err)
	}
	return e
}

func (b *testBackend) record(id ledger.Hash) *ledger.OpRecord {
	b.t.Helper()
	r, err := b.store.Operation(id)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

// attest plays the executor of every running task and rollback of the
// operation: a task named in fail fails with that error, every other task
// returns what the builtin echo returns, and every rollback succeeds.
func (b *testBackend) attest(id ledger.Hash, fail map[string]string) []ledger.Entry {
	b.t.Helper()
	r := b.record(id)
	op, _, err := b.machine.Compiled(r)
	if err != nil {
		b.t.Fatal(err)
	}
	var out []ledger.Entry
	for i, ts := range r.Saga.Tasks {
		rollback := ts.Undoing
		if ts.Status != taskrt.TaskRunning && !rollback {
			continue
		}
		t := op.Tasks[i]
		a := &ledger.Attestation{Operation: id, Task: t.ID, Rollback: rollback, Attempts: 1}
		if !rollback {
			if msg, ok := fail[t.ID]; ok {
				a.Error = msg
			} else {
				res, err := taskrt.Builtins()["echo"].Call(context.Background(), taskrt.Request{Task: t.ID, Params: t.Params, Outputs: t.Outputs})
				if err != nil {
					b.t.Fatal(err)
				}
				if a.Output, err = json.Marshal(res); err != nil {
					b.t.Fatal(err)
				}
			}
		}
		if err := a.Sign(b.val, testChainID); err != nil {
			b.t.Fatal(err)
		}
		kind := ledger.KindAttestation
		if rollback {
			kind = ledger.KindRollbackAttestation
		}
		e, err := ledger.NewEntry(kind, a)
		if err != nil {
			b.t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// run commits a block of attestations at a time until the operation ends.
func (b *testBackend) run(id ledger.Hash, fail map[string]string) *ledger.OpRecord {
	b.t.Helper()
	for range 20 {
		if r := b.record(id); r.Saga.Status.Final() {
			return r
		}
		b.commit(b.attest(id, fail)...)
	}
	b.t.Fatalf("operation %s did not end in 20 blocks", id.Hex())
	return nil
}

// view is what the state machine renders for the stored operation, as JSON.
func (b *testBackend) viewJSON(id ledger.Hash) string {
	b.t.Helper()
	v, err := b.machine.View(b.record(id))
	if err != nil {
		b.t.Fatal(err)
	}
	return mustJSON(b.t, v)
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// serve serves b's endpoint with the default limits on a real local HTTP
// server and returns its http:// URL.
func serve(t *testing.T, b Backend) string {
	t.Helper()
	return serveWith(t, b, Limits{})
}

// serveWith is serve with limits other than the defaults.
func serveWith(t *testing.T, b Backend, lim Limits) string {
	t.Helper()
	ep, err := Handler(b, nil, lim)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ep)
	t.Cleanup(func() {
		ep.Stop()
		srv.Close()
	})
	return srv.URL
}

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

func dial(t *testing.T, url string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitTimeout bounds every wait for something asynchronous, so that a bug
// fails the test instead of hanging it; no test measures time.
const waitTimeout = 20 * time.Second

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("nothing received in %s", waitTimeout)
		panic("unreachable")
	}
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
