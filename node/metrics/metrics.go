package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// statuses are the operation statuses, each a series of
// sagachain_operations from the start so that a status nobody is in reads 0
// rather than missing.
var statuses = []taskrt.OpStatus{taskrt.OpRunning, taskrt.OpCompleted, taskrt.OpRollingBack, taskrt.OpRolledBack, taskrt.OpRollbackFailed}

// Failure kinds of sagachain_task_failures_total.
const (
	KindRun      = "run"
	KindRollback = "rollback"
)

// durationBuckets span a builtin's milliseconds to a slow external call's
// minutes.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// roundBuckets: a healthy network decides in round 1.
var roundBuckets = []float64{1, 2, 3, 4, 5, 8, 13, 21}

// Metrics holds the node's metrics. It is safe for concurrent use.
type Metrics struct {
	operations       *prometheus.GaugeVec
	finished         *prometheus.CounterVec
	taskDuration     *prometheus.HistogramVec
	rollbackDuration *prometheus.HistogramVec
	failures         *prometheus.CounterVec
	commit           prometheus.Histogram
	rounds           prometheus.Histogram
	height           prometheus.Gauge
	mempool          prometheus.Gauge
	peers            prometheus.Gauge
	blocks           prometheus.Counter
	entries          prometheus.Counter
	executorsDown    prometheus.Gauge
	markedDown       prometheus.Counter

	gatherer prometheus.Gatherer

	mu sync.Mutex
	// counts are the operations per status behind sagachain_operations.
	counts map[taskrt.OpStatus]int
	// opsHeight is the last height whose operation changes were counted.
	opsHeight uint64
}

// New registers the metrics with reg and returns them. A nil reg is a new
// registry that also carries the Go runtime and process collectors.
// [Metrics.Handler] serves reg when it is a [prometheus.Gatherer] (as a
// *prometheus.Registry is), and the default gatherer otherwise. Like
// [prometheus.MustRegister], New panics when a metric is registered already.
func New(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg = r
	}
	m := &Metrics{
		operations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sagachain_operations",
			Help: "Operations on the chain, by status.",
		}, []string{"status"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sagachain_operations_finished_total",
			Help: "Operations that reached a final status, by that status.",
		}, []string{"status"}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sagachain_task_duration_seconds",
			Help:    "Time this node took to run a task, all attempts included, by run function.",
			Buckets: durationBuckets,
		}, []string{"function"}),
		rollbackDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sagachain_rollback_duration_seconds",
			Help:    "Time this node took to roll back a task, all attempts included, by rollback function.",
			Buckets: durationBuckets,
		}, []string{"function"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sagachain_task_failures_total",
			Help: "Tasks this node ran that failed, by function and kind (run or rollback).",
		}, []string{"function", "kind"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sagachain_block_commit_seconds",
			Help: "Time from the start of a height to the commit of its block.",
			// Finer than the defaults below 100ms, where a healthy network's
			// heights commit, so that percentiles read off the buckets
			// answer whether commits take 10, 20 or 30 ms.
			Buckets: []float64{.002, .004, .006, .008, .01, .0125, .015, .0175, .02, .025, .03, .04, .05, .075, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		rounds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sagachain_consensus_rounds",
			Help:    "Rounds a height took to decide (1 when its first round did).",
			Buckets: roundBuckets,
		}),
		height: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sagachain_height",
			Help: "Height of the last committed block.",
		}),
		mempool: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sagachain_mempool_entries",
			Help: "Entries waiting for a block.",
		}),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sagachain_peers",
			Help: "Connected peers.",
		}),
		blocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sagachain_blocks_total",
			Help: "Blocks committed since the node started.",
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sagachain_entries_total",
			Help: "Entries of the blocks committed since the node started.",
		}),
		executorsDown: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sagachain_executors_down",
			Help: "Executors the chain marks down: a lease of theirs expired and no block carried an entry they signed since.",
		}),
		markedDown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sagachain_executor_down_total",
			Help: "Times a block committed since the node started marked an executor down.",
		}),
		counts: make(map[taskrt.OpStatus]int, len(statuses)),
	}
	reg.MustRegister(m.operations, m.finished, m.taskDuration, m.rollbackDuration, m.failures,
		m.commit, m.rounds, m.height, m.mempool, m.peers, m.blocks, m.entries, m.executorsDown, m.markedDown)
	for _, s := range statuses {
		m.operations.WithLabelValues(string(s))
		if s.Final() {
			m.finished.WithLabelValues(string(s))
		}
	}
	m.gatherer = prometheus.DefaultGatherer
	if g, ok := reg.(prometheus.Gatherer); ok {
		m.gatherer = g
	}
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}

