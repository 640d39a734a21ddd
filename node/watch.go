package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/metrics"
	"github.com/sagachain/sagachain/node/monitor"
	"github.com/sagachain/sagachain/taskrt"
)

// failureWatch connects the monitor to the node: it feeds every committed
// block to the watch and its alerts to the notifier, in the order the
// monitor package asks for (observe, enqueue, save).
type failureWatch struct {
	watch    *monitor.Watch
	notifier *monitor.Notifier
	machine  *ledger.Machine
	log      *slog.Logger
	// store holds the committed liveness (ledger.Hosts) that host_down
	// alerts read after each block.
	store   ledger.StateReader
	metrics *metrics.Metrics
	// down is the number of executors marked down at the last read of the
	// hosts: while it is 0, only a block with a failover can change it.
	down int
}

// memState keeps monitor state in memory, for nodes without a home.
type memState struct {
	mu sync.Mutex
	b  []byte
}

func (m *memState) Load() ([]byte, error) { m.mu.Lock(); defer m.mu.Unlock(); return m.b, nil }
func (m *memState) Save(b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.b = append([]byte(nil), b...)
	return nil
}

func newFailureWatch(n *Node) (*failureWatch, error) {
	var ws, outbox monitor.State = &memState{}, &memState{}
	if !n.opts.InMemory {
		ws = monitor.FileState(filepath.Join(n.opts.Home, DataDir, "monitor-state.json"))
		outbox = monitor.FileState(filepath.Join(n.opts.Home, DataDir, "alerts-outbox.json"))
	}
	w, err := monitor.NewWatch(n.opts.Config.Monitoring, ws)
	if err != nil {
		return nil, err
	}
	notifier, err := monitor.NewNotifier(outbox, &http.Client{Timeout: 10 * time.Second}, n.log)
	if err != nil {
		return nil, err
	}
	f := &failureWatch{watch: w, notifier: notifier, machine: n.machine, log: n.log, store: n.store, metrics: n.metrics}
	hosts, err := n.store.Hosts()
	if err != nil {
		return nil, fmt.Errorf("failure watch: read executor liveness: %w", err)
	}
	f.down = len(hosts.Down())
	f.metrics.ExecutorsDown(f.down, 0)
	return f, nil
}

// lookup names a task's run and rollback functions.
func (f *failureWatch) lookup(ops map[ledger.Hash]*ledger.OpRecord) monitor.Lookup {
	return func(id ledger.Hash, task string) (string, string, bool) {
		r, ok := ops[id]
		if !ok {
			return "", "", false
		}
		op, plan, err := f.machine.Compiled(r)
		if err != nil {
			return "", "", false
		}
		i, ok := plan.Index(task)
		if !ok {
			return "", "", false
		}
		return op.Tasks[i].Run, op.Tasks[i].Rollback, true
	}
}

// observe feeds one committed block.
func (f *failureWatch) observe(b *ledger.Block, ops []*ledger.OpRecord) error {
	if b.Header.Height <= f.watch.Height() {
		return nil
	}
	byID := make(map[ledger.Hash]*ledger.OpRecord, len(ops))
	for _, r := range ops {
		byID[r.ID] = r
	}
	lookup := f.lookup(byID)
	alerts, err := f.watch.Observe(b.Header.Height, b.Header.Time, ops, lookup)
	if err != nil {
		return err
	}
	down, err := f.hostsDown(b, ops, lookup)
	if err != nil {
		return err
	}
	alerts = append(alerts, down...)
	for _, a := range alerts {
		attrs := []any{"id", a.ID, "kind", a.Kind, "functions", a.Functions, "count", a.Count, "height", a.Height}
		if a.Executor != nil {
			attrs = append(attrs, "executor", a.Executor.Hex())
		}
		f.log.Warn("failure alert", attrs...)
	}
	if err := f.notifier.Enqueue(alerts...); err != nil {
		return err
	}
	if len(alerts) == 0 && !failedAt(ops, b.Header.Height) && b.Header.Height%1000 != 0 {
		// Nothing the watch counts happened: skip the synced write. After
		// a restart the watch replays from its last save, and blocks
		// without failures change nothing it would need; saving every
		// thousandth block bounds that replay.
		return nil
	}
	return f.watch.Save()
}

