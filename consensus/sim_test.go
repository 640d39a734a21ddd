package consensus

import (
	"container/heap"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/sagachain/sagachain/ledger"
)

// The simulator of DESIGN §10: every validator's core in one goroutine, a
// seeded network that delays, drops, duplicates, reorders and partitions,
// crashes and restarts from the persisted state, a simulated clock per node
// (skewed and running at its own rate, within the drift bound blocks are
// checked against), and Byzantine validators: twins (two nodes running one
// validator's key) and the adversaries of sim_adversary_test.go, at most
// f = (n-1)/3 of them, plus an optional relay that races proposals with
// tampered bodies. After every event it checks: no two different blocks
// (by header or by body) committed at one height by honest nodes, every
// certificate passes ledger.VerifyCommit, every committed body matches its
// signed header, honest validators never sign conflicting votes, honest
// messages are never refused, and nothing is sent before the state covering
// it was persisted. Once the network heals, every honest node must reach the
// target height within a bound of simulated time.
//
// The core's App (ProposeBlock, ValidateBlock) is met in one place, simApp
// at the end of this file; everything else drives the core through Start,
// Step, Timeout and Ready.

var (
	// simSeeds is sized so that `go test -race ./consensus` stays within
	// about a minute on a two-core machine: the run is dominated by
	// signature checks, about 70 ms of CPU per simulation. A longer search
	// passes a larger -sim.seeds (every test scales from it).
	simSeeds   = flag.Int("sim.seeds", 200, "seeds of the honest 4-validator simulation; the other simulator tests run fractions of it")
	simSeed    = flag.Int64("sim.seed", -1, "run only this simulator seed (to replay a failure)")
	simHeights = flag.Uint64("sim.heights", 5, "heights each simulated network must decide")
)

var (
	errFork     = errors.New("fork")
	errCert     = errors.New("bad certificate")
	errUnsafe   = errors.New("sent before persisted")
	errLiveness = errors.New("liveness")
	// errEquivocation is an honest validator signing two votes for one
	// height, round and type: what persisting before sending prevents
	// across crashes.
	errEquivocation = errors.New("honest equivocation")
	errNode         = errors.New("node error")
	// errChain is a committed block that does not extend the node's
	// chain: another parent, a time not after the parent's, or a last
	// certificate that does not certify the parent.
	errChain = errors.New("block does not extend the chain")
	// errBody is a committed block whose entries or last certificate do
	// not match its signed header, or honest nodes committing one header
	// with different bodies.
	errBody = errors.New("body does not match header")
)

type simConfig struct {
	validators int
	// twins are the validators each run by two nodes (Byzantine).
	twins []int
	// adversaries are Byzantine validators whose node runs a core and
	// misbehaves on top of it as acts says; randomActs instead gives each a
	// random non-empty subset of acts per seed.
	adversaries []int
	acts        advActs
	randomActs  bool
	// tamper adds a relay (an admitted peer, not a validator) that races
	// proposals with copies carrying the genuine header and signatures but
	// other entries or another last certificate.
	tamper bool
	// skew bounds how far any two nodes' clocks differ; it must stay
	// within simDrift, the bound honest validators check block times
	// against, or honest blocks would be refused.
	skew time.Duration
	// quorum replaces the real quorum when non-zero (control runs only).
	quorum  int
	heights uint64
	// partition, when set, is the fixed group of each node while the
	// network is unhealed; otherwise partitions come and go at random.
	partition []int
	crashes   bool
	// maxChaos bounds the unhealed period; liveBound is how long after
	// healing every honest node has to reach heights.
	maxChaos  time.Duration
	liveBound time.Duration
	// trustingApp makes every node's app accept any block (control runs
	// only): the core's own checks remain, the node's part of Valid(v)
	// is gone.
	trustingApp bool
	// control runs keep going after violations (until a fork) and accept
	// node errors, since a broken quorum makes blocks of one branch
	// invalid on the other.
	control bool
	// dead are validators whose node never runs: crashed for good.
	dead []int
	// busy gives every node work at every height (a loaded network),
	// instead of hasWork's two in three.
	busy bool
	// report, when set, is what node n's committed state says is down at
	// height h: handed to its core by Core.SetDown at every new core and
	// after every commit, as the driver does with Host.ProposerDown.
	report func(s *sim, n *simNode, h uint64) []ledger.Address
	// timeoutProposeDown is Config.TimeoutProposeDown (zero: the default).
	timeoutProposeDown time.Duration
}

// f is the number of Byzantine validators the protocol tolerates.
func (c *simConfig) f() int { return (c.validators - 1) / 3 }

const (
	simTick     = 250 * time.Millisecond // re-publish and status period
	simMaxEvent = 3_000_000
	// simEpoch is the wall-clock time simulated time 0 stands for, in Unix
	// milliseconds, so skewed clocks never go below zero.
	simEpoch = 1_700_000_000_000
	// simDrift is how far ahead of a validator's clock a block's time may
	// be (genesis max_clock_drift_ms); shorter than the default so that
	// clock-bound rejections happen within a simulation.
	simDrift = time.Second
)

type simEventKind uint8

const (
	evDeliver simEventKind = iota
	evTimeout
	evTick
	evRestart
	evPartition
	evHeal
)

type simEvent struct {
	at      time.Duration
	seq     uint64
	kind    simEventKind
	node    int
	from    int
	frame   *simFrame
	timeout TimeoutInfo
	epoch   int
}

