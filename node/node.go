package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/event"
	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/consensus"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/metrics"
	"github.com/sagachain/sagachain/node/monitor"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
	"golang.org/x/sync/errgroup"
)

// Options are what a Node is made of.
type Options struct {
	// Home is the node's home directory; its data lives in Home/data.
	Home    string
	Config  config.Config
	Genesis *ledger.Genesis
	Key     *ledger.PrivateKey
	Log     *slog.Logger
	// Now is the local clock; nil means time.Now.
	Now func() time.Time
	// InMemory keeps the ledger in memory (tests).
	InMemory bool
	// UI serves GET / on the RPC address; nil for none.
	UI http.Handler
}

// Node is one sagachain process: store, state machine, mempool, consensus,
// executor and JSON-RPC.
type Node struct {
	opts     Options
	log      *slog.Logger
	badger   *ledger.BadgerStore
	store    *cachedStore
	machine  *ledger.Machine
	mempool  *Mempool
	app      *App
	registry *taskrt.Registry
	feed     event.Feed
	subs     event.SubscriptionScope
	executor *Executor
	beat     *heartbeat
	driver   *consensus.Driver
	metrics  *metrics.Metrics
	watch    *failureWatch
	// signState holds the consensus core's state persisted before a vote,
	// in a small file of its own: a synced badger transaction costs ten
	// times a synced small file. At a commit the state goes into the
	// block's transaction instead; loading takes the later of the two.
	signState monitor.State
	// mark is the high-water mark's file (nil in memory) and markAt the
	// last block committed; behind says the store ends before markAt and
	// Run fetches the rest from peers before consensus starts.
	mark   *slotFile
	markMu sync.Mutex
	markAt highWater
	behind bool

	net Network
	p2p *p2pNetwork

	mu       sync.Mutex
	listener net.Listener
	ready    chan struct{}
	// prunedAt is the head at the last pruneMempool that looked.
	prunedAt atomic.Uint64
	// waiters are the submissions acknowledged only once committed.
	waiters map[ledger.Hash][]chan struct{}
}

// SubmitTimeout bounds how long Submit waits for an entry's block.
const SubmitTimeout = 30 * time.Second

var (
	_ rpc.Backend        = (*Node)(nil)
	_ consensus.Host     = (*Node)(nil)
	_ rpc.PendingChecker = (*Node)(nil)
)

// New opens a node's store and checks that its configuration, genesis and
// key fit together. Run starts it.
func New(opts Options) (*Node, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := opts.Genesis
	if g.ChainID != opts.Config.ChainID {
		return nil, fmt.Errorf("config chain_id %q differs from the genesis chain id %q", opts.Config.ChainID, g.ChainID)
	}
	m, err := ledger.NewMachine(g)
	if err != nil {
		return nil, err
	}
	if !m.Validators().Has(opts.Key.Address()) && len(opts.Config.P2P.Peers) == 0 {
		return nil, fmt.Errorf("this node's key %s is not a validator of %s, and an observer needs p2p.peers to follow", opts.Key.Address().Hex(), g.ChainID)
	}
	reg, err := Functions(opts.Config.Functions)
	if err != nil {
		return nil, err
	}
	var st *ledger.BadgerStore
	if opts.InMemory {
		st, err = ledger.OpenInMemory()
	} else {
		st, err = ledger.OpenBadger(filepath.Join(opts.Home, "data"))
	}
	if err != nil {
		var fault *ledger.StoreFault
		if errors.As(err, &fault) {
			return nil, fmt.Errorf("%w; the node does not start on it, and changed nothing in it: restore the chain from an export with `sagachain import --home NEWDIR --file BACKUP.export` into a fresh home", err)
		}
		return nil, err
	}
	if err := st.InitGenesis(g.Hash()); err != nil {
		st.Close()
		return nil, err
	}
	// A block within the chain's write budget must fit one transaction
	// of this store, or the node would halt at the first full block.
	if err := st.CheckWriteBudget(g); err != nil {
		st.Close()
		return nil, err
	}
	n := &Node{opts: opts, log: opts.Log, badger: st, store: newCachedStore(st), machine: m, registry: reg, ready: make(chan struct{}),
		mempool: NewMempool(100_000), waiters: make(map[ledger.Hash][]chan struct{})}
	// Gossip and the mempool drop what a committed block already carries,
	// so a replayed entry is not even proposed (the ledger refuses it too).
	n.mempool.DropCommitted(func(h ledger.Hash) bool {
		ok, err := n.store.Recorded(h)
		return err == nil && ok
	})
	n.app = NewApp(m, n.store, n.mempool, opts.Key, opts.Now)
	n.app.proposeEntries = min(opts.Config.Consensus.MaxBlockEntries, g.Params.MaxBlockEntries)
	n.metrics = metrics.New(nil)
	n.signState = &memState{}
	if !opts.InMemory {
		n.signState = newSlotFile(filepath.Join(opts.Home, DataDir, "consensus-state"))
	}
	if !opts.InMemory {
		if err := n.openHighWater(); err != nil {
			st.Close()
			n.mark.Close()
			return nil, err
		}
	}
	if n.watch, err = newFailureWatch(n); err != nil {
		st.Close()
		return nil, err
	}
	return n, nil
}

