package node

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sagachain/sagachain/consensus"
	"github.com/sagachain/sagachain/ledger"
)

// App is the node's side of consensus: it builds the blocks this node
// proposes, checks the blocks others propose, and commits decided blocks
// with the state they produce in one synced write.
type App struct {
	machine *ledger.Machine
	store   ledger.Store
	mempool *Mempool
	key     *ledger.PrivateKey
	params  ledger.Params
	// proposeEntries caps the entries of a block this node proposes:
	// consensus.max_block_entries, at most the genesis max_block_entries
	// that every validator holds blocks to.
	proposeEntries int
	// now is the local clock, an input so tests can drive it.
	now func() time.Time

	mu sync.Mutex
	// checked and built are keyed by block hash, which covers the header
	// only: an entry is made, and looked up, only for a block whose body
	// wholeBlock has bound to its header (or that this node built), and
	// holds the very instance that was checked.
	checked map[ledger.Hash]*applied // blocks validated, until commit
	built   map[ledger.Hash]*applied // blocks this node built, until commit
	// parent is the head as Parent last read it: reading it means decoding
	// the whole head block, and consensus asks several times per height.
	parent ledger.Parent
}

// applied is a block's effect, kept between validation and commit.
type applied struct {
	overlay *ledger.Overlay
	results *ledger.Applied
	// block is the instance that was built or validated: the one a commit
	// writes, whatever copy consensus hands back.
	block *ledger.Block
}

// NewApp returns the application over a store.
func NewApp(m *ledger.Machine, s ledger.Store, mp *Mempool, key *ledger.PrivateKey, now func() time.Time) *App {
	return &App{machine: m, store: s, mempool: mp, key: key, params: m.Genesis().Params, proposeEntries: m.Genesis().Params.MaxBlockEntries, now: now,
		checked: make(map[ledger.Hash]*applied), built: make(map[ledger.Hash]*applied)}
}

// Parent returns what the block at the next height must link to.
func (a *App) Parent() (ledger.Parent, error) {
	head, err := a.store.Head()
	if err != nil {
		return ledger.Parent{}, err
	}
	if head == 0 {
		return ledger.GenesisParent(a.machine.Genesis()), nil
	}
	a.mu.Lock()
	p := a.parent
	a.mu.Unlock()
	if p.Height == head {
		return p, nil // a committed block never changes
	}
	b, err := a.store.Block(head)
	if err != nil {
		return ledger.Parent{}, err
	}
	res, err := a.store.ResultsRoot(head)
	if err != nil {
		return ledger.Parent{}, err
	}
	p = ledger.Parent{Height: head, Hash: b.Hash(), Time: b.Header.Time, Results: res}
	a.mu.Lock()
	a.parent = p
	a.mu.Unlock()
	return p, nil
}

// blockTime is the time of a new block on top of p: the local clock, but
// always after the parent's.
func (a *App) blockTime(p ledger.Parent) uint64 {
	return max(uint64(a.now().UnixMilli()), p.Time+1)
}

// HasWork reports whether a block would carry anything: a deadline that
// has passed, or a waiting entry that fits the state now.
func (a *App) HasWork() bool {
	p, err := a.Parent()
	if err != nil {
		return false
	}
	ctx := ledger.Context{Height: p.Height + 1, Time: a.blockTime(p)}
	if due, err := a.machine.DueTimeouts(a.store, ctx); err == nil && len(due) > 0 {
		return true
	}
	for _, q := range a.mempool.All() {
		if a.machine.Check(a.store, ctx, q.Entry) == nil {
			return true
		}
	}
	return false
}

// ProposeBlock builds and signs a block for height at round: due timeouts
// first, then waiting entries in arrival order, each tried on the state so
// far; an entry that no longer fits is dropped from the mempool. The block
// ends at the first entry over a block limit (entries, bytes, store
// writes).
func (a *App) ProposeBlock(height, round uint64) (*ledger.Block, error) {
	p, err := a.Parent()
	if err != nil {
		return nil, err
	}
	if height != p.Height+1 {
		return nil, fmt.Errorf("propose height %d on head %d", height, p.Height)
	}
	ctx := ledger.Context{Height: height, Time: a.blockTime(p)}
	ov := ledger.NewOverlay(a.store)
	// Timeouts are derived knowing what the block may carry: an
	// attestation among the candidates wins over its task's timeout.
	pending := a.mempool.Pending(a.proposeEntries)
	due, err := a.machine.DueTimeoutsFor(a.store, ctx, pending)
	if err != nil {
		return nil, err
	}
	var entries []ledger.Entry
	var stale []ledger.Hash
	size := 0
	res := &ledger.Applied{}
	for _, e := range append(due, pending...) {
		// Tried on a child, so an entry that does not fit in the block
		// leaves the block's state untouched.
		child, part := ledger.NewOverlay(ov), &ledger.Applied{}
		got, err := a.machine.Try(child, ctx, e, part)
		if errors.Is(err, ledger.ErrBlockFull) {
			// The block's store writes are at max_block_write_bytes: the
			// rest, in order, waits for the next block. A due timeout
			// left out is due again then; validators require each
			// timeout a block carries to be due, not every due one.
			break
		}
		if err != nil {
			if a.machine.Authenticate(e) != nil {
				stale = append(stale, e.Hash()) // can never fit
			}
			continue // may fit a later block; the mempool prunes it if not
		}
		n := 0
		for _, g := range got {
			n += len(g.Body) + 8
		}
		if len(entries)+len(got) > a.proposeEntries || size+n > a.params.MaxBlockBytes {
			break // the rest waits for the next block
		}
		ov.Absorb(child)
		res.Results = append(res.Results, part.Results...)
		entries, size = append(entries, got...), size+n
	}
	a.mempool.Remove(stale...)
	var last ledger.Commit
	if p.Height > 0 {
		c, err := a.store.Commit(p.Height)
		if err != nil {
			return nil, fmt.Errorf("certificate of block %d: %w", p.Height, err)
		}
		last = *c
	}
	b, err := ledger.NewBlock(a.key, a.machine.Genesis().ChainID, height, round, ctx.Time, p.Hash, p.Results, last, entries)
	if err != nil {
		return nil, err
	}
	// The proposer already applied its block while building it; the
	// header checks in ValidateBlock still run when consensus asks.
	a.mu.Lock()
	a.built[b.Hash()] = &applied{overlay: ov, results: res, block: b}
	a.mu.Unlock()
	return b, nil
}