// BlockCommitted records the commit of the block at height, decided in
// round (0 for the first), carrying entries, took after its height began.
func (m *Metrics) BlockCommitted(height, round uint64, entries int, took time.Duration) {
	m.height.Set(float64(height))
	m.blocks.Inc()
	m.entries.Add(float64(entries))
	m.commit.Observe(took.Seconds())
	m.rounds.Observe(float64(round + 1))
}

// SetOperations sets the operations per status as of the block at height,
// as read from the store when the node starts; [Metrics.OperationsChanged]
// moves them on from there. A status missing from counts has none.
func (m *Metrics) SetOperations(height uint64, counts map[taskrt.OpStatus]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.counts)
	for s, n := range counts {
		m.counts[s] = n
	}
	m.opsHeight = height
	m.publishLocked()
}

// OperationsChanged takes the operation records one committed block
// changed, and moves each operation from the status it had before the block
// to the one it has now, counting those whose final event of the block
// finishes them.
//
// It avoids counting anything twice by reading only the events of the
// block: the block's height is the highest event height among ops, an
// operation's change is what its events of that height did, and a batch
// whose height is not above the last one counted (a block fed again, or one
// already in the counts given to [Metrics.SetOperations]) is ignored. The
// status before the block is replayed from the operation's earlier events,
// so the move needs no memory of each operation.
func (m *Metrics) OperationsChanged(ops []*ledger.OpRecord) {
	var height uint64
	for _, op := range ops {
		for _, ev := range op.Events {
			height = max(height, ev.Height)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if height == 0 || height <= m.opsHeight {
		return
	}
	m.opsHeight = height
	for _, op := range ops {
		var last *taskrt.Event
		for i := range op.Events {
			if op.Events[i].Height == height {
				last = &op.Events[i]
			}
		}
		if last == nil {
			continue // changed without an event of this block: no move
		}
		if before, ok := statusBefore(op.Events, height); ok {
			m.counts[before]--
		}
		m.counts[op.Saga.Status]++
		if last.Type == taskrt.EventFinished {
			m.finished.WithLabelValues(last.Status).Inc()
		}
	}
	m.publishLocked()
}

// statusBefore replays the status an operation had before the block at
// height from its events, with false when it did not exist yet.
func statusBefore(events []taskrt.Event, height uint64) (taskrt.OpStatus, bool) {
	var st taskrt.OpStatus
	seen := false
	for _, ev := range events {
		if ev.Height >= height {
			continue
		}
		seen = true
		switch ev.Type {
		case taskrt.EventSubmitted:
			st = taskrt.OpRunning
		case taskrt.EventTaskFailed, taskrt.EventTaskTimedOut, taskrt.EventRollbackReleased, taskrt.EventRollbackRetried:
			st = taskrt.OpRollingBack
		case taskrt.EventTaskAttested:
			if ev.Valid != nil && !*ev.Valid {
				st = taskrt.OpRollingBack
			}
		case taskrt.EventFinished:
			st = taskrt.OpStatus(ev.Status)
		}
	}
	return st, seen && st != ""
}

func (m *Metrics) publishLocked() {
	for _, s := range statuses {
		m.operations.WithLabelValues(string(s)).Set(float64(m.counts[s]))
	}
}

// ExecutorsDown records the liveness after a committed block: down
// executors are marked down now, and marked of them were marked by that
// block.
func (m *Metrics) ExecutorsDown(down, marked int) {
	m.executorsDown.Set(float64(down))
	m.markedDown.Add(float64(marked))
}

// TaskFinished records that this node's executor ran a task's run
// function (or, with rollback, its rollback function) to its end, all
// attempts included, taking took, and whether it failed.
func (m *Metrics) TaskFinished(function string, rollback bool, took time.Duration, failed bool) {
	h, kind := m.taskDuration, KindRun
	if rollback {
		h, kind = m.rollbackDuration, KindRollback
	}
	h.WithLabelValues(function).Observe(took.Seconds())
	if failed {
		m.failures.WithLabelValues(function, kind).Inc()
	}
}

// Mempool records the number of entries waiting for a block.
func (m *Metrics) Mempool(n int) { m.mempool.Set(float64(n)) }

// Peers records the number of connected peers.
func (m *Metrics) Peers(n int) { m.peers.Set(float64(n)) }