// simFrame is what travels between nodes: a consensus message (encoded, so
// every receiver decodes its own copy), a head announcement, or block sync.
type simFrame struct {
	msg []byte
	// forged marks a frame an adversary made or changed: the core may
	// refuse it, and that refusal is no violation.
	forged bool
	// tampered is the tamper relay's copy of a proposal frame, raced
	// ahead of the genuine one.
	tampered *simFrame
	head     uint64 // sender's committed height, when > 0
	syncFrom uint64 // request: blocks from this height
	blocks   []*ledger.Block
	certs    []ledger.Commit
}

type eventQueue []*simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type simNode struct {
	id, val   int
	byzantine bool
	acts      advActs // misbehaviour of an adversary's node
	// offset is this node's clock minus simulated time; rate scales its
	// timers (a clock running fast or slow).
	offset    time.Duration
	rate      float64
	key       *ledger.PrivateKey
	core      *Core
	app       *simApp
	disk      PersistedState
	blocks    []*ledger.Block
	certs     []ledger.Commit
	up        bool
	dead      bool // never runs (simConfig.dead)
	epoch     int
	syncAsked time.Duration
	built     uint64    // blocks built, to make each one's entries unique
	edge      *Proposal // actEdgeTime's latest proposal
	edgeTried [2]uint64 // height and round+1 of its latest decision to strike or not
}

func (n *simNode) head() uint64 { return uint64(len(n.blocks)) }

func (n *simNode) headTime() uint64 {
	if len(n.blocks) == 0 {
		return 0
	}
	return n.blocks[len(n.blocks)-1].Header.Time
}

func (n *simNode) headHash() ledger.Hash {
	if len(n.blocks) == 0 {
		return ledger.Hash{}
	}
	return n.blocks[len(n.blocks)-1].Hash()
}

type simStats struct {
	events, delivered, commits, evidence, syncs, crashes, resumes int
	// downReports counts the non-empty down reports handed to cores,
	// shortWaits the propose timeouts shorter than TimeoutPropose that
	// cores asked for because of them, and shortFired those that fired
	// while their core still waited for the proposal (it prevoted nil).
	downReports, shortWaits, shortFired int
	// refused counts adversarial messages honest cores refused; attacks
	// counts the adversaries' misbehaviours by kind, so a test can prove
	// each one was tried.
	refused    int
	attacks    [advKinds]int
	healToDone time.Duration
	end        time.Duration
	maxRound   uint64
}

type sim struct {
	seed     int64
	cfg      simConfig
	rng      *rand.Rand
	keys     []*ledger.PrivateKey
	vals     *ledger.ValidatorSet
	byzVal   map[ledger.Address]bool
	nodes    []*simNode
	queue    eventQueue
	seq      uint64
	now      time.Duration
	chaos    bool
	healAt   time.Duration
	dropRate float64
	dupRate  float64
	groups   []int // partition group per node; nil when whole
	// tamperRate is how often the tamper relay wins the race to a node.
	tamperRate float64
	// decided is, per height, the header and body the first honest node
	// committed, and decidedAt when.
	decided   []simDecided
	decidedAt []time.Duration
	// verified remembers each distinct vote's signature verdict: every node
	// checks the same vote, and like a real node (Config.VerifyVote) the
	// simulator verifies each only once.
	verified map[ledger.Vote]error
	bodies   map[ledger.Hash]error // bodyMatches by bodyHash
	// certs remembers the verdict on each certificate, which every node
	// checks again; verifying signatures is most of the simulator's cost.
	certs map[ledger.Hash]error
	// violations found; a normal run stops at the first.
	violations []error
	stats      simStats
}

type simDecided struct {
	id, body ledger.Hash
}

func newSim(seed int64, cfg simConfig, keys []*ledger.PrivateKey, vals *ledger.ValidatorSet) (*sim, error) {
	s := &sim{seed: seed, cfg: cfg, keys: keys, vals: vals, rng: rand.New(rand.NewPCG(uint64(seed), 0x5a9a)), chaos: true,
		certs: make(map[ledger.Hash]error), verified: make(map[ledger.Vote]error), bodies: make(map[ledger.Hash]error), byzVal: make(map[ledger.Address]bool)}
	s.healAt = time.Duration(s.rng.Int64N(int64(cfg.maxChaos) + 1))
	s.dropRate = s.rng.Float64() * 0.3
	s.dupRate = s.rng.Float64() * 0.1
	s.tamperRate = 0.5 + s.rng.Float64()*0.5
	acts := make(map[int]advActs)
	for _, v := range cfg.twins {
		acts[v] = 0
	}
	for _, v := range cfg.adversaries {
		acts[v] = cfg.acts
		if cfg.randomActs {
			acts[v] = advActs(1 + s.rng.IntN(int(advAll)))
		}
	}
	if len(acts) > cfg.f() && !cfg.control {
		return nil, fmt.Errorf("%d Byzantine validators of %d, more than f = %d", len(acts), cfg.validators, cfg.f())
	}
	for i := range cfg.validators {
		a, byz := acts[i]
		s.nodes = append(s.nodes, &simNode{id: i, val: i, byzantine: byz, acts: a, dead: slices.Contains(cfg.dead, i)})
		if byz {
			s.byzVal[keys[i].Address()] = true
		}
	}
	for _, v := range cfg.twins {
		s.nodes = append(s.nodes, &simNode{id: len(s.nodes), val: v, byzantine: true})
	}
	s.groups = cfg.partition
	for _, n := range s.nodes {
		// Clocks lie within [-skew/2, skew/2] of simulated time, so any two
		// differ by at most skew; timers run up to 10% fast or slow.
		if cfg.skew > 0 {
			n.offset = time.Duration(s.rng.Int64N(int64(cfg.skew)+1)) - cfg.skew/2
		}
		n.rate = 0.9 + 0.2*s.rng.Float64()
		n.key = keys[n.val]
		n.app = &simApp{s: s, n: n}
		if n.dead {
			continue
		}
		if err := s.boot(n); err != nil {
			return nil, err
		}
		s.push(&simEvent{at: time.Duration(s.rng.Int64N(int64(simTick))), kind: evTick, node: n.id})
	}
	s.push(&simEvent{at: s.healAt, kind: evHeal})
	if cfg.partition == nil {
		s.push(&simEvent{at: 0, kind: evPartition})
	}
	return s, nil
}