// ValidateBlock checks a proposed block fully (DESIGN §9 Valid(v)): header,
// signatures, certificate, time within the drift bound of the local clock,
// and every entry replayed against the state. The result is kept for
// Commit.
func (a *App) ValidateBlock(b *ledger.Block) error {
	hash := b.Hash()
	a.mu.Lock()
	ap := a.built[hash]
	a.mu.Unlock()
	if ap != nil && builtHere(ap.block, b) {
		// This node built this very block from entries it checked, and
		// applied it while building: checking its header and entries again
		// would only repeat that work.
		a.mu.Lock()
		a.checked[hash] = ap
		a.mu.Unlock()
		return nil
	}
	a.mu.Lock()
	done := a.checked[hash]
	a.mu.Unlock()
	if done != nil && builtHere(done.block, b) {
		return nil // a copy by value of the instance validated, as at commit
	}
	// The body first: the hash that keys checked says nothing about it.
	if err := a.wholeBlock(b); err != nil {
		return err
	}
	if done != nil {
		return nil
	}
	p, err := a.Parent()
	if err != nil {
		return err
	}
	if err := a.machine.CheckHeader(p, b); err != nil {
		return fmt.Errorf("block %d: %w", b.Header.Height, err)
	}
	if limit := uint64(a.now().UnixMilli()) + a.params.MaxClockDriftMS; b.Header.Time > limit {
		// Transient: the clock moves on, and the same block may be valid a
		// moment later; consensus asks again in a later round.
		return fmt.Errorf("block %d: time %d is ahead of this node's clock by more than %d ms: %w",
			b.Header.Height, b.Header.Time, a.params.MaxClockDriftMS, consensus.ErrTransient)
	}
	// The genesis bound, not this node's consensus.max_block_entries:
	// validity must be the same on every honest validator, or validators
	// configured differently could not agree on any block a proposer
	// configured higher cuts.
	if len(b.Entries) > a.params.MaxBlockEntries {
		return fmt.Errorf("block %d: %d entries, over the limit of %d", b.Header.Height, len(b.Entries), a.params.MaxBlockEntries)
	}
	if ap == nil {
		ov := ledger.NewOverlay(a.store)
		res, err := a.machine.ApplyEntries(ov, ledger.Context{Height: b.Header.Height, Time: b.Header.Time}, b.Entries)
		if err != nil {
			return fmt.Errorf("block %d: %w", b.Header.Height, err)
		}
		ap = &applied{overlay: ov, results: res}
	}
	ap.block = b
	a.mu.Lock()
	a.checked[hash] = ap
	a.mu.Unlock()
	return nil
}

// wholeBlock checks that b's body is the one its proposer signed (see
// ledger.Block.CheckBody); the signature check is remembered, so gossip,
// consensus and commit share it.
func (a *App) wholeBlock(b *ledger.Block) error {
	if err := b.CheckBody(); err != nil {
		return err
	}
	return a.machine.VerifyBlockSignature(b)
}

// builtHere reports whether b is the block built (or validated), or a copy
// of it that shares its entries (consensus keeps proposals by value). The
// header hash is not enough: a peer could pair this node's signed header
// with other entries, and only checking the entries root would catch that.
// Only copies made in this process share entries; none decoded does.
func builtHere(built, b *ledger.Block) bool {
	if built == nil || built.Hash() != b.Hash() || len(built.Entries) != len(b.Entries) {
		return false
	}
	return len(b.Entries) == 0 || &built.Entries[0] == &b.Entries[0]
}

// ErrNotValidated reports a commit of a block the app never validated.
var ErrNotValidated = errors.New("block was not validated")

// CommitBlock writes a decided block, its certificate, the state it
// produces and, when not nil, the consensus state in one synced
// transaction, and returns the changed operations and the hashes of the
// block's entries.
func (a *App) CommitBlock(b *ledger.Block, c *ledger.Commit, consensusState []byte) ([]*ledger.OpRecord, []ledger.Hash, error) {
	if err := a.ValidateBlock(b); err != nil {
		return nil, nil, err
	}
	a.mu.Lock()
	ap := a.checked[b.Hash()]
	clear(a.checked) // every other candidate of this height is moot now
	clear(a.built)
	a.mu.Unlock()
	if ap == nil {
		return nil, nil, ErrNotValidated
	}
	// The instance validated, not b: they share a hash, and only the
	// validated one is known to carry the entries its header commits to.
	b = ap.block
	ops, hosts := ap.overlay.Changes()
	hashes := ledger.EntryHashes(b.Entries)
	w := ledger.BlockWrite{Block: b, Commit: c, Results: ap.results.Root(), Ops: ops, Hosts: hosts, LastSigned: consensusState,
		EntryHashes: hashes, Encoded: ap.overlay.Encoded()}
	if err := a.store.SaveBlock(w); err != nil {
		return nil, nil, fmt.Errorf("commit block %d: %w", b.Header.Height, err)
	}
	a.mempool.Remove(hashes...)
	return ops, hashes, nil
}
