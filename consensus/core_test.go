package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/rlp"

	"github.com/sagachain/sagachain/ledger"
)

const testChainID = "consensus-test"

// testKeys returns n deterministic validator keys and their set.
func testKeys(t testing.TB, n int) ([]*ledger.PrivateKey, *ledger.ValidatorSet) {
	t.Helper()
	keys := make([]*ledger.PrivateKey, n)
	addrs := make([]ledger.Address, n)
	for i := range keys {
		var seed [32]byte
		seed[0], seed[1] = 0xc0, byte(i)
		k, err := ledger.GenerateKey(rand.NewChaCha8(seed))
		if err != nil {
			t.Fatal(err)
		}
		keys[i], addrs[i] = k, k.Address()
	}
	vals, err := ledger.NewValidatorSet(addrs)
	if err != nil {
		t.Fatal(err)
	}
	return keys, vals
}

func testConfig(key *ledger.PrivateKey, vals *ledger.ValidatorSet) Config {
	return Config{ChainID: testChainID, Validators: vals, Signer: key,
		TimeoutPropose: 300 * time.Millisecond, TimeoutPrevote: 100 * time.Millisecond,
		TimeoutPrecommit: 100 * time.Millisecond, TimeoutDelta: 50 * time.Millisecond}
}

// makeBlock builds a block of height h built in round r by key; tag makes
// blocks of one proposer distinct.
func makeBlock(t testing.TB, key *ledger.PrivateKey, h, r uint64, tag uint64) *ledger.Block {
	t.Helper()
	e, err := ledger.NewEntry(ledger.KindSubmission, &ledger.Submission{Operation: fmt.Appendf(nil, `{"tag":%d}`, tag)})
	if err != nil {
		t.Fatal(err)
	}
	b := &ledger.Block{Header: ledger.Header{ChainID: testChainID, Height: h, Round: r, Time: 1000 + tag, Proposer: key.Address()},
		Entries: []ledger.Entry{e}}
	b.Header.EntriesRoot = ledger.EntriesRoot(b.Entries)
	b.Header.LastCommitHash = b.LastCommit.Hash()
	if err := b.Sign(key); err != nil {
		t.Fatal(err)
	}
	return b
}

// testApp builds blocks with its key and refuses the blocks listed in
// invalid. The node harness below serves the core's requests with it, as
// the driver does.
type testApp struct {
	t          testing.TB
	key        *ledger.PrivateKey
	built      uint64
	invalid    map[ledger.Hash]error
	validated  int
	proposeErr error
}

func (a *testApp) ProposeBlock(h, r uint64) (*ledger.Block, error) {
	if a.proposeErr != nil {
		return nil, a.proposeErr
	}
	a.built++
	return makeBlock(a.t, a.key, h, r, 1_000_000+a.built), nil
}

func (a *testApp) ValidateBlock(b *ledger.Block) error {
	a.validated++
	return a.invalid[b.Hash()]
}

// node is one core under test with the disk its driver would keep.
type node struct {
	t    testing.TB
	core *Core
	app  *testApp
	disk PersistedState
	// held keeps the validation requests unanswered, for tests that
	// answer them by hand; nil answers each at once.
	held *[]ValidationRequest
}

func newNode(t testing.TB, keys []*ledger.PrivateKey, vals *ledger.ValidatorSet, i int, height uint64, disk PersistedState) *node {
	t.Helper()
	app := &testApp{t: t, key: keys[i], invalid: map[ledger.Hash]error{}}
	c, err := NewCore(testConfig(keys[i], vals), height, disk)
	if err != nil {
		t.Fatal(err)
	}
	return &node{t: t, core: c, app: app, disk: disk}
}

// handle applies a Ready the way the driver contract says and checks that
// every message it sends is covered by what is on disk by then. It then
// answers the Ready's requests from the app, as the driver does, and
// returns everything the core asked for along the way in one Ready, with
// the errors of the answers.
func (n *node) handle(rd Ready) (Ready, error) {
	n.t.Helper()
	if rd.Persist != nil {
		n.disk = *rd.Persist
	}
	for _, m := range rd.Messages {
		if err := covered(n.disk, m); err != nil {
			n.t.Fatalf("sent before persisted: %v", err)
		}
	}
	var (
		next []Ready
		errs []error
	)
	if r := rd.ProposalRequest; r != nil {
		if b, err := n.app.ProposeBlock(r.Height, r.Round); err != nil {
			errs = append(errs, err)
		} else {
			got, err := n.core.Proposed(b)
			next, errs = append(next, got), append(errs, err)
		}
	}
	for _, v := range rd.Validations {
		if n.held != nil {
			*n.held = append(*n.held, v)
			continue
		}
		got, err := n.core.Validated(v.Hash, n.app.ValidateBlock(v.Block))
		next, errs = append(next, got), append(errs, err)
	}
	for _, got := range next {
		got, err := n.handle(got)
		errs = append(errs, err)
		rd = merge(n.t, rd, got)
	}
	return rd, errors.Join(errs...)
}

// merge returns a followed by b, as one Ready; the requests are those
// already answered.
func merge(t testing.TB, a, b Ready) Ready {
	t.Helper()
	if a.Commit != nil && b.Commit != nil {
		t.Fatalf("two decisions from one input: %v and %v", a.Commit.Block.Hash(), b.Commit.Block.Hash())
	}
	if b.Commit != nil {
		a.Commit = b.Commit
	}
	if b.Persist != nil {
		a.Persist = b.Persist
	}
	a.Messages = append(a.Messages, b.Messages...)
	a.Timeouts = append(a.Timeouts, b.Timeouts...)
	a.Evidence = append(a.Evidence, b.Evidence...)
	a.Validations = append(a.Validations, b.Validations...)
	if b.ProposalRequest != nil {
		a.ProposalRequest = b.ProposalRequest
	}
	return a
}

// must fails the test on err, which the call that gave rd returned.
func (n *node) must(what string, rd Ready, err error) Ready {
	n.t.Helper()
	if err != nil {
		n.t.Fatalf("%s: %v", what, err)
	}
	return rd
}

// handled is handle for a Ready and error of the core.
func (n *node) handled(rd Ready, err error) (Ready, error) {
	n.t.Helper()
	rd, err2 := n.handle(rd)
	return rd, errors.Join(err, err2)
}

// covered checks the persist-before-send rule for one message: the disk
// holds a last-signed record at or beyond its height and round, and at the
// same height and round the very same signature.
func covered(disk PersistedState, m Message) error {
	var (
		rec       SignedRecord
		h, r      uint64
		hash      ledger.Hash
		pol       int64 = -1
		signature ledger.Signature
	)
	switch {
	case m.Proposal != nil:
		p := m.Proposal
		rec, h, r, hash, pol, signature = disk.LastProposal, p.Height, p.Round, p.Block.Hash(), p.POLRound, p.Signature
	case m.Vote != nil && m.Vote.Type == ledger.Prevote:
		rec, h, r, hash, signature = disk.LastPrevote, m.Vote.Height, m.Vote.Round, m.Vote.BlockHash, m.Vote.Signature
	case m.Vote != nil:
		rec, h, r, hash, signature = disk.LastPrecommit, m.Vote.Height, m.Vote.Round, m.Vote.BlockHash, m.Vote.Signature
	}
	switch {
	case rec.IsZero() || rec.before(h, r):
		return fmt.Errorf("%s: disk's last record is %d/%d", m, rec.Height, rec.Round)
	case rec.at(h, r) && (rec.BlockHash != hash || rec.POLRound != pol || rec.Signature != signature):
		return fmt.Errorf("%s: disk holds another signature for %d/%d (block %s)", m, h, r, rec.BlockHash.TerminalString())
	}
	return nil
}

