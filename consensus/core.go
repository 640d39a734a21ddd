package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/rlp"

	"github.com/sagachain/sagachain/ledger"
)

// Errors a caller may branch on, besides ErrInvalidMessage.
var (
	// ErrInvalidBlock reports a correctly signed proposal whose block is not
	// Valid (DESIGN §9): the core prevotes nil for it, and the call that
	// found out (Step, or Validated with the app's verdict) returns this
	// error alongside the Ready so the driver can say why.
	ErrInvalidBlock = errors.New("invalid proposed block")
	// ErrTransient marks an App verdict that may change with time, such as
	// a block time further ahead of the local clock than the drift bound
	// allows. Wrapped in the error handed to Core.Validated, it makes the
	// core treat the block as invalid for now and ask again when a later
	// round starts, instead of for the rest of the height.
	ErrTransient = errors.New("verdict may change later")
	// ErrHalted reports a core that can no longer act because its signer
	// failed. Every later call returns it.
	ErrHalted = errors.New("consensus core halted")
)

// maxFutureRounds bounds how far beyond its current round the core stores
// messages. Honest validators are that far ahead only when this node lags,
// and then the f+1 rule, which needs only each validator's highest round,
// brings it forward; the messages of the new round are re-published by
// their senders.
const maxFutureRounds = 8

// Step is the step of a round.
type Step uint8

// Steps of a round. StepNewHeight is the state between a decision (or a
// start) and the first round of the next height: DESIGN §5 starts a height
// only when there is something to propose or another validator has started
// it.
const (
	StepNewHeight Step = 0
	StepPropose   Step = 1
	StepPrevote   Step = 2
	StepPrecommit Step = 3
)

// String names the step.
func (s Step) String() string {
	switch s {
	case StepNewHeight:
		return "new-height"
	case StepPropose:
		return "propose"
	case StepPrevote:
		return "prevote"
	case StepPrecommit:
		return "precommit"
	}
	return fmt.Sprintf("step(%d)", uint8(s))
}

// Signer signs for the validator this core runs as. *ledger.PrivateKey
// satisfies it; a remote signer may too.
type Signer interface {
	Address() ledger.Address
	Sign(d ledger.Domain, chainID string, payload []byte) (ledger.Signature, error)
}

// App is what the driver asks of the node when a Ready requests it: the
// core calls nothing, it asks through Ready.ProposalRequest and
// Ready.Validations and takes the answers through Core.Proposed and
// Core.Validated. Both methods must be deterministic functions of the
// committed chain, except for the local clock bound of DESIGN §9, whose
// verdicts are wrapped in ErrTransient.
type App interface {
	// ProposeBlock builds and signs a block for height built in round, on
	// top of the last committed block and its certificate. Its header must
	// carry height, round and this validator as proposer. An error means no
	// proposal this round (the propose timeout moves the round on).
	ProposeBlock(height, round uint64) (*ledger.Block, error)
	// ValidateBlock is the node's part of Valid(v): parent, time, previous
	// certificate, entries and derived records. The core itself checks the
	// block's body against its header, the chain id, height, proposer and
	// proposer signature first.
	ValidateBlock(b *ledger.Block) error
}

// Config configures a Core.
type Config struct {
	ChainID    string
	Validators *ledger.ValidatorSet
	// Signer is this validator's key; its address must be in Validators.
	Signer Signer
	// Timeouts of round r last T + r*TimeoutDelta, at most TimeoutMax
	// when that is not zero; the core only hands the durations back in
	// TimeoutInfo and never reads a clock. The cap keeps a network that
	// went through many rounds while split (a partition, two validators
	// down) from waiting ever longer rounds once it is whole again; it
	// must stay well above the network's real delays.
	TimeoutPropose   time.Duration
	TimeoutPrevote   time.Duration
	TimeoutPrecommit time.Duration
	TimeoutDelta     time.Duration
	TimeoutMax       time.Duration
	// TimeoutProposeDown replaces TimeoutPropose in a round whose proposer
	// the committed state reports down (Core.SetDown): waiting the full
	// propose timeout for a validator that is known to be dead costs a
	// whole TimeoutPropose every n heights, most of the throughput of a
	// busy network whose blocks are tens of milliseconds apart. It only
	// has to cover a proposal that a validator reported down sends anyway
	// (it came back and the chain has not yet seen it sign anything): one
	// gossip hop and a block build, where TimeoutPropose also covers a
	// live proposer that is busy and carries a margin for slow networks.
	// Zero means TimeoutPropose/20 (50 ms for the default second).
	//
	// It grows with the round in proportion to the propose timeout, by
	// TimeoutDelta*TimeoutProposeDown/TimeoutPropose a round, and is never
	// longer than the propose timeout of the same round (so TimeoutMax
	// caps it too): rounds with a down proposer at round 1 or later (two
	// validators down next to each other in the rotation) stay short,
	// and a proposer wrongly reported down still gets a window that widens
	// as rounds fail. Liveness does not rest on it: the core believes at
	// most n-Q validators down (see SetDown), so every n consecutive rounds
	// hold a proposer waited for in full.
	//
	// Equal to TimeoutPropose, it turns the short wait off: a proposer
	// reported down is then waited for like any other. It may not be
	// longer, nor negative.
	TimeoutProposeDown time.Duration
	// VerifyVote checks a vote's signature; nil means v.Verify(ChainID).
	// A node passes one that remembers what it verified, since its gossip
	// validation has checked most votes before they reach the core.
	VerifyVote func(v *ledger.Vote) error

	// quorum, when non-zero, replaces Validators.Quorum(). It exists only so
	// the simulator's control run can break safety on purpose and prove that
	// its checker notices.
	quorum int
}

func (c *Config) check() error {
	switch {
	case c.ChainID == "":
		return errors.New("consensus config: empty chain id")
	case c.Validators == nil || c.Validators.Size() == 0:
		return errors.New("consensus config: no validators")
	case c.Signer == nil:
		return errors.New("consensus config: no signer")
	case !c.Validators.Has(c.Signer.Address()):
		return fmt.Errorf("consensus config: signer %s is not a validator", c.Signer.Address().Hex())
	case c.TimeoutPropose <= 0 || c.TimeoutPrevote <= 0 || c.TimeoutPrecommit <= 0:
		return fmt.Errorf("consensus config: timeouts must be positive (propose %s, prevote %s, precommit %s)",
			c.TimeoutPropose, c.TimeoutPrevote, c.TimeoutPrecommit)
	case c.TimeoutDelta < 0:
		return fmt.Errorf("consensus config: negative timeout delta %s", c.TimeoutDelta)
	case c.TimeoutMax < 0:
		return fmt.Errorf("consensus config: negative timeout cap %s", c.TimeoutMax)
	case c.TimeoutProposeDown < 0 || c.TimeoutProposeDown > c.TimeoutPropose:
		return fmt.Errorf("consensus config: propose timeout for a proposer reported down %s outside 0..%s (the propose timeout)",
			c.TimeoutProposeDown, c.TimeoutPropose)
	case c.quorum < 0 || c.quorum > c.Validators.Size():
		return fmt.Errorf("consensus config: quorum %d out of range", c.quorum)
	}
	return nil
}

