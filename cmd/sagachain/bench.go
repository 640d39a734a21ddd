package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cast"
	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

func (a *app) newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench [--rpc URL | --testnet N [--kill K]] [--ops N] [--concurrency 1,16,64] [--scenario complete|rollback|both] [--json]",
		Short: "Measure operations per second and latency against a node, or a testnet of its own with validators down",
		Long: `bench submits operations to a node and measures how many finish per second and
how long each takes, from sending it to seeing its final status. For each
scenario and each concurrency level (that many submitters at once) it runs
--ops operations, after a few warm-up operations that are not counted:

  complete   3 stages, 5 echo tasks, which completes
  rollback   the same with its last task failing (builtin fail, one attempt),
             which rolls back

An operation not final within --lost-after of its submission counts as lost;
p50 and p95 are over the operations that did finish.

It signs with your client key (or --key FILE), which must be a genesis
submitter. Every operation is recorded on the chain.

With --testnet N, bench makes and runs a fresh N-validator testnet of its own
(as testnet init would, in a temporary directory, on free 127.0.0.1 ports, one
sagachain node process per validator, signing with a key made for it) and
measures it in up to three phases side by side: "all up"; "down at start",
another fresh testnet on which --kill K validators are never started; and
"killed mid-run", a fresh testnet per scenario and level on which the same K
validators get SIGKILL once a random 30-70% of the level's operations have
ended. For the kill it also reports the time from the kill to the block of the
first attestation of a task (or rollback) that moved off a dead validator
after it, n/a when none moved. Node0, whose RPC bench uses, is never down.
--seed makes the choices repeatable; every process it started is killed when
it ends, however it ends.`,
		Example: `  sagachain dev &
  sagachain bench --ops 200 --concurrency 1,16,64

  sagachain bench --testnet 4 --kill 1 --ops 200 --concurrency 1,64 --scenario complete`,
		Args: cobra.NoArgs,
		RunE: a.runE(a.bench),
	}
	addRPCFlag(cmd)
	cmd.Flags().Int("ops", 500, "operations per scenario and concurrency level")
	cmd.Flags().String("concurrency", "1,16,64", "the concurrency levels: comma-separated numbers of submitters at once")
	cmd.Flags().String("scenario", "both", "complete, rollback or both")
	cmd.Flags().Bool("json", false, "print the results as JSON")
	cmd.Flags().String("key", "", "the key to sign with (default ~/.sagachain/client.key)")
	cmd.Flags().Duration("lost-after", benchLostAfter, "how long to wait for an operation's final status before counting it lost")
	cmd.Flags().Int("testnet", 0, "make and measure a testnet of this many validators instead of --rpc")
	cmd.Flags().Int("kill", 0, "with --testnet: how many validators are down at start, and killed mid-run, in phases of their own")
	cmd.Flags().Uint64("seed", 0, "with --testnet: the seed of the random choices (default: from the clock; printed)")
	return cmd
}

// benchLostAfter is the default of --lost-after: long enough that an
// operation a working network finishes is never counted lost (at 64
// submitters the slowest takes well under a second on two cores), short
// enough that a network that lost it does not hold a level up for minutes.
const benchLostAfter = 30 * time.Second

// benchScenario is one shape of operation bench submits.
type benchScenario struct {
	name string
	file string
	want taskrt.OpStatus
}

var benchScenarios = []benchScenario{
	{name: "complete", want: taskrt.OpCompleted, file: `name: bench-complete
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [a]}
  - {id: b, run: echo, rollback: noop, outputs: [b]}
  - {id: c, run: echo, rollback: noop, inputs: [a], outputs: [c]}
  - {id: d, run: echo, rollback: noop, inputs: [b], outputs: [d]}
  - {id: e, run: echo, rollback: noop, inputs: [c, d], outputs: [e]}
`},
	{name: "rollback", want: taskrt.OpRolledBack, file: `name: bench-rollback
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [a]}
  - {id: b, run: echo, rollback: noop, outputs: [b]}
  - {id: c, run: echo, rollback: noop, inputs: [a], outputs: [c]}
  - {id: d, run: echo, rollback: noop, inputs: [b], outputs: [d]}
  - {id: e, run: fail, rollback: noop, inputs: [c, d], outputs: [e], retry: {attempts: 1}}
`},
}

