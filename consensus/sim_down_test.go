package consensus

import (
	"fmt"
	"testing"
	"time"

	"github.com/sagachain/sagachain/ledger"
)

// The simulator with validators reported down (Core.SetDown): a crashed
// validator the chain knows is down must cost its rounds about
// TimeoutProposeDown of simulated time, not TimeoutPropose, and reports that
// are wrong (a live proposer marked down, nodes that disagree) must change
// nothing that is decided.

// simMix is splitmix64's finaliser: the simulator's down reports are a
// function of the seed, node and height, so they do not draw on the
// network's random stream.
func simMix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// misreport is the down report of the chaos searches: in three seeds in
// four, a run of 1 to f validators next to each other in the rotation
// (so rounds after the first have down proposers too), once in five
// seeds f+1 of them (a report the core must not believe), all of them up
// or as up as the seed's crashes let them be. Each node believes it at a
// height or not, independently, so honest nodes disagree about it.
func (s *sim) misreport(n *simNode, h uint64) []ledger.Address {
	seed := simMix(uint64(s.seed) ^ 0xd0e5)
	f := s.cfg.f()
	if seed%4 == 0 || f == 0 || simMix(seed^uint64(n.id)<<32^h)%2 == 0 {
		return nil
	}
	k := 1 + int(simMix(seed^1)%uint64(f))
	if simMix(seed^2)%5 == 0 {
		k = f + 1
	}
	first := int(simMix(seed^3) % uint64(s.cfg.validators))
	var down []ledger.Address
	for i := range k {
		down = append(down, s.vals.At((first+i)%s.cfg.validators))
	}
	return down
}

// reportDead is the report of a chain that knows the dead validators are
// down: every node says so at every height.
func (s *sim) reportDead(_ *simNode, _ uint64) []ledger.Address {
	var down []ledger.Address
	for _, v := range s.cfg.dead {
		down = append(down, s.vals.At(v))
	}
	return down
}

// deadConfig is a loaded, whole network of four validators, deciding
// heights: validator 3 is dead when dead is set, and reported down when
// report is.
func deadConfig(heights uint64, dead, report bool) simConfig {
	cfg := simConfig{validators: 4, heights: heights, busy: true, liveBound: 2 * time.Minute}
	if dead {
		cfg.dead = []int{3}
	}
	if report {
		cfg.report = (*sim).reportDead
	}
	return cfg
}

// downTiming is what one run of deadConfig took: the whole run, and the
// mean interval between decisions at heights whose round-0 proposer is
// validator 3 and at the others.
type downTiming struct {
	total, perDownHeight, perUpHeight time.Duration
}

func (d downTiming) String() string {
	return fmt.Sprintf("%s in all, %s per height led by validator 3, %s per other height",
		d.total.Round(time.Millisecond), d.perDownHeight.Round(100*time.Microsecond), d.perUpHeight.Round(100*time.Microsecond))
}

// timeDead plays cfg for seeds and returns the mean timing, in simulated
// time. Every run must pass every invariant.
func timeDead(t *testing.T, cfg simConfig, seeds []int64) downTiming {
	t.Helper()
	var sum downTiming
	var downs, ups int
	for i, s := range playSims(t, cfg, seeds) {
		if len(s.violations) > 0 {
			t.Fatalf("seed %d: %v", seeds[i], s.violations[0])
		}
		if uint64(len(s.decidedAt)) != cfg.heights {
			t.Fatalf("seed %d: %d heights decided, want %d", seeds[i], len(s.decidedAt), cfg.heights)
		}
		prev := time.Duration(0)
		for k, at := range s.decidedAt {
			h := uint64(k + 1)
			if s.vals.Proposer(h, 0) == s.vals.At(3) {
				sum.perDownHeight += at - prev
				downs++
			} else {
				sum.perUpHeight += at - prev
				ups++
			}
			prev = at
		}
		sum.total += prev
	}
	return downTiming{total: sum.total / time.Duration(len(seeds)),
		perDownHeight: sum.perDownHeight / time.Duration(downs), perUpHeight: sum.perUpHeight / time.Duration(ups)}
}