// openHighWater loads the high-water mark and compares the store with it.
// A home from before marks takes the store's head as its mark. A store
// behind the mark is refused on a lone node, which has nobody to fetch
// the lost blocks from; a node of a network fetches them in Run.
func (n *Node) openHighWater() error {
	n.mark = newSlotFile(highWaterPath(n.opts.Home))
	m, ok, err := loadHighWater(n.mark)
	if err != nil {
		return err
	}
	if !ok {
		head, err := n.badger.Head()
		if err != nil {
			return err
		}
		m = highWater{Height: head}
		if head > 0 {
			b, err := n.badger.Block(head)
			if err != nil {
				return fmt.Errorf("store head %d: %w", head, err)
			}
			m.Hash = b.Hash()
		}
		if err := n.mark.Save(m.encode()); err != nil {
			return err
		}
	}
	n.markAt = m
	err = checkHighWater(n.badger, filepath.Join(n.opts.Home, DataDir), m)
	var behind *StoreBehindError
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &behind):
		return err
	case behind.Other != nil:
		return fmt.Errorf("%w; the node does not start on a store that contradicts what it committed", err)
	case n.lone():
		return errLoneBehind(err)
	}
	n.behind = true
	n.log.Warn("store behind what this node committed; fetching the lost blocks from peers before taking part in consensus", "err", err)
	return nil
}

// lone reports whether no peer can serve this node blocks: a chain of one
// validator, or no peers configured.
func (n *Node) lone() bool {
	return n.machine.Validators().Size() == 1 || len(n.opts.Config.P2P.Peers) == 0
}

