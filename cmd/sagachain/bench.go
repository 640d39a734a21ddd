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

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

func (a *app) newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench [--rpc URL] [--ops N] [--concurrency 1,16,64] [--scenario complete|rollback|both] [--json]",
		Short: "Measure operations per second and latency against a node",
		Long: `bench submits operations to a node and measures how many finish per second and
how long each takes, from sending it to seeing its final status. For each
scenario and each concurrency level (that many submitters at once) it runs
--ops operations, after a few warm-up operations that are not counted:

  complete   3 stages, 5 echo tasks, which completes
  rollback   the same with its last task failing (builtin fail, one attempt),
             which rolls back

It signs with your client key (or --key FILE), which must be a genesis
submitter. Every operation is recorded on the chain.`,
		Example: `  sagachain dev &
  sagachain bench --ops 200 --concurrency 1,16,64`,
		Args: cobra.NoArgs,
		RunE: a.runE(a.bench),
	}
	addRPCFlag(cmd)
	cmd.Flags().Int("ops", 500, "operations per scenario and concurrency level")
	cmd.Flags().String("concurrency", "1,16,64", "the concurrency levels: comma-separated numbers of submitters at once")
	cmd.Flags().String("scenario", "both", "complete, rollback or both")
	cmd.Flags().Bool("json", false, "print the results as JSON")
	cmd.Flags().String("key", "", "the key to sign with (default ~/.sagachain/client.key)")
	return cmd
}

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
}

func (a *app) bench(cmd *cobra.Command, _ []string) error {
	asJSON, err := a.flagBool("json")
	if err != nil {
		return err
	}
	n, err := a.flagInt("ops")
	if err != nil {
		return err
	}
	if n <= 0 {
		return usageError(fmt.Errorf("%s: want a positive number, got %d", a.flagSource("ops"), n))
	}
	levels, err := parseLevels(a.flagString("concurrency"))
	if err != nil {
		return usageError(fmt.Errorf("%s: %w", a.flagSource("concurrency"), err))
	}
	var scenarios []benchScenario
	switch s := a.flagString("scenario"); s {
	case "both":
		scenarios = benchScenarios
	case "complete", "rollback":
		for _, sc := range benchScenarios {
			if sc.name == s {
				scenarios = append(scenarios, sc)
			}
		}
	default:
		return usageError(fmt.Errorf("%s: want complete, rollback or both, got %q", a.flagSource("scenario"), s))
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

	b := &benchRun{a: a, c: c, key: key, chainID: head.ChainID}
	var results []benchResult
	for _, sc := range scenarios {
		op, err := taskrt.Load([]byte(sc.file), nil, taskrt.DefaultLimits())
		if err != nil {
			return err // the scenarios are fixed: a bug
		}
		if _, err := b.level(ctx, sc, op, 1, benchWarmup); err != nil {
			return err
		}
		for _, conc := range levels {
			a.log.Info("bench", "scenario", sc.name, "concurrency", conc, "ops", n)
			r, err := b.level(ctx, sc, op, conc, n)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
	}
	if asJSON {
		if err := a.printJSON(results); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.stdout, "%-9s %11s %6s %8s %8s %8s %8s\n", "scenario", "concurrency", "ops", "ops/s", "p50 ms", "p95 ms", "p99 ms")
		for _, r := range results {
			fmt.Fprintf(a.stdout, "%-9s %11d %6d %8.1f %8.1f %8.1f %8.1f\n", r.Scenario, r.Concurrency, r.Ops, r.OpsPerSec, r.P50, r.P95, r.P99)
		}
	}
	for _, r := range results {
		if r.Unexpected > 0 {
			return fmt.Errorf("%d %s operations (concurrency %d) did not end %s", r.Unexpected, r.Scenario, r.Concurrency, wantOf(r.Scenario))
		}
	}
	return nil
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
}

// level runs n operations of sc with conc submitters at once, and times
// each from sending sc_submit to seeing its final status.
func (b *benchRun) level(ctx context.Context, sc benchScenario, op *taskrt.Operation, conc, n int) (benchResult, error) {
	// Signing happens before the clock starts: it is the client's cost.
	entries := make([]ledger.Entry, n)
	for i := range entries {
		e, err := submission(op, b.key, b.chainID)
		if err != nil {
			return benchResult{}, err
		}
		entries[i] = e
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next       atomic.Int64
		unexpected atomic.Int64
		wg         sync.WaitGroup
		mu         sync.Mutex
		firstErr   error
	)
	latencies := make([]time.Duration, n)
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
				status, err := b.one(ctx, entries[i])
				latencies[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				if status != sc.want {
					unexpected.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if firstErr != nil {
		return benchResult{}, firstErr
	}
	slices.Sort(latencies)
	return benchResult{
		Scenario: sc.name, Concurrency: conc, Ops: n, Seconds: wall.Seconds(), OpsPerSec: float64(n) / wall.Seconds(),
		P50: ms(percentile(latencies, 0.50)), P95: ms(percentile(latencies, 0.95)), P99: ms(percentile(latencies, 0.99)),
		Max: ms(latencies[n-1]), Unexpected: int(unexpected.Load()),
	}, nil
}

// one submits an entry and waits for the operation's final status. The
// node answers sc_submit once a block holds the entry; then the operation
// is followed over a WebSocket subscription to its status, which the node
// pushes after every block that changes it. Polling sc_operation every 2ms
// instead was measured against `sagachain dev` (100 ops per level): the
// same at concurrency 1, but at 16 and 64 the polls compete with the
// node's own work, so the subscription gave 2-5x the ops/s and a third to
// a fifth of the p50 latency. Following whole views (operationEvents, as
// submit --wait does) cost the node a tenth of its CPU at concurrency 64.
func (b *benchRun) one(ctx context.Context, e ledger.Entry) (taskrt.OpStatus, error) {
	res, err := b.c.Submit(ctx, e)
	if err != nil {
		return "", b.a.nodeError(b.c, "", err)
	}
	statuses := make(chan rpc.OperationStatus, 8)
	sub, err := b.c.SubscribeOperationStatus(ctx, *res.ID, statuses)
	if err != nil {
		return "", b.a.nodeError(b.c, "", err)
	}
	defer sub.Unsubscribe()
	for {
		select {
		case s := <-statuses:
			if s.Status.Final() {
				return s.Status, nil
			}
		case err := <-sub.Err():
			// The final status, if any, is in statuses already.
			for len(statuses) > 0 {
				if s := <-statuses; s.Status.Final() {
					return s.Status, nil
				}
			}
			if err == nil {
				err = errors.New("the subscription ended before the operation finished")
			}
			return "", fmt.Errorf("operation %s: %w", res.ID.Hex(), err)
		case <-ctx.Done():
			return "", ctx.Err()
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