func (s *sim) config(n *simNode) Config {
	return Config{ChainID: testChainID, Validators: s.vals, Signer: n.key,
		TimeoutPropose: 300 * time.Millisecond, TimeoutPrevote: 100 * time.Millisecond,
		TimeoutPrecommit: 100 * time.Millisecond, TimeoutDelta: 50 * time.Millisecond, quorum: s.cfg.quorum,
		TimeoutProposeDown: s.cfg.timeoutProposeDown, VerifyVote: s.verifyVote}
}

// fullPropose is the propose timeout of round r for a proposer not
// reported down, as config sets it.
func fullPropose(r uint64) time.Duration {
	return 300*time.Millisecond + time.Duration(r)*50*time.Millisecond
}

// tellDown hands n's core what n's committed state reports down at the
// height it is deciding, as the driver does after every commit and for
// every new core.
func (s *sim) tellDown(n *simNode) {
	if s.cfg.report == nil || !n.up {
		return
	}
	h := n.head() + 1
	down := s.cfg.report(s, n, h)
	if len(down) > 0 {
		s.stats.downReports++
	}
	rd, err := n.core.SetDown(h, down)
	s.handle(n, rd, err, false)
}

func (s *sim) verifyVote(v *ledger.Vote) error {
	err, ok := s.verified[*v]
	if !ok {
		err = v.Verify(testChainID)
		s.verified[*v] = err
	}
	return err
}

// clock is node n's wall clock in Unix milliseconds.
func (s *sim) clock(n *simNode) uint64 {
	return uint64(simEpoch + (s.now + n.offset).Milliseconds())
}

// after is d as node n's timers measure it.
func (n *simNode) after(d time.Duration) time.Duration {
	return time.Duration(float64(d) * n.rate)
}

// boot (re)creates n's core from its ledger and disk, as a restarted node
// does, and starts it when it resumes a round or has work.
func (s *sim) boot(n *simNode) error {
	c, err := NewCore(s.config(n), n.head()+1, n.disk)
	if err != nil {
		return fmt.Errorf("node %d boot at height %d: %w", n.id, n.head()+1, err)
	}
	n.core, n.up = c, true
	n.epoch++
	s.tellDown(n)
	resume := n.disk.Height == n.head()+1 && n.disk.Step != StepNewHeight
	if resume && s.now > 0 {
		s.stats.resumes++
	}
	if resume || s.hasWork(n, n.head()+1) {
		s.start(n)
	}
	return nil
}

// hasWork says whether n's mempool holds entries for height h: the
// validator whose turn it is always does, others two times in three, so
// some heights are started by a message from another validator.
func (s *sim) hasWork(n *simNode, h uint64) bool {
	if h > s.cfg.heights {
		return false
	}
	if s.cfg.busy || uint64(n.val) == h%uint64(s.cfg.validators) {
		return true
	}
	x := uint64(s.seed)*0x9e3779b97f4a7c15 ^ uint64(n.id)<<32 ^ h
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	return x%3 != 0
}

func (s *sim) push(e *simEvent) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.queue, e)
}

func (s *sim) violate(kind error, format string, args ...any) {
	s.violations = append(s.violations, fmt.Errorf("%w at %s: %s", kind, s.now, fmt.Sprintf(format, args...)))
}

func (s *sim) honest() []*simNode {
	var out []*simNode
	for _, n := range s.nodes {
		if !n.byzantine {
			out = append(out, n)
		}
	}
	return out
}

// run plays the simulation until every honest node has decided the target
// height, a violation is found, or the liveness bound passes.
func (s *sim) run() {
	deadline := s.healAt + s.cfg.liveBound
	for s.queue.Len() > 0 {
		if len(s.violations) > 0 && (!s.cfg.control || s.forked()) {
			return
		}
		if s.done() {
			s.stats.healToDone = max(0, s.now-s.healAt)
			return
		}
		e := heap.Pop(&s.queue).(*simEvent)
		s.now = e.at
		if s.now > deadline {
			if !s.cfg.control {
				var heads []uint64
				for _, n := range s.honest() {
					heads = append(heads, n.head())
				}
				s.violate(errLiveness, "honest heads %v, want %d, %s after healing", heads, s.cfg.heights, s.cfg.liveBound)
			}
			return
		}
		s.stats.events++
		if s.stats.events > simMaxEvent {
			s.violate(errLiveness, "more than %d events", simMaxEvent)
			return
		}
		s.dispatch(e)
		s.stats.end = s.now
	}
}

func (s *sim) forked() bool {
	for _, v := range s.violations {
		if errors.Is(v, errFork) {
			return true
		}
	}
	return false
}

func (s *sim) done() bool {
	for _, n := range s.honest() {
		if !n.dead && n.head() < s.cfg.heights {
			return false
		}
	}
	return true
}