// downDivisor gives the default TimeoutProposeDown: TimeoutPropose divided
// by it.
const downDivisor = 20

// withDefaults fills in what a zero value leaves to the core.
func (c Config) withDefaults() Config {
	if c.TimeoutProposeDown == 0 {
		c.TimeoutProposeDown = max(c.TimeoutPropose/downDivisor, 1)
	}
	return c
}

// TimeoutInfo asks the driver to call Core.Timeout with it after Duration.
// The core ignores timeouts that are no longer current, so the driver never
// needs to cancel one.
type TimeoutInfo struct {
	Height   uint64
	Round    uint64
	Step     Step
	Duration time.Duration
}

// SignedRecord is the last message of one kind this validator signed. It is
// what makes signing safe across restarts: the core never signs below it,
// and at its height and round it re-sends Signature instead of signing
// anything else.
type SignedRecord struct {
	Height    uint64
	Round     uint64
	BlockHash ledger.Hash
	// POLRound is the proposal's POL round; -1 for votes.
	POLRound  int64
	Signature ledger.Signature
}

// IsZero reports whether nothing was signed.
func (r SignedRecord) IsZero() bool { return r.Signature == ledger.Signature{} }

// before reports whether (h, round) is below the record; nothing is below
// an empty record.
func (r SignedRecord) before(h, round uint64) bool {
	return !r.IsZero() && (h < r.Height || h == r.Height && round < r.Round)
}

// at reports whether the record is for (h, round).
func (r SignedRecord) at(h, round uint64) bool {
	return !r.IsZero() && r.Height == h && r.Round == round
}

// PersistedState is what the driver keeps on disk for the core (DESIGN §9:
// persist before sending). The lock and the last-signed records are needed
// for safety. The valid block and its proof of lock are needed for
// liveness: validators locked on a block that only they knew, and that they
// lost in a crash, could never be unlocked again.
type PersistedState struct {
	Height      uint64
	Round       uint64
	Step        Step
	LockedRound int64
	LockedHash  ledger.Hash
	ValidRound  int64
	ValidHash   ledger.Hash
	// ValidBlock is the block of ValidHash and ValidPOL the prevotes of a
	// quorum for it at ValidRound; nil when ValidRound is -1. They change
	// only when ValidRound or ValidHash do, so a driver may store them
	// apart and rewrite them only then. They are shared with the core and
	// must not be modified.
	ValidBlock *ledger.Block
	ValidPOL   []ledger.Vote
	// The last signed proposal, prevote and precommit.
	LastProposal  SignedRecord
	LastPrevote   SignedRecord
	LastPrecommit SignedRecord
}

// check refuses a state the core cannot have written.
func (s *PersistedState) check() error {
	switch {
	case s.Step > StepPrecommit:
		return fmt.Errorf("unknown step %d", s.Step)
	case s.LockedRound < -1 || s.LockedRound > int64(min(s.Round, math.MaxInt64)):
		return fmt.Errorf("locked round %d outside -1..%d", s.LockedRound, s.Round)
	case s.ValidRound < s.LockedRound || s.ValidRound > int64(min(s.Round, math.MaxInt64)):
		return fmt.Errorf("valid round %d outside %d..%d", s.ValidRound, s.LockedRound, s.Round)
	case (s.LockedRound == -1) != (s.LockedHash == ledger.Hash{}):
		return fmt.Errorf("locked round %d with locked block %s", s.LockedRound, s.LockedHash.TerminalString())
	case (s.ValidRound == -1) != (s.ValidHash == ledger.Hash{}):
		return fmt.Errorf("valid round %d with valid block %s", s.ValidRound, s.ValidHash.TerminalString())
	}
	return nil
}

// persistedKey is the part of a PersistedState that decides whether it
// changed: the valid block and POL follow from ValidRound and ValidHash.
type persistedKey struct {
	height, round          uint64
	step                   Step
	lockedRound            int64
	lockedHash             ledger.Hash
	validRound             int64
	validHash              ledger.Hash
	proposal, prevote, pre SignedRecord
}

func (s *PersistedState) key() persistedKey {
	return persistedKey{s.Height, s.Round, s.Step, s.LockedRound, s.LockedHash, s.ValidRound, s.ValidHash,
		s.LastProposal, s.LastPrevote, s.LastPrecommit}
}

type recordRLP struct {
	Height, Round uint64
	BlockHash     ledger.Hash
	POLRound      uint64
	Signature     ledger.Signature
}

type persistedRLP struct {
	Height, Round uint64
	Step          uint8
	LockedRound   uint64
	LockedHash    ledger.Hash
	ValidRound    uint64
	ValidHash     ledger.Hash
	ValidBlock    *ledger.Block `rlp:"nil"`
	ValidPOL      []ledger.Vote
	Last          [3]recordRLP
}

// MarshalBinary encodes the state as RLP, rounds shifted by one as in
// proposals.
func (s PersistedState) MarshalBinary() ([]byte, error) {
	w := persistedRLP{Height: s.Height, Round: s.Round, Step: uint8(s.Step),
		LockedRound: encodeRound(s.LockedRound), LockedHash: s.LockedHash,
		ValidRound: encodeRound(s.ValidRound), ValidHash: s.ValidHash, ValidBlock: s.ValidBlock, ValidPOL: s.ValidPOL}
	for i, r := range []SignedRecord{s.LastProposal, s.LastPrevote, s.LastPrecommit} {
		w.Last[i] = recordRLP{Height: r.Height, Round: r.Round, BlockHash: r.BlockHash, POLRound: encodeRound(r.POLRound), Signature: r.Signature}
	}
	return rlp.EncodeToBytes(&w)
}