func (n *node) start() Ready {
	n.t.Helper()
	rd, err := n.handled(n.core.Start())
	return n.must("Start", rd, err)
}

func (n *node) step(m Message) Ready {
	n.t.Helper()
	rd, err := n.handled(n.core.Step(m))
	return n.must(fmt.Sprintf("Step(%s)", m), rd, err)
}

// stepErr delivers m and returns the error, which the test expects.
func (n *node) stepErr(m Message) (Ready, error) {
	n.t.Helper()
	return n.handled(n.core.Step(m))
}

func (n *node) timeout(s Step) Ready {
	n.t.Helper()
	st := n.core.Status()
	rd, err := n.handled(n.core.Timeout(TimeoutInfo{Height: st.Height, Round: st.Round, Step: s}))
	return n.must(fmt.Sprintf("Timeout(%s)", s), rd, err)
}

func signVote(t testing.TB, key *ledger.PrivateKey, typ ledger.VoteType, h, r uint64, hash ledger.Hash) *ledger.Vote {
	t.Helper()
	v := &ledger.Vote{Type: typ, Height: h, Round: r, BlockHash: hash}
	if err := v.Sign(key, testChainID); err != nil {
		t.Fatal(err)
	}
	return v
}

func voteMsg(t testing.TB, key *ledger.PrivateKey, typ ledger.VoteType, h, r uint64, hash ledger.Hash) Message {
	return Message{Vote: signVote(t, key, typ, h, r, hash)}
}

// polOf returns the prevotes of keys for hash at (h, r).
func polOf(t testing.TB, keys []*ledger.PrivateKey, h, r uint64, hash ledger.Hash) []ledger.Vote {
	var pol []ledger.Vote
	for _, k := range keys {
		pol = append(pol, *signVote(t, k, ledger.Prevote, h, r, hash))
	}
	return pol
}

func proposalMsg(t testing.TB, key *ledger.PrivateKey, h, r uint64, vr int64, b *ledger.Block, pol []ledger.Vote) Message {
	t.Helper()
	p := &Proposal{Height: h, Round: r, POLRound: vr, Block: *b, POL: pol}
	if err := p.Sign(key, testChainID); err != nil {
		t.Fatal(err)
	}
	return Message{Proposal: p}
}

// ownVote returns the single vote of type typ the Ready sends, or nil.
func ownVote(t testing.TB, rd Ready, typ ledger.VoteType) *ledger.Vote {
	t.Helper()
	var found *ledger.Vote
	for _, m := range rd.Messages {
		if m.Vote != nil && m.Vote.Type == typ {
			if found != nil {
				t.Fatalf("two %ss in one Ready: %s and %s", typ, Message{Vote: found}, m)
			}
			found = m.Vote
		}
	}
	return found
}

func wantVote(t testing.TB, rd Ready, typ ledger.VoteType, r uint64, hash ledger.Hash) *ledger.Vote {
	t.Helper()
	v := ownVote(t, rd, typ)
	if v == nil {
		t.Fatalf("no %s sent; messages %v", typ, rd.Messages)
	}
	if v.Round != r || v.BlockHash != hash {
		t.Fatalf("sent %s, want %s at round %d for %s", Message{Vote: v}, typ, r, hash.TerminalString())
	}
	return v
}

var nilHash ledger.Hash

func TestSingleValidatorCommitsWithoutTimers(t *testing.T) {
	keys, vals := testKeys(t, 1)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	var prev ledger.Hash
	for h := uint64(1); h <= 3; h++ {
		rd := n.start()
		if rd.Commit == nil {
			t.Fatalf("height %d: no decision; Ready %+v", h, rd)
		}
		// It may ask for the propose timer while its block is being
		// built, but decides without any timer firing: by then the timer
		// is stale.
		for _, to := range rd.Timeouts {
			if to.Height != h || to.Step != StepPropose {
				t.Fatalf("height %d: a lone validator asked for timer %v", h, to)
			}
		}
		b := rd.Commit.Block
		if b.Header.Height != h || b.Header.Round != 0 {
			t.Fatalf("decided block of %d/%d, want %d/0", b.Header.Height, b.Header.Round, h)
		}
		if b.Hash() == prev {
			t.Fatalf("height %d decided the block of the height before", h)
		}
		prev = b.Hash()
		if err := ledger.VerifyCommit(testChainID, vals, h, b.Hash(), &rd.Commit.Commit); err != nil {
			t.Fatalf("height %d certificate: %v", h, err)
		}
		// The messages are the proposal, the prevote and the precommit, in
		// the order they were made.
		if len(rd.Messages) != 3 || rd.Messages[0].Proposal == nil ||
			rd.Messages[1].Vote == nil || rd.Messages[1].Vote.Type != ledger.Prevote ||
			rd.Messages[2].Vote == nil || rd.Messages[2].Vote.Type != ledger.Precommit {
			t.Fatalf("height %d messages %v, want proposal, prevote, precommit", h, rd.Messages)
		}
		if rd.Persist == nil || rd.Persist.Height != h+1 || rd.Persist.Step != StepNewHeight || rd.Persist.LockedRound != -1 {
			t.Fatalf("height %d persisted %+v, want the start of height %d", h, rd.Persist, h+1)
		}
		st := n.core.Status()
		if st.Height != h+1 || st.Started {
			t.Fatalf("after deciding %d the core is at %+v, want height %d not started", h, st, h+1)
		}
	}
	// Until the driver has something to propose, nothing happens.
	if rd, _ := n.core.Timeout(TimeoutInfo{Height: 4, Round: 0, Step: StepPropose}); !rd.IsEmpty() {
		t.Fatalf("timeout before the height started gave %+v", rd)
	}
}

func TestProposeErrorIsReturnedAndTimeoutMovesOn(t *testing.T) {
	keys, vals := testKeys(t, 1)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	boom := errors.New("mempool read failed")
	n.app.proposeErr = boom
	rd, err := n.handled(n.core.Start())
	if !errors.Is(err, boom) {
		t.Fatalf("Start error %v, want %v", err, boom)
	}
	if len(rd.Messages) != 0 || len(rd.Timeouts) != 1 || rd.Timeouts[0].Step != StepPropose {
		t.Fatalf("Ready %+v, want only the propose timeout", rd)
	}
	n.app.proposeErr = nil
	rd = n.timeout(StepPropose)
	wantVote(t, rd, ledger.Prevote, 0, nilHash)
	wantVote(t, rd, ledger.Precommit, 0, nilHash)
	if len(rd.Timeouts) != 1 || rd.Timeouts[0].Step != StepPrecommit {
		t.Fatalf("timeouts %v, want the precommit timeout", rd.Timeouts)
	}
	// Round 1 proposes afresh, and the lone validator decides there.
	rd = n.timeout(StepPrecommit)
	if rd.Commit == nil || rd.Commit.Commit.Round != 1 {
		t.Fatalf("no decision in round 1: %+v", rd)
	}
}

