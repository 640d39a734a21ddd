package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/sagachain/sagachain/ledger"
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
	return &failureWatch{watch: w, notifier: notifier, machine: n.machine, log: n.log}, nil
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
	alerts, err := f.watch.Observe(b.Header.Height, b.Header.Time, ops, f.lookup(byID))
	if err != nil {
		return err
	}
	for _, a := range alerts {
		f.log.Warn("failure alert", "id", a.ID, "kind", a.Kind, "functions", a.Functions, "count", a.Count, "height", a.Height)
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