func (s *sim) dispatch(e *simEvent) {
	switch e.kind {
	case evHeal:
		s.chaos, s.groups = false, nil
		for _, n := range s.nodes {
			if !n.up && !n.dead {
				s.restart(n)
			}
		}
	case evPartition:
		if !s.chaos {
			return
		}
		s.groups = nil
		if s.rng.IntN(2) == 0 {
			s.groups = make([]int, len(s.nodes))
			if s.rng.IntN(2) == 0 {
				for i := range s.groups {
					s.groups[i] = s.rng.IntN(2)
				}
			} else {
				// Halves as even as can be: the split where two quorums
				// that are too small both fit.
				for k, i := range s.rng.Perm(s.cfg.validators) {
					s.groups[i] = k % 2
				}
			}
			// A twin does the most harm with one node on either side (the
			// Twins method): place them so in most partitions.
			for _, n := range s.nodes[s.cfg.validators:] {
				if s.rng.IntN(4) != 0 {
					s.groups[n.id] = 1 - s.groups[n.val]
				}
			}
		}
		s.push(&simEvent{at: s.now + 200*time.Millisecond + time.Duration(s.rng.Int64N(int64(1300*time.Millisecond))), kind: evPartition})
	case evRestart:
		n := s.nodes[e.node]
		if !n.up && n.epoch == e.epoch {
			s.restart(n)
		}
	case evTick:
		s.tick(s.nodes[e.node])
		s.push(&simEvent{at: s.now + s.nodes[e.node].after(simTick), kind: evTick, node: e.node})
	case evTimeout:
		n := s.nodes[e.node]
		if !n.up || n.epoch != e.epoch {
			return
		}
		if t, st := e.timeout, n.core.Status(); t.Step == StepPropose && t.Duration < fullPropose(t.Round) &&
			st.Started && st.Height == t.Height && st.Round == t.Round && st.Step == StepPropose {
			s.stats.shortFired++
		}
		rd, err := n.core.Timeout(e.timeout)
		s.handle(n, rd, err, false)
	case evDeliver:
		n := s.nodes[e.node]
		if !n.up {
			return
		}
		s.stats.delivered++
		s.receive(n, e.from, e.frame)
	}
}

func (s *sim) restart(n *simNode) {
	if err := s.boot(n); err != nil {
		s.violate(errNode, "%v", err)
	}
}

func (s *sim) crash(n *simNode) {
	n.up = false
	n.epoch++
	s.stats.crashes++
	s.push(&simEvent{at: s.now + 100*time.Millisecond + time.Duration(s.rng.Int64N(int64(2*time.Second))), kind: evRestart, node: n.id, epoch: n.epoch})
}

func (s *sim) tick(n *simNode) {
	if !n.up {
		return
	}
	if s.chaos && s.cfg.crashes && !n.byzantine && s.rng.IntN(50) == 0 {
		s.crash(n)
		return
	}
	for _, m := range n.core.Republish() {
		if err := covered(n.disk, m); err != nil {
			s.violate(errUnsafe, "node %d re-publishes %v", n.id, err)
		}
		s.send1(n, m)
	}
	if n.acts != 0 {
		s.misbehave(n, nil)
	}
	s.broadcastFrame(n, &simFrame{head: n.head()})
}

func (s *sim) start(n *simNode) {
	rd, err := n.core.Start()
	s.handle(n, rd, err, false)
}

// send1 sends a message n's core produced: as is, or through the
// adversary's hands.
func (s *sim) send1(n *simNode, m Message) {
	if n.acts != 0 {
		s.misbehave(n, &m)
		return
	}
	s.broadcast(n, m)
}

// handle is the driver: commit, persist, send, schedule, in the order the
// Ready contract gives, with a crash possible between any two of them.
// forged says the input was an adversary's, which the core may refuse.
func (s *sim) handle(n *simNode, rd Ready, err error, forged bool) {
	if err != nil {
		switch {
		case s.cfg.control || n.byzantine:
			// A broken quorum makes one branch's blocks invalid on the
			// other; a Byzantine node's core is fed its own lies.
		case forged && (errors.Is(err, ErrInvalidMessage) || errors.Is(err, ErrInvalidBlock)):
			s.stats.refused++
		default:
			s.violate(errNode, "node %d: %v", n.id, err)
		}
	}
	cut := -1 // how many of the steps below happen before a crash
	if s.chaos && s.cfg.crashes && !n.byzantine && !rd.IsEmpty() && s.rng.IntN(100) == 0 {
		cut = s.rng.IntN(3 + len(rd.Messages))
	}
	if cut == 0 {
		s.crash(n)
		return
	}
	if rd.Commit != nil {
		s.commit(n, rd.Commit.Block, rd.Commit.Commit)
	}
	if cut == 1 {
		s.crash(n)
		return
	}
	if rd.Persist != nil {
		n.disk = *rd.Persist
	}
	for i, m := range rd.Messages {
		if cut == 2+i {
			s.crash(n)
			return
		}
		if err := covered(n.disk, m); err != nil {
			s.violate(errUnsafe, "node %d: %v", n.id, err)
		}
		s.send1(n, m)
	}
	for _, t := range rd.Timeouts {
		if t.Step == StepPropose && t.Duration < fullPropose(t.Round) {
			s.stats.shortWaits++
		}
		s.push(&simEvent{at: s.now + n.after(t.Duration), kind: evTimeout, node: n.id, timeout: t, epoch: n.epoch})
	}
	for _, ev := range rd.Evidence {
		s.stats.evidence++
		a, b := ev.A, ev.B
		switch {
		case a.Validator != b.Validator || a.Height != b.Height || a.Round != b.Round || a.Type != b.Type || a.BlockHash == b.BlockHash:
			s.violate(errNode, "node %d reports evidence of votes that do not conflict: %+v", n.id, ev)
		case !s.byzVal[a.Validator]:
			s.violate(errEquivocation, "node %d caught honest validator %s signing %s and %s at %d/%d",
				n.id, a.Validator.Hex(), a.BlockHash.TerminalString(), b.BlockHash.TerminalString(), a.Height, a.Round)
		}
	}
	if st := n.core.Status(); st.Round > s.stats.maxRound {
		s.stats.maxRound = st.Round
	}
	s.answer(n, rd, forged)
	if rd.Commit != nil {
		s.tellDown(n)
	}
	if rd.Commit != nil && n.up && s.hasWork(n, n.head()+1) {
		s.start(n)
	}
}