// Run starts the node and blocks until ctx ends; then it stops everything
// it started and closes the store.
func (n *Node) Run(ctx context.Context) error {
	defer n.store.Close()
	if c, ok := n.signState.(io.Closer); ok {
		defer c.Close()
	}
	if n.mark != nil {
		defer n.mark.Close()
	}
	defer n.subs.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	head, err := n.store.Head()
	if err != nil {
		return err
	}
	target, err := n.catchUpTarget(head)
	if err != nil {
		return err
	}
	// The driver exists before the network starts: its handlers read
	// n.driver from their own goroutines. Its core is for the height after
	// everything this node committed or signed at, not after the store's
	// head, so that it never signs at a height it signed at before; it
	// runs only once the store has caught up to there.
	core, err := n.NewCore(max(head, target))
	if err != nil {
		return err
	}
	n.driver = consensus.NewDriver(core, n, n.mempool.Ready(), consensus.DriverConfig{Republish: time.Second,
		Poll: n.opts.Config.Consensus.MaxBlockInterval}, n.log)
	if n.networked() {
		if n.p2p, err = startNetwork(ctx, n); err != nil {
			return err
		}
		n.net = n.p2p
		defer n.p2p.close()
	}
	n.executor = NewExecutor(ctx, n.machine, n.registry, n.opts.Key, n.queueOwn, n.log)
	n.executor.finished = n.metrics.TaskFinished
	defer n.executor.Wait()
	if head, err = n.catchUpToMarks(ctx, head, target); err != nil || ctx.Err() != nil {
		return err
	}
	counts, err := statusCounts(n.badger)
	if err != nil {
		return err
	}
	n.metrics.SetOperations(head, counts)
	if err := n.watch.replay(n.store); err != nil {
		return err
	}

	srv, err := n.serveRPC()
	if err != nil {
		return err
	}
	defer srv.Close()

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		n.watch.run(ctx)
	}()
	go func() {
		defer wg.Done()
		if !n.opts.InMemory {
			if err := n.badger.RunGC(ctx, 5*time.Minute); err != nil {
				n.log.Error("value log garbage collection stopped", "err", err)
			}
		}
	}()

	// Resume: whatever was released to this node and not attested runs again.
	if err := n.resume(); err != nil {
		return err
	}
	if err := n.announce(); err != nil {
		return err
	}
	if n.isValidator() {
		n.beat = newHeartbeat(n)
		n.beat.poke() // a node that was down comes back at once
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.beat.run(ctx)
		}()
	}
	close(n.ready)
	n.log.Info("node started", "chain", n.machine.Genesis().ChainID, "validator", n.opts.Key.Address().Hex(),
		"height", head, "rpc", "http://"+n.RPCAddr())
	err = n.driver.Run(ctx)
	cancel()
	return err
}

