package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cast"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

// The phases of bench --testnet, in the order they run and print.
const (
	phaseAllUp  = "all up"
	phaseDown   = "down at start"
	phaseKilled = "killed mid-run"
)

var benchPhases = []string{phaseAllUp, phaseDown, phaseKilled}

// benchTestnetReport is what bench --testnet prints: the rows of every
// phase, and what was down in them.
type benchTestnetReport struct {
	Validators int `json:"validators"`
	// Down names the validators that are down at start and killed mid-run.
	Down        []string           `json:"down"`
	Seed        uint64             `json:"seed"`
	LostAfterMS float64            `json:"lost_after_ms"`
	Results     []benchPhaseResult `json:"results"`
}

// benchPhaseResult is one row of bench --testnet.
type benchPhaseResult struct {
	// Phase is "all up", "down at start" or "killed mid-run".
	Phase string `json:"phase"`
	benchResult
	// VsAllUp is OpsPerSec over that of the all-up row of the same
	// scenario and concurrency (1 in that row).
	VsAllUp float64 `json:"vs_all_up"`
	// Kill is set in the killed mid-run phase.
	Kill *benchKill `json:"kill,omitempty"`
}

// benchKill is when the validators of a killed mid-run row died and how
// soon the work they held moved on.
type benchKill struct {
	// AfterOps is how many of the level's operations had ended (finished
	// or lost) when the kill came.
	AfterOps int `json:"after_ops"`
	// Height is node0's head when the kill came; Time the kill's wall
	// time in Unix milliseconds, the unit of block times.
	Height uint64 `json:"height"`
	Time   int64  `json:"time"`
	// Moves counts the tasks and rollbacks the ledger moved at or after
	// Height.
	Moves int `json:"moves"`
	// ToMovedAttestationMS is the time from the kill to the block of the
	// attestation of the first task or rollback that moved at or after
	// Height, by that block's time; null when none moved.
	ToMovedAttestationMS *float64 `json:"to_moved_attestation_ms"`
	MovedOperation       string   `json:"moved_operation,omitempty"`
	MovedTask            string   `json:"moved_task,omitempty"`
	MovedHeight          uint64   `json:"moved_height,omitempty"`
	AttestedHeight       uint64   `json:"attested_height,omitempty"`
}

// benchReadTimeout bounds reading a level's operations and blocks back
// after it ran.
const benchReadTimeout = time.Minute

// benchHeadTimeout bounds the head call that dates a kill.
const benchHeadTimeout = 10 * time.Second

// benchTestnet runs bench on testnets of its own with validators validators,
// kill of which are down in the phases after "all up".
func (a *app) benchTestnet(ctx context.Context, p benchPlan, validators, kill int) error {
	for _, name := range []string{"rpc", "key"} {
		if a.cmd.Flags().Changed(name) {
			return usageError(fmt.Errorf("--%s: --testnet runs nodes of its own and signs with a key made for them; drop one of the two", name))
		}
	}
	if validators < 1 {
		return usageError(fmt.Errorf("%s: want a positive number of validators, got %d", a.flagSource("testnet"), validators))
	}
	// Blocks commit with more than 2/3 of the validators voting: with more
	// than f = (n-1)/3 down, nothing would ever finish, and the phases would
	// measure only --lost-after.
	if f := (validators - 1) / 3; kill < 0 || kill > f {
		return usageError(fmt.Errorf("%s: want 0 to %d, the validators a %d-validator testnet can lose and still commit blocks, got %d",
			a.flagSource("kill"), f, validators, kill))
	}
	seed, err := cast.ToUint64E(a.flags.Get("seed"))
	if err != nil {
		return usageError(fmt.Errorf("%s: want a whole number, got %v", a.flagSource("seed"), a.flags.Get("seed")))
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	// Node0 serves bench's RPC, so it is never among the ones down.
	victims := rng.Perm(validators - 1)[:kill]
	for i := range victims {
		victims[i]++
	}
	slices.Sort(victims)
	rep := &benchTestnetReport{Validators: validators, Seed: seed, LostAfterMS: ms(p.lostAfter), Down: []string{}}
	for _, v := range victims {
		rep.Down = append(rep.Down, benchNodeName(v))
	}

	// The nodes must go however bench ends: an interrupt cancels ctx, and
	// the deferred closes of each testnet kill them (benchProcAttr covers a
	// bench that is killed itself).
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = a.benchPhases(ctx, p, rep, victims, rng)
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("interrupted; the testnets' nodes are stopped: %w", err)
	}
	if len(rep.Results) > 0 {
		// What was measured before a failure is still worth having.
		if perr := a.printBenchTestnet(rep, p.asJSON); perr != nil {
			return errors.Join(err, perr)
		}
	}
	if err != nil {
		return err
	}
	// All up, the network works as it does for plain bench: anything but
	// the scenario's outcome is a fault. With validators down, outcomes are
	// what is measured.
	var allUp []benchResult
	for _, r := range rep.Results {
		if r.Phase == phaseAllUp {
			allUp = append(allUp, r.benchResult)
		}
	}
	if err := checkOutcomes(allUp); err != nil {
		return fmt.Errorf("all up: %w", err)
	}
	return nil
}