// UnmarshalBinary decodes what MarshalBinary produced.
func (s *PersistedState) UnmarshalBinary(b []byte) error {
	var w persistedRLP
	if err := rlp.DecodeBytes(b, &w); err != nil {
		return fmt.Errorf("consensus state: %w", err)
	}
	if Step(w.Step) > StepPrecommit {
		return fmt.Errorf("consensus state: unknown step %d", w.Step)
	}
	out := PersistedState{Height: w.Height, Round: w.Round, Step: Step(w.Step), LockedHash: w.LockedHash, ValidHash: w.ValidHash,
		ValidBlock: w.ValidBlock, ValidPOL: w.ValidPOL}
	if len(out.ValidPOL) == 0 {
		out.ValidPOL = nil
	}
	var err error
	if out.LockedRound, err = decodeRound(w.LockedRound); err != nil {
		return fmt.Errorf("consensus state: locked round: %w", err)
	}
	if out.ValidRound, err = decodeRound(w.ValidRound); err != nil {
		return fmt.Errorf("consensus state: valid round: %w", err)
	}
	recs := []*SignedRecord{&out.LastProposal, &out.LastPrevote, &out.LastPrecommit}
	for i, r := range w.Last {
		pol, err := decodeRound(r.POLRound)
		if err != nil {
			return fmt.Errorf("consensus state: last signed record %d: %w", i, err)
		}
		*recs[i] = SignedRecord{Height: r.Height, Round: r.Round, BlockHash: r.BlockHash, POLRound: pol, Signature: r.Signature}
	}
	*s = out
	return nil
}

// Decision is a committed block with the certificate that commits it.
type Decision struct {
	Block  *ledger.Block
	Commit ledger.Commit
}

// Ready is what one call into the core asks the driver to do. Handle it
// completely, in this order, before the next call:
//
//  1. Commit: write the block, its certificate and the state it produces
//     in one synced write.
//  2. Persist: store and sync it. It covers every message of this Ready.
//  3. Messages: broadcast them to the other validators. The core has
//     already applied its own messages; feeding them back is harmless
//     (they are recognised as duplicates) but unnecessary.
//  4. Timeouts: schedule each.
//  5. Evidence: gossip it and offer it to the mempool.
//  6. ProposalRequest: have App.ProposeBlock build the block and hand it
//     to Core.Proposed; on an error, do nothing (the propose timeout moves
//     the round on).
//  7. Validations: have App.ValidateBlock judge each block and hand the
//     verdict to Core.Validated.
//
// The answers of 6 and 7 may come later, after other calls, as long as
// each comes at most once; the core drops one it no longer needs.
type Ready struct {
	Commit   *Decision
	Persist  *PersistedState
	Messages []Message
	Timeouts []TimeoutInfo
	Evidence []ledger.Evidence
	// ProposalRequest asks for a block to propose, when not nil.
	ProposalRequest *ProposalRequest
	// Validations asks for the App's verdict on blocks, each once until
	// answered; a verdict wrapping ErrTransient is asked for again when a
	// later round needs it.
	Validations []ValidationRequest
}

// ProposalRequest asks the driver for a block to propose at Height and
// Round, built by this validator.
type ProposalRequest struct {
	Height, Round uint64
}

// ValidationRequest asks the driver for the App's verdict on Block, whose
// hash is Hash. The block is the one the core keeps; it must not be
// modified.
type ValidationRequest struct {
	Hash  ledger.Hash
	Block *ledger.Block
}

// IsEmpty reports whether the Ready asks for nothing.
func (r *Ready) IsEmpty() bool {
	return r.Commit == nil && r.Persist == nil && len(r.Messages) == 0 && len(r.Timeouts) == 0 && len(r.Evidence) == 0 &&
		r.ProposalRequest == nil && len(r.Validations) == 0
}

// verdict is what the core knows of the App's judgement of one block.
type verdict struct {
	// asked is true from the request until the answer.
	asked bool
	err   error
	// transient is an answer wrapping ErrTransient: it holds until the
	// next round starts.
	transient bool
}

// voteSet holds the votes of one type at one round, one per validator.
type voteSet struct {
	votes    []*ledger.Vote // by validator index
	reported []bool         // equivocation evidence already emitted
	count    map[ledger.Hash]int
	total    int
}

func newVoteSet(n int) *voteSet {
	return &voteSet{votes: make([]*ledger.Vote, n), reported: make([]bool, n), count: make(map[ledger.Hash]int)}
}

// roundState is what the core knows of one round of the current height.
type roundState struct {
	proposal  *Proposal
	blockHash ledger.Hash // proposal.Block.Hash(), computed once
	votes     [2]*voteSet // prevotes, precommits
	// "first time" guards of the upon rules of DESIGN §9.
	prevoteTimeout   bool
	precommitTimeout bool
	polka            bool
}

func (rs *roundState) set(t ledger.VoteType) *voteSet { return rs.votes[t-ledger.Prevote] }

// Core is the round-based protocol of DESIGN §9 for one validator as a pure
// state machine: it reads no clock, starts no goroutine and does no I/O.
// Inputs are Start, Step, Timeout, Proposed and Validated; each returns a
// Ready for the driver.
// A Core is not safe for concurrent use.
type Core struct {
	cfg    Config
	vals   *ledger.ValidatorSet
	self   ledger.Address
	n      int
	q      int // quorum
	skip   int // f+1 = n - q + 1: the number of validators that cannot all be faulty
	halted error

	height  uint64
	round   uint64
	step    Step
	started bool // a round of this height has begun (or resumed)

	lockedRound int64
	lockedHash  ledger.Hash
	validRound  int64
	validHash   ledger.Hash
	validBlock  *ledger.Block
	validPOL    []ledger.Vote

	last        [3]SignedRecord // proposal, prevote, precommit
	ownProposal *Proposal       // the latest proposal this node signed at this height
	// proposing is the round whose block was asked for and not yet
	// handed in, or -1.
	proposing int64

	rounds   map[uint64]*roundState
	highest  []int64                  // per validator, the highest round it sent a message for at this height
	validity map[ledger.Hash]*verdict // the App's, by block hash: only whole blocks are kept
	touched  []uint64                 // rounds whose proposal or precommits changed since the commit rule last looked

	// down marks, by validator index, the validators the committed state
	// reports down at this height (SetDown); nil when none is, when the
	// driver did not say, or when the short wait is off.
	down []bool
	// downDelta is how much the propose timeout of a round whose proposer
	// is down grows per round: TimeoutDelta scaled like
	// TimeoutProposeDown.
	downDelta time.Duration

	persisted persistedKey // of the state last handed to the driver
	out       Ready
	errs      []error
}

const (
	lastProposal  = 0
	lastPrevote   = 1
	lastPrecommit = 2
)

func lastIndex(t ledger.VoteType) int {
	if t == ledger.Prevote {
		return lastPrevote
	}
	return lastPrecommit
}