func TestFourValidatorsHappyPath(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	rd := n.start()
	if len(rd.Messages) != 0 || len(rd.Timeouts) != 1 || rd.Timeouts[0] != (TimeoutInfo{1, 0, StepPropose, 300 * time.Millisecond}) {
		t.Fatalf("start of a non-proposer: %+v", rd)
	}
	b := makeBlock(t, keys[1], 1, 0, 1)
	id := b.Hash()
	rd = n.step(proposalMsg(t, keys[1], 1, 0, -1, b, nil))
	wantVote(t, rd, ledger.Prevote, 0, id)
	n.step(voteMsg(t, keys[1], ledger.Prevote, 1, 0, id))
	rd = n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 0, id))
	wantVote(t, rd, ledger.Precommit, 0, id)
	if st := n.core.Status(); st.LockedRound != 0 || st.ValidRound != 0 {
		t.Fatalf("status %+v, want locked and valid at round 0", st)
	}
	// A duplicate changes nothing and costs no verification.
	if rd := n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 0, id)); !rd.IsEmpty() {
		t.Fatalf("duplicate prevote gave %+v", rd)
	}
	n.step(voteMsg(t, keys[3], ledger.Precommit, 1, 0, id))
	rd = n.step(voteMsg(t, keys[1], ledger.Precommit, 1, 0, id))
	if rd.Commit == nil || rd.Commit.Block.Hash() != id {
		t.Fatalf("no decision for %s: %+v", id.TerminalString(), rd)
	}
	if err := ledger.VerifyCommit(testChainID, vals, 1, id, &rd.Commit.Commit); err != nil {
		t.Fatal(err)
	}
	if got := len(rd.Commit.Commit.Signatures); got != 3 {
		t.Fatalf("certificate of %d signatures, want 3", got)
	}
	// Votes of the decided height are now ignored.
	if rd := n.step(voteMsg(t, keys[2], ledger.Precommit, 1, 0, id)); !rd.IsEmpty() {
		t.Fatalf("late precommit gave %+v", rd)
	}
}

func TestRestartResendsTheStoredVote(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	n.start()
	x := makeBlock(t, keys[1], 1, 0, 1)
	first := wantVote(t, n.step(proposalMsg(t, keys[1], 1, 0, -1, x, nil)), ledger.Prevote, 0, x.Hash())

	// A restart resumes the round from disk and sends the very same vote.
	r := newNode(t, keys, vals, 0, 1, n.disk)
	if st := r.core.Status(); st.Round != 0 || st.Step != StepPrevote || st.Started {
		t.Fatalf("restored status %+v, want round 0 prevote, not started", st)
	}
	again := wantVote(t, r.start(), ledger.Prevote, 0, x.Hash())
	if *again != *first {
		t.Fatalf("restart sent %v, want the stored %v", again, first)
	}
	// The re-sent vote counts: two more prevotes make the polka.
	r.step(proposalMsg(t, keys[1], 1, 0, -1, x, nil))
	r.step(voteMsg(t, keys[1], ledger.Prevote, 1, 0, x.Hash()))
	wantVote(t, r.step(voteMsg(t, keys[2], ledger.Prevote, 1, 0, x.Hash())), ledger.Precommit, 0, x.Hash())

	// Even a state whose step lags its signatures (a driver that wrote
	// them apart) never gets a second prevote signed for round 0: the
	// timeout that would prevote nil re-sends the prevote for x.
	lagging := n.disk
	lagging.Step = StepPropose
	l := newNode(t, keys, vals, 0, 1, lagging)
	l.start()
	v := wantVote(t, l.timeout(StepPropose), ledger.Prevote, 0, x.Hash())
	if *v != *first {
		t.Fatalf("re-sent %v, want %v", v, first)
	}
	// And so does a different proposal for the same round.
	l2 := newNode(t, keys, vals, 0, 1, lagging)
	l2.start()
	y := makeBlock(t, keys[1], 1, 0, 2)
	v = wantVote(t, l2.step(proposalMsg(t, keys[1], 1, 0, -1, y, nil)), ledger.Prevote, 0, x.Hash())
	if *v != *first {
		t.Fatalf("re-sent %v, want %v", v, first)
	}
}

func TestRestartCountsItsOwnPrecommit(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	n.start()
	x := makeBlock(t, keys[1], 1, 0, 1)
	n.step(proposalMsg(t, keys[1], 1, 0, -1, x, nil))
	n.step(voteMsg(t, keys[1], ledger.Prevote, 1, 0, x.Hash()))
	wantVote(t, n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 0, x.Hash())), ledger.Precommit, 0, x.Hash())

	// After a restart, the proposal and two more precommits decide x: the
	// third is this validator's own, from disk.
	r := newNode(t, keys, vals, 0, 1, n.disk)
	r.step(proposalMsg(t, keys[1], 1, 0, -1, x, nil))
	r.step(voteMsg(t, keys[1], ledger.Precommit, 1, 0, x.Hash()))
	rd := r.step(voteMsg(t, keys[3], ledger.Precommit, 1, 0, x.Hash()))
	if rd.Commit == nil || rd.Commit.Block.Hash() != x.Hash() {
		t.Fatalf("no decision after the restart: %+v", rd)
	}
	if err := ledger.VerifyCommit(testChainID, vals, 1, x.Hash(), &rd.Commit.Commit); err != nil {
		t.Fatal(err)
	}
}

