package e2e

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// Move is one failover an operation's history records: a task's run
// (task_moved) or its rollback (rollback_moved) taken from an executor and
// given to another.
type Move struct {
	Operation ledger.Hash
	// Name is the operation's name.
	Name     string
	Rollback bool
	Task     string
	Stage    int
	Reason   string
	From, To ledger.Address
	// Height is the block that recorded the move. Outcome is the event
	// that next ended the task's run (attested, failed, timed out) or its
	// rollback (rolled back, rollback failed), and OutcomeHeight its block;
	// both are zero when no outcome followed the move.
	Height        uint64
	Outcome       string
	OutcomeHeight uint64
}

// Moves reads the history of every operation of acked from nd and returns
// the moves they record, operation by operation in the order of acked.
func Moves(nd *Node, acked []Acked) ([]Move, error) {
	var out []Move
	for _, a := range acked {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		v, err := nd.client.Operation(ctx, a.ID)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: operation %s: %w", nd.Name, a.ID.Hex(), err)
		}
		evs := v.Events
		for i, e := range evs {
			if e.Type != taskrt.EventTaskMoved && e.Type != taskrt.EventRollbackMoved {
				continue
			}
			m := Move{Operation: a.ID, Name: a.Name, Rollback: e.Type == taskrt.EventRollbackMoved, Task: e.Task, Reason: e.Reason, Height: e.Height}
			if e.Stage == nil {
				return nil, fmt.Errorf("%s: operation %s: %s of task %q at height %d names no stage", nd.Name, a.ID.Hex(), e.Type, e.Task, e.Height)
			}
			m.Stage = *e.Stage
			for _, f := range []struct {
				name string
				hex  string
				to   *ledger.Address
			}{{"from", e.From, &m.From}, {"to", e.To, &m.To}} {
				if *f.to, err = ledger.ParseAddress(f.hex); err != nil {
					return nil, fmt.Errorf("%s: operation %s: %s of task %q at height %d: %s %q: %v", nd.Name, a.ID.Hex(), e.Type, e.Task, e.Height, f.name, f.hex, err)
				}
			}
			outcomes := []string{taskrt.EventTaskAttested, taskrt.EventTaskFailed, taskrt.EventTaskTimedOut}
			if m.Rollback {
				outcomes = []string{taskrt.EventTaskRolledBack, taskrt.EventTaskRollbackFailed}
			}
			for _, later := range evs[i+1:] {
				if later.Task == e.Task && slices.Contains(outcomes, later.Type) {
					m.Outcome, m.OutcomeHeight = later.Type, later.Height
					break
				}
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// BlockTimes returns the time of each block of heights on nd, by height.
func BlockTimes(nd *Node, heights []uint64) (map[uint64]time.Time, error) {
	out := map[uint64]time.Time{}
	for _, h := range heights {
		if _, ok := out[h]; ok || h == 0 {
			continue
		}
		b, err := blockInfo(nd, h)
		if err != nil {
			return nil, err
		}
		out[h] = time.UnixMilli(int64(b.Time))
	}
	return out, nil
}
