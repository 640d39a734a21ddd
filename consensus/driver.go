package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/sagachain/sagachain/ledger"
)

// Host is what a Driver needs from its node: the App, whose answers it
// hands to the core when a Ready asks for them, and the I/O.
type Host interface {
	App
	// HasWork reports whether a new block would carry anything.
	HasWork() bool
	// CommitBlock writes a decided block, its certificate and its state in
	// one synced write, together with the core's persisted state when that
	// is not nil (one sync per block instead of two).
	CommitBlock(b *ledger.Block, c *ledger.Commit, consensusState []byte) error
	// SaveConsensusState stores and syncs the core's persisted state.
	SaveConsensusState(b []byte) error
	// Broadcast sends a message to the other validators.
	Broadcast(m Message)
	// Evidence offers equivocation evidence for a block.
	Evidence(ev ledger.Evidence)
	// CatchUp fetches and commits, verifying as it goes, the blocks up to
	// height target from the peer that showed it is there, and returns the
	// new head. A message of height h proves block h-1 is committed. With
	// peer "" and target AnyHeight it asks the connected peers for
	// whatever they have past the head, and finding nothing is no error;
	// with no peer connected it returns ErrNoPeers.
	CatchUp(ctx context.Context, peer string, target uint64) (uint64, error)
	// NewCore returns a core for the height after head, resumed from the
	// persisted consensus state; nil for an observer, which only follows.
	NewCore(head uint64) (*Core, error)
	// Head returns the height of the last committed block.
	Head() (uint64, error)
	// ProposerDown reports whether validator a is down as far as waiting
	// for its proposal goes: the committed state marks it down, or the host
	// has no connection to it. It only shortens a timer.
	ProposerDown(a ledger.Address) bool
}

// DriverConfig tunes a Driver's timing.
type DriverConfig struct {
	// Republish is how often the latest proposal and votes are sent again.
	Republish time.Duration
	// Poll is how often an idle driver asks whether there is work, so that
	// a deadline passing with nothing else waiting still gets its block.
	Poll time.Duration
	// Probe is how often an idle driver asks its peers for blocks past its
	// head. Messages of a later height start a catch-up too, but an idle
	// network sends none, so a validator restarted behind it would wait
	// for the next operation to learn that it is behind.
	Probe time.Duration
}

// AnyHeight is the CatchUp target of a probe: as far as the peers have.
const AnyHeight = math.MaxUint64

// ErrNoPeers is CatchUp's error when no peer is connected to ask. The
// driver then probes again after Poll rather than Probe, so that a node
// starting up asks as soon as its first peer connects.
var ErrNoPeers = errors.New("no peer connected")

// Driver owns a Core and does its I/O: it feeds it messages and timeouts,
// persists its state before anything it signed leaves the process, commits
// its decisions, schedules its timers, and starts a height only when there
// is something to put in a block (DESIGN §5). Only Run's goroutine touches
// the core.
type Driver struct {
	core     *Core
	host     Host
	cfg      DriverConfig
	log      *slog.Logger
	inbox    chan inbound
	timeouts chan TimeoutInfo
	work     <-chan struct{}
	// seen is the highest height an observer has seen a message for, and
	// seenPeer who sent it: an observer fetches that height's block once
	// it is committed, since no later message may come while the network
	// is idle.
	seen     uint64
	seenPeer string
	// heard is when a message of this node's height or later last
	// arrived. A probe is for a silent network: while such messages flow,
	// one from ahead starts a catch-up itself, and a probe would only ask
	// every peer for nothing, each exchange holding the driver (and so
	// the core) until the peer answers or the sync timeout passes. A peer
	// whose link was cut without a reset still counts as connected for a
	// while, and asking it stalled each of the other validators for the
	// full sync timeout in turn, so that a quorum that had lost one of
	// four committed nothing for 15s.
	heard time.Time
}

// inbound is a message and the peer it came from.
type inbound struct {
	msg  Message
	peer string
}