// hostsDown returns the host_down alerts of block b, read from the hosts
// the store holds after it, and updates the liveness metrics. Only a
// failover marks an executor down, and any entry it signs brings it up:
// so the hosts are read for a block that carries a failover, or while the
// last read found an executor down, and a healthy chain pays nothing.
func (f *failureWatch) hostsDown(b *ledger.Block, ops []*ledger.OpRecord, lookup monitor.Lookup) ([]monitor.Alert, error) {
	if f.down == 0 && !slices.ContainsFunc(b.Entries, func(e ledger.Entry) bool { return e.Kind == ledger.KindFailover }) {
		return nil, nil
	}
	hosts, err := f.store.Hosts()
	if err != nil {
		return nil, fmt.Errorf("block %d: read executor liveness: %w", b.Header.Height, err)
	}
	down := hosts.Down()
	marked := 0
	for _, a := range down {
		if hosts.ByValidator[a].DownHeight == b.Header.Height {
			marked++
		}
	}
	f.down = len(down)
	f.metrics.ExecutorsDown(f.down, marked)
	if marked == 0 {
		return nil, nil
	}
	return f.watch.ObserveHosts(b.Header.Height, hosts, ops, lookup)
}

// failedAt reports whether any of ops recorded a failure at height.
func failedAt(ops []*ledger.OpRecord, height uint64) bool {
	for _, r := range ops {
		for i := len(r.Events) - 1; i >= 0 && r.Events[i].Height == height; i-- {
			switch e := r.Events[i]; e.Type {
			case taskrt.EventTaskFailed, taskrt.EventTaskTimedOut, taskrt.EventTaskRollbackFailed:
				return true
			case taskrt.EventTaskAttested:
				if e.Valid != nil && !*e.Valid {
					return true
				}
			case taskrt.EventFinished:
				if e.Status == string(taskrt.OpRollbackFailed) {
					return true
				}
			}
		}
	}
	return false
}

// replay feeds the blocks committed after the watch last saved, so a
// restart neither forgets failures nor misses an alert.
func (f *failureWatch) replay(s ledger.Store) error {
	head, err := s.Head()
	if err != nil {
		return err
	}
	for h := f.watch.Height() + 1; h <= head; h++ {
		b, err := s.Block(h)
		if err != nil {
			return err
		}
		var ops []*ledger.OpRecord
		seen := map[ledger.Hash]bool{}
		for _, e := range b.Entries {
			id, ok := entryOperation(e)
			if !ok || seen[id] {
				continue
			}
			seen[id] = true
			r, err := s.Operation(id)
			if err != nil {
				return fmt.Errorf("replay block %d: %w", h, err)
			}
			ops = append(ops, r)
		}
		if err := f.observe(b, ops); err != nil {
			return fmt.Errorf("replay block %d: %w", h, err)
		}
	}
	return nil
}

// entryOperation returns the operation an entry concerns.
func entryOperation(e ledger.Entry) (ledger.Hash, bool) {
	if e.Kind == ledger.KindSubmission {
		return e.Hash(), true
	}
	v, err := e.Decode()
	if err != nil {
		return ledger.Hash{}, false
	}
	switch b := v.(type) {
	case *ledger.Attestation:
		return b.Operation, true
	case *ledger.Timeout:
		return b.Operation, true
	case *ledger.Failover:
		return b.Operation, true
	case *ledger.Retry:
		return b.Operation, true
	case *ledger.StageRecord:
		return b.Operation, true
	}
	return ledger.Hash{}, false
}

func (f *failureWatch) run(ctx context.Context) { f.notifier.Run(ctx) }

// statusCounts counts the stored operations by status, for the metrics'
// starting point.
func statusCounts(s *ledger.BadgerStore) (map[taskrt.OpStatus]int, error) {
	counts := map[taskrt.OpStatus]int{}
	for _, st := range []taskrt.OpStatus{taskrt.OpRunning, taskrt.OpCompleted, taskrt.OpRollingBack, taskrt.OpRolledBack, taskrt.OpRollbackFailed} {
		n, err := s.CountOperations(st)
		if err != nil {
			return nil, err
		}
		counts[st] = n
	}
	return counts, nil
}