// answer serves what rd asks of the app, as the driver does, unless the
// node crashed meanwhile; forged is handle's, for the input that led here.
func (s *sim) answer(n *simNode, rd Ready, forged bool) {
	if r := rd.ProposalRequest; r != nil && n.up {
		if b, err := n.app.ProposeBlock(r.Height, r.Round); err != nil {
			s.handle(n, Ready{}, err, forged)
		} else {
			next, err := n.core.Proposed(b)
			s.handle(n, next, err, forged)
		}
	}
	for _, v := range rd.Validations {
		if !n.up {
			return
		}
		// A verdict may be asked for long after the message that brought
		// the block: refusing a Byzantine proposer's block is no fault.
		next, err := n.core.Validated(v.Hash, n.app.ValidateBlock(v.Block))
		s.handle(n, next, err, forged || s.byzVal[v.Block.Header.Proposer])
	}
}

// commit records a decided (or synced) block and checks the invariants.
func (s *sim) commit(n *simNode, b *ledger.Block, cert ledger.Commit) {
	h := n.head() + 1
	id := b.Hash()
	if b.Header.Height != h {
		s.violate(errNode, "node %d at height %d decided a block of height %d", n.id, h, b.Header.Height)
		return
	}
	if err := s.verifyCommit(h, id, &cert); err != nil {
		s.violate(errCert, "node %d height %d: %v", n.id, h, err)
	}
	if !n.byzantine {
		s.checkExtends(n, b)
		body := bodyHash(b)
		if err := s.bodyMatches(body, b); err != nil {
			s.violate(errBody, "node %d committed block %s at height %d: %v", n.id, id.TerminalString(), h, err)
		}
		for uint64(len(s.decided)) < h {
			s.decided = append(s.decided, simDecided{})
		}
		switch first := s.decided[h-1]; {
		case first.id == (ledger.Hash{}):
			s.decided[h-1] = simDecided{id: id, body: body}
			for uint64(len(s.decidedAt)) < h {
				s.decidedAt = append(s.decidedAt, 0)
			}
			s.decidedAt[h-1] = s.now
		case first.id != id:
			s.violate(errFork, "height %d: node %d committed %s, another honest node %s", h, n.id, id.TerminalString(), first.id.TerminalString())
		case first.body != body:
			s.violate(errBody, "height %d: node %d committed block %s with body %s, another honest node with body %s",
				h, n.id, id.TerminalString(), body.TerminalString(), first.body.TerminalString())
		}
	}
	n.blocks = append(n.blocks, b)
	n.certs = append(n.certs, cert)
	s.stats.commits++
}

// verifyCommit is ledger.VerifyCommit, once per distinct certificate.
func (s *sim) verifyCommit(h uint64, id ledger.Hash, cert *ledger.Commit) error {
	if cert.Height != h || cert.BlockHash != id {
		return ledger.VerifyCommit(testChainID, s.vals, h, id, cert)
	}
	key := cert.Hash()
	err, ok := s.certs[key]
	if !ok {
		err = ledger.VerifyCommit(testChainID, s.vals, h, id, cert)
		s.certs[key] = err
	}
	return err
}

func (s *sim) connected(a, b int) bool {
	return s.groups == nil || s.groups[a] == s.groups[b]
}

// checkExtends checks that b, committed by n, extends n's chain: what
// Valid(v) requires of the parent, whatever the app made of it.
func (s *sim) checkExtends(n *simNode, b *ledger.Block) {
	h := b.Header.Height
	switch {
	case b.Header.Prev != n.headHash():
		s.violate(errChain, "node %d committed block %s at height %d on parent %s, its head is %s",
			n.id, b.Hash().TerminalString(), h, b.Header.Prev.TerminalString(), n.headHash().TerminalString())
	case b.Header.Time <= n.headTime():
		s.violate(errChain, "node %d committed block %s at height %d with time %d, its head's is %d",
			n.id, b.Hash().TerminalString(), h, b.Header.Time, n.headTime())
	case h > 1 && (b.LastCommit.Height != h-1 || b.LastCommit.BlockHash != b.Header.Prev):
		s.violate(errChain, "node %d committed block %s at height %d with a last commit for %d/%s",
			n.id, b.Hash().TerminalString(), h, b.LastCommit.Height, b.LastCommit.BlockHash.TerminalString())
	case h > 1 && s.cfg.quorum == 0:
		if err := s.verifyCommit(h-1, b.Header.Prev, &b.LastCommit); err != nil {
			s.violate(errChain, "node %d committed block %s at height %d: last commit: %v", n.id, b.Hash().TerminalString(), h, err)
		}
	}
}

// bodyMatches checks what a header commits to: the entries, the previous
// certificate and the proposer's signature over the header; once per
// distinct block (body is its bodyHash), since every node commits it.
func (s *sim) bodyMatches(body ledger.Hash, b *ledger.Block) error {
	err, ok := s.bodies[body]
	if !ok {
		err = bodyMatches(b)
		s.bodies[body] = err
	}
	return err
}

func bodyMatches(b *ledger.Block) error {
	switch {
	case b.Header.EntriesRoot != ledger.EntriesRoot(b.Entries):
		return errors.New("entries root does not match the entries")
	case b.Header.LastCommitHash != b.LastCommit.Hash():
		return errors.New("last commit hash does not match the certificate")
	}
	return b.VerifySignature()
}