// NewDriver returns the driver of core (nil for an observer). work is
// signalled when an entry arrives.
func NewDriver(core *Core, host Host, work <-chan struct{}, cfg DriverConfig, log *slog.Logger) *Driver {
	if cfg.Republish <= 0 {
		cfg.Republish = 300 * time.Millisecond
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.Probe <= 0 {
		cfg.Probe = 2 * time.Second
	}
	return &Driver{core: core, host: host, cfg: cfg, log: log, inbox: make(chan inbound, 4096),
		timeouts: make(chan TimeoutInfo, 64), work: work}
}

// Deliver hands the driver a message from peer. It drops the message when
// the inbox is full: re-publishing makes up for it.
func (d *Driver) Deliver(m Message, peer string) {
	select {
	case d.inbox <- inbound{msg: m, peer: peer}:
	default:
	}
}

// Run drives the core until ctx ends or the core halts.
func (d *Driver) Run(ctx context.Context) error {
	republish := time.NewTicker(d.cfg.Republish)
	defer republish.Stop()
	poll := time.NewTicker(d.cfg.Poll)
	defer poll.Stop()
	probe := time.NewTimer(d.cfg.Poll)
	defer probe.Stop()
	if d.core != nil {
		if err := d.call(ctx, d.tellDown()); err != nil {
			return err
		}
	}
	// A core restarted mid-height resumes its round and re-sends its votes.
	if d.core != nil && d.core.Status().Step != StepNewHeight {
		if err := d.call(ctx, d.core.Start); err != nil {
			return err
		}
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case in := <-d.inbox:
			err = d.receive(ctx, in)
		case t := <-d.timeouts:
			if d.core != nil {
				err = d.call(ctx, func() (Ready, error) { return d.core.Timeout(t) })
			}
		case <-d.work:
			err = d.startIfWork(ctx)
		case <-poll.C:
			if d.core == nil {
				err = d.follow(ctx)
				break
			}
			// Asked again at every poll, not only after a commit: a
			// validator killed in the middle of a height would otherwise
			// cost that height's round it leads the full waits.
			if err = d.call(ctx, d.tellDown()); err == nil {
				err = d.startIfWork(ctx)
			}
		case <-probe.C:
			next := d.cfg.Probe
			if quiet := time.Since(d.heard); quiet < d.cfg.Probe {
				next = d.cfg.Probe - quiet
			} else if d.core == nil || !d.core.Status().Started {
				var peers bool
				peers, err = d.catchUp(ctx, "", AnyHeight)
				if !peers {
					next = d.cfg.Poll
				}
			}
			probe.Reset(next)
		case <-republish.C:
			if d.core != nil {
				for _, m := range d.core.Republish() {
					d.host.Broadcast(m)
				}
			}
		}
		if err != nil {
			return err
		}
	}
}

// receive steps the core with a message, first catching up when the
// message shows the network is past this node's height.
func (d *Driver) receive(ctx context.Context, in inbound) error {
	h := in.msg.Height()
	height, err := d.height()
	if err != nil {
		return err
	}
	if h >= height {
		d.heard = time.Now()
	}
	if h > height {
		if _, err := d.catchUp(ctx, in.peer, h-1); err != nil {
			return err
		}
	}
	if d.core == nil {
		if h > d.seen {
			d.seen, d.seenPeer = h, in.peer
		}
		return nil
	}
	return d.call(ctx, func() (Ready, error) { return d.core.Step(in.msg) })
}

// catchUp has the host fetch blocks up to target from peer and moves the
// core to the height after the new head; peers reports whether there was a
// peer to ask. Only a failure to make the new core is returned: a failed
// fetch is retried by another message, by re-publishing or by the next
// probe.
func (d *Driver) catchUp(ctx context.Context, peer string, target uint64) (peers bool, err error) {
	height, err := d.height()
	if err != nil {
		return true, err
	}
	head, err := d.host.CatchUp(ctx, peer, target)
	if err != nil {
		d.log.Debug("catch-up failed", "peer", peer, "target", target, "err", err)
	}
	peers = !errors.Is(err, ErrNoPeers)
	if d.core != nil && head+1 > height { // a head never moves back
		if d.core, err = d.host.NewCore(head); err != nil {
			return peers, err
		}
		if d.core != nil {
			return peers, d.call(ctx, d.tellDown())
		}
	}
	return peers, nil
}

