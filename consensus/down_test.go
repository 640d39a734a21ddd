package consensus

import (
	"fmt"
	"testing"
	"time"

	"github.com/sagachain/sagachain/ledger"
)

// The short wait for a proposer the committed state reports down
// (Core.SetDown, Config.TimeoutProposeDown). testConfig's TimeoutPropose
// is 300 ms, so the default short wait is 15 ms; at height 1 validator 1
// proposes round 0, validator 2 round 1, validator 3 round 2.

// downNode returns validator i of four at height 1 with cfg changed by
// mutate (nil for testConfig) and the down report applied.
func downNode(t *testing.T, keys []*ledger.PrivateKey, vals *ledger.ValidatorSet, i int, mutate func(*Config), reportHeight uint64, down ...ledger.Address) *node {
	t.Helper()
	cfg := testConfig(keys[i], vals)
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := NewCore(cfg, 1, PersistedState{})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, core: c, app: &testApp{t: t, key: keys[i], invalid: map[ledger.Hash]error{}}}
	rd, err := n.handled(c.SetDown(reportHeight, down))
	n.must("SetDown", rd, err)
	if !rd.IsEmpty() {
		t.Fatalf("SetDown before the height started asked for %+v", rd)
	}
	return n
}

// proposeTimeout returns the one propose timeout rd asks for, or 0.
func proposeTimeout(t *testing.T, rd Ready) time.Duration {
	t.Helper()
	var found []time.Duration
	for _, to := range rd.Timeouts {
		if to.Step == StepPropose {
			found = append(found, to.Duration)
		}
	}
	switch len(found) {
	case 0:
		return 0
	case 1:
		return found[0]
	}
	t.Fatalf("%d propose timeouts in one Ready: %v", len(found), rd.Timeouts)
	return 0
}

// TestShortProposeTimeoutOnlyForDownProposer: the short wait is asked for
// exactly when the round's proposer is reported down, for this height, by
// a report the core can believe, and the proposer is not the validator
// itself.
func TestShortProposeTimeoutOnlyForDownProposer(t *testing.T) {
	keys, vals := testKeys(t, 4)
	outsider, _ := testKeys(t, 5)
	const full, short = 300 * time.Millisecond, 15 * time.Millisecond
	v := func(i int) ledger.Address { return keys[i].Address() }
	for _, tc := range []struct {
		name   string
		self   int
		mutate func(*Config)
		height uint64
		down   []ledger.Address
		want   time.Duration
	}{
		{name: "no report", want: full},
		{name: "proposer down", down: []ledger.Address{v(1)}, want: short},
		{name: "proposer down twice", down: []ledger.Address{v(1), v(1)}, want: short},
		{name: "another validator down", down: []ledger.Address{v(2)}, want: full},
		{name: "report of another height", height: 2, down: []ledger.Address{v(1)}, want: full},
		{name: "more than n-Q down", down: []ledger.Address{v(1), v(2)}, want: full},
		{name: "non-validator down", down: []ledger.Address{outsider[4].Address()}, want: full},
		{name: "non-validator and proposer down", down: []ledger.Address{outsider[4].Address(), v(1)}, want: short},
		{name: "short wait off", down: []ledger.Address{v(1)}, want: full,
			mutate: func(c *Config) { c.TimeoutProposeDown = c.TimeoutPropose }},
		{name: "configured short wait", down: []ledger.Address{v(1)}, want: 40 * time.Millisecond,
			mutate: func(c *Config) { c.TimeoutProposeDown = 40 * time.Millisecond }},
		// The proposer itself knows it is up, whatever the chain says.
		{name: "self down", self: 1, down: []ledger.Address{v(1)}, want: full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.height
			if h == 0 {
				h = 1
			}
			n := downNode(t, keys, vals, tc.self, tc.mutate, h, tc.down...)
			if got := proposeTimeout(t, n.start()); got != tc.want {
				t.Fatalf("propose timeout %s, want %s", got, tc.want)
			}
		})
	}
}

// A proposal from a proposer reported down that arrives before the short
// timeout is voted on like any other: the report changes timers only.
func TestDownProposerProposalIsVotedOn(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := downNode(t, keys, vals, 0, nil, 1, keys[1].Address())
	n.start()
	b := makeBlock(t, keys[1], 1, 0, 1)
	wantVote(t, n.step(proposalMsg(t, keys[1], 1, 0, -1, b, nil)), ledger.Prevote, 0, b.Hash())
}

// In a round whose proposer is reported down, a quorum of nil precommits
// starts the next round at once; in any other round the core waits the
// precommit timeout as before.
func TestNilPrecommitQuorumMovesOnOnlyWhenProposerDown(t *testing.T) {
	keys, vals := testKeys(t, 4)
	for _, down := range []bool{true, false} {
		t.Run(fmt.Sprintf("down=%t", down), func(t *testing.T) {
			var report []ledger.Address
			if down {
				report = []ledger.Address{keys[1].Address()}
			}
			n := downNode(t, keys, vals, 0, nil, 1, report...)
			n.start()
			wantVote(t, n.timeout(StepPropose), ledger.Prevote, 0, nilHash)
			n.step(voteMsg(t, keys[2], ledger.Prevote, 1, 0, nilHash))
			wantVote(t, n.step(voteMsg(t, keys[3], ledger.Prevote, 1, 0, nilHash)), ledger.Precommit, 0, nilHash)
			n.step(voteMsg(t, keys[2], ledger.Precommit, 1, 0, nilHash))
			rd := n.step(voteMsg(t, keys[3], ledger.Precommit, 1, 0, nilHash))
			st := n.core.Status()
			if down {
				// Round 1's proposer, validator 2, is up: the full wait.
				if st.Round != 1 || st.Step != StepPropose {
					t.Fatalf("after a quorum of nil precommits: %+v, want round 1 propose", st)
				}
				if want := 350 * time.Millisecond; proposeTimeout(t, rd) != want || len(rd.Timeouts) != 1 {
					t.Fatalf("timeouts %v, want only round 1's propose timeout of %s", rd.Timeouts, want)
				}
				return
			}
			if st.Round != 0 || len(rd.Timeouts) != 1 || rd.Timeouts[0].Step != StepPrecommit {
				t.Fatalf("status %+v, timeouts %v: want round 0 waiting the precommit timeout", st, rd.Timeouts)
			}
		})
	}
}