// bodyHash identifies a whole block, body and signature included, where
// Block.Hash covers only the header.
func bodyHash(b *ledger.Block) ledger.Hash {
	enc, err := rlp.EncodeToBytes(b)
	if err != nil {
		panic(fmt.Sprintf("encode block: %v", err)) // a block built by the simulator always encodes
	}
	return crypto.Keccak256Hash(enc)
}

func (s *sim) broadcast(from *simNode, m Message) {
	f := s.frame(from, m, false)
	if f == nil {
		return
	}
	if s.cfg.tamper && m.Proposal != nil {
		f.tampered = s.frame(from, Message{Proposal: s.tamperedCopy(m.Proposal)}, true)
	}
	s.broadcastFrame(from, f)
}

// frame encodes m (every receiver decodes its own copy).
func (s *sim) frame(from *simNode, m Message, forged bool) *simFrame {
	b, err := m.MarshalBinary()
	if err != nil {
		s.violate(errNode, "node %d encodes %s: %v", from.id, m, err)
		return nil
	}
	return &simFrame{msg: b, forged: forged}
}

func (s *sim) broadcastFrame(from *simNode, f *simFrame) {
	for _, to := range s.nodes {
		if to != from {
			s.send(from.id, to.id, f)
		}
	}
}

// send puts f on the wire from one node to another: dropped, duplicated
// and delayed at random while the network is unhealed, and never across a
// partition.
func (s *sim) send(from, to int, f *simFrame) {
	if !s.connected(from, to) {
		return
	}
	copies := 1
	if s.chaos {
		if s.rng.Float64() < s.dropRate {
			return
		}
		if s.rng.Float64() < s.dupRate {
			copies = 2
		}
	}
	for range copies {
		d := time.Millisecond + time.Duration(s.rng.Int64N(int64(20*time.Millisecond)))
		if s.chaos && s.rng.IntN(10) == 0 {
			d += time.Duration(s.rng.Int64N(int64(500 * time.Millisecond)))
		}
		if f.tampered != nil && s.rng.Float64() < s.tamperRate {
			// The relay sits closer to the receiver than the proposer
			// does: its copy arrives first. It keeps the sender's id, as
			// gossip would attribute it to the signer.
			s.stats.attacks[advTamper]++
			s.push(&simEvent{at: s.now + d/2, kind: evDeliver, node: to, from: from, frame: f.tampered})
		}
		s.push(&simEvent{at: s.now + d, kind: evDeliver, node: to, from: from, frame: f})
	}
}

func (s *sim) receive(n *simNode, from int, f *simFrame) {
	switch {
	case f.msg != nil:
		var m Message
		if err := m.UnmarshalBinary(f.msg); err != nil {
			s.violate(errNode, "node %d decodes a message of node %d: %v", n.id, from, err)
			return
		}
		if m.Height() > n.core.Status().Height {
			s.askSync(n, from)
		}
		// A Byzantine validator's block may be refused even when an honest
		// one re-proposes it (it may be valid by one clock and not yet by
		// another).
		forged := f.forged || s.nodes[from].byzantine || m.Proposal != nil && s.byzVal[m.Proposal.Block.Header.Proposer]
		rd, err := n.core.Step(m)
		s.handle(n, rd, err, forged)
	case f.syncFrom > 0:
		if f.syncFrom <= n.head() {
			s.send(n.id, from, &simFrame{blocks: n.blocks[f.syncFrom-1:], certs: n.certs[f.syncFrom-1:]})
		}
	case f.blocks != nil:
		s.applySync(n, f)
	case f.head > n.head():
		s.askSync(n, from)
	}
}

func (s *sim) askSync(n *simNode, from int) {
	if n.syncAsked != 0 && s.now-n.syncAsked < 100*time.Millisecond {
		return
	}
	n.syncAsked = s.now
	s.send(n.id, from, &simFrame{syncFrom: n.head() + 1})
}

// applySync is block sync: it takes the blocks it can verify (certificate
// and validity against its own chain) and restarts the core above them.
func (s *sim) applySync(n *simNode, f *simFrame) {
	took := 0
	for i, b := range f.blocks {
		h := b.Header.Height
		if h <= n.head() {
			continue
		}
		if h != n.head()+1 {
			break
		}
		if s.cfg.quorum == 0 {
			if err := s.verifyCommit(h, b.Hash(), &f.certs[i]); err != nil {
				break
			}
		}
		if err := n.app.ValidateBlock(b); err != nil {
			break
		}
		s.commit(n, b, f.certs[i])
		took++
	}
	if took == 0 {
		return
	}
	s.stats.syncs++
	s.restart(n)
}

// simApp is the node's side of the core, and the only place the simulator
// meets the core's App: blocks carry the height and a counter and are valid
// when they extend the node's own chain with the certificate of its head,
// at a time after the parent's and not beyond simDrift ahead of the node's
// clock.
type simApp struct {
	s *sim
	n *simNode
}

func (a *simApp) ProposeBlock(h, r uint64) (*ledger.Block, error) {
	n := a.n
	if h != n.head()+1 {
		return nil, fmt.Errorf("node %d asked to build height %d on head %d", n.id, h, n.head())
	}
	return a.s.buildBlock(n, h, r)
}

