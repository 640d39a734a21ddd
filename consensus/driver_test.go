package consensus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sagachain/sagachain/ledger"
)

// downHost is a Host for one validator whose committed state marks one
// validator down per height (downAt, by the height after the head). It
// commits what it is given and reports what the driver broadcasts.
type downHost struct {
	mu     sync.Mutex
	head   uint64
	downAt map[uint64]ledger.Address
	asked  map[uint64]int // ProposerDown calls by the height after the head
	sent   chan Message
}

func (h *downHost) ProposeBlock(height, round uint64) (*ledger.Block, error) {
	return nil, errors.New("downHost builds no blocks")
}
func (h *downHost) ValidateBlock(*ledger.Block) error { return nil }
func (h *downHost) HasWork() bool                     { return true }
func (h *downHost) CommitBlock(b *ledger.Block, _ *ledger.Commit, _ []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.head = b.Header.Height
	return nil
}
func (h *downHost) SaveConsensusState([]byte) error { return nil }
func (h *downHost) Broadcast(m Message)             { h.sent <- m }
func (h *downHost) Evidence(ledger.Evidence)        {}
func (h *downHost) CatchUp(context.Context, string, uint64) (uint64, error) {
	head, _ := h.Head()
	return head, ErrNoPeers
}
func (h *downHost) NewCore(uint64) (*Core, error) { return nil, errors.New("downHost makes no cores") }
func (h *downHost) Head() (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.head, nil
}
func (h *downHost) ProposerDown(a ledger.Address) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked[h.head+1]++
	return h.downAt[h.head+1] == a
}

// TestDriverTellsTheCoreWhoIsDown: the driver asks its host who is down
// when it starts and after every commit, and the core acts on it. The
// propose timeout is an hour and the short wait a millisecond, so a nil
// prevote at all means the short wait was scheduled; the test only waits
// for it, and never measures how long it took.
func TestDriverTellsTheCoreWhoIsDown(t *testing.T) {
	keys, vals := testKeys(t, 4)
	cfg := testConfig(keys[0], vals)
	cfg.TimeoutPropose, cfg.TimeoutProposeDown = time.Hour, time.Millisecond
	core, err := NewCore(cfg, 1, PersistedState{})
	if err != nil {
		t.Fatal(err)
	}
	// Validator 1 leads height 1, validator 2 height 2.
	host := &downHost{downAt: map[uint64]ledger.Address{1: keys[1].Address(), 2: keys[2].Address()},
		asked: map[uint64]int{}, sent: make(chan Message, 1024)}
	work := make(chan struct{}, 1)
	work <- struct{}{}
	d := NewDriver(core, host, work, DriverConfig{Republish: time.Hour, Poll: time.Hour, Probe: time.Hour},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	nilPrevote := func(h uint64) {
		t.Helper()
		deadline := time.After(time.Minute)
		for {
			select {
			case m := <-host.sent:
				if v := m.Vote; v != nil && v.Type == ledger.Prevote && v.Height == h && v.Round == 0 {
					if v.BlockHash != nilHash {
						t.Fatalf("prevote %s, want nil", m)
					}
					return
				}
			case err := <-done:
				t.Fatalf("driver stopped: %v", err)
			case <-deadline:
				t.Fatalf("no nil prevote at height %d: the short wait was not scheduled", h)
			}
		}
	}
	nilPrevote(1)

	// Validators 1 to 3 decide height 1 without this validator's vote; the
	// driver then starts height 2, whose proposer the new state marks down.
	b := makeBlock(t, keys[1], 1, 0, 1)
	d.Deliver(proposalMsg(t, keys[1], 1, 0, -1, b, nil), "p1")
	for _, k := range keys[1:] {
		d.Deliver(voteMsg(t, k, ledger.Precommit, 1, 0, b.Hash()), "p1")
	}
	nilPrevote(2)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	host.mu.Lock()
	defer host.mu.Unlock()
	if host.asked[1] != 4 || host.asked[2] != 4 {
		t.Fatalf("ProposerDown asked %v, want each of the 4 validators once per height", host.asked)
	}
}

// probeHost is a downHost with no work whose CatchUp reports each probe
// (a catch-up to AnyHeight) on probes.
type probeHost struct {
	downHost
	probes chan struct{}
}

func (h *probeHost) HasWork() bool { return false }
func (h *probeHost) CatchUp(_ context.Context, _ string, target uint64) (uint64, error) {
	if target == AnyHeight {
		h.probes <- struct{}{}
	}
	head, _ := h.Head()
	return head, nil
}

// TestDriverProbesOnlyASilentNetwork: an idle driver that has heard
// nothing asks its peers for blocks past its head; one that has just
// committed a block on the messages of its peers, and waits for work, does
// not,
// for each probe holds the driver until every peer answered, and a peer
// cut off without a reset answers only when the sync times out. The first
// probe is due after Poll, the next after Probe, an hour: the second case
// looks for the first probe for several Polls.
func TestDriverProbesOnlyASilentNetwork(t *testing.T) {
	for _, heard := range []bool{false, true} {
		keys, vals := testKeys(t, 4)
		core, err := NewCore(testConfig(keys[0], vals), 1, PersistedState{})
		if err != nil {
			t.Fatal(err)
		}
		host := &probeHost{downHost: downHost{asked: map[uint64]int{}, sent: make(chan Message, 1024)},
			probes: make(chan struct{}, 16)}
		const poll = 200 * time.Millisecond
		d := NewDriver(core, host, make(chan struct{}), DriverConfig{Republish: time.Hour, Poll: poll, Probe: time.Hour},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if heard {
			// Validators 1 to 3 decide height 1, in the inbox before Run
			// starts, so handled before the first probe is due: the
			// driver commits it and waits at height 2 with no work, as a
			// validator does between two blocks.
			b := makeBlock(t, keys[1], 1, 0, 1)
			d.Deliver(proposalMsg(t, keys[1], 1, 0, -1, b, nil), "p1")
			for _, k := range keys[1:] {
				d.Deliver(voteMsg(t, k, ledger.Precommit, 1, 0, b.Hash()), "p1")
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		wait := time.Minute
		if heard {
			wait = 5 * poll
		}
		select {
		case <-host.probes:
			if heard {
				t.Errorf("the driver probed although its peers had just decided its last block")
			}
		case <-time.After(wait):
			if !heard {
				t.Errorf("the driver heard nothing and did not probe within %s", wait)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