// Mixed precommits in a round whose proposer is down may still hold a
// decision: the core waits the precommit timeout for it.
func TestMixedPrecommitsWaitEvenWhenProposerDown(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := downNode(t, keys, vals, 0, nil, 1, keys[1].Address())
	n.start()
	n.timeout(StepPropose)
	n.step(voteMsg(t, keys[2], ledger.Precommit, 1, 0, nilHash))
	rd := n.step(voteMsg(t, keys[3], ledger.Precommit, 1, 0, ledger.Hash{3}))
	if st := n.core.Status(); st.Round != 0 || len(rd.Timeouts) != 0 {
		t.Fatalf("after two precommits: %+v, timeouts %v", st, rd.Timeouts)
	}
	rd = n.step(voteMsg(t, keys[1], ledger.Precommit, 1, 0, nilHash))
	if st := n.core.Status(); st.Round != 0 || len(rd.Timeouts) != 1 || rd.Timeouts[0].Step != StepPrecommit {
		t.Fatalf("after a quorum of mixed precommits: %+v, timeouts %v, want the precommit timeout", st, rd.Timeouts)
	}
}

// A report that arrives while the core waits for a proposer it marks down
// asks for the short timeout then; the same report again asks for nothing.
func TestSetDownDuringProposeSchedulesShortTimeout(t *testing.T) {
	keys, vals := testKeys(t, 4)
	n := downNode(t, keys, vals, 0, nil, 1)
	if got := proposeTimeout(t, n.start()); got != 300*time.Millisecond {
		t.Fatalf("propose timeout %s before the report", got)
	}
	for i, want := range []time.Duration{15 * time.Millisecond, 0} {
		rd, err := n.handled(n.core.SetDown(1, []ledger.Address{keys[1].Address()}))
		n.must("SetDown", rd, err)
		if got := proposeTimeout(t, rd); got != want || len(rd.Timeouts) > 1 {
			t.Fatalf("report %d: timeouts %v, want a propose timeout of %s", i, rd.Timeouts, want)
		}
	}
	wantVote(t, n.timeout(StepPropose), ledger.Prevote, 0, nilHash)
	// An empty report clears the marks; so does a new height.
	rd, err := n.handled(n.core.SetDown(1, nil))
	n.must("SetDown", rd, err)
	if n.core.down != nil {
		t.Fatal("an empty report left validators marked down")
	}
}

// The short wait grows with the round in proportion to the propose timeout
// (TimeoutDelta * TimeoutProposeDown / TimeoutPropose a round, 2.5 ms
// here), and TimeoutMax caps it as it caps the others.
func TestDownTimeoutGrowsWithTheRound(t *testing.T) {
	keys, vals := testKeys(t, 4)
	for _, tc := range []struct {
		max   time.Duration
		round uint64
		want  time.Duration
	}{
		{0, 2, 20 * time.Millisecond},                     // 15ms + 2*2.5ms
		{0, 6, 30 * time.Millisecond},                     // 15ms + 6*2.5ms
		{22 * time.Millisecond, 6, 22 * time.Millisecond}, // capped
	} {
		t.Run(fmt.Sprintf("max=%s/round=%d", tc.max, tc.round), func(t *testing.T) {
			n := downNode(t, keys, vals, 0, func(c *Config) { c.TimeoutMax = tc.max }, 1, keys[3].Address())
			n.start()
			if vals.Proposer(1, tc.round) != keys[3].Address() {
				t.Fatalf("validator 3 does not propose round %d", tc.round)
			}
			// f+1 validators in round r move the core there.
			n.step(voteMsg(t, keys[1], ledger.Prevote, 1, tc.round, nilHash))
			rd := n.step(voteMsg(t, keys[2], ledger.Prevote, 1, tc.round, nilHash))
			if st := n.core.Status(); st.Round != tc.round {
				t.Fatalf("core at round %d, want %d", st.Round, tc.round)
			}
			if got := proposeTimeout(t, rd); got != tc.want {
				t.Fatalf("propose timeout %s, want %s", got, tc.want)
			}
		})
	}
}

func TestTimeoutProposeDownIsChecked(t *testing.T) {
	keys, vals := testKeys(t, 4)
	for _, d := range []time.Duration{-time.Millisecond, 301 * time.Millisecond} {
		cfg := testConfig(keys[0], vals)
		cfg.TimeoutProposeDown = d
		if _, err := NewCore(cfg, 1, PersistedState{}); err == nil {
			t.Errorf("TimeoutProposeDown %s accepted", d)
		}
	}
	for _, d := range []time.Duration{0, time.Nanosecond, 300 * time.Millisecond} {
		cfg := testConfig(keys[0], vals)
		cfg.TimeoutProposeDown = d
		if _, err := NewCore(cfg, 1, PersistedState{}); err != nil {
			t.Errorf("TimeoutProposeDown %s refused: %v", d, err)
		}
	}
}