func (a *simApp) ValidateBlock(b *ledger.Block) error {
	n := a.n
	h := b.Header.Height
	switch {
	case a.s.cfg.trustingApp:
		return nil
	case b.Header.Prev != n.headHash():
		return fmt.Errorf("parent %s, want %s", b.Header.Prev.TerminalString(), n.headHash().TerminalString())
	case b.Header.EntriesRoot != ledger.EntriesRoot(b.Entries):
		return errors.New("entries root does not match the entries")
	case b.Header.LastCommitHash != b.LastCommit.Hash():
		return errors.New("last commit hash does not match the certificate")
	case h > 1 && (b.LastCommit.Height != h-1 || b.LastCommit.BlockHash != b.Header.Prev):
		return fmt.Errorf("last commit is for %d/%s", b.LastCommit.Height, b.LastCommit.BlockHash.TerminalString())
	case h == 1 && len(b.LastCommit.Signatures) > 0:
		return errors.New("the first block carries a last commit")
	case b.Header.Time <= n.headTime():
		return fmt.Errorf("time %d is not after the parent's %d", b.Header.Time, n.headTime())
	case b.Header.Time > a.s.clock(n)+uint64(simDrift.Milliseconds()):
		// Wrapped as the node's app does: the verdict holds until the
		// clock has moved on, not for the whole height.
		return fmt.Errorf("time %d is ahead of this node's clock %d by more than %s: %w", b.Header.Time, a.s.clock(n), simDrift, ErrTransient)
	}
	if h > 1 && a.s.cfg.quorum == 0 {
		if err := a.s.verifyCommit(h-1, b.Header.Prev, &b.LastCommit); err != nil {
			return fmt.Errorf("last commit: %w", err)
		}
	}
	return nil
}

// buildBlock builds and signs n's block for height h in round r on its
// head: one entry unique to the node and the call, at the node's clock but
// always after the parent (as node.App does).
func (s *sim) buildBlock(n *simNode, h, r uint64) (*ledger.Block, error) {
	n.built++
	var last ledger.Commit
	if len(n.certs) > 0 {
		last = n.certs[len(n.certs)-1]
	}
	b := &ledger.Block{
		Header: ledger.Header{ChainID: testChainID, Height: h, Round: r, Time: max(s.clock(n), n.headTime()+1),
			Prev: n.headHash(), Proposer: n.key.Address(), LastCommitHash: last.Hash()},
		Entries:    []ledger.Entry{{Kind: ledger.KindSubmission, Body: fmt.Appendf(nil, "node %d height %d block %d", n.id, h, n.built)}},
		LastCommit: last,
	}
	b.Header.EntriesRoot = ledger.EntriesRoot(b.Entries)
	if err := b.Sign(n.key); err != nil {
		return nil, err
	}
	return b, nil
}

// seedCount is -sim.seeds, or a tenth of it under -short unless the flag
// was given.
func seedCount() int {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "sim.seeds" })
	if testing.Short() && !given {
		return max(1, *simSeeds/10)
	}
	return *simSeeds
}

// simSeedList is the seeds a test runs: -sim.seed alone, or count seeds.
func simSeedList(count int) []int64 {
	if *simSeed >= 0 {
		return []int64{*simSeed}
	}
	seeds := make([]int64, count)
	for i := range seeds {
		seeds[i] = int64(i)
	}
	return seeds
}

// playSims plays cfg for every seed, one simulation per core at a time
// (each is single-threaded and deterministic).
func playSims(t *testing.T, cfg simConfig, seeds []int64) []*sim {
	t.Helper()
	keys, vals := testKeys(t, cfg.validators)
	sims := make([]*sim, len(seeds))
	errs := make([]error, len(seeds))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				s, err := newSim(seeds[i], cfg, keys, vals)
				if err != nil {
					errs[i] = err
					continue
				}
				s.run()
				sims[i] = s
			}
		})
	}
	for i := range seeds {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return sims
}

// runSims plays cfg for every seed and fails naming the first seed that
// broke an invariant, for replay.
func runSims(t *testing.T, cfg simConfig, seeds []int64) []simStats {
	t.Helper()
	var stats []simStats
	for i, s := range playSims(t, cfg, seeds) {
		if len(s.violations) > 0 {
			t.Fatalf("seed %d: %v\nreplay: go test ./consensus -run '^%s$' -sim.seed=%d", seeds[i], s.violations[0], t.Name(), seeds[i])
		}
		stats = append(stats, s.stats)
	}
	return stats
}

func logStats(t *testing.T, seeds int, stats []simStats, started time.Time) {
	var sum simStats
	for _, st := range stats {
		sum.events += st.events
		sum.delivered += st.delivered
		sum.commits += st.commits
		sum.evidence += st.evidence
		sum.syncs += st.syncs
		sum.crashes += st.crashes
		sum.resumes += st.resumes
		sum.healToDone = max(sum.healToDone, st.healToDone)
		sum.end += st.end
		sum.maxRound = max(sum.maxRound, st.maxRound)
	}
	t.Logf("%d seeds x %d heights in %s: %d events, %d deliveries, %d commits, %d syncs, %d crashes (%d resumed mid-round), %d evidence; max round %d; slowest heal-to-done %s; simulated %s",
		seeds, *simHeights, time.Since(started).Round(time.Millisecond), sum.events, sum.delivered, sum.commits, sum.syncs,
		sum.crashes, sum.resumes, sum.evidence, sum.maxRound, sum.healToDone, sum.end.Round(time.Millisecond))
}

// simSizes are the network sizes every simulator test covers: the
// smallest with a Byzantine validator, and sizes where f is 2 and 3, where
// a quorum of n/2+1 is no longer the real one.
var simSizes = []int{4, 7, 10}

// simSeedsFor scales a test's seed count by the cost of a network of n
// validators, which grows about with n squared (messages per step; under
// -race, n = 4 costs about 15 ms a seed, n = 10 about 140 ms), keeping at
// least 4 seeds so that every size is searched.
func simSeedsFor(count, n int) int {
	return max(min(count, 4), count*16/(n*n))
}

// chaosConfig is the network every search runs on: random partitions,
// drops, duplicates, delays and crashes for up to five seconds, clocks
// skewed up to the drift bound, and down reports that are wrong and that
// nodes disagree about (misreport).
func chaosConfig(n int) simConfig {
	return simConfig{validators: n, heights: *simHeights, crashes: true, skew: simDrift * 9 / 10,
		maxChaos: 5 * time.Second, liveBound: 30 * time.Second, report: (*sim).misreport}
}