// follow has an observer fetch the block of the highest height it has seen
// messages for, once a peer has committed it.
func (d *Driver) follow(ctx context.Context) error {
	head, err := d.host.Head()
	if err != nil || d.seen <= head {
		return err
	}
	if _, err := d.host.CatchUp(ctx, d.seenPeer, d.seen); err != nil {
		d.log.Debug("observer catch-up", "target", d.seen, "err", err)
	}
	return nil
}

// height is the height being decided: the core's, or for an observer the
// one after the head.
func (d *Driver) height() (uint64, error) {
	if d.core != nil {
		return d.core.Status().Height, nil
	}
	head, err := d.host.Head()
	return head + 1, err
}

func (d *Driver) startIfWork(ctx context.Context) error {
	if d.core == nil || d.core.Status().Started || !d.host.HasWork() {
		return nil
	}
	return d.call(ctx, d.core.Start)
}

// call runs one core step and handles its Ready, then the steps that
// answer what the Ready asked of the App, and so on until nothing is
// asked; it starts the next height at once if a block was committed and
// work is waiting: blocks are cut as soon as the previous one commits.
func (d *Driver) call(ctx context.Context, step func() (Ready, error)) error {
	for queue := []func() (Ready, error){step}; len(queue) > 0; {
		step, queue = queue[0], queue[1:]
		rd, err := step()
		if errors.Is(err, ErrHalted) {
			return err
		}
		if err != nil {
			d.log.Debug("consensus input refused", "err", err)
		}
		committed, herr := d.handle(ctx, rd)
		if herr != nil {
			return herr
		}
		if committed {
			// Before anything else of the new height: the core must know
			// who is down when its first round starts.
			queue = append([]func() (Ready, error){d.tellDown()}, queue...)
		}
		queue = append(queue, d.answers(rd)...)
		if committed && d.host.HasWork() {
			queue = append(queue, d.core.Start)
		}
	}
	return nil
}

// tellDown returns the core step that hands the core the validators the
// committed state marks down, for the height it is at. It is asked when
// the step runs, so after the commit that moved the core there.
func (d *Driver) tellDown() func() (Ready, error) {
	core := d.core
	return func() (Ready, error) {
		var down []ledger.Address
		for _, a := range core.vals.List() {
			if d.host.ProposerDown(a) {
				down = append(down, a)
			}
		}
		return core.SetDown(core.Status().Height, down)
	}
}

// answers returns the core steps that serve rd's requests to the App. The
// App is asked here, in the driver, because it reads the store and the
// clock, which the core must not.
func (d *Driver) answers(rd Ready) []func() (Ready, error) {
	var out []func() (Ready, error)
	core := d.core
	if r := rd.ProposalRequest; r != nil {
		out = append(out, func() (Ready, error) {
			b, err := d.host.ProposeBlock(r.Height, r.Round)
			if err != nil {
				return Ready{}, fmt.Errorf("propose block at %d/%d: %w", r.Height, r.Round, err)
			}
			return core.Proposed(b)
		})
	}
	for _, v := range rd.Validations {
		out = append(out, func() (Ready, error) { return core.Validated(v.Hash, d.host.ValidateBlock(v.Block)) })
	}
	return out
}

// handle carries out a Ready in the order its doc demands.
func (d *Driver) handle(ctx context.Context, rd Ready) (bool, error) {
	var state []byte
	if rd.Persist != nil {
		b, err := rd.Persist.MarshalBinary()
		if err != nil {
			return false, fmt.Errorf("encode consensus state: %w", err)
		}
		state = b
	}
	if rd.Commit != nil {
		c := rd.Commit.Commit
		if err := d.host.CommitBlock(rd.Commit.Block, &c, state); err != nil {
			return false, fmt.Errorf("commit block %d: %w", rd.Commit.Block.Header.Height, err)
		}
	} else if state != nil {
		if err := d.host.SaveConsensusState(state); err != nil {
			return false, fmt.Errorf("persist consensus state: %w", err)
		}
	}
	for _, m := range rd.Messages {
		d.host.Broadcast(m)
	}
	for _, t := range rd.Timeouts {
		time.AfterFunc(t.Duration, func() {
			select {
			case d.timeouts <- t:
			case <-ctx.Done():
			}
		})
	}
	for _, ev := range rd.Evidence {
		d.host.Evidence(ev)
	}
	return rd.Commit != nil, nil
}