// catchUpToMarks fetches from peers, by block sync, the blocks up to
// target (see catchUpTarget) that this node committed or signed for before
// and its store no longer holds, before its consensus core runs: the core
// was made for the height after target, and could not validate or propose
// there until the store has caught up. It retries until the peers serve
// them or ctx ends, and returns the new head.
func (n *Node) catchUpToMarks(ctx context.Context, head, target uint64) (uint64, error) {
	if head >= target {
		return head, nil
	}
	for {
		got, err := n.CatchUp(ctx, "", target)
		if got >= target {
			n.log.Info("caught up with what this node committed and signed before", "height", got)
			n.behind = false
			return got, nil
		}
		n.log.Warn("waiting for peers to serve the blocks this node lost", "head", got, "target", target, "err", err)
		select {
		case <-ctx.Done():
			return got, nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// catchUpTarget is the height this node's store must reach before its
// consensus core runs: the high-water mark when the store is behind it,
// and the height before its persisted consensus state's, which is ahead of
// a store that lost blocks. A lone node whose store is behind that is
// refused: no peer can serve what it lost.
func (n *Node) catchUpTarget(head uint64) (uint64, error) {
	var target uint64
	if n.behind {
		target = n.markAt.Height
	}
	if n.isValidator() {
		persisted, err := n.loadConsensusState()
		if err != nil {
			return 0, err
		}
		if persisted.Height > 0 {
			target = max(target, persisted.Height-1)
		}
	}
	if head < target && (!n.networked() || n.lone()) {
		return 0, fmt.Errorf("the store in %s ends at height %d but this node signed consensus messages up to height %d; a lone node has no peer to fetch the lost blocks from, so it does not start: restore the chain from an export with `sagachain import --home NEWDIR --file BACKUP.export` into a fresh home",
			filepath.Join(n.opts.Home, DataDir), head, target+1)
	}
	return target, nil
}

// networked reports whether the node talks to peers: every node of a
// chain with more than one validator, and every observer.
func (n *Node) networked() bool {
	return n.machine.Validators().Size() > 1 || len(n.opts.Config.P2P.Peers) > 0 || !n.isValidator()
}

func (n *Node) isValidator() bool { return n.machine.Validators().Has(n.opts.Key.Address()) }

// NewCore implements consensus.Host: the core for the height after head,
// resumed from the persisted consensus state; nil for an observer.
func (n *Node) NewCore(head uint64) (*consensus.Core, error) {
	if !n.isValidator() {
		return nil, nil
	}
	persisted, err := n.loadConsensusState()
	if err != nil {
		return nil, err
	}
	cc := n.opts.Config.Consensus
	return consensus.NewCore(consensus.Config{
		ChainID: n.machine.Genesis().ChainID, Validators: n.machine.Validators(), Signer: n.opts.Key,
		TimeoutPropose: cc.TimeoutPropose, TimeoutProposeDown: cc.TimeoutProposeDown, TimeoutPrevote: cc.TimeoutPropose, TimeoutPrecommit: cc.TimeoutPropose,
		TimeoutDelta: cc.TimeoutPropose / 2, TimeoutMax: 5 * cc.TimeoutPropose, VerifyVote: n.machine.VerifyVote,
	}, head+1, persisted)
}

// ProposeBlock implements consensus.App for the driver.
func (n *Node) ProposeBlock(height, round uint64) (*ledger.Block, error) {
	return n.app.ProposeBlock(height, round)
}

// ValidateBlock implements consensus.App for the driver.
func (n *Node) ValidateBlock(b *ledger.Block) error { return n.app.ValidateBlock(b) }

// loadConsensusState returns the later of the two places the consensus
// state is kept: the small file written before each vote, and the store,
// where a commit writes it in the block's own transaction.
func (n *Node) loadConsensusState() (consensus.PersistedState, error) {
	var best consensus.PersistedState
	fromFile, err := n.signState.Load()
	if err != nil {
		return best, err
	}
	fromStore, err := n.store.LastSigned()
	if errors.Is(err, ledger.ErrNotFound) {
		fromStore, err = nil, nil
	}
	if err != nil {
		return best, err
	}
	// Before the two slot files, the state lived in one file, replaced
	// whole on each save; a home from then still has it.
	var legacy []byte
	if !n.opts.InMemory {
		if legacy, err = monitor.FileState(filepath.Join(n.opts.Home, DataDir, "consensus-state.bin")).Load(); err != nil {
			return best, err
		}
	}
	for _, b := range [][]byte{fromFile, fromStore, legacy} {
		if b == nil {
			continue
		}
		var st consensus.PersistedState
		if err := st.UnmarshalBinary(b); err != nil {
			return best, fmt.Errorf("consensus state: %w", err)
		}
		if later(st, best) {
			best = st
		}
	}
	return best, nil
}

// later reports whether a was persisted after b: states only move forward
// in (height, round, step).
func later(a, b consensus.PersistedState) bool {
	if a.Height != b.Height {
		return a.Height > b.Height
	}
	if a.Round != b.Round {
		return a.Round > b.Round
	}
	return a.Step > b.Step
}

// Head implements consensus.Host.
func (n *Node) Head() (uint64, error) { return n.store.Head() }

// CatchUp implements consensus.Host: it fetches the blocks up to target
// from peer, or from any other peer when that one cannot serve them, and
// commits each once its header, entries and certificate check out against
// this node's own state.
func (n *Node) CatchUp(ctx context.Context, peer string, target uint64) (uint64, error) {
	if n.net == nil {
		head, err := n.store.Head()
		if err != nil {
			return 0, err
		}
		return head, errors.New("no network to catch up from")
	}
	peers := n.net.PeerIDs()
	if peer != "" {
		peers = append([]string{peer}, peers...)
	}
	if len(peers) == 0 {
		head, err := n.store.Head()
		if err != nil {
			return 0, err
		}
		return head, consensus.ErrNoPeers
	}
	var errs []error
	for _, p := range peers {
		head, err := n.catchUpFrom(ctx, p, target)
		if err == nil || head >= target {
			return head, nil
		}
		errs = append(errs, err)
	}
	head, err := n.store.Head()
	if err != nil {
		return 0, err
	}
	return head, errors.Join(errs...)
}

func (n *Node) catchUpFrom(ctx context.Context, peer string, target uint64) (uint64, error) {
	head, err := n.store.Head()
	if err != nil {
		return 0, err
	}
	// Tasks released to this node in the blocks caught up with start at
	// the end, from each changed operation's latest record, not block by
	// block: most of them were attested in a later block.
	changed := make(map[ledger.Hash]*ledger.OpRecord)
	defer func() {
		ops := make([]*ledger.OpRecord, 0, len(changed))
		for _, r := range changed {
			ops = append(ops, r)
		}
		n.executor.Consider(ops)
	}()
	// The next batch is fetched and its signatures checked while the
	// current one is applied, which must go block by block.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type batch struct {
		recs []BlockRecord
		err  error
	}
	fetch := func(from uint64) <-chan batch {
		ch := make(chan batch, 1)
		go func() {
			recs, err := n.net.FetchBlocks(ctx, peer, from, target)
			if err == nil {
				n.preverify(recs)
			}
			ch <- batch{recs, err}
		}()
		return ch
	}
	pending := fetch(head + 1)
	for head < target {
		got := <-pending
		if got.err != nil {
			return head, got.err
		}
		recs := got.recs
		if len(recs) == 0 && target == consensus.AnyHeight {
			return head, nil // a probe: the peer has nothing newer
		}
		if len(recs) == 0 {
			return head, fmt.Errorf("peer %s served no blocks from %d", peer, head+1)
		}
		if next := head + uint64(len(recs)); next < target {
			pending = fetch(next + 1)
		}
		for _, rec := range recs {
			b, c := rec.Block, rec.Commit
			if b.Header.Height != head+1 {
				return head, fmt.Errorf("peer %s served block %d, want %d", peer, b.Header.Height, head+1)
			}
			if err := n.machine.VerifyCommit(b.Header.Height, b.Hash(), c); err != nil {
				return head, fmt.Errorf("block %d from %s: %w", b.Header.Height, peer, err)
			}
			if err := n.app.ValidateBlock(b); err != nil {
				return head, fmt.Errorf("block %d from %s: %w", b.Header.Height, peer, err)
			}
			ops, err := n.commitBlock(b, c, nil, false)
			if err != nil {
				return head, err
			}
			for _, r := range ops {
				changed[r.ID] = r
			}
			head++
		}
	}
	return head, nil
}

// preverify checks the signatures of fetched blocks (certificates,
// proposers, entries) on every core at once, so that applying the blocks
// in order, which must be sequential, finds them verified: signature
// recovery is most of the cost of catching up. Failures are left for the
// in-order pass to report.
func (n *Node) preverify(recs []BlockRecord) {
	_ = onAllCores(len(recs), func(i int) error {
		b := recs[i].Block
		// Not the certificate inside the block: its signatures are mostly
		// those of the previous record's certificate, which another worker
		// is checking at the same time.
		_ = n.machine.VerifyCommit(b.Header.Height, b.Hash(), recs[i].Commit)
		_ = n.machine.VerifyBlockSignature(b)
		for _, e := range b.Entries {
			_ = n.machine.Authenticate(e)
		}
		return nil
	})
}

// onAllCores calls f(0), …, f(n-1), as many at once as there are cores,
// and returns the first error once all have returned.
func onAllCores(n int, f func(i int) error) error {
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range n {
		g.Go(func() error { return f(i) })
	}
	return g.Wait()
}

// Ready is closed once the node serves RPC and runs consensus.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// RPCAddr returns the address the RPC server listens on.
func (n *Node) RPCAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listener == nil {
		return ""
	}
	return n.listener.Addr().String()
}

func (n *Node) serveRPC() (*rpcServer, error) {
	h, err := rpc.Handler(n, n.opts.UI, rpcLimits(n.opts.Config.RPC))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", n.metrics.Handler())
	if n.opts.Config.RPC.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/", h)
	l, err := net.Listen("tcp", n.opts.Config.RPC.Listen)
	if err != nil {
		return nil, fmt.Errorf("rpc.listen %s: %w", n.opts.Config.RPC.Listen, err)
	}
	n.mu.Lock()
	n.listener = l
	n.mu.Unlock()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return &rpcServer{http: srv, endpoint: h}, nil
}

// rpcServer is the HTTP server and the RPC endpoint behind it; both must be
// stopped, since closing the server leaves WebSocket connections open.
type rpcServer struct {
	http     *http.Server
	endpoint *rpc.Endpoint
}

func (s *rpcServer) Close() {
	s.endpoint.Stop()
	s.http.Close()
}

func (n *Node) resume() error {
	ids, err := n.store.ActiveOperations()
	if err != nil {
		return err
	}
	var ops []*ledger.OpRecord
	for _, id := range ids {
		r, err := n.store.Operation(id)
		if err != nil {
			return err
		}
		ops = append(ops, r)
	}
	n.executor.Consider(ops)
	return nil
}

// announce records the functions this node hosts when they differ from
// what the ledger says it hosts.
func (n *Node) announce() error {
	if !n.isValidator() {
		return nil
	}
	hosts, err := n.store.Hosts()
	if err != nil {
		return err
	}
	me := n.opts.Key.Address()
	want := hosted(n.opts.Config.Functions)
	prev, ok := hosts.ByValidator[me]
	if slices.Equal(prev.Functions, want) && (ok || len(want) == 0) {
		return nil
	}
	a := &ledger.Announcement{Functions: want, Seq: prev.Seq + 1}
	if err := a.Sign(n.opts.Key, n.machine.Genesis().ChainID); err != nil {
		return err
	}
	e, err := ledger.NewEntry(ledger.KindAnnouncement, a)
	if err != nil {
		return err
	}
	return n.queue(e)
}

// Genesis implements rpc.Backend.
func (n *Node) Genesis() *ledger.Genesis { return n.machine.Genesis() }

// Machine implements rpc.Backend.
func (n *Node) Machine() *ledger.Machine { return n.machine }

// Store implements rpc.Backend.
func (n *Node) Store() ledger.Store { return n.store }

// MempoolSize implements rpc.Backend.
func (n *Node) MempoolSize() int { return n.mempool.Len() }

// Self implements rpc.Backend.
func (n *Node) Self() ledger.Address { return n.opts.Key.Address() }

// Peers implements rpc.Backend.
func (n *Node) Peers() []ledger.Address {
	if n.net == nil {
		return nil
	}
	return n.net.Peers()
}

// Pending implements rpc.PendingChecker.
func (n *Node) Pending(h ledger.Hash) bool { return n.mempool.Has(h) }

// SubscribeCommits implements rpc.Backend.
func (n *Node) SubscribeCommits(ch chan<- rpc.CommitEvent) event.Subscription {
	return n.subs.Track(n.feed.Subscribe(ch))
}

// Submit checks an entry against the committed state, queues it, and
// returns once a committed block holds it: an acknowledged submission
// survives a crash. It implements rpc.Backend.
func (n *Node) Submit(e ledger.Entry) error {
	h := e.Hash()
	done := make(chan struct{})
	n.mu.Lock()
	n.waiters[h] = append(n.waiters[h], done)
	n.mu.Unlock()
	defer n.unwait(h, done)
	if _, _, err := n.store.EntryLocation(h); err == nil {
		return nil // already committed: a resend
	}
	if err := n.queue(e); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(SubmitTimeout):
		return fmt.Errorf("entry %s queued but not committed within %s; it may still be", h, SubmitTimeout)
	}
}