// lastValidators returns the k highest validator indices of n.
func lastValidators(n, k int) []int {
	var out []int
	for i := n - k; i < n; i++ {
		out = append(out, i)
	}
	return out
}

func TestSimHonestNetwork(t *testing.T) {
	for _, n := range simSizes {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			started := time.Now()
			seeds := simSeedList(simSeedsFor(seedCount(), n))
			stats := runSims(t, chaosConfig(n), seeds)
			logStats(t, len(seeds), stats, started)
		})
	}
}

func TestSimByzantineTwins(t *testing.T) {
	for _, n := range simSizes {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			started := time.Now()
			cfg := chaosConfig(n)
			cfg.twins = leaders(n, cfg.f())
			seeds := simSeedList(simSeedsFor(max(1, seedCount()/3), n))
			stats := runSims(t, cfg, seeds)
			logStats(t, len(seeds), stats, started)
			evidence := 0
			for _, st := range stats {
				evidence += st.evidence
			}
			if evidence == 0 && len(seeds) > 10 {
				t.Fatalf("twins signed conflicting votes in %d seeds and no node reported evidence", len(seeds))
			}
		})
	}
}

// brokenQuorumConfig is a network that forks a core whose quorum q is
// below the real one: two fixed groups, each of q nodes, that share only
// equivocators. Two quorums of q among n validators overlap in 2q-n of
// them, so that many twins (each with one node in either group) let both
// groups decide alone; the honest validators alternate between the groups,
// so that each group leads one of the first two rounds of every height.
func brokenQuorumConfig(n, q int) simConfig {
	t := max(0, 2*q-n)
	partition := make([]int, n+t)
	for i := range n - t {
		partition[i] = i % 2
	}
	for i := n; i < n+t; i++ {
		partition[i] = 1 // the second node of each twin
	}
	return simConfig{validators: n, twins: lastValidators(n, t), quorum: q, heights: 5, partition: partition,
		skew: simDrift * 9 / 10, maxChaos: 3 * time.Second, liveBound: time.Second, control: true}
}

// controlSearch plays seeds 0, 1, ... a few at a time (each batch in
// parallel) until one shows a violation of every kind in want, or 40 seeds
// have run; it returns, per kind, the seeds that showed it. Fixed seeds:
// -sim.seed replays the other tests, and one seed alone need not break.
func controlSearch(t *testing.T, cfg simConfig, want ...error) [][]int64 {
	t.Helper()
	found := make([][]int64, len(want))
	missing := func() bool { return slices.ContainsFunc(found, func(s []int64) bool { return len(s) == 0 }) }
	for next := int64(0); next < 40 && missing(); {
		seeds := make([]int64, runtime.GOMAXPROCS(0))
		for i := range seeds {
			seeds[i] = next
			next++
		}
		for i, s := range playSims(t, cfg, seeds) {
			for k, kind := range want {
				if slices.ContainsFunc(s.violations, func(v error) bool { return errors.Is(v, kind) }) {
					found[k] = append(found[k], seeds[i])
				}
			}
		}
	}
	for k, kind := range want {
		if len(found[k]) == 0 {
			t.Errorf("no %v detected in seeds 0 to 39", kind)
		}
	}
	return found
}

// TestSimControlBrokenQuorum proves the checker bites: with a quorum of
// n/2 or n/2+1 (for n = 4, n/2+1 is the real quorum, so only n/2 is
// broken there), some seed must fork and the checker must say so, and
// certificates with too few signatures must fail ledger.VerifyCommit.
//
// "partition" runs the fixed split of brokenQuorumConfig, with the twins
// that quorum needs; the same network with the real quorum stays safe.
// "search" runs the chaotic network of the other tests with f twins and
// must find a fork by itself; it does, within 40 seeds, for every broken
// quorum but n/2+1 = 6 of 10, which needs an even split of the validators
// with the twins' nodes apart for as long as a height takes (1 seed in 100
// when tried), and is left to the fixed partition.
func TestSimControlBrokenQuorum(t *testing.T) {
	for _, c := range []struct{ n, q int }{{4, 2}, {7, 3}, {7, 4}, {10, 5}, {10, 6}} {
		t.Run(fmt.Sprintf("n=%d/quorum=%d/partition", c.n, c.q), func(t *testing.T) {
			cfg := brokenQuorumConfig(c.n, c.q)
			if real := (2*c.n)/3 + 1; c.q >= real || len(cfg.twins) > cfg.f() {
				t.Fatalf("quorum %d of %d is not a broken one the simulator can reach (real %d, %d twins)", c.q, c.n, real, len(cfg.twins))
			}
			found := controlSearch(t, cfg, errFork, errCert)
			t.Logf("forks caught in seeds %v; bad certificates in seeds %v", found[0], found[1])

			cfg.quorum, cfg.control = 0, false
			cfg.heights, cfg.liveBound = *simHeights, 30*time.Second
			runSims(t, cfg, simSeedList(simSeedsFor(max(1, seedCount()/15), c.n)))
		})
		if c.n == 10 && c.q == 6 {
			continue
		}
		t.Run(fmt.Sprintf("n=%d/quorum=%d/search", c.n, c.q), func(t *testing.T) {
			cfg := chaosConfig(c.n)
			cfg.twins = leaders(c.n, cfg.f())
			cfg.quorum, cfg.control, cfg.liveBound = c.q, true, time.Second
			found := controlSearch(t, cfg, errFork)
			t.Logf("forks caught in seeds %v", found[0])
		})
	}
}