// NewCore returns the core of the validator cfg.Signer at height, the next
// height the ledger needs (its head plus one). state is what the driver last
// persisted, or the zero value on first boot. When state is of this height
// the core resumes from it (round, step, lock, valid block and signatures);
// an older state only keeps its signatures; a newer one means the ledger
// lost a decision and is refused. The core does nothing until Start is
// called or a valid message of its height arrives.
func NewCore(cfg Config, height uint64, state PersistedState) (*Core, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if height == 0 {
		return nil, errors.New("consensus: height 0 is the genesis; start at 1")
	}
	if state.Height > height {
		return nil, fmt.Errorf("consensus: persisted state is at height %d but the ledger needs height %d: a decided block was not written", state.Height, height)
	}
	c := &Core{cfg: cfg, vals: cfg.Validators, self: cfg.Signer.Address(), n: cfg.Validators.Size()}
	c.q = cfg.Validators.Quorum()
	if cfg.quorum > 0 {
		c.q = cfg.quorum
	}
	c.skip = c.n - c.q + 1
	// TimeoutDelta * TimeoutProposeDown / TimeoutPropose, exactly: the
	// quotient is at most TimeoutDelta, so it fits.
	hi, lo := bits.Mul64(uint64(cfg.TimeoutDelta), uint64(cfg.TimeoutProposeDown))
	q, _ := bits.Div64(hi, lo, uint64(cfg.TimeoutPropose))
	c.downDelta = time.Duration(q)
	c.last = [3]SignedRecord{state.LastProposal, state.LastPrevote, state.LastPrecommit}
	c.enterHeight(height)
	if state.Height == height {
		if err := state.check(); err != nil {
			return nil, fmt.Errorf("consensus: persisted state of height %d: %w", height, err)
		}
		c.round, c.step = state.Round, state.Step
		c.lockedRound, c.lockedHash = state.LockedRound, state.LockedHash
		c.validRound, c.validHash = state.ValidRound, state.ValidHash
		if c.validRound >= 0 {
			if state.ValidBlock == nil || state.ValidBlock.Hash() != c.validHash || len(state.ValidPOL) < c.q {
				return nil, fmt.Errorf("consensus: persisted state of height %d has valid round %d without its block %s and proof of lock",
					height, c.validRound, c.validHash.TerminalString())
			}
			c.validBlock, c.validPOL = state.ValidBlock, state.ValidPOL
		}
	}
	st := c.snapshot()
	c.persisted = st.key()
	return c, nil
}

// enterHeight resets everything that belongs to one height.
func (c *Core) enterHeight(h uint64) {
	c.height, c.round, c.step, c.started = h, 0, StepNewHeight, false
	c.lockedRound, c.lockedHash = -1, ledger.Hash{}
	c.validRound, c.validHash, c.validBlock, c.validPOL = -1, ledger.Hash{}, nil, nil
	c.ownProposal, c.proposing = nil, -1
	c.rounds = make(map[uint64]*roundState)
	c.highest = make([]int64, c.n)
	for i := range c.highest {
		c.highest[i] = -1
	}
	c.validity = make(map[ledger.Hash]*verdict)
	c.touched = c.touched[:0]
	// What was down at the last height says nothing of this one: until the
	// driver tells, every proposer is waited for in full.
	c.down = nil
}

// Status is where a core stands, for the driver's re-publishing and sync
// decisions and for metrics.
type Status struct {
	Height uint64
	Round  uint64
	Step   Step
	// Started reports whether a round of Height has begun.
	Started     bool
	LockedRound int64
	ValidRound  int64
}

// Status returns where the core stands.
func (c *Core) Status() Status {
	return Status{Height: c.height, Round: c.round, Step: c.step, Started: c.started,
		LockedRound: c.lockedRound, ValidRound: c.validRound}
}

// Start begins the current height: round 0, or the round and step a
// restarted core was persisted at, where it re-sends the votes it had
// signed. The driver calls it when it has something to propose (DESIGN §5:
// no empty blocks) and after a restart; a core that has already started does
// nothing.
func (c *Core) Start() (Ready, error) {
	if c.halted != nil {
		return Ready{}, c.halted
	}
	if !c.started {
		c.start()
		c.evaluate()
	}
	return c.flush()
}

// Step delivers a proposal or vote from the network. Messages of other
// heights are ignored; so are duplicates. The returned Ready must be handled
// even when the error is not nil: the error says why a message was refused
// (ErrInvalidMessage, a proposal whose block body is not its header's
// included) or a block found invalid (ErrInvalidBlock), and the core may
// still have acted. The core keeps m's proposal or vote: neither
// the caller nor anyone handed a Ready may modify what it contains.
func (c *Core) Step(m Message) (Ready, error) {
	if c.halted != nil {
		return Ready{}, c.halted
	}
	switch {
	case m.Proposal != nil && m.Vote == nil:
		c.onProposal(m.Proposal)
	case m.Vote != nil && m.Proposal == nil:
		c.onVote(m.Vote)
	default:
		c.errs = append(c.errs, fmt.Errorf("%w: want exactly one of proposal and vote", ErrInvalidMessage))
	}
	return c.flush()
}

// Timeout delivers a timeout the driver scheduled. Timeouts that are no
// longer current are ignored.
func (c *Core) Timeout(t TimeoutInfo) (Ready, error) {
	if c.halted != nil {
		return Ready{}, c.halted
	}
	if c.started && t.Height == c.height && t.Round == c.round {
		switch {
		case t.Step == StepPropose && c.step == StepPropose:
			c.castVote(ledger.Prevote, ledger.Hash{})
			c.step = StepPrevote
		case t.Step == StepPrevote && c.step == StepPrevote:
			c.castVote(ledger.Precommit, ledger.Hash{})
			c.step = StepPrecommit
		case t.Step == StepPrecommit:
			c.startRound(c.round + 1)
		}
		c.evaluate()
	}
	return c.flush()
}

// Proposed hands the core the block it asked for in a ProposalRequest. A
// block that is no longer wanted (the round moved on, or it is not for the
// request) is dropped.
func (c *Core) Proposed(b *ledger.Block) (Ready, error) {
	if c.halted != nil {
		return Ready{}, c.halted
	}
	if b != nil && c.proposing >= 0 && uint64(c.proposing) == c.round && c.step == StepPropose &&
		b.Header.Height == c.height && b.Header.Round == c.round {
		c.proposing = -1
		c.sendProposal(&Proposal{Height: c.height, Round: c.round, POLRound: -1, Block: *b})
		c.evaluate()
	}
	return c.flush()
}

// Validated hands the core the App's verdict on the block hash, asked for
// in Ready.Validations: nil for valid, an error wrapping ErrTransient for
// "not now". A verdict nobody asked for, or asked for at another height,
// is dropped. The error returned wraps ErrInvalidBlock when the verdict
// is not nil.
func (c *Core) Validated(hash ledger.Hash, verdictErr error) (Ready, error) {
	if c.halted != nil {
		return Ready{}, c.halted
	}
	v := c.validity[hash]
	if v == nil || !v.asked {
		return c.flush()
	}
	*v = verdict{err: verdictErr, transient: errors.Is(verdictErr, ErrTransient)}
	if verdictErr != nil {
		v.err = fmt.Errorf("%w: block %s at height %d: %w", ErrInvalidBlock, hash.TerminalString(), c.height, verdictErr)
		c.errs = append(c.errs, v.err)
	}
	c.touch(hash)
	c.evaluate()
	return c.flush()
}