func TestNewCoreRefusesBadState(t *testing.T) {
	keys, vals := testKeys(t, 1)
	for name, st := range map[string]PersistedState{
		"ahead of the ledger":  {Height: 4, LockedRound: -1, ValidRound: -1},
		"unknown step":         {Height: 3, Step: 9, LockedRound: -1, ValidRound: -1},
		"lock without a block": {Height: 3, Round: 2, LockedRound: 1, ValidRound: 1, ValidHash: ledger.Hash{1}},
		"block without a lock": {Height: 3, Round: 2, LockedRound: -1, LockedHash: ledger.Hash{1}, ValidRound: -1},
		"lock above the round": {Height: 3, Round: 2, LockedRound: 3, LockedHash: ledger.Hash{1}, ValidRound: 3, ValidHash: ledger.Hash{1}},
		"valid below the lock": {Height: 3, Round: 2, LockedRound: 1, LockedHash: ledger.Hash{1}, ValidRound: -1},
		"zero value":           {Height: 3},
	} {
		if _, err := NewCore(testConfig(keys[0], vals), 3, st); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRestartDoesNotReproposeAnotherBlock(t *testing.T) {
	keys, vals := testKeys(t, 4)
	// Validator 1 proposes at 1/0.
	n := newNode(t, keys, vals, 1, 1, PersistedState{})
	rd := n.start()
	if len(rd.Messages) == 0 || rd.Messages[0].Proposal == nil {
		t.Fatalf("proposer sent %v", rd.Messages)
	}
	first := rd.Messages[0].Proposal
	// A driver that kept the signature but not the step: the core starts
	// round 0 again, builds another block (the first one was not
	// persisted), and must not sign it.
	disk := n.disk
	disk.Round, disk.Step, disk.LastPrevote = 0, StepNewHeight, SignedRecord{}
	r := newNode(t, keys, vals, 1, 1, disk)
	r.app.built = 7 // another block than the first
	rd = r.start()
	if r.app.built != 8 {
		t.Fatalf("the restarted proposer built %d blocks, want 1", r.app.built-7)
	}
	for _, m := range rd.Messages {
		if m.Proposal != nil {
			t.Fatalf("restarted proposer signed %s", m)
		}
	}
	// Had it rebuilt the very same block, the stored signature goes out.
	same := newNode(t, keys, vals, 1, 1, disk)
	rd = same.start()
	if len(rd.Messages) == 0 || rd.Messages[0].Proposal == nil || rd.Messages[0].Proposal.Signature != first.Signature {
		t.Fatalf("rebuilt the same block but sent %v", rd.Messages)
	}
}

func TestInvalidProposals(t *testing.T) {
	keys, vals := testKeys(t, 4)
	good := func() *ledger.Block { return makeBlock(t, keys[1], 1, 0, 1) }
	tests := []struct {
		name string
		msg  func(n *node) Message
		// refused proposals are ignored: no prevote until the propose
		// timeout, which prevotes nil; invalid blocks get a nil prevote at
		// once.
		wantErr error
		refused bool
	}{
		{"bad signature", func(*node) Message {
			m := proposalMsg(t, keys[1], 1, 0, -1, good(), nil)
			m.Proposal.Signature[10] ^= 1
			return m
		}, ErrInvalidMessage, true},
		{"wrong proposer", func(*node) Message { return proposalMsg(t, keys[2], 1, 0, -1, good(), nil) }, ErrInvalidMessage, true},
		{"POL on a fresh proposal", func(*node) Message {
			b := good()
			return proposalMsg(t, keys[1], 1, 0, -1, b, polOf(t, keys[1:], 1, 0, b.Hash()))
		}, ErrInvalidMessage, true},
		{"app refuses the block", func(n *node) Message {
			b := good()
			n.app.invalid[b.Hash()] = errors.New("bad parent")
			return proposalMsg(t, keys[1], 1, 0, -1, b, nil)
		}, ErrInvalidBlock, false},
		{"block signed by another key", func(*node) Message {
			b := good()
			b.Header.Proposer = keys[2].Address()
			if err := b.Sign(keys[2]); err != nil {
				t.Fatal(err)
			}
			return proposalMsg(t, keys[1], 1, 0, -1, b, nil)
		}, ErrInvalidBlock, false},
		// The block signature is outside the hash the proposal signs, so a
		// relay can break it: the copy is refused, not kept as the round's
		// proposal (see TestTamperedBodyIsRefusedOnArrival).
		{"block signature broken", func(*node) Message {
			b := good()
			b.Signature[3] ^= 1
			return proposalMsg(t, keys[1], 1, 0, -1, b, nil)
		}, ErrInvalidMessage, true},
		{"block of another height", func(*node) Message {
			return proposalMsg(t, keys[1], 1, 0, -1, makeBlock(t, keys[1], 2, 0, 1), nil)
		}, ErrInvalidBlock, false},
		{"block of another round", func(*node) Message {
			return proposalMsg(t, keys[1], 1, 0, -1, makeBlock(t, keys[2], 1, 1, 1), nil)
		}, ErrInvalidBlock, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, keys, vals, 0, 1, PersistedState{})
			n.start()
			rd, err := n.stepErr(tc.msg(n))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.refused {
				if len(rd.Messages) != 0 {
					t.Fatalf("refused proposal got %v", rd.Messages)
				}
				rd = n.timeout(StepPropose)
			}
			wantVote(t, rd, ledger.Prevote, 0, nilHash)
		})
	}
}

