package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sagachain/sagachain/ledger"
)

// Host is what a Driver needs from its node besides the App the core uses.
type Host interface {
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
}

// DriverConfig tunes a Driver's timing.
type DriverConfig struct {
	// Republish is how often the latest proposal and votes are sent again.
	Republish time.Duration
	// Poll is how often an idle driver asks whether there is work, so that
	// a deadline passing with nothing else waiting still gets its block.
	Poll time.Duration
}

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
	inbox    chan Message
	timeouts chan TimeoutInfo
	work     <-chan struct{}
}

// NewDriver returns the driver of core. work is signalled when an entry
// arrives.
func NewDriver(core *Core, host Host, work <-chan struct{}, cfg DriverConfig, log *slog.Logger) *Driver {
	if cfg.Republish <= 0 {
		cfg.Republish = 300 * time.Millisecond
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	return &Driver{core: core, host: host, cfg: cfg, log: log, inbox: make(chan Message, 1024),
		timeouts: make(chan TimeoutInfo, 64), work: work}
}

// Deliver hands the driver a message from the network. It drops the
// message when the inbox is full: re-publishing makes up for it.
func (d *Driver) Deliver(m Message) {
	select {
	case d.inbox <- m:
	default:
	}
}

// Status returns the core's status. Only safe from Run's goroutine or
// after Run has returned.
func (d *Driver) Status() Status { return d.core.Status() }

// Run drives the core until ctx ends or the core halts.
func (d *Driver) Run(ctx context.Context) error {
	republish := time.NewTicker(d.cfg.Republish)
	defer republish.Stop()
	poll := time.NewTicker(d.cfg.Poll)
	defer poll.Stop()
	// A core restarted mid-height resumes its round and re-sends its votes.
	if st := d.core.Status(); st.Step != StepNewHeight {
		if err := d.call(ctx, d.core.Start); err != nil {
			return err
		}
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case m := <-d.inbox:
			err = d.call(ctx, func() (Ready, error) { return d.core.Step(m) })
		case t := <-d.timeouts:
			err = d.call(ctx, func() (Ready, error) { return d.core.Timeout(t) })
		case <-d.work:
			err = d.startIfWork(ctx)
		case <-poll.C:
			err = d.startIfWork(ctx)
		case <-republish.C:
			for _, m := range d.core.Republish() {
				d.host.Broadcast(m)
			}
		}
		if err != nil {
			return err
		}
	}
}

func (d *Driver) startIfWork(ctx context.Context) error {
	if d.core.Status().Started || !d.host.HasWork() {
		return nil
	}
	return d.call(ctx, d.core.Start)
}

// call runs one core step and handles its Ready, then starts the next
// height at once if a block was committed and work is waiting: blocks are
// cut as soon as the previous one commits.
func (d *Driver) call(ctx context.Context, step func() (Ready, error)) error {
	for {
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
		if !committed || !d.host.HasWork() {
			return nil
		}
		step = d.core.Start
	}
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