// SetDown tells the core which validators the committed state marks down
// for height, the one it is deciding: the chain's view of who is alive
// after block height-1, which the driver asks its host for after every
// commit and whenever it makes a core. It is an input like the others
// because the core reads nothing itself.
//
// It changes no rule and nothing signed, only how long this validator
// waits: in a round whose proposer is down it waits TimeoutProposeDown
// for the proposal instead of TimeoutPropose, and once a quorum has
// precommitted nil there it starts the next round at once instead of
// waiting TimeoutPrecommit. A proposal that arrives in time is voted on as
// any other, so a report that is wrong costs at most a round.
//
// A report of more than n-Q validators down is ignored: a network with
// that many down decides nothing, so the report is stale or wrong, and
// believing at most n-Q keeps a proposer waited for in full in every n
// consecutive rounds, which is what liveness needs. Addresses that are not
// validators are ignored, and so is a report for another height; a new
// height starts with no one down. A report that marks the current round's
// proposer down while the core waits for its proposal schedules the short
// timeout at once; timers already asked for stay as they are.
func (c *Core) SetDown(height uint64, down []ledger.Address) (Ready, error) {
	if c.halted != nil {
		return Ready{}, c.halted
	}
	if height != c.height {
		return c.flush()
	}
	was := c.proposerDown(c.round)
	c.down = nil
	if c.cfg.TimeoutProposeDown < c.cfg.TimeoutPropose {
		marks, count := make([]bool, c.n), 0
		for _, a := range down {
			if i, ok := c.vals.Index(a); ok && !marks[i] {
				marks[i] = true
				count++
			}
		}
		if count > 0 && count <= c.n-c.q {
			c.down = marks
		}
	}
	if c.started {
		if c.step == StepPropose && !was && c.proposerDown(c.round) {
			c.schedulePropose()
		}
		c.evaluate()
	}
	return c.flush()
}

// touch queues the rounds whose proposal carries hash for the commit rule,
// lowest round last so that it is looked at first.
func (c *Core) touch(hash ledger.Hash) {
	var rounds []uint64
	for r, rs := range c.rounds {
		if rs.proposal != nil && rs.blockHash == hash {
			rounds = append(rounds, r)
		}
	}
	slices.Sort(rounds)
	slices.Reverse(rounds)
	c.touched = append(c.touched, rounds...)
}

// Republish returns this validator's latest signed proposal (when it is for
// the current round) and votes of the current height, already persisted,
// for the driver to publish again every few hundred milliseconds (DESIGN §9),
// so that progress does not hang on one lost message.
func (c *Core) Republish() []Message {
	if c.halted != nil || !c.started {
		return nil
	}
	var msgs []Message
	if p := c.ownProposal; p != nil && p.Round == c.round {
		msgs = append(msgs, Message{Proposal: p})
	}
	for _, t := range []ledger.VoteType{ledger.Prevote, ledger.Precommit} {
		if r := c.last[lastIndex(t)]; !r.IsZero() && r.Height == c.height {
			msgs = append(msgs, Message{Vote: c.recordVote(t, r)})
		}
	}
	return msgs
}

// flush hands the accumulated output to the driver.
func (c *Core) flush() (Ready, error) {
	if s := c.snapshot(); s.key() != c.persisted {
		c.persisted = s.key()
		c.out.Persist = &s
	}
	// A timeout scheduled during this call may already be stale; do not
	// make the driver run a timer for nothing.
	c.out.Timeouts = slices.DeleteFunc(c.out.Timeouts, func(t TimeoutInfo) bool {
		if !c.started || t.Height != c.height || t.Round != c.round {
			return true
		}
		return t.Step != StepPrecommit && t.Step != c.step
	})
	// So may a request: the round moved on, or the height was decided.
	if r := c.out.ProposalRequest; r != nil && (r.Height != c.height || c.proposing < 0 || uint64(c.proposing) != r.Round) {
		c.out.ProposalRequest = nil
	}
	c.out.Validations = slices.DeleteFunc(c.out.Validations, func(v ValidationRequest) bool {
		w := c.validity[v.Hash]
		return w == nil || !w.asked
	})
	rd, err := c.out, errors.Join(c.errs...)
	c.out, c.errs = Ready{}, nil
	if c.halted != nil {
		err = c.halted
	}
	return rd, err
}

func (c *Core) snapshot() PersistedState {
	return PersistedState{Height: c.height, Round: c.round, Step: c.step,
		LockedRound: c.lockedRound, LockedHash: c.lockedHash, ValidRound: c.validRound, ValidHash: c.validHash,
		ValidBlock: c.validBlock, ValidPOL: c.validPOL,
		LastProposal: c.last[lastProposal], LastPrevote: c.last[lastPrevote], LastPrecommit: c.last[lastPrecommit]}
}

// start begins the height: at the highest round f+1 validators have reached,
// else where a restart left off, else at round 0.
func (c *Core) start() {
	c.started = true
	restored := c.step != StepNewHeight
	if restored {
		// Own votes of this height are counted again and re-sent; a
		// proposal cannot be (its block was not persisted).
		for _, t := range []ledger.VoteType{ledger.Prevote, ledger.Precommit} {
			if r := c.last[lastIndex(t)]; !r.IsZero() && r.Height == c.height {
				v := c.recordVote(t, r)
				c.out.Messages = append(c.out.Messages, Message{Vote: v})
				c.addVote(v)
			}
		}
	}
	switch r, skip := c.skipTarget(); {
	case skip:
		c.startRound(r)
	case !restored:
		c.startRound(0)
	case c.step == StepPropose:
		c.schedulePropose()
	}
}

// recordVote rebuilds the vote a SignedRecord stands for.
func (c *Core) recordVote(t ledger.VoteType, r SignedRecord) *ledger.Vote {
	return &ledger.Vote{Type: t, Height: r.Height, Round: r.Round, BlockHash: r.BlockHash, Validator: c.self, Signature: r.Signature}
}

// startRound is StartRound(r') of DESIGN §9.
func (c *Core) startRound(r uint64) {
	c.started = true
	c.round, c.step = r, StepPropose
	c.proposing = -1
	// A verdict that depended on the local clock does not hold for the
	// height: the blocks it was about are judged again when next needed.
	var again []ledger.Hash
	for id, v := range c.validity {
		if v.transient {
			again = append(again, id)
		}
	}
	slices.SortFunc(again, func(a, b ledger.Hash) int { return bytes.Compare(a[:], b[:]) })
	for _, id := range again {
		delete(c.validity, id)
		c.touch(id)
	}
	if c.vals.Proposer(c.height, r) == c.self {
		c.propose()
	}
	c.schedulePropose()
}