// TestSimDeadProposerCostsTheShortWait: in a loaded network of four with
// validator 3 crashed for good and reported down, a height it would lead
// costs about TimeoutProposeDown (15 ms here) more than the other heights
// of the same run, not TimeoutPropose (300 ms) and TimeoutPrecommit
// (100 ms), so the dead proposer takes at most a tenth of the throughput
// that is left once its vote is gone. The same network with the short wait
// turned off (TimeoutProposeDown = TimeoutPropose), or without the report,
// misses both bounds: the test bites. All of it in simulated time.
//
// Losing the vote costs throughput by itself, which no timer wins back:
// the quorum is then every live validator, so each step waits for the
// slowest of three links instead of the third fastest of four (about 30%
// with the simulator's delays of 1 to 21 ms; on a real network, where
// delays are more even and blocks take time to build and apply, less).
// The all-up run is logged to show it.
func TestSimDeadProposerCostsTheShortWait(t *testing.T) {
	const heights = 40
	seeds := simSeedList(max(4, seedCount()/20))
	up := timeDead(t, deadConfig(heights, false, false), seeds)
	on := timeDead(t, deadConfig(heights, true, true), seeds)
	offCfg := deadConfig(heights, true, true)
	offCfg.timeoutProposeDown = 300 * time.Millisecond
	off := timeDead(t, offCfg, seeds)
	unreported := timeDead(t, deadConfig(heights, true, false), seeds)
	t.Logf("%d seeds x %d heights, simulated time:", len(seeds), heights)
	t.Logf("  all up:                   %s", up)
	t.Logf("  one dead, reported down:  %s (%.0f%% of all-up throughput)", on, 100*float64(up.total)/float64(on.total))
	t.Logf("  one dead, short wait off: %s (%.0f%%)", off, 100*float64(up.total)/float64(off.total))
	t.Logf("  one dead, not reported:   %s (%.0f%%)", unreported, 100*float64(up.total)/float64(unreported.total))

	// A dead proposer's height: the short wait (timers up to 10% slow),
	// then hops to a quorum of nil precommits that the next round's
	// proposal partly overlaps, then round 1 as fast as any height. Allow
	// one more hop than the short wait.
	extra := func(d downTiming) time.Duration { return d.perDownHeight - d.perUpHeight }
	extraBound := 15*time.Millisecond*11/10 + 21*time.Millisecond
	// The dead proposer's share of the run: the whole run against every
	// height costing what the others cost.
	share := func(d downTiming) float64 { return float64(d.total) / float64(heights*d.perUpHeight) }
	if extra(on) > extraBound {
		t.Errorf("a height led by the dead validator took %s more than the others, want at most %s", extra(on), extraBound)
	}
	if share(on) > 1.1 {
		t.Errorf("the dead proposer made the run %.2f times as long as its other heights make it, want at most 1.1", share(on))
	}
	for name, d := range map[string]downTiming{"short wait off": off, "not reported": unreported} {
		if extra(d) <= extraBound || share(d) <= 1.1 {
			t.Errorf("%s: %s meets the bounds: the test does not bite", name, d)
		}
		// What the short wait saves: the propose and precommit timeouts.
		if extra(d) < 400*time.Millisecond*9/10 {
			t.Errorf("%s: a dead proposer's height took only %s more than the others", name, extra(d))
		}
	}
}

// TestSimMisreportedDown: the chaos searches give nodes wrong down reports
// (misreport), and their invariants (one block per height, certificates,
// no honest equivocation, liveness after healing) still hold. This test
// proves the reports reach the cores and make some of them give up on a
// live proposer early.
func TestSimMisreportedDown(t *testing.T) {
	for _, n := range simSizes {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			cfg := chaosConfig(n)
			if cfg.report == nil {
				t.Fatal("the chaos searches give no down reports")
			}
			seeds := simSeedList(simSeedsFor(max(1, seedCount()/10), n))
			var reports, short, fired int
			for _, st := range runSims(t, cfg, seeds) {
				reports += st.downReports
				short += st.shortWaits
				fired += st.shortFired
			}
			t.Logf("%d seeds: %d down reports, %d short propose waits, %d of them fired (a nil prevote)", len(seeds), reports, short, fired)
			if reports == 0 || short == 0 || fired == 0 {
				t.Fatalf("%d down reports, %d short waits and %d fired in %d seeds: misreports are not exercised", reports, short, fired, len(seeds))
			}
		})
	}
}
