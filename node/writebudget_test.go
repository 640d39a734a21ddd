package node

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// budgetNet is four validators, each an App over its own badger store
// on disk, driven block by block: the proposer of (h, 0) builds, the
// others validate a copy decoded from the wire, all four sign the
// certificate and commit. No libp2p, no timers: only what a commit writes.
type budgetNet struct {
	t    *testing.T
	g    *ledger.Genesis
	keys []*ledger.PrivateKey
	user *ledger.PrivateKey
	apps []*App
	pool []*Mempool
	vals *ledger.ValidatorSet
	now  time.Time
	// lastWrites is what the proposer measured of the last block built.
	lastWrites uint64
}

func newBudgetNet(t *testing.T) *budgetNet {
	t.Helper()
	n := &budgetNet{t: t, user: key(t, 100), now: time.UnixMilli(1_000_000)}
	n.g = &ledger.Genesis{ChainID: "budget-net", Time: 1, Submitters: []ledger.Address{n.user.Address()}, Params: ledger.DefaultParams()}
	// No executor runs here: a lease longer than any test lets the tasks
	// time out where they are rather than move (the timeouts are what
	// these tests spread over blocks).
	n.g.Params.ExecutorLeaseMS = 3_600_000
	for i := range 4 {
		k := key(t, byte(i+1))
		n.keys = append(n.keys, k)
		n.g.Validators = append(n.g.Validators, ledger.NewGenesisValidator(k, fmt.Sprintf("node%d", i)))
	}
	for i := range 4 {
		m, err := ledger.NewMachine(n.g)
		if err != nil {
			t.Fatal(err)
		}
		n.vals = m.Validators()
		st, err := ledger.OpenBadger(t.TempDir()) // in memory, badger refuses any value over 1 MiB
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.InitGenesis(n.g.Hash()); err != nil {
			t.Fatal(err)
		}
		mp := NewMempool(10_000)
		n.pool = append(n.pool, mp)
		n.apps = append(n.apps, NewApp(m, st, mp, n.keys[i], func() time.Time { return n.now }))
	}
	return n
}

// submit queues a signed submission of op in every node's mempool.
func (n *budgetNet) submit(op []byte, nonce uint64) ledger.Hash {
	n.t.Helper()
	s := &ledger.Submission{Operation: op, Nonce: nonce}
	if err := s.Sign(n.user, n.g.ChainID); err != nil {
		n.t.Fatal(err)
	}
	e, err := ledger.NewEntry(ledger.KindSubmission, s)
	if err != nil {
		n.t.Fatal(err)
	}
	if err := n.apps[0].machine.Check(n.apps[0].store, ledger.Context{Height: 1, Time: 2_000_000}, e); err != nil {
		n.t.Fatalf("check: %v", err)
	}
	for i, mp := range n.pool {
		if err := mp.Add(e, 0); err != nil {
			n.t.Fatalf("node %d: queue: %v", i, err)
		}
	}
	return e.Hash()
}

// step has the proposer of the next height build a block, every other
// node validate a decoded copy, and all of them commit it; it returns the
// block, or the first error of any node.
func (n *budgetNet) step() (*ledger.Block, error) {
	n.t.Helper()
	head, err := n.apps[0].store.Head()
	if err != nil {
		return nil, err
	}
	h := head + 1
	prop := n.vals.Proposer(h, 0)
	pi := -1
	for i, k := range n.keys {
		if k.Address() == prop {
			pi = i
		}
	}
	b, err := n.apps[pi].ProposeBlock(h, 0)
	if err != nil {
		return nil, fmt.Errorf("node %d proposes %d: %w", pi, h, err)
	}
	if ap := n.apps[pi].built[b.Hash()]; ap != nil {
		w, k := ap.overlay.BlockWrites()
		n.lastWrites = w
		n.t.Logf("block %d: %d entries, %d bytes of store writes measured", h, k, w)
	}
	c := &ledger.Commit{Height: h, Round: 0, BlockHash: b.Hash()}
	for _, k := range n.keys {
		v := ledger.Vote{Type: ledger.Precommit, Height: h, Round: 0, BlockHash: b.Hash()}
		if err := v.Sign(k, n.g.ChainID); err != nil {
			return nil, err
		}
		c.Signatures = append(c.Signatures, ledger.CommitSig{Validator: v.Validator, Signature: v.Signature})
	}
	raw, err := rlp.EncodeToBytes(b)
	if err != nil {
		return nil, err
	}
	for i, a := range n.apps {
		mine := b
		if i != pi {
			mine = new(ledger.Block)
			if err := rlp.DecodeBytes(raw, mine); err != nil {
				return nil, err
			}
			if err := a.ValidateBlock(mine); err != nil {
				return nil, fmt.Errorf("node %d validates %d: %w", i, h, err)
			}
		}
		if _, _, err := a.CommitBlock(mine, c, nil); err != nil {
			return nil, fmt.Errorf("node %d commits %d: %w", i, h, err)
		}
	}
	return b, nil
}