// verifyVote checks v's signature as the configuration says.
func (c *Core) verifyVote(v *ledger.Vote) error {
	if c.cfg.VerifyVote != nil {
		return c.cfg.VerifyVote(v)
	}
	return v.Verify(c.cfg.ChainID)
}

// schedule asks for the timeout of step at the current round.
func (c *Core) schedule(s Step, base time.Duration) {
	c.out.Timeouts = append(c.out.Timeouts, TimeoutInfo{Height: c.height, Round: c.round, Step: s,
		Duration: c.roundTimeout(base, c.cfg.TimeoutDelta)})
}

// schedulePropose asks for the propose timeout of the current round: the
// short one when its proposer is reported down.
func (c *Core) schedulePropose() {
	d := c.roundTimeout(c.cfg.TimeoutPropose, c.cfg.TimeoutDelta)
	if c.proposerDown(c.round) {
		d = min(d, c.roundTimeout(c.cfg.TimeoutProposeDown, c.downDelta))
	}
	c.out.Timeouts = append(c.out.Timeouts, TimeoutInfo{Height: c.height, Round: c.round, Step: StepPropose, Duration: d})
}

// roundTimeout is a timeout at the current round: base + r*delta,
// saturating rather than overflowing in absurd rounds, and capped by
// TimeoutMax.
func (c *Core) roundTimeout(base, delta time.Duration) time.Duration {
	d := base
	if delta > 0 {
		if c.round > uint64((math.MaxInt64-int64(base))/int64(delta)) {
			d = math.MaxInt64
		} else {
			d += time.Duration(c.round) * delta
		}
	}
	if c.cfg.TimeoutMax > 0 {
		d = min(d, max(c.cfg.TimeoutMax, base))
	}
	return d
}

// proposerDown reports whether the proposer of round r of this height is
// reported down and so gets the short wait. A validator never waits less
// for itself: it knows it is up.
func (c *Core) proposerDown(r uint64) bool {
	if c.down == nil {
		return false
	}
	p := c.vals.Proposer(c.height, r)
	if p == c.self {
		return false
	}
	i, _ := c.vals.Index(p)
	return c.down[i]
}

// propose sends PROPOSAL(h, r, v, validR, pol): validV with its proof of
// lock when there is one, else a new block, which it asks the driver for.
func (c *Core) propose() {
	if c.validBlock == nil {
		if !c.last[lastProposal].before(c.height, c.round) {
			c.proposing = int64(min(c.round, math.MaxInt64))
			c.out.ProposalRequest = &ProposalRequest{Height: c.height, Round: c.round}
		}
		return
	}
	c.sendProposal(&Proposal{Height: c.height, Round: c.round, POLRound: c.validRound, Block: *c.validBlock, POL: c.validPOL})
}

// sendProposal signs p, unless a proposal was signed at its height and
// round before a restart, and keeps it as the round's proposal.
func (c *Core) sendProposal(p *Proposal) {
	id := p.Block.Hash()
	rec := &c.last[lastProposal]
	switch {
	case rec.before(c.height, c.round):
		return
	case rec.at(c.height, c.round):
		// Signed before a restart: only the very same proposal may go out.
		if rec.BlockHash != id || rec.POLRound != p.POLRound {
			return
		}
		p.Signature = rec.Signature
	default:
		sig, err := c.cfg.Signer.Sign(DomainProposal, c.cfg.ChainID, proposalPayload(p.Height, p.Round, p.POLRound, id))
		if err != nil {
			c.halt(fmt.Errorf("sign proposal %d/%d: %w", p.Height, p.Round, err))
			return
		}
		p.Signature = sig
		*rec = SignedRecord{Height: c.height, Round: c.round, BlockHash: id, POLRound: p.POLRound, Signature: sig}
	}
	c.ownProposal = p
	c.out.Messages = append(c.out.Messages, Message{Proposal: p})
	rs := c.roundState(c.round)
	if rs.proposal == nil {
		c.storeProposal(rs, p, id)
		if _, err := c.judge(rs); err != nil {
			c.errs = append(c.errs, fmt.Errorf("own proposal: %w", err))
		}
	}
}

// polFor returns the prevotes for hash at round, in validator order.
func (c *Core) polFor(round uint64, hash ledger.Hash) []ledger.Vote {
	rs := c.rounds[round]
	if rs == nil {
		return nil
	}
	var pol []ledger.Vote
	for _, v := range rs.set(ledger.Prevote).votes {
		if v != nil && v.BlockHash == hash {
			pol = append(pol, *v)
		}
	}
	return pol
}

// castVote signs and sends a vote of type t for hash (the zero hash is nil)
// at the current height and round, unless a vote of that type was already
// signed there, in which case that one is sent again, whatever it was for.
func (c *Core) castVote(t ledger.VoteType, hash ledger.Hash) {
	if c.halted != nil {
		return
	}
	rec := &c.last[lastIndex(t)]
	var v *ledger.Vote
	switch {
	case rec.before(c.height, c.round):
		return // cannot happen: the round never goes below a persisted one
	case rec.at(c.height, c.round):
		v = c.recordVote(t, *rec)
	default:
		v = &ledger.Vote{Type: t, Height: c.height, Round: c.round, BlockHash: hash, Validator: c.self}
		sig, err := c.cfg.Signer.Sign(ledger.DomainVote, c.cfg.ChainID, v.SigningPayload())
		if err != nil {
			c.halt(fmt.Errorf("sign %s %d/%d: %w", t, c.height, c.round, err))
			return
		}
		v.Signature = sig
		*rec = SignedRecord{Height: c.height, Round: c.round, BlockHash: hash, POLRound: -1, Signature: sig}
	}
	c.out.Messages = append(c.out.Messages, Message{Vote: v})
	c.addVote(v)
}

func (c *Core) halt(err error) {
	c.halted = fmt.Errorf("%w: %w", ErrHalted, err)
}

func (c *Core) roundState(r uint64) *roundState {
	rs := c.rounds[r]
	if rs == nil {
		rs = &roundState{votes: [2]*voteSet{newVoteSet(c.n), newVoteSet(c.n)}}
		c.rounds[r] = rs
	}
	return rs
}

// storable reports whether messages of round r are kept (see
// maxFutureRounds).
func (c *Core) storable(r uint64) bool {
	return r <= c.round || r-c.round <= maxFutureRounds
}

// seen notes that validator i sent a valid message for round r, for the
// f+1 rule.
func (c *Core) seen(i int, r uint64) {
	if r > math.MaxInt64 {
		r = math.MaxInt64
	}
	if int64(r) > c.highest[i] {
		c.highest[i] = int64(r)
	}
}

func (c *Core) invalid(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: %s", ErrInvalidMessage, fmt.Sprintf(format, args...)))
}