// benchPhases runs the phases of bench --testnet into rep.
func (a *app) benchPhases(ctx context.Context, p benchPlan, rep *benchTestnetReport, victims []int, rng *rand.Rand) error {
	add := func(phase string, r benchResult, k *benchKill) {
		rep.Results = append(rep.Results, benchPhaseResult{Phase: phase, benchResult: r, Kill: k})
	}
	// levels runs every scenario and level of p on one testnet.
	levels := func(phase string, down []int) error {
		return a.onBenchNet(ctx, p, rep.Validators, down, func(b *benchRun, _ *benchNet) error {
			for _, sc := range p.scenarios {
				op, err := sc.load()
				if err != nil {
					return err
				}
				if err := b.warmup(ctx, sc, op); err != nil {
					return fmt.Errorf("%s, %s warm-up: %w", phase, sc.name, err)
				}
				for _, conc := range p.levels {
					a.log.Info("bench", "phase", phase, "scenario", sc.name, "concurrency", conc, "ops", p.ops)
					r, err := b.level(ctx, sc, op, conc, p.ops, nil)
					if err != nil {
						return fmt.Errorf("%s, %s at concurrency %d: %w", phase, sc.name, conc, err)
					}
					add(phase, r.benchResult, nil)
				}
			}
			return nil
		})
	}
	if err := levels(phaseAllUp, nil); err != nil {
		return err
	}
	if len(victims) == 0 {
		return nil
	}
	if err := levels(phaseDown, victims); err != nil {
		return err
	}
	// A kill happens once per testnet, so every level of the killed phase
	// gets one of its own: on the testnet of the level before, the
	// validators would be down at start.
	for _, sc := range p.scenarios {
		op, err := sc.load()
		if err != nil {
			return err
		}
		for _, conc := range p.levels {
			at := benchKillPoint(rng, p.ops)
			err := a.onBenchNet(ctx, p, rep.Validators, nil, func(b *benchRun, net *benchNet) error {
				if err := b.warmup(ctx, sc, op); err != nil {
					return fmt.Errorf("%s, %s warm-up: %w", phaseKilled, sc.name, err)
				}
				a.log.Info("bench", "phase", phaseKilled, "scenario", sc.name, "concurrency", conc, "ops", p.ops, "kill_after_ops", at)
				k := &benchKill{AfterOps: at}
				after := func(ctx context.Context, ended int) error {
					if ended != at {
						return nil
					}
					hctx, cancel := context.WithTimeout(ctx, benchHeadTimeout)
					defer cancel()
					head, err := b.c.Head(hctx)
					if err != nil {
						return fmt.Errorf("head before the kill: %w", b.a.nodeError(b.c, "", err))
					}
					k.Height = head.Height
					t, err := net.kill(victims)
					k.Time = t.UnixMilli()
					return err
				}
				r, err := b.level(ctx, sc, op, conc, p.ops, after)
				if err != nil {
					return fmt.Errorf("%s, %s at concurrency %d: %w", phaseKilled, sc.name, conc, err)
				}
				if err := b.movedAfterKill(ctx, r.ids, k); err != nil {
					return fmt.Errorf("%s, %s at concurrency %d: %w", phaseKilled, sc.name, conc, err)
				}
				add(phaseKilled, r.benchResult, k)
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// benchKillPoint picks how many of n operations have ended when the kill
// comes: a random 30% to 70%, so that the kill finds the level in full
// flow, and not always at the same point of it. It counts operations that
// ended, not ones sent, because at a concurrency near n all are sent at
// once: a kill after the 13th of 20 was sent came before any ended.
func benchKillPoint(rng *rand.Rand, n int) int {
	return max(1, int(float64(n)*(0.3+0.4*rng.Float64())))
}

// onBenchNet starts a testnet of n validators, all but down, runs f with a
// benchRun of p against node0, and stops the testnet whatever f returns.
func (a *app) onBenchNet(ctx context.Context, p benchPlan, n int, down []int, f func(*benchRun, *benchNet) error) (err error) {
	t0 := time.Now()
	net, err := startBenchNet(ctx, n, down)
	if err != nil {
		return err
	}
	a.log.Info("testnet up", "validators", n, "not_started", len(down), "dir", net.dir, "took", time.Since(t0).Round(time.Millisecond))
	defer func() { err = errors.Join(err, net.close()) }()
	c, err := rpc.Dial(ctx, net.nodes[0].RPC)
	if err != nil {
		return fmt.Errorf("node0: %w", err)
	}
	defer c.Close()
	return f(&benchRun{a: a, c: c, key: net.key, chainID: benchChainID, lostAfter: p.lostAfter}, net)
}

// movedAfterKill reads the events of a level's operations back from node0
// and fills in k the moves at or after the kill and the time from the kill
// to the first moved task's attestation.
func (b *benchRun) movedAfterKill(ctx context.Context, ids []ledger.Hash, k *benchKill) error {
	ctx, cancel := context.WithTimeout(ctx, benchReadTimeout)
	defer cancel()
	var views []*taskrt.OperationView
	for _, id := range ids {
		if id == (ledger.Hash{}) {
			continue
		}
		v, err := b.c.Operation(ctx, id)
		if err != nil {
			return fmt.Errorf("read operation %s back: %w", id.Hex(), b.a.nodeError(b.c, "", err))
		}
		views = append(views, v)
	}
	moves, first := firstMovedAttestation(views, k.Height)
	k.Moves = moves
	if first == nil {
		return nil
	}
	blk, err := b.c.Block(ctx, first.attestHeight)
	if err != nil {
		return fmt.Errorf("read block %d back: %w", first.attestHeight, b.a.nodeError(b.c, "", err))
	}
	d := float64(int64(blk.Time) - k.Time)
	k.ToMovedAttestationMS = &d
	k.MovedOperation, k.MovedTask, k.MovedHeight, k.AttestedHeight = first.op, first.task, first.moveHeight, first.attestHeight
	return nil
}

// movedAttestation is a move of a task or rollback and the attestation
// that followed it.
type movedAttestation struct {
	op, task                 string
	moveHeight, attestHeight uint64
}

// firstMovedAttestation counts the moves in views recorded at height from
// or later, and finds the first of them (the lowest height; of moves at
// one height, the one attested first) that an attestation followed: for a
// moved task its next task_attested or task_failed, for a moved rollback
// its next task_rolled_back or task_rollback_failed. A move that nothing
// attested after does not count as first: it did not fail over (yet).
func firstMovedAttestation(views []*taskrt.OperationView, from uint64) (int, *movedAttestation) {
	moves := 0
	var first *movedAttestation
	for _, v := range views {
		for i, e := range v.Events {
			var ends []string
			switch e.Type {
			case taskrt.EventTaskMoved:
				ends = []string{taskrt.EventTaskAttested, taskrt.EventTaskFailed}
			case taskrt.EventRollbackMoved:
				ends = []string{taskrt.EventTaskRolledBack, taskrt.EventTaskRollbackFailed}
			default:
				continue
			}
			if e.Height < from {
				continue
			}
			moves++
			for _, next := range v.Events[i+1:] {
				if next.Task != e.Task || !sameStage(next.Stage, e.Stage) || !slices.Contains(ends, next.Type) {
					continue
				}
				m := &movedAttestation{op: v.ID, task: e.Task, moveHeight: e.Height, attestHeight: next.Height}
				if first == nil || m.moveHeight < first.moveHeight || (m.moveHeight == first.moveHeight && m.attestHeight < first.attestHeight) {
					first = m
				}
				break
			}
		}
	}
	return moves, first
}

// sameStage compares two events' stages, either of which may be unset.
func sameStage(a, b *int) bool {
	return a == nil || b == nil || *a == *b
}

// printBenchTestnet prints rep as a table, the rows of one scenario and
// concurrency next to each other so that the phases compare at a glance,
// or as JSON.
func (a *app) printBenchTestnet(rep *benchTestnetReport, asJSON bool) error {
	scenario := func(name string) int {
		return slices.IndexFunc(benchScenarios, func(sc benchScenario) bool { return sc.name == name })
	}
	slices.SortStableFunc(rep.Results, func(x, y benchPhaseResult) int {
		if c := scenario(x.Scenario) - scenario(y.Scenario); c != 0 {
			return c
		}
		if c := x.Concurrency - y.Concurrency; c != 0 {
			return c
		}
		return slices.Index(benchPhases, x.Phase) - slices.Index(benchPhases, y.Phase)
	})
	for i, r := range rep.Results {
		for _, up := range rep.Results {
			if up.Phase == phaseAllUp && up.Scenario == r.Scenario && up.Concurrency == r.Concurrency && up.OpsPerSec > 0 {
				rep.Results[i].VsAllUp = r.OpsPerSec / up.OpsPerSec
			}
		}
	}
	if asJSON {
		return a.printJSON(rep)
	}
	down := "none"
	if len(rep.Down) > 0 {
		down = strings.Join(rep.Down, ", ")
	}
	fmt.Fprintf(a.stdout, "%d-validator testnet on 127.0.0.1, bench on node0; down at start and killed mid-run: %s; seed %d; lost after %s\n",
		rep.Validators, down, rep.Seed, time.Duration(rep.LostAfterMS*float64(time.Millisecond)))
	const row = "%-14s  %-8s  %11s  %6s  %8s  %9s  %8s  %8s  %9s  %11s  %15s  %5s  %16s\n"
	fmt.Fprintf(a.stdout, row, "phase", "scenario", "concurrency", "ops", "ops/s", "vs all up", "p50 ms", "p95 ms",
		"completed", "rolled_back", "rollback_failed", "lost", "kill to moved ms")
	var notes []string
	na := false
	for _, r := range rep.Results {
		vs, p50, p95, moved := "-", "n/a", "n/a", "-"
		if r.Phase != phaseAllUp {
			vs = fmt.Sprintf("%.0f%%", 100*r.VsAllUp)
		}
		if r.finished() > 0 {
			p50, p95 = fmt.Sprintf("%.1f", r.P50), fmt.Sprintf("%.1f", r.P95)
		}
		if k := r.Kill; k != nil {
			moved = "n/a"
			if k.ToMovedAttestationMS != nil {
				moved = fmt.Sprintf("%.0f", *k.ToMovedAttestationMS)
			} else {
				na = true
			}
			notes = append(notes, fmt.Sprintf("%s, %s at %d: SIGKILL once %d of %d operations had ended, at height %d; %s after it",
				r.Phase, r.Scenario, r.Concurrency, k.AfterOps, r.Ops, k.Height, plural(k.Moves, "move")))
		}
		fmt.Fprintf(a.stdout, row, r.Phase, r.Scenario, fmt.Sprint(r.Concurrency), fmt.Sprint(r.Ops), fmt.Sprintf("%.1f", r.OpsPerSec), vs, p50, p95,
			fmt.Sprint(r.Completed), fmt.Sprint(r.RolledBack), fmt.Sprint(r.RollbackFailed), fmt.Sprint(r.Lost), moved)
	}
	for _, n := range notes {
		fmt.Fprintln(a.stdout, n)
	}
	if na {
		fmt.Fprintf(a.stdout, "kill to moved n/a: no task or rollback moved off a killed validator and was attested after the kill (no %s or %s event followed by an attestation)\n",
			taskrt.EventTaskMoved, taskrt.EventRollbackMoved)
	}
	_, err := fmt.Fprintln(a.stdout, "ops/s counts the operations that finished; p50 and p95 are theirs; lost: not final within lost-after")
	return err
}