// tamper returns copies of p whose block keeps its signed header but not
// its body: what a relay can make of a genuine proposal, since the
// proposal's signature covers only the block hash.
func tamper(t testing.TB, p *Proposal) map[string]*Proposal {
	t.Helper()
	other, err := ledger.NewEntry(ledger.KindSubmission, &ledger.Submission{Operation: []byte(`{"forged":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	copyOf := func(f func(b *ledger.Block)) *Proposal {
		q := *p
		q.Block.Entries = slices.Clone(p.Block.Entries)
		q.Block.LastCommit.Signatures = slices.Clone(p.Block.LastCommit.Signatures)
		f(&q.Block)
		return &q
	}
	return map[string]*Proposal{
		"other entries":     copyOf(func(b *ledger.Block) { b.Entries = []ledger.Entry{other} }),
		"an entry more":     copyOf(func(b *ledger.Block) { b.Entries = append(b.Entries, other) }),
		"no entries":        copyOf(func(b *ledger.Block) { b.Entries = nil }),
		"other certificate": copyOf(func(b *ledger.Block) { b.LastCommit.Round++ }),
		"broken signature":  copyOf(func(b *ledger.Block) { b.Signature[7] ^= 1 }),
	}
}

// A relay that passes on a genuine proposal with another body, ahead of the
// genuine copy, neither stalls the round nor gets its body committed: the
// copy is refused on arrival, the genuine one that follows is voted for,
// and the decision carries the genuine body. On a2a74ac the copy was kept
// as the round's proposal, the genuine one dropped as a duplicate, and the
// tampered body committed (or, when the app caught it, the round lost).
func TestTamperedBodyIsRefusedOnArrival(t *testing.T) {
	keys, vals := testKeys(t, 4)
	b := makeBlock(t, keys[1], 1, 0, 1)
	id := b.Hash()
	genuine := proposalMsg(t, keys[1], 1, 0, -1, b, nil)
	for name, forged := range tamper(t, genuine.Proposal) {
		t.Run(name, func(t *testing.T) {
			n := newNode(t, keys, vals, 0, 1, PersistedState{})
			n.start()
			rd, err := n.stepErr(Message{Proposal: forged})
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("tampered copy: error %v, want %v", err, ErrInvalidMessage)
			}
			if len(rd.Messages) != 0 {
				t.Fatalf("tampered copy got %v", rd.Messages)
			}
			wantVote(t, n.step(genuine), ledger.Prevote, 0, id)
			for _, k := range keys[1:3] {
				n.step(voteMsg(t, k, ledger.Prevote, 1, 0, id))
			}
			// The copy again, now that the genuine proposal is kept.
			if rd, _ := n.stepErr(Message{Proposal: forged}); !rd.IsEmpty() {
				t.Fatalf("tampered copy after the genuine one gave %+v", rd)
			}
			n.step(voteMsg(t, keys[1], ledger.Precommit, 1, 0, id))
			rd = n.step(voteMsg(t, keys[2], ledger.Precommit, 1, 0, id))
			if rd.Commit == nil {
				t.Fatalf("no decision: %+v", rd)
			}
			assertGenuine(t, rd.Commit.Block, b)
		})
	}
}

// A re-proposal is a second chance for a relay: the block was judged valid
// in an earlier round, and on a2a74ac the verdict, kept by hash, covered a
// tampered body of the re-proposal, which was then committed.
func TestTamperedReproposalIsRefused(t *testing.T) {
	keys, vals := testKeys(t, 4)
	b := makeBlock(t, keys[1], 1, 0, 1)
	id := b.Hash()
	for name, forged := range tamper(t, proposalMsg(t, keys[2], 1, 1, 0, b, polOf(t, keys[1:], 1, 0, id)).Proposal) {
		t.Run(name, func(t *testing.T) {
			n := newNode(t, keys, vals, 0, 1, PersistedState{})
			n.start()
			wantVote(t, n.step(proposalMsg(t, keys[1], 1, 0, -1, b, nil)), ledger.Prevote, 0, id)
			for _, k := range keys[1:] {
				n.step(voteMsg(t, k, ledger.Precommit, 1, 0, nilHash))
			}
			n.timeout(StepPrecommit)
			if st := n.core.Status(); st.Round != 1 {
				t.Fatalf("status %+v, want round 1", st)
			}
			if _, err := n.stepErr(Message{Proposal: forged}); !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("tampered re-proposal: error %v, want %v", err, ErrInvalidMessage)
			}
			for _, k := range keys[1:] {
				n.step(voteMsg(t, k, ledger.Precommit, 1, 1, id))
			}
			// The precommits alone do not commit: the round's proposal is
			// still missing, and the copy was not taken for it.
			rd := n.step(proposalMsg(t, keys[2], 1, 1, 0, b, polOf(t, keys[1:], 1, 0, id)))
			if rd.Commit == nil {
				t.Fatalf("no decision: %+v", rd)
			}
			assertGenuine(t, rd.Commit.Block, b)
		})
	}
}

// Finding "the consensus core is pure only on paper": the core asks the
// driver for the App's verdict and takes it as an input, and a verdict that
// depended on the local clock holds only until the next round. On a2a74ac
// the verdict was kept for the whole height: a validator whose clock was
// briefly behind the proposer's prevoted nil for the block in every round
// of that height, re-proposals included.
func TestClockBoundVerdictIsAskedAgain(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	var held []ValidationRequest
	n.held = &held
	n.start()
	b := makeBlock(t, keys[1], 1, 0, 1)
	id := b.Hash()
	rd := n.step(proposalMsg(t, keys[1], 1, 0, -1, b, nil))
	if len(rd.Messages) != 0 || len(held) != 1 || held[0].Hash != id || held[0].Block.Hash() != id {
		t.Fatalf("proposal gave %+v and requests %v; want one validation request for %s and no vote yet",
			rd, held, id.TerminalString())
	}
	// Answering twice, or about a block never asked for, changes nothing.
	rd, err := n.handled(n.core.Validated(id, fmt.Errorf("time ahead of the local clock: %w", ErrTransient)))
	if !errors.Is(err, ErrInvalidBlock) {
		t.Fatalf("transient verdict: error %v, want %v", err, ErrInvalidBlock)
	}
	wantVote(t, rd, ledger.Prevote, 0, nilHash)
	if rd, _ := n.core.Validated(id, nil); !rd.IsEmpty() {
		t.Fatalf("a second answer gave %+v", rd)
	}
	if rd, _ := n.core.Validated(ledger.Hash{7}, nil); !rd.IsEmpty() {
		t.Fatalf("an answer nobody asked for gave %+v", rd)
	}
	pol := polOf(t, keys[1:], 1, 0, id)
	for _, k := range keys[1:] {
		n.step(voteMsg(t, k, ledger.Precommit, 1, 0, nilHash))
	}
	n.timeout(StepPrecommit)
	// Round 1 re-proposes the block; the clock has caught up, and the core
	// asks again instead of keeping the old verdict.
	held = held[:0]
	rd = n.step(proposalMsg(t, keys[2], 1, 1, 0, b, pol))
	if len(held) != 1 || held[0].Hash != id {
		t.Fatalf("re-proposal gave requests %v, want the block judged again", held)
	}
	if ownVote(t, rd, ledger.Prevote) != nil {
		t.Fatalf("prevoted before the verdict: %v", rd.Messages)
	}
	n.held = nil
	rd, err = n.handled(n.core.Validated(id, nil))
	n.must("Validated", rd, err)
	wantVote(t, rd, ledger.Prevote, 1, id)
}

// A final verdict holds for the height: the block is not judged again.
func TestFinalVerdictIsNotAskedAgain(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	n.start()
	b := makeBlock(t, keys[1], 1, 0, 1)
	id := b.Hash()
	n.app.invalid[id] = errors.New("bad parent")
	if _, err := n.stepErr(proposalMsg(t, keys[1], 1, 0, -1, b, nil)); !errors.Is(err, ErrInvalidBlock) {
		t.Fatalf("error %v, want %v", err, ErrInvalidBlock)
	}
	for _, k := range keys[1:] {
		n.step(voteMsg(t, k, ledger.Precommit, 1, 0, nilHash))
	}
	n.timeout(StepPrecommit)
	rd, err := n.stepErr(proposalMsg(t, keys[2], 1, 1, 0, b, polOf(t, keys[1:], 1, 0, id)))
	if !errors.Is(err, ErrInvalidBlock) {
		t.Fatalf("re-proposal: error %v, want %v", err, ErrInvalidBlock)
	}
	wantVote(t, rd, ledger.Prevote, 1, nilHash)
	if n.app.validated != 1 {
		t.Fatalf("the app judged the block %d times, want once", n.app.validated)
	}
}

// assertGenuine fails unless got is want's very body: header, entries,
// certificate and signature.
func assertGenuine(t testing.TB, got, want *ledger.Block) {
	t.Helper()
	if err := got.CheckBody(); err != nil {
		t.Fatalf("decided a block whose body disagrees with its header: %v", err)
	}
	if !bytes.Equal(mustRLP(t, got), mustRLP(t, want)) {
		t.Fatalf("decided block %s is not the genuine one", got.Hash().TerminalString())
	}
}

func TestRoundSkipNeedsFPlusOne(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	n.start()
	n.step(voteMsg(t, keys[1], ledger.Precommit, 1, 5, nilHash))
	if r := n.core.Status().Round; r != 0 {
		t.Fatalf("one validator ahead moved the core to round %d", r)
	}
	rd := n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 2, nilHash))
	st := n.core.Status()
	if st.Round != 2 || st.Step != StepPropose {
		t.Fatalf("after f+1 validators reached round 2 or later: %+v, want round 2 propose", st)
	}
	want := TimeoutInfo{Height: 1, Round: 2, Step: StepPropose, Duration: 300*time.Millisecond + 2*50*time.Millisecond}
	if len(rd.Timeouts) != 1 || rd.Timeouts[0] != want {
		t.Fatalf("timeouts %v, want %v", rd.Timeouts, want)
	}
}

func TestTimeoutsMoveThroughRounds(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	n.start()
	wantVote(t, n.timeout(StepPropose), ledger.Prevote, 0, nilHash)
	// A stale timeout is ignored.
	if rd := n.timeout(StepPropose); !rd.IsEmpty() {
		t.Fatalf("stale propose timeout gave %+v", rd)
	}
	n.step(voteMsg(t, keys[1], ledger.Prevote, 1, 0, ledger.Hash{1}))
	rd := n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 0, ledger.Hash{2}))
	if len(rd.Timeouts) != 1 || rd.Timeouts[0].Step != StepPrevote || rd.Timeouts[0].Duration != 100*time.Millisecond {
		t.Fatalf("a quorum of mixed prevotes scheduled %v, want the prevote timeout", rd.Timeouts)
	}
	wantVote(t, n.timeout(StepPrevote), ledger.Precommit, 0, nilHash)
	n.step(voteMsg(t, keys[1], ledger.Precommit, 1, 0, nilHash))
	rd = n.step(voteMsg(t, keys[3], ledger.Precommit, 1, 0, ledger.Hash{3}))
	if len(rd.Timeouts) != 1 || rd.Timeouts[0].Step != StepPrecommit {
		t.Fatalf("a quorum of precommits scheduled %v, want the precommit timeout", rd.Timeouts)
	}
	n.timeout(StepPrecommit)
	if st := n.core.Status(); st.Round != 1 || st.Step != StepPropose {
		t.Fatalf("after the precommit timeout: %+v", st)
	}
}

func TestQuorumOfNilPrevotesPrecommitsNil(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	n.start()
	n.timeout(StepPropose)
	n.step(voteMsg(t, keys[1], ledger.Prevote, 1, 0, nilHash))
	wantVote(t, n.step(voteMsg(t, keys[3], ledger.Prevote, 1, 0, nilHash)), ledger.Precommit, 0, nilHash)
}

// lockedNode returns validator 0 of height 1 locked on block x of
// validator 2, built and locked at round 1.
func lockedNode(t *testing.T, keys []*ledger.PrivateKey, vals *ledger.ValidatorSet) (*node, *ledger.Block) {
	t.Helper()
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	n.start()
	x := makeBlock(t, keys[2], 1, 1, 1)
	n.step(proposalMsg(t, keys[2], 1, 1, -1, x, nil))
	wantVote(t, n.step(voteMsg(t, keys[3], ledger.Prevote, 1, 1, x.Hash())), ledger.Prevote, 1, x.Hash())
	wantVote(t, n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 1, x.Hash())), ledger.Precommit, 1, x.Hash())
	if st := n.core.Status(); st.LockedRound != 1 || n.disk.LockedRound != 1 || n.disk.LockedHash != x.Hash() {
		t.Fatalf("not locked: status %+v, disk %+v", st, n.disk)
	}
	return n, x
}

func TestLocking(t *testing.T) {
	keys, vals := testKeys(t, 4)
	// Rounds 2, 3, 4 of height 1 are proposed by validators 3, 0, 1.
	t.Run("fresh proposal of another block", func(t *testing.T) {
		n, _ := lockedNode(t, keys, vals)
		z := makeBlock(t, keys[3], 1, 2, 2)
		n.step(voteMsg(t, keys[1], ledger.Prevote, 1, 2, z.Hash()))
		wantVote(t, n.step(proposalMsg(t, keys[3], 1, 2, -1, z, nil)), ledger.Prevote, 2, nilHash)
	})
	t.Run("POL below the lock", func(t *testing.T) {
		n, _ := lockedNode(t, keys, vals)
		y := makeBlock(t, keys[1], 1, 0, 3)
		n.step(proposalMsg(t, keys[1], 1, 4, 0, y, polOf(t, keys[1:], 1, 0, y.Hash())))
		wantVote(t, n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 4, y.Hash())), ledger.Prevote, 4, nilHash)
	})
	t.Run("POL above the lock", func(t *testing.T) {
		n, _ := lockedNode(t, keys, vals)
		y := makeBlock(t, keys[3], 1, 2, 3)
		n.step(proposalMsg(t, keys[1], 1, 4, 2, y, polOf(t, keys[1:], 1, 2, y.Hash())))
		wantVote(t, n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 4, y.Hash())), ledger.Prevote, 4, y.Hash())
	})
	t.Run("re-proposal of the locked block", func(t *testing.T) {
		n, x := lockedNode(t, keys, vals)
		pol := polOf(t, []*ledger.PrivateKey{keys[0], keys[2], keys[3]}, 1, 1, x.Hash())
		n.step(proposalMsg(t, keys[1], 1, 4, 1, x, pol))
		wantVote(t, n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 4, x.Hash())), ledger.Prevote, 4, x.Hash())
	})
	t.Run("own re-proposal carries the POL", func(t *testing.T) {
		n, x := lockedNode(t, keys, vals)
		testReproposal(t, keys, vals, n, x)
	})
	t.Run("own re-proposal after a restart", func(t *testing.T) {
		n, x := lockedNode(t, keys, vals)
		r := newNode(t, keys, vals, 0, 1, n.disk)
		testReproposal(t, keys, vals, r, x)
		lost := n.disk
		lost.ValidBlock = nil
		if _, err := NewCore(testConfig(keys[0], vals), 1, lost); err == nil {
			t.Fatal("a state with a valid round but no valid block was accepted")
		}
	})
}

// testReproposal checks that n, locked on x at round 1 of height 1, proposes
// x again with its proof of lock in round 3, its own.
func testReproposal(t *testing.T, keys []*ledger.PrivateKey, vals *ledger.ValidatorSet, n *node, x *ledger.Block) {
	t.Helper()
	// Validators 3 and 1 are at round 3, which validator 0 proposes.
	n.step(voteMsg(t, keys[3], ledger.Prevote, 1, 3, nilHash))
	rd := n.step(voteMsg(t, keys[1], ledger.Prevote, 1, 3, nilHash))
	var p *Proposal
	for _, m := range rd.Messages {
		if m.Proposal != nil {
			p = m.Proposal
		}
	}
	if p == nil || p.Round != 3 || p.POLRound != 1 || p.Block.Hash() != x.Hash() || len(p.POL) != 3 {
		t.Fatalf("proposal %+v, want x re-proposed at 3 with its POL of round 1", p)
	}
	// It is a valid proposal for an observer that saw nothing before.
	o := newNode(t, keys, vals, 1, 1, PersistedState{})
	o.start()
	o.step(Message{Proposal: p})
	if got := o.core.rounds[3].proposal; got == nil {
		t.Fatal("observer did not accept the re-proposal")
	}
}

func TestPOLChecks(t *testing.T) {
	keys, vals := testKeys(t, 4)
	y := makeBlock(t, keys[1], 1, 0, 7)
	id := y.Hash()
	tests := []struct {
		name string
		vr   int64
		pol  func() []ledger.Vote
		ok   bool
	}{
		{"quorum", 0, func() []ledger.Vote { return polOf(t, keys[1:], 1, 0, id) }, true},
		{"short", 0, func() []ledger.Vote { return polOf(t, keys[1:3], 1, 0, id) }, false},
		{"none", 0, func() []ledger.Vote { return nil }, false},
		{"bad signature", 0, func() []ledger.Vote {
			pol := polOf(t, keys[1:], 1, 0, id)
			pol[1].Signature[5] ^= 1
			return pol
		}, false},
		{"signer not the validator named", 0, func() []ledger.Vote {
			pol := polOf(t, keys[1:], 1, 0, id)
			pol[2].Validator = keys[0].Address()
			return pol
		}, false},
		{"duplicate signer", 0, func() []ledger.Vote {
			pol := polOf(t, keys[1:3], 1, 0, id)
			return append(pol, pol[0])
		}, false},
		{"another block", 0, func() []ledger.Vote { return polOf(t, keys[1:], 1, 0, ledger.Hash{9}) }, false},
		{"another round", 0, func() []ledger.Vote { return polOf(t, keys[1:], 1, 1, id) }, false},
		{"precommits", 0, func() []ledger.Vote {
			var pol []ledger.Vote
			for _, k := range keys[1:] {
				pol = append(pol, *signVote(t, k, ledger.Precommit, 1, 0, id))
			}
			return pol
		}, false},
		{"POL round not below the round", 2, func() []ledger.Vote { return polOf(t, keys[1:], 1, 2, id) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, keys, vals, 0, 1, PersistedState{})
			n.start()
			// Round 2 is proposed by validator 3.
			rd, err := n.stepErr(proposalMsg(t, keys[3], 1, 2, tc.vr, y, tc.pol()))
			if tc.ok != (err == nil) {
				t.Fatalf("error %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("error %v does not wrap ErrInvalidMessage", err)
			}
			if len(rd.Messages) != 0 {
				t.Fatalf("a proposal of a future round made the core send %v", rd.Messages)
			}
			// Moving to round 2: the accepted proposal is prevoted, the
			// refused one was never stored.
			rd = n.step(voteMsg(t, keys[2], ledger.Precommit, 1, 2, nilHash))
			if !tc.ok {
				rd = n.step(voteMsg(t, keys[1], ledger.Precommit, 1, 2, nilHash))
				if ownVote(t, rd, ledger.Prevote) != nil {
					t.Fatalf("refused re-proposal was prevoted: %v", rd.Messages)
				}
				return
			}
			wantVote(t, rd, ledger.Prevote, 2, id)
		})
	}
}

func TestCommitsDecisionOfAnEarlierRound(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	n.start()
	x := makeBlock(t, keys[1], 1, 0, 1)
	n.step(proposalMsg(t, keys[1], 1, 0, -1, x, nil))
	// The core moves on to round 2 without seeing the precommits of 0.
	n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 2, nilHash))
	n.step(voteMsg(t, keys[3], ledger.Prevote, 1, 2, nilHash))
	if r := n.core.Status().Round; r != 2 {
		t.Fatalf("round %d, want 2", r)
	}
	n.step(voteMsg(t, keys[1], ledger.Precommit, 1, 0, x.Hash()))
	n.step(voteMsg(t, keys[2], ledger.Precommit, 1, 0, x.Hash()))
	rd := n.step(voteMsg(t, keys[3], ledger.Precommit, 1, 0, x.Hash()))
	if rd.Commit == nil || rd.Commit.Block.Hash() != x.Hash() || rd.Commit.Commit.Round != 0 {
		t.Fatalf("no decision of round 0: %+v", rd.Commit)
	}
	if err := ledger.VerifyCommit(testChainID, vals, 1, x.Hash(), &rd.Commit.Commit); err != nil {
		t.Fatal(err)
	}
}

func TestNewHeightStartsOnAMessage(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	// Nothing to propose: the driver never calls Start, but a prevote of
	// this height from another validator starts round 0.
	rd := n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 0, nilHash))
	if st := n.core.Status(); !st.Started || st.Round != 0 || st.Step != StepPropose {
		t.Fatalf("status %+v, want round 0 started", st)
	}
	if len(rd.Timeouts) != 1 || rd.Timeouts[0].Step != StepPropose {
		t.Fatalf("timeouts %v", rd.Timeouts)
	}
}

func TestEquivocationIsReported(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	n.start()
	a := signVote(t, keys[2], ledger.Prevote, 1, 0, ledger.Hash{1})
	b := signVote(t, keys[2], ledger.Prevote, 1, 0, ledger.Hash{2})
	c := signVote(t, keys[2], ledger.Prevote, 1, 0, ledger.Hash{3})
	n.step(Message{Vote: a})
	rd := n.step(Message{Vote: b})
	if len(rd.Evidence) != 1 || rd.Evidence[0].A != *a || rd.Evidence[0].B != *b {
		t.Fatalf("evidence %+v, want the two prevotes", rd.Evidence)
	}
	if rd := n.step(Message{Vote: c}); len(rd.Evidence) != 0 {
		t.Fatalf("reported the same validator twice at one round: %+v", rd.Evidence)
	}
	// Only the first vote counts.
	if got := n.core.rounds[0].set(ledger.Prevote).count[ledger.Hash{2}]; got != 0 {
		t.Fatalf("the conflicting vote was counted")
	}
}

func TestVotesAreCheckedBeforeCounting(t *testing.T) {
	keys, vals := testKeys(t, 4)
	outsider, _ := testKeys(t, 5)
	n := newNode(t, keys, vals, 0, 1, PersistedState{})
	n.start()
	forged := signVote(t, keys[1], ledger.Prevote, 1, 0, nilHash)
	forged.Validator = keys[2].Address()
	for name, m := range map[string]Message{
		"forged":     {Vote: forged},
		"outsider":   voteMsg(t, outsider[4], ledger.Prevote, 1, 0, nilHash),
		"other type": {Vote: &ledger.Vote{Type: 7, Height: 1, Validator: keys[1].Address()}},
		"empty":      {},
	} {
		if _, err := n.stepErr(m); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: error %v, want ErrInvalidMessage", name, err)
		}
	}
	if got := n.core.rounds[0].set(ledger.Prevote).total; got != 0 {
		t.Fatalf("%d invalid votes counted", got)
	}
}

func TestNewCoreChecksConfig(t *testing.T) {
	keys, vals := testKeys(t, 2)
	outsider, _ := testKeys(t, 3)
	tests := map[string]func(*Config){
		"chain id":      func(c *Config) { c.ChainID = "" },
		"validators":    func(c *Config) { c.Validators = nil },
		"signer":        func(c *Config) { c.Signer = nil },
		"not validator": func(c *Config) { c.Signer = outsider[2] },
		"timeout":       func(c *Config) { c.TimeoutPrevote = 0 },
		"delta":         func(c *Config) { c.TimeoutDelta = -1 },
	}
	for name, mutate := range tests {
		cfg := testConfig(keys[0], vals)
		mutate(&cfg)
		if _, err := NewCore(cfg, 1, PersistedState{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewCore(testConfig(keys[0], vals), 0, PersistedState{}); err == nil {
		t.Error("height 0 accepted")
	}
}

// halting is a signer that fails.
type haltingSigner struct{ *ledger.PrivateKey }

func (haltingSigner) Sign(ledger.Domain, string, []byte) (ledger.Signature, error) {
	return ledger.Signature{}, errors.New("hsm unplugged")
}

func TestSignerFailureHalts(t *testing.T) {
	keys, vals := testKeys(t, 1)
	cfg := testConfig(keys[0], vals)
	cfg.Signer = haltingSigner{keys[0]}
	c, err := NewCore(cfg, 1, PersistedState{})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := c.Start()
	if err != nil || rd.ProposalRequest == nil {
		t.Fatalf("Start: %v, %+v; want a proposal request", err, rd)
	}
	app := &testApp{t: t, key: keys[0]}
	b, _ := app.ProposeBlock(1, 0)
	rd, err = c.Proposed(b)
	if !errors.Is(err, ErrHalted) || len(rd.Messages) != 0 {
		t.Fatalf("Proposed: %v, %v; want ErrHalted and nothing sent", err, rd.Messages)
	}
	if _, err := c.Timeout(TimeoutInfo{Height: 1, Step: StepPropose}); !errors.Is(err, ErrHalted) {
		t.Fatalf("later call: %v, want ErrHalted", err)
	}
}

func TestMessageEncoding(t *testing.T) {
	keys, _ := testKeys(t, 4)
	b := makeBlock(t, keys[1], 3, 0, 1)
	msgs := []Message{
		proposalMsg(t, keys[2], 3, 1, 0, b, polOf(t, keys[1:], 3, 0, b.Hash())),
		proposalMsg(t, keys[2], 3, 1, -1, b, nil),
		voteMsg(t, keys[3], ledger.Precommit, 3, 1, b.Hash()),
	}
	for _, m := range msgs {
		enc, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Message
		if err := got.UnmarshalBinary(enc); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		again, err := got.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, again) || got.String() != m.String() {
			t.Fatalf("%s did not survive encoding: %s", m, got)
		}
		if p := got.Proposal; p != nil {
			if err := p.Verify(testChainID, keys[2].Address()); err != nil {
				t.Fatalf("decoded proposal: %v", err)
			}
		}
	}
	for name, b := range map[string][]byte{
		"garbage":      {0x01, 0x02},
		"unknown kind": mustRLP(t, []any{uint8(9), []byte{0xc0}}),
		"bad body":     mustRLP(t, []any{uint8(1), []byte{0xc0}}),
		"huge POL round": mustRLP(t, []any{uint8(1), rlp.RawValue(mustRLP(t,
			[]any{uint64(1), uint64(1), ^uint64(0), b, []ledger.Vote{}, ledger.Signature{}}))}),
	} {
		var m Message
		if err := m.UnmarshalBinary(b); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: error %v, want ErrInvalidMessage", name, err)
		}
	}
	if _, err := (Message{}).MarshalBinary(); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("empty message encoded: %v", err)
	}
}

func mustRLP(t testing.TB, v any) []byte {
	t.Helper()
	b, err := rlp.EncodeToBytes(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProposalSignatureIsDomainSeparated(t *testing.T) {
	keys, _ := testKeys(t, 2)
	b := makeBlock(t, keys[1], 1, 0, 1)
	m := proposalMsg(t, keys[1], 1, 0, -1, b, nil)
	p := m.Proposal
	// The same signature does not pass as a vote, nor for another POL
	// round, round or chain.
	v := ledger.Vote{Type: ledger.Prevote, Height: 1, Round: 0, BlockHash: b.Hash(), Validator: keys[1].Address(), Signature: p.Signature}
	if v.Verify(testChainID) == nil {
		t.Fatal("a proposal signature verified as a vote")
	}
	for name, mutate := range map[string]func(*Proposal){
		"POL round": func(p *Proposal) { p.POLRound = 0 },
		"round":     func(p *Proposal) { p.Round = 1 },
	} {
		q := *p
		mutate(&q)
		if q.Verify(testChainID, keys[1].Address()) == nil {
			t.Errorf("%s changed and the signature still verifies", name)
		}
	}
	if p.Verify("other-chain", keys[1].Address()) == nil {
		t.Error("signature verifies on another chain")
	}
}

func TestPersistedStateEncoding(t *testing.T) {
	keys, _ := testKeys(t, 4)
	x := makeBlock(t, keys[1], 7, 1, 1)
	states := []PersistedState{
		{Height: 7, Round: 3, Step: StepPrecommit, LockedRound: 2, LockedHash: ledger.Hash{1}, ValidRound: 2, ValidHash: x.Hash(),
			ValidBlock: x, ValidPOL: polOf(t, keys[1:], 7, 2, x.Hash()),
			LastProposal: SignedRecord{Height: 7, Round: 1, BlockHash: ledger.Hash{2}, POLRound: 0, Signature: ledger.Signature{3}},
			LastPrevote:  SignedRecord{Height: 7, Round: 3, POLRound: -1, Signature: ledger.Signature{4}}},
		{Height: 1, LockedRound: -1, ValidRound: -1},
	}
	for _, s := range states {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got PersistedState
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		again, err := got.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if got.key() != s.key() || (got.ValidBlock == nil) != (s.ValidBlock == nil) || len(got.ValidPOL) != len(s.ValidPOL) || !bytes.Equal(b, again) {
			t.Fatalf("decoded %+v, want %+v", got, s)
		}
		if s.ValidBlock != nil && (got.ValidBlock.Hash() != s.ValidBlock.Hash() || got.ValidPOL[2] != s.ValidPOL[2]) {
			t.Fatalf("valid block or POL changed in encoding")
		}
		if err := got.UnmarshalBinary(b[:len(b)-1]); err == nil {
			t.Fatal("truncated state decoded")
		}
	}
}

// Round timeouts grow with the round up to TimeoutMax, and no further: a
// network whose rounds ran up while it was split must not wait ever
// longer rounds once it is whole.
func TestRoundTimeoutsAreCapped(t *testing.T) {
	keys, vals := testKeys(t, 4)
	cfg := testConfig(keys[0], vals)
	cfg.TimeoutMax = 400 * time.Millisecond
	app := &testApp{t: t, key: keys[0], invalid: map[ledger.Hash]error{}}
	c, err := NewCore(cfg, 1, PersistedState{})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, core: c, app: app}
	n.start()
	for _, tc := range []struct {
		round uint64
		want  time.Duration
	}{
		{1, 350 * time.Millisecond}, // 300ms + 1*50ms
		{2, 400 * time.Millisecond}, // 300ms + 2*50ms
		{5, 400 * time.Millisecond}, // capped, not 550ms
		{41, 400 * time.Millisecond},
	} {
		// f+1 validators in a later round move the core there. The rounds
		// are ones validator 0 does not propose in, so it waits for a
		// proposal.
		if vals.Proposer(1, tc.round) == keys[0].Address() {
			t.Fatalf("validator 0 proposes in round %d", tc.round)
		}
		n.step(voteMsg(t, keys[1], ledger.Prevote, 1, tc.round, nilHash))
		rd := n.step(voteMsg(t, keys[2], ledger.Prevote, 1, tc.round, nilHash))
		if st := n.core.Status(); st.Round != tc.round {
			t.Fatalf("core at round %d, want %d", st.Round, tc.round)
		}
		var got time.Duration
		for _, to := range rd.Timeouts {
			if to.Step == StepPropose {
				got = to.Duration
			}
		}
		if got != tc.want {
			t.Errorf("round %d: propose timeout %s, want %s (timeouts %v)", tc.round, got, tc.want, rd.Timeouts)
		}
	}
}