func (n *Node) unwait(h ledger.Hash, done chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ws := n.waiters[h]
	for i, w := range ws {
		if w == done {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(n.waiters, h)
	} else {
		n.waiters[h] = ws
	}
}

// queue checks an entry against the committed state and queues it without
// waiting: for what this node itself produces (attestations,
// announcements, evidence), which it can produce again after a restart.
func (n *Node) queue(e ledger.Entry) error {
	if err := n.check(e); err != nil {
		return rpc.InvalidInput(err)
	}
	return n.admit(e)
}

// queueOwn queues an attestation of this node's executor without checking
// it against the state: the executor built it from committed state and
// signed it itself, and the check would cost as much as applying it. One
// that the state has moved past (a timeout came first) fails when proposed
// and is pruned like any entry that does not fit.
func (n *Node) queueOwn(e ledger.Entry) error { return n.admit(e) }

// admit adds a checked entry to the mempool and gossips it.
func (n *Node) admit(e ledger.Entry) error {
	head, err := n.store.Head()
	if err != nil {
		return err
	}
	if err := n.mempool.Add(e, head); err != nil {
		if errors.Is(err, ErrMempoolFull) {
			return fmt.Errorf("%w: %v", rpc.ErrMempoolFull, err)
		}
		return err
	}
	if n.p2p != nil {
		n.p2p.publishEntry(e)
	}
	return nil
}

// check checks an entry against the committed state, as the next block
// would apply it.
func (n *Node) check(e ledger.Entry) error {
	head, err := n.store.Head()
	if err != nil {
		return err
	}
	return n.machine.Check(n.store, ledger.Context{Height: head + 1, Time: uint64(n.opts.Now().UnixMilli())}, e)
}

// HasWork implements consensus.Host.
func (n *Node) HasWork() bool { return n.app.HasWork() }

// ProposerDown implements consensus.Host: whether validator a is down,
// as far as a round's wait for its proposal goes. That is the case when
// the committed state marks it down (its executor lease expired and
// nothing it signed reached a block since), or when this node has no
// connection to it: a killed process's connections close at once, while
// the chain marks it down only once a task of its lease expires, and till
// then every round it leads would cost a full propose and precommit wait.
// Either way it only shortens a timer, so a wrong answer costs a round,
// never safety. A store that cannot be read reports nobody down.
func (n *Node) ProposerDown(a ledger.Address) bool {
	if n.net != nil && a != n.opts.Key.Address() && !slices.Contains(n.net.Peers(), a) {
		return true
	}
	hosts, err := n.store.Hosts()
	return err == nil && hosts.IsDown(a)
}

// staleHeights is how many blocks an entry that does not fit the state may
// wait in the mempool: a gossiped attestation can arrive before the block
// that released its task, so not fitting yet is no reason to drop it.
const staleHeights = 20

// pruneMempool drops entries that still do not fit the state long after
// they arrived. It looks once every staleHeights blocks, not at every
// block: an entry that fits but waits (a node catching up holds the
// submissions gossiped while it was behind until it replays their block)
// was checked again at every block, half of a catch-up's time.
func (n *Node) pruneMempool(head uint64) {
	if last := n.prunedAt.Load(); head < last+staleHeights && head >= last {
		return
	}
	n.prunedAt.Store(head)
	var drop []ledger.Hash
	for _, q := range n.mempool.All() {
		if head > q.Since+staleHeights && n.check(q.Entry) != nil {
			drop = append(drop, q.Entry.Hash())
		}
	}
	n.mempool.Remove(drop...)
}

// CommitBlock implements consensus.Host: it writes the block and then
// starts what the block released to this node and tells subscribers.
func (n *Node) CommitBlock(b *ledger.Block, c *ledger.Commit, consensusState []byte) error {
	_, err := n.commitBlock(b, c, consensusState, true)
	return err
}

// commitBlock is CommitBlock, returning the operations the block changed;
// execute says whether to start the tasks the block releases to this node,
// which catching up leaves to the end.
func (n *Node) commitBlock(b *ledger.Block, c *ledger.Commit, consensusState []byte, execute bool) ([]*ledger.OpRecord, error) {
	if err := n.checkAgainstMark(b); err != nil {
		return nil, err
	}
	// The state goes into the block's own synced transaction: one sync
	// per block for a lone validator.
	ops, hashes, err := n.app.CommitBlock(b, c, consensusState)
	if err != nil {
		return nil, err
	}
	// The mark is durable before any waiter is released: what a client
	// was told is committed is never behind the mark.
	if err := n.raiseMark(b); err != nil {
		return nil, err
	}
	n.metrics.BlockCommitted(b.Header.Height, c.Round, len(b.Entries), time.Duration(max(0, n.opts.Now().UnixMilli()-int64(b.Header.Time)))*time.Millisecond)
	n.metrics.OperationsChanged(ops)
	n.metrics.Mempool(n.mempool.Len())
	if err := n.watch.observe(b, ops); err != nil {
		n.log.Error("failure watch", "height", b.Header.Height, "err", err)
	}
	if execute {
		n.executor.Consider(ops)
	}
	if n.beat != nil && carries(b, ledger.KindFailover) {
		n.beat.poke() // it may have marked this node down
	}
	n.pruneMempool(b.Header.Height)
	n.mu.Lock()
	for _, h := range hashes {
		for _, w := range n.waiters[h] {
			close(w)
		}
		delete(n.waiters, h)
	}
	n.mu.Unlock()
	n.feed.Send(rpc.CommitEvent{Block: b, Ops: ops})
	return ops, nil
}

// checkAgainstMark refuses a block at the high-water mark's height that is
// not the one this node committed there: a store that lost blocks is
// refilled from peers, and a certified block that differs would mean two
// blocks were certified at one height.
func (n *Node) checkAgainstMark(b *ledger.Block) error {
	if n.mark == nil {
		return nil
	}
	n.markMu.Lock()
	m := n.markAt
	n.markMu.Unlock()
	if m.Height != 0 && b.Header.Height == m.Height && b.Hash() != m.Hash {
		return fmt.Errorf("block %d is %s but this node committed block %s at that height before its store lost it; it does not overwrite what it committed",
			m.Height, b.Hash().TerminalString(), m.Hash.TerminalString())
	}
	return nil
}

// raiseMark records b as the high-water mark when it is past it; blocks
// fetched again below the mark leave it.
func (n *Node) raiseMark(b *ledger.Block) error {
	if n.mark == nil {
		return nil
	}
	n.markMu.Lock()
	defer n.markMu.Unlock()
	if b.Header.Height <= n.markAt.Height {
		return nil
	}
	m := highWater{Height: b.Header.Height, Hash: b.Hash()}
	if err := n.mark.Save(m.encode()); err != nil {
		return fmt.Errorf("high-water mark: %w", err)
	}
	n.markAt = m
	return nil
}

// carries reports whether b carries an entry of kind k.
func carries(b *ledger.Block, k ledger.Kind) bool {
	for _, e := range b.Entries {
		if e.Kind == k {
			return true
		}
	}
	return false
}

// SaveConsensusState implements consensus.Host.
func (n *Node) SaveConsensusState(b []byte) error { return n.signState.Save(b) }

// Broadcast implements consensus.Host.
func (n *Node) Broadcast(m consensus.Message) {
	if n.p2p != nil {
		n.p2p.publishConsensus(m)
	}
}

// Evidence implements consensus.Host.
func (n *Node) Evidence(ev ledger.Evidence) {
	e, err := ledger.NewEntry(ledger.KindEvidence, &ev)
	if err == nil {
		err = n.queue(e)
	}
	if err != nil {
		n.log.Warn("evidence not recorded", "err", err)
	}
}