func (c *Core) onVote(v *ledger.Vote) {
	if v.Height != c.height {
		return
	}
	if v.Type != ledger.Prevote && v.Type != ledger.Precommit {
		c.invalid("%s at %d/%d: unknown vote type", v.Type, v.Height, v.Round)
		return
	}
	i, ok := c.vals.Index(v.Validator)
	if !ok {
		c.invalid("%s at %d/%d by %s: %v", v.Type, v.Height, v.Round, v.Validator.Hex(), ledger.ErrNotValidator)
		return
	}
	if c.storable(v.Round) {
		if old := c.roundState(v.Round).set(v.Type).votes[i]; old != nil && *old == *v {
			return // a duplicate of a vote already checked
		}
	}
	if err := c.verifyVote(v); err != nil {
		c.errs = append(c.errs, fmt.Errorf("%w: %w", ErrInvalidMessage, err))
		return
	}
	c.seen(i, v.Round)
	if c.storable(v.Round) {
		c.addVote(v)
	}
	if !c.started {
		c.start()
	}
	c.evaluate()
}

// addVote counts a verified vote, or reports it as equivocation when its
// validator already voted differently at that height, round and type.
func (c *Core) addVote(v *ledger.Vote) {
	i, _ := c.vals.Index(v.Validator)
	set := c.roundState(v.Round).set(v.Type)
	if old := set.votes[i]; old != nil {
		if old.BlockHash != v.BlockHash && !set.reported[i] {
			set.reported[i] = true
			c.out.Evidence = append(c.out.Evidence, ledger.Evidence{A: *old, B: *v})
		}
		return
	}
	set.votes[i] = v
	set.count[v.BlockHash]++
	set.total++
	if v.Type == ledger.Precommit {
		c.touched = append(c.touched, v.Round)
	}
}

func (c *Core) onProposal(p *Proposal) {
	if p.Height != c.height {
		return
	}
	proposer := c.vals.Proposer(p.Height, p.Round)
	pi, _ := c.vals.Index(proposer)
	var rs *roundState
	if c.storable(p.Round) {
		rs = c.roundState(p.Round)
		if old := rs.proposal; old != nil {
			// The first whole proposal of a round is the one. The same
			// signature again is a copy of it, or a copy whose body a relay
			// changed (the signature covers only the block hash); the
			// stored one passed wholeBlock, so either way the copy adds
			// nothing. A different signature is the proposer's
			// equivocation, which only its votes are evidence of.
			if old.Signature != p.Signature && p.Verify(c.cfg.ChainID, proposer) == nil {
				c.seen(pi, p.Round)
			}
			return
		}
	}
	if err := p.Verify(c.cfg.ChainID, proposer); err != nil {
		c.errs = append(c.errs, fmt.Errorf("%w: %w", ErrInvalidMessage, err))
		return
	}
	c.seen(pi, p.Round)
	if rs != nil {
		// Before anything is kept or voted on: a relay may have paired the
		// signed header with another body, and storing that copy would
		// make the genuine one a duplicate.
		if err := wholeBlock(&p.Block); err != nil {
			c.errs = append(c.errs, fmt.Errorf("%w: proposal %d/%d: %w", ErrInvalidMessage, p.Height, p.Round, err))
			return
		}
		id := p.Block.Hash()
		if err := c.checkPOL(p, id); err != nil {
			c.errs = append(c.errs, fmt.Errorf("%w: proposal %d/%d: %w", ErrInvalidMessage, p.Height, p.Round, err))
			return
		}
		for k := range p.POL {
			v := &p.POL[k]
			i, _ := c.vals.Index(v.Validator)
			c.seen(i, v.Round)
			c.addVote(v)
		}
		c.storeProposal(rs, p, id)
		if _, err := c.judge(rs); err != nil {
			c.errs = append(c.errs, err)
		}
	}
	if !c.started {
		c.start()
	}
	c.evaluate()
}

func (c *Core) storeProposal(rs *roundState, p *Proposal, id ledger.Hash) {
	rs.proposal, rs.blockHash = p, id
	c.touched = append(c.touched, p.Round)
}

// checkPOL checks a re-proposal's proof of lock: POLRound below the round and
// a quorum of distinct validators' valid prevotes for the block at
// POLRound. A fresh proposal must carry none.
func (c *Core) checkPOL(p *Proposal, id ledger.Hash) error {
	if p.POLRound < 0 {
		if p.POLRound != -1 || len(p.POL) > 0 {
			return fmt.Errorf("POL round %d with %d POL votes", p.POLRound, len(p.POL))
		}
		return nil
	}
	vr := uint64(p.POLRound)
	if vr >= p.Round {
		return fmt.Errorf("POL round %d is not below the round", vr)
	}
	if len(p.POL) > c.n {
		return fmt.Errorf("POL of %d votes for %d validators", len(p.POL), c.n)
	}
	signed := make([]bool, c.n)
	count := 0
	known := c.rounds[vr]
	for k := range p.POL {
		v := &p.POL[k]
		if v.Type != ledger.Prevote || v.Height != p.Height || v.Round != vr || v.BlockHash != id {
			return fmt.Errorf("POL vote %d is a %s at %d/%d for %s, want a prevote at %d/%d for %s",
				k, v.Type, v.Height, v.Round, v.BlockHash.TerminalString(), p.Height, vr, id.TerminalString())
		}
		i, ok := c.vals.Index(v.Validator)
		if !ok {
			return fmt.Errorf("POL vote %d by %s: %w", k, v.Validator.Hex(), ledger.ErrNotValidator)
		}
		if signed[i] {
			return fmt.Errorf("POL vote %d by %s: %w", k, v.Validator.Hex(), ledger.ErrDuplicateSigner)
		}
		signed[i] = true
		if known == nil || known.set(ledger.Prevote).votes[i] == nil || *known.set(ledger.Prevote).votes[i] != *v {
			if err := c.verifyVote(v); err != nil {
				return fmt.Errorf("POL vote %d: %w", k, err)
			}
		}
		count++
	}
	if count < c.q {
		return fmt.Errorf("POL holds %d prevotes, need %d: %w", count, c.q, ledger.ErrQuorum)
	}
	return nil
}