// benchWarmup is the number of operations each scenario runs before it
// measures.
const benchWarmup = 5

// benchResult is one row of bench's table.
type benchResult struct {
	Scenario    string  `json:"scenario"`
	Concurrency int     `json:"concurrency"`
	Ops         int     `json:"ops"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	P50         float64 `json:"p50_ms"`
	P95         float64 `json:"p95_ms"`
	P99         float64 `json:"p99_ms"`
	Max         float64 `json:"max_ms"`
	// Unexpected counts operations that ended in another status than the
	// scenario's.
	Unexpected int `json:"unexpected"`
	// Completed, RolledBack and RollbackFailed count the operations that
	// ended so; Lost those not final within --lost-after.
	Completed      int `json:"completed"`
	RolledBack     int `json:"rolled_back"`
	RollbackFailed int `json:"rollback_failed"`
	Lost           int `json:"lost"`
}

// finished is how many operations reached a final status.
func (r benchResult) finished() int { return r.Completed + r.RolledBack + r.RollbackFailed }

// benchPlan is what the flags ask bench to run, wherever it runs it.
type benchPlan struct {
	ops       int
	levels    []int
	scenarios []benchScenario
	lostAfter time.Duration
	asJSON    bool
}

func (a *app) bench(cmd *cobra.Command, _ []string) error {
	p, err := a.benchFlags()
	if err != nil {
		return err
	}
	validators, err := a.flagInt("testnet")
	if err != nil {
		return err
	}
	kill, err := a.flagInt("kill")
	if err != nil {
		return err
	}
	if validators != 0 {
		return a.benchTestnet(cmd.Context(), p, validators, kill)
	}
	if kill != 0 {
		return usageError(fmt.Errorf("%s: takes a testnet of bench's own: add --testnet N", a.flagSource("kill")))
	}
	key, err := a.clientKey()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c, head, err := a.dialHead(ctx)
	if err != nil {
		return err
	}
	defer c.Close()

	b := &benchRun{a: a, c: c, key: key, chainID: head.ChainID, lostAfter: p.lostAfter}
	var results []benchResult
	for _, sc := range p.scenarios {
		op, err := sc.load()
		if err != nil {
			return err
		}
		if err := b.warmup(ctx, sc, op); err != nil {
			return err
		}
		for _, conc := range p.levels {
			a.log.Info("bench", "scenario", sc.name, "concurrency", conc, "ops", p.ops)
			r, err := b.level(ctx, sc, op, conc, p.ops, nil)
			if err != nil {
				return err
			}
			results = append(results, r.benchResult)
		}
	}
	if p.asJSON {
		if err := a.printJSON(results); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.stdout, "%-9s %11s %6s %8s %8s %8s %8s\n", "scenario", "concurrency", "ops", "ops/s", "p50 ms", "p95 ms", "p99 ms")
		for _, r := range results {
			fmt.Fprintf(a.stdout, "%-9s %11d %6d %8.1f %8.1f %8.1f %8.1f\n", r.Scenario, r.Concurrency, r.Ops, r.OpsPerSec, r.P50, r.P95, r.P99)
		}
	}
	return checkOutcomes(results)
}

// checkOutcomes fails when an operation did not end as its scenario does:
// against a working node, that is a fault of the node, not a measurement.
func checkOutcomes(results []benchResult) error {
	for _, r := range results {
		if r.Unexpected > 0 {
			return fmt.Errorf("%d %s operations (concurrency %d) did not end %s", r.Unexpected, r.Scenario, r.Concurrency, wantOf(r.Scenario))
		}
		if r.Lost > 0 {
			return fmt.Errorf("%d %s operations (concurrency %d) were not final within --lost-after", r.Lost, r.Scenario, r.Concurrency)
		}
	}
	return nil
}

// benchFlags resolves the flags that shape a run, with or without
// --testnet.
func (a *app) benchFlags() (benchPlan, error) {
	var p benchPlan
	var err error
	if p.asJSON, err = a.flagBool("json"); err != nil {
		return p, err
	}
	if p.ops, err = a.flagInt("ops"); err != nil {
		return p, err
	}
	if p.ops <= 0 {
		return p, usageError(fmt.Errorf("%s: want a positive number, got %d", a.flagSource("ops"), p.ops))
	}
	if p.levels, err = parseLevels(a.flagString("concurrency")); err != nil {
		return p, usageError(fmt.Errorf("%s: %w", a.flagSource("concurrency"), err))
	}
	if p.lostAfter, err = cast.ToDurationE(a.flags.Get("lost-after")); err != nil || p.lostAfter <= 0 {
		return p, usageError(fmt.Errorf("%s: want a positive duration such as 30s, got %v", a.flagSource("lost-after"), a.flags.Get("lost-after")))
	}
	switch s := a.flagString("scenario"); s {
	case "both":
		p.scenarios = benchScenarios
	case "complete", "rollback":
		for _, sc := range benchScenarios {
			if sc.name == s {
				p.scenarios = append(p.scenarios, sc)
			}
		}
	default:
		return p, usageError(fmt.Errorf("%s: want complete, rollback or both, got %q", a.flagSource("scenario"), s))
	}
	return p, nil
}

func wantOf(scenario string) taskrt.OpStatus {
	for _, sc := range benchScenarios {
		if sc.name == scenario {
			return sc.want
		}
	}
	return ""
}

// parseLevels parses comma-separated positive numbers.
func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("want comma-separated positive numbers such as 1,16,64, got %q", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// benchRun is what the levels of one bench share.
type benchRun struct {
	a       *app
	c       *rpc.Client
	key     *ledger.PrivateKey
	chainID string
	// lostAfter bounds the wait for one operation's final status.
	lostAfter time.Duration
}

// load parses the scenario's operation file.
func (sc benchScenario) load() (*taskrt.Operation, error) {
	op, err := taskrt.Load([]byte(sc.file), nil, taskrt.DefaultLimits())
	if err != nil {
		return nil, fmt.Errorf("bench scenario %s: %w", sc.name, err) // the scenarios are fixed: a bug
	}
	return op, nil
}

// warmup runs the uncounted operations that come before a scenario's
// levels, so that the first level does not pay for connections and caches
// the others find ready. How they end is not measured.
func (b *benchRun) warmup(ctx context.Context, sc benchScenario, op *taskrt.Operation) error {
	_, err := b.level(ctx, sc, op, 1, benchWarmup, nil)
	return err
}

// levelRun is what one level measured: its row, and the ids of its
// operations for a look at their events afterwards.
type levelRun struct {
	benchResult
	// ids holds the id of operation i, zero if it was never submitted.
	ids []ledger.Hash
}

// errLost says that an operation was not final within benchRun.lostAfter.
var errLost = errors.New("not final within --lost-after")

// level runs n operations of sc with conc submitters at once, and times
// each from sending sc_submit to seeing its final status. after, if not
// nil, is called each time an operation ended (finished or lost) with how
// many have ended so far, 1 to n, once each, on the submitter of the one
// that ended, which waits for it; an error from it ends the level.
func (b *benchRun) level(ctx context.Context, sc benchScenario, op *taskrt.Operation, conc, n int, after func(ctx context.Context, ended int) error) (levelRun, error) {
	// Signing happens before the clock starts: it is the client's cost.
	entries := make([]ledger.Entry, n)
	for i := range entries {
		// Signing many takes seconds, which an interrupt need not wait for.
		if err := ctx.Err(); err != nil {
			return levelRun{}, err
		}
		e, err := submission(op, b.key, b.chainID)
		if err != nil {
			return levelRun{}, err
		}
		entries[i] = e
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		ended    atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		outcomes = map[taskrt.OpStatus]int{}
		lost     int
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	ids := make([]ledger.Hash, n)
	// latencies[i] stays negative for an operation that did not finish.
	latencies := make([]time.Duration, n)
	for i := range latencies {
		latencies[i] = -1
	}
	start := time.Now()
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				id, status, err := b.one(ctx, entries[i])
				ids[i] = id
				switch {
				case errors.Is(err, errLost):
					mu.Lock()
					lost++
					mu.Unlock()
				case err != nil:
					fail(err)
					return
				default:
					latencies[i] = time.Since(t0)
					mu.Lock()
					outcomes[status]++
					mu.Unlock()
				}
				if e := int(ended.Add(1)); after != nil {
					if err := after(ctx, e); err != nil {
						fail(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if firstErr != nil {
		return levelRun{}, firstErr
	}
	// The submitters also stop, without an error of their own, when the
	// caller gives up.
	if err := parent.Err(); err != nil {
		return levelRun{}, err
	}
	done := slices.DeleteFunc(latencies, func(d time.Duration) bool { return d < 0 })
	slices.Sort(done)
	r := benchResult{
		Scenario: sc.name, Concurrency: conc, Ops: n, Seconds: wall.Seconds(), OpsPerSec: float64(len(done)) / wall.Seconds(),
		P50: ms(percentile(done, 0.50)), P95: ms(percentile(done, 0.95)), P99: ms(percentile(done, 0.99)),
		Unexpected: len(done) - outcomes[sc.want],
		Completed:  outcomes[taskrt.OpCompleted], RolledBack: outcomes[taskrt.OpRolledBack], RollbackFailed: outcomes[taskrt.OpRollbackFailed],
		Lost: lost,
	}
	if len(done) > 0 {
		r.Max = ms(done[len(done)-1])
	}
	return levelRun{benchResult: r, ids: ids}, nil
}

// one submits an entry and waits, at most b.lostAfter from now, for the
// operation's final status; past that it returns errLost (with the id, if
// the node took the entry). The node answers sc_submit once a block holds
// the entry; then the operation is followed over a WebSocket subscription
// to its status, which the node pushes after every block that changes it.
// Polling sc_operation every 2ms instead was measured against
// `sagachain dev` (100 ops per level): the same at concurrency 1, but at 16
// and 64 the polls compete with the node's own work, so the subscription
// gave 2-5x the ops/s and a third to a fifth of the p50 latency. Following
// whole views (operationEvents, as submit --wait does) cost the node a
// tenth of its CPU at concurrency 64.
func (b *benchRun) one(ctx context.Context, e ledger.Entry) (ledger.Hash, taskrt.OpStatus, error) {
	opCtx, cancel := context.WithTimeoutCause(ctx, b.lostAfter, errLost)
	defer cancel()
	// lostOr tells a wait that ran out (the parent still live) from any
	// other failure.
	lostOr := func(err error) error {
		if ctx.Err() == nil && errors.Is(context.Cause(opCtx), errLost) {
			return errLost
		}
		return err
	}
	res, err := b.c.Submit(opCtx, e)
	if err != nil {
		return ledger.Hash{}, "", lostOr(b.a.nodeError(b.c, "", err))
	}
	id := *res.ID
	statuses := make(chan rpc.OperationStatus, 8)
	sub, err := b.c.SubscribeOperationStatus(opCtx, id, statuses)
	if err != nil {
		return id, "", lostOr(b.a.nodeError(b.c, "", err))
	}
	defer sub.Unsubscribe()
	for {
		select {
		case s := <-statuses:
			if s.Status.Final() {
				return id, s.Status, nil
			}
		case err := <-sub.Err():
			// The final status, if any, is in statuses already.
			for len(statuses) > 0 {
				if s := <-statuses; s.Status.Final() {
					return id, s.Status, nil
				}
			}
			if err == nil {
				err = errors.New("the subscription ended before the operation finished")
			}
			return id, "", lostOr(fmt.Errorf("operation %s: %w", id.Hex(), err))
		case <-opCtx.Done():
			return id, "", lostOr(opCtx.Err())
		}
	}
}

// percentile is the nearest-rank percentile q of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// ms is a duration in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