// bigOp is an operation file of about size bytes: one noop task whose
// params carry the padding, timing out after a second.
func bigOp(t *testing.T, i, size int) []byte {
	t.Helper()
	op := map[string]any{"name": fmt.Sprintf("big-%d", i), "tasks": []any{map[string]any{
		"id": "a", "run": "noop", "timeout": "1s", "params": map[string]any{"pad": strings.Repeat("x", size)}}}}
	raw, err := json.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	return canonicalOp(t, raw)
}

// TestLargeTimeoutsCommitEverywhere is the colleague's repro of the last
// way a commit failed on data: twelve submissions of ~900 KB operation
// files whose tasks time out together. On the merged h-write code the one
// block that records their twelve timeouts rewrites twelve ~900 KB
// records in one badger transaction, over badger's limit (15% of the 64
// MiB memtable, about 9.6 MiB), and every node fails that commit with
// "Txn is too big to fit into one request": the network halts at that
// height. With the block write budget the proposer defers the timeouts
// that do not fit to the next block (validators ask only that each timeout
// a block carries be due), every block commits on every node, and every
// operation is stored, ended by its timeout. Since records are stored in
// parts, a timeout writes what it changed (a task, the summary, events),
// not the 900 KB operation file again: all twelve fit one block, whose
// measured writes stay far below one record.
func TestLargeTimeoutsCommitEverywhere(t *testing.T) {
	n := newBudgetNet(t)
	const ops = 12
	var ids []ledger.Hash
	for i := range ops {
		ids = append(ids, n.submit(bigOp(t, i, 900_000), uint64(i)))
	}
	// The submissions commit, a few per block (max_block_bytes).
	for h := 0; n.pool[0].Len() > 0; h++ {
		if h > ops {
			t.Fatalf("the submissions did not commit in %d blocks", h)
		}
		n.now = n.now.Add(10 * time.Millisecond)
		if _, err := n.step(); err != nil {
			t.Fatal(err)
		}
	}
	// Every task is past its deadline now: the timeouts are due together.
	n.now = n.now.Add(2 * time.Second)
	var timeoutBlocks int
	for h := 0; ; h++ {
		if h > ops {
			t.Fatalf("the timeouts did not commit in %d blocks", h)
		}
		if !n.apps[0].HasWork() {
			break
		}
		b, err := n.step()
		if err != nil {
			t.Fatal(err)
		}
		timeoutBlocks++
		t.Logf("block %d: %d timeouts", b.Header.Height, len(b.Entries))
		if w := n.lastWrites; w >= 900_000 {
			t.Errorf("block %d of timeouts writes %d bytes, as much as a whole record", b.Header.Height, w)
		}
		n.now = n.now.Add(10 * time.Millisecond)
	}
	if timeoutBlocks < 1 {
		t.Errorf("the timeouts took %d blocks", timeoutBlocks)
	}
	for i, a := range n.apps {
		for _, id := range ids {
			r, err := a.store.Operation(id)
			if err != nil {
				t.Fatalf("node %d: %v", i, err)
			}
			if r.Saga.Status != taskrt.OpRolledBack && r.Saga.Status != taskrt.OpRollbackFailed {
				t.Errorf("node %d: operation %s is %s, want it ended by its timeout", i, id.TerminalString(), r.Saga.Status)
			}
		}
	}
}

// A batch whose store writes alone are over max_block_write_bytes is
// invalid (it rewrites every record it attests), so the executor keeps a
// batch within half the budget by its records' sizes, each operation's
// once; an attestation whose record alone is bigger goes alone.
func TestExecutorSplitsBatchesByRecordWrites(t *testing.T) {
	x, sub, val := testExecutor(t)
	half := x.machine.Genesis().Params.BlockWriteBytes() / 2
	x.linger = time.Hour
	type run struct {
		op     byte
		writes uint64
	}
	runs := []run{{1, half / 2}, {1, half / 2}, {2, half / 3}, {3, half + 1}, {4, 10}, {5, half / 2}}
	x.inflight = len(runs)
	for i, r := range runs {
		a := attestation(fmt.Sprintf("t%d", i))
		a.Operation = ledger.Hash{r.op}
		x.finishCosts(a, 0, r.writes)
	}
	var sizes []int
	for _, e := range sub.all() {
		sizes = append(sizes, len(decodeAttestations(t, e, val)))
	}
	// t0 and t1 share a record, t2 joins them; t3 cannot join and is
	// alone; t4 and t5 fit together.
	if want := []int{3, 1, 2}; !slices.Equal(sizes, want) {
		t.Errorf("entries of %v attestations, want %v", sizes, want)
	}
}