// judge is Valid(v) for the proposal of rs as far as it is known yet, with
// the proposal's own shape: a fresh proposal carries a block built in its
// round, a re-proposal one built no later than its POL round. done is
// false while the App's verdict is awaited; the first call asks for it.
func (c *Core) judge(rs *roundState) (done bool, err error) {
	p := rs.proposal
	b := &p.Block
	if p.POLRound < 0 && b.Header.Round != p.Round || p.POLRound >= 0 && b.Header.Round > uint64(p.POLRound) {
		return true, fmt.Errorf("%w: proposal %d/%d with POL round %d carries a block of round %d",
			ErrInvalidBlock, p.Height, p.Round, p.POLRound, b.Header.Round)
	}
	if err := c.checkBlock(b); err != nil {
		return true, fmt.Errorf("%w: block %s at %d/%d: %w", ErrInvalidBlock, rs.blockHash.TerminalString(), b.Header.Height, b.Header.Round, err)
	}
	v := c.validity[rs.blockHash]
	switch {
	case v == nil:
		c.validity[rs.blockHash] = &verdict{asked: true}
		c.out.Validations = append(c.out.Validations, ValidationRequest{Hash: rs.blockHash, Block: b})
		return false, nil
	case v.asked:
		return false, nil
	}
	return true, v.err
}

// judged reports whether the verdict on the proposal of rs is in.
func (c *Core) judged(rs *roundState) bool {
	done, _ := c.judge(rs)
	return done
}

// valid reports whether the proposal of rs is known to be Valid.
func (c *Core) valid(rs *roundState) bool {
	done, err := c.judge(rs)
	return done && err == nil
}

// wholeBlock checks that a block's body is the one its proposer signed:
// entries root and last-commit hash against what it carries, and the
// proposer's signature over the header. A proposal's signature covers the
// block hash, which covers the header only; once this passes, the hash
// stands for the whole block, so the core may key verdicts on it and
// commit the instance it kept.
func wholeBlock(b *ledger.Block) error {
	if err := b.CheckBody(); err != nil {
		return err
	}
	return b.VerifySignature()
}

// checkBlock is the core's part of Valid(v), beyond wholeBlock: what it
// can tell from the header alone.
func (c *Core) checkBlock(b *ledger.Block) error {
	h := &b.Header
	switch {
	case h.ChainID != c.cfg.ChainID:
		return fmt.Errorf("chain id %q, want %q", h.ChainID, c.cfg.ChainID)
	case h.Height != c.height:
		return fmt.Errorf("height %d, want %d", h.Height, c.height)
	case h.Proposer != c.vals.Proposer(h.Height, h.Round):
		return fmt.Errorf("proposer %s is not the proposer %s of its round", h.Proposer.Hex(), c.vals.Proposer(h.Height, h.Round).Hex())
	}
	return nil
}

// skipTarget is the f+1 rule: when f+1 validators have sent messages for
// rounds above ours, at least one honest validator is there. It returns the
// highest round r” such that f+1 validators sent a message for r” or
// later; this fires whenever f+1 messages for one round r” > r would, and
// needs one number per validator instead of every round's senders.
func (c *Core) skipTarget() (uint64, bool) {
	var above []int64
	for _, r := range c.highest {
		if r > int64(c.round) {
			above = append(above, r)
		}
	}
	if len(above) < c.skip {
		return 0, false
	}
	slices.Sort(above)
	return uint64(above[len(above)-c.skip]), true
}

// evaluate applies the upon rules of DESIGN §9 until none fires.
func (c *Core) evaluate() {
	for c.halted == nil {
		if c.commitTouched() || !c.started {
			return
		}
		if r, ok := c.skipTarget(); ok && r > c.round {
			c.startRound(r)
			continue
		}
		rs := c.roundState(c.round)
		p, id := rs.proposal, rs.blockHash
		switch {
		case c.step == StepPropose && p != nil && c.judged(rs):
			// PROPOSAL(h, r, v, vr): checkPOL admitted only vr = -1 or a
			// POL round with its quorum of prevotes. Until the App's
			// verdict is in, the core waits, as for a proposal that has
			// not arrived: the propose timeout still moves it on.
			ok := c.valid(rs) &&
				(c.lockedRound == -1 || c.lockedHash == id || p.POLRound >= 0 && c.lockedRound <= p.POLRound)
			var vote ledger.Hash
			if ok {
				vote = id
			}
			c.castVote(ledger.Prevote, vote)
			c.step = StepPrevote
			continue
		case c.step >= StepPrevote && !rs.polka && p != nil && rs.set(ledger.Prevote).count[id] >= c.q && c.valid(rs):
			rs.polka = true
			if c.step == StepPrevote {
				c.lockedRound, c.lockedHash = int64(c.round), id
				c.castVote(ledger.Precommit, id)
				c.step = StepPrecommit
			}
			c.validRound, c.validHash, c.validBlock = int64(c.round), id, &p.Block
			c.validPOL = c.polFor(c.round, id)
			continue
		case c.step == StepPrevote && rs.set(ledger.Prevote).count[ledger.Hash{}] >= c.q:
			c.castVote(ledger.Precommit, ledger.Hash{})
			c.step = StepPrecommit
			continue
		case rs.set(ledger.Precommit).count[ledger.Hash{}] >= c.q && c.proposerDown(c.round):
			// The precommit timeout waits for precommits that could still
			// decide this round. After a quorum of nil precommits none can:
			// a block would need a quorum too, and two quorums share an
			// honest validator, which precommits once. So in a round whose
			// proposer is down, waiting TimeoutPrecommit (a second in a
			// node) would cost what the short propose wait saved. Other
			// rounds keep the protocol's wait; moving on early is safe in
			// any round, as the f+1 skip does.
			c.startRound(c.round + 1)
			continue
		}
		if c.step == StepPrevote && !rs.prevoteTimeout && rs.set(ledger.Prevote).total >= c.q {
			rs.prevoteTimeout = true
			c.schedule(StepPrevote, c.cfg.TimeoutPrevote)
		}
		if !rs.precommitTimeout && rs.set(ledger.Precommit).total >= c.q {
			rs.precommitTimeout = true
			c.schedule(StepPrecommit, c.cfg.TimeoutPrecommit)
		}
		return
	}
}

// commitTouched applies the commit rule to the rounds that changed: a
// proposal for v at some round r* with a quorum of precommits for v at r*,
// and v valid. It reports whether the height was decided.
func (c *Core) commitTouched() bool {
	for len(c.touched) > 0 {
		r := c.touched[len(c.touched)-1]
		c.touched = c.touched[:len(c.touched)-1]
		rs := c.rounds[r]
		if rs == nil || rs.proposal == nil {
			continue
		}
		set := rs.set(ledger.Precommit)
		if set.count[rs.blockHash] < c.q || !c.valid(rs) {
			continue
		}
		cert := ledger.Commit{Height: c.height, Round: r, BlockHash: rs.blockHash}
		for _, v := range set.votes {
			if v != nil && v.BlockHash == rs.blockHash {
				cert.Signatures = append(cert.Signatures, ledger.CommitSig{Validator: v.Validator, Signature: v.Signature})
			}
		}
		c.out.Commit = &Decision{Block: &rs.proposal.Block, Commit: cert}
		c.enterHeight(c.height + 1)
		return true
	}
	return false
}
