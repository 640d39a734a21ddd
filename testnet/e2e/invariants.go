package e2e

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// Bounds of Check's waits.
const (
	// finalWait is longer than the operations' own timeouts (a minute for
	// the trips), after which the ledger ends them itself.
	finalWait  = 90 * time.Second
	headWait   = 30 * time.Second
	verifyWait = 2 * time.Minute
)

// Settled is the state Check found the network in.
type Settled struct {
	Height uint64
	Hash   ledger.Hash
	// Statuses counts the acknowledged operations by final status.
	Statuses map[taskrt.OpStatus]int
	// Verified is what verifying the first node's chain counted.
	Verified *ledger.VerifyReport
}

// String says what Check found, in one line.
func (s Settled) String() string {
	var st []string
	for _, k := range slices.Sorted(maps.Keys(s.Statuses)) {
		st = append(st, fmt.Sprintf("%d %s", s.Statuses[k], k))
	}
	return fmt.Sprintf("head %d %s; operations: %s; verified %d blocks, %d signatures, %d operations", s.Height, short(s.Hash),
		strings.Join(st, ", "), s.Verified.Blocks, s.Verified.Signatures, s.Verified.Operations)
}

func short(h ledger.Hash) string { return h.Hex()[:10] }

// Check waits, each wait bounded, until the nodes have settled, and checks
// the invariants against every one of them:
//   - every acknowledged operation is final on every node, with the same
//     status and the same history everywhere, and a status its
//     Load.Outcomes allow;
//   - that history is one the saga allows (see checkHistory): stages
//     released in order, rollbacks from the failed stage down to stage 0,
//     each stage's rollbacks ended before the one below is released;
//   - every node reports the same head height and hash;
//   - ledger.VerifyChain passes on every node's chain, read over RPC,
//     against the genesis the test holds, and each chain holds that head.
//
// Nodes committing while Check runs are fine, but the heads settle only
// once nothing is submitted: pause the load first.
func (n *Network) Check(nodes []*Node, acked []Acked) (Settled, error) {
	s := Settled{Statuses: map[taskrt.OpStatus]int{}}
	views, err := n.waitFinal(nodes, acked)
	if err != nil {
		return s, err
	}
	// All the operations that went wrong are counted, for how many did
	// says as much as how the first one did.
	wrong := map[string]int{}
	var first error
	for _, a := range acked {
		v := views[a.ID]
		s.Statuses[v.Status]++
		if allowed, ok := n.Testnet.Load.Outcomes[a.Name]; ok && !slices.Contains(allowed, v.Status) {
			wrong[fmt.Sprintf("%q ended %s", a.Name, v.Status)]++
			if first == nil {
				first = fmt.Errorf("operation %q %s ended %s, which it never should (want one of %v); its history: %s",
					a.Name, a.ID.Hex(), v.Status, allowed, historyString(v.Events))
			}
			continue
		}
		if err := checkHistory(v); err != nil {
			wrong[fmt.Sprintf("%q (%s) out of order", a.Name, v.Status)]++
			if first == nil {
				first = fmt.Errorf("operation %q %s (%s): %w; its history: %s", a.Name, a.ID.Hex(), v.Status, err, historyString(v.Events))
			}
		}
	}
	if first != nil {
		var counts []string
		for _, k := range slices.Sorted(maps.Keys(wrong)) {
			counts = append(counts, fmt.Sprintf("%d %s", wrong[k], k))
		}
		return s, fmt.Errorf("of %d operations, %s; the first: %w", len(acked), strings.Join(counts, ", "), first)
	}
	if s.Height, s.Hash, err = waitSameHead(nodes); err != nil {
		return s, err
	}
	for i, nd := range nodes {
		rep, err := n.verify(nd, s.Height, s.Hash)
		if err != nil {
			return s, err
		}
		if i == 0 {
			s.Verified = rep
		}
	}
	return s, nil
}

// waitFinal waits until every acknowledged operation is final on every
// node and returns them as the first node shows them, once it has checked
// that every node shows the same status and the same history: the nodes
// apply the same blocks, so anything else is a fork of the state.
func (n *Network) waitFinal(nodes []*Node, acked []Acked) (map[ledger.Hash]*taskrt.OperationView, error) {
	deadline := time.Now().Add(finalWait)
	for {
		var missing []string
		for _, nd := range nodes {
			fin := n.finals[nd.Name]
			if fin == nil {
				fin = map[ledger.Hash]*taskrt.OperationView{}
				n.finals[nd.Name] = fin
			}
			for _, a := range acked {
				if _, ok := fin[a.ID]; ok {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				v, err := nd.client.Operation(ctx, a.ID)
				cancel()
				switch {
				case err != nil:
					missing = append(missing, fmt.Sprintf("%s: %q %s: %v", nd.Name, a.Name, a.ID.Hex(), err))
				case v.Status.Final():
					fin[a.ID] = v
				default:
					missing = append(missing, fmt.Sprintf("%s: %q %s is %s", nd.Name, a.Name, a.ID.Hex(), v.Status))
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("after %s, %d acknowledged operations are not final on every node: %s", finalWait, len(missing),
				strings.Join(missing[:min(5, len(missing))], "; "))
		}
		time.Sleep(250 * time.Millisecond)
	}
	out := map[ledger.Hash]*taskrt.OperationView{}
	for _, a := range acked {
		first := n.finals[nodes[0].Name][a.ID]
		for _, nd := range nodes[1:] {
			v := n.finals[nd.Name][a.ID]
			if v.Status != first.Status {
				return nil, fmt.Errorf("operation %q %s ended %s on %s but %s on %s", a.Name, a.ID.Hex(), first.Status, nodes[0].Name, v.Status, nd.Name)
			}
			if !reflect.DeepEqual(v.Events, first.Events) {
				return nil, fmt.Errorf("operation %q %s has another history on %s than on %s: %s against %s", a.Name, a.ID.Hex(),
					nd.Name, nodes[0].Name, historyString(v.Events), historyString(first.Events))
			}
		}
		out[a.ID] = first
	}
	return out, nil
}

// checkHistory checks a final operation's events against the order the
// saga allows (SPEC §1): stages released 0, 1, … one after the other; once
// a stage fails, rollbacks released from that stage down to stage 0, one
// stage at a time (a retry releases the stage it stopped at again); every
// outcome and every move of a task within the window of its stage, and a
// move before the outcome it leads to; and the last event the finish of
// the status the operation ended in, or a retry of an operation that
// ended rollback_failed. Event types it does not know it passes over, so
// that the ledger may record more.
func checkHistory(v *taskrt.OperationView) error {
	var (
		stage    = -1 // the last stage released forward
		rb       = -1 // the stage whose rollbacks are released, once rolling
		rolling  bool
		retried  bool
		ended    = map[string]bool{} // tasks whose run has an outcome
		undone   = map[string]bool{} // tasks whose rollback has an outcome in this window
		finished string
	)
	for i, e := range v.Events {
		at := func(format string, args ...any) error {
			return fmt.Errorf("event %d (%s): %s", i, eventString(e), fmt.Sprintf(format, args...))
		}
		if finished != "" && (e.Type != taskrt.EventRollbackRetried || finished != string(taskrt.OpRollbackFailed)) {
			return at("after the operation finished %s", finished)
		}
		k := -2
		if e.Stage != nil {
			k = *e.Stage
		}
		switch e.Type {
		case taskrt.EventStageReleased:
			switch {
			case rolling:
				return at("a stage released while rolling back")
			case k != stage+1:
				return at("stage %d released after stage %d", k, stage)
			}
			stage = k
		case taskrt.EventTaskAttested, taskrt.EventTaskFailed, taskrt.EventTaskTimedOut, taskrt.EventTaskMoved:
			switch {
			case rolling:
				return at("a task's run recorded while rolling back stage %d", rb)
			case k != stage:
				return at("a task of stage %d recorded while stage %d runs", k, stage)
			case ended[e.Task]:
				return at("task %q has had its outcome already", e.Task)
			}
			ended[e.Task] = e.Type != taskrt.EventTaskMoved
		case taskrt.EventRollbackReleased:
			switch {
			case !rolling && k != stage:
				return at("the first rollbacks are of stage %d, but stage %d was the last released", k, stage)
			case rolling && retried && k != rb:
				return at("a retry of stage %d's rollbacks released stage %d", rb, k)
			case rolling && !retried && k != rb-1:
				return at("stage %d's rollbacks released after stage %d's, not stage %d's", k, rb, rb-1)
			}
			rolling, retried, rb = true, false, k
			clear(undone)
		case taskrt.EventRollbackRetried:
			if !rolling || k != rb {
				return at("a retry of stage %d while stage %d rolls back", k, rb)
			}
			retried, finished = true, ""
		case taskrt.EventTaskRolledBack, taskrt.EventTaskRollbackFailed, taskrt.EventRollbackMoved:
			switch {
			case !rolling:
				return at("a rollback recorded before any rollback was released")
			case k != rb:
				return at("a rollback of stage %d recorded while stage %d rolls back", k, rb)
			case undone[e.Task]:
				return at("the rollback of task %q has had its outcome already", e.Task)
			}
			undone[e.Task] = e.Type != taskrt.EventRollbackMoved
		case taskrt.EventFinished:
			finished = e.Status
		}
	}
	switch {
	case finished != string(v.Status):
		return fmt.Errorf("the history finishes %q, but the operation is %s", finished, v.Status)
	case v.Status == taskrt.OpCompleted && (rolling || stage != len(v.Stages)-1):
		return fmt.Errorf("completed with stage %d of %d the last released (rolling back: %t)", stage, len(v.Stages), rolling)
	case v.Status == taskrt.OpRolledBack && (!rolling || rb != 0):
		return fmt.Errorf("rolled back, but the rollbacks released last are stage %d's (rolling back: %t)", rb, rolling)
	}
	if v.Status == taskrt.OpRolledBack {
		for _, sv := range v.Stages {
			for _, tv := range sv.Tasks {
				if tv.Status != taskrt.TaskPending && tv.Status != taskrt.TaskRolledBack {
					return fmt.Errorf("rolled back, but task %q of stage %d is %s", tv.ID, sv.Index, tv.Status)
				}
			}
		}
	}
	return nil
}

// eventString says what one event is, in a few words: type, stage, task,
// height.
func eventString(e taskrt.Event) string {
	var b strings.Builder
	b.WriteString(e.Type)
	if e.Stage != nil {
		fmt.Fprintf(&b, " %d", *e.Stage)
	}
	if e.Task != "" {
		fmt.Fprintf(&b, " %s", e.Task)
	}
	if e.Status != "" {
		fmt.Fprintf(&b, " %s", e.Status)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	fmt.Fprintf(&b, " @%d", e.Height)
	return b.String()
}

// historyString is an operation's events, for an error message.
func historyString(evs []taskrt.Event) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = eventString(e)
	}
	return "[" + strings.Join(s, "; ") + "]"
}

// waitSameHead waits until every node reports the same head height and
// hash, and returns it.
func waitSameHead(nodes []*Node) (uint64, ledger.Hash, error) {
	var seen []string
	for deadline := time.Now().Add(headWait); ; time.Sleep(100 * time.Millisecond) {
		heads, errs := Heads(nodes)
		same := true
		seen = seen[:0]
		for i := range nodes {
			if errs[i] != nil {
				same = false
				seen = append(seen, fmt.Sprintf("%s: %v", nodes[i].Name, errs[i]))
				continue
			}
			same = same && heads[i].Height == heads[0].Height && heads[i].Hash == heads[0].Hash
			seen = append(seen, fmt.Sprintf("%s: %d %s", nodes[i].Name, heads[i].Height, short(heads[i].Hash)))
		}
		if same {
			return heads[0].Height, heads[0].Hash, nil
		}
		if time.Now().After(deadline) {
			return 0, ledger.Hash{}, fmt.Errorf("the nodes did not reach one head within %s: %s", headWait, strings.Join(seen, ", "))
		}
	}
}

// verify runs ledger.VerifyChain on the node's chain over RPC, against the
// test's genesis, and checks that the chain holds block hash at height.
func (n *Network) verify(nd *Node, height uint64, hash ledger.Hash) (*ledger.VerifyReport, error) {
	ctx, cancel := context.WithTimeout(context.Background(), verifyWait)
	defer cancel()
	rep, err := ledger.VerifyChain(n.Genesis, nd.client.BlockSource(ctx))
	if err != nil {
		return nil, fmt.Errorf("%s: verify: %w", nd.Name, err)
	}
	if rep.Head < height {
		return nil, fmt.Errorf("%s: verified up to block %d, below the head %d it reported", nd.Name, rep.Head, height)
	}
	at := rep.HeadHash
	if rep.Head != height {
		if at, err = BlockHash(nd, height); err != nil {
			return nil, err
		}
	}
	if at != hash {
		return nil, fmt.Errorf("%s: block %d is %s, not %s: a fork", nd.Name, height, at.Hex(), hash.Hex())
	}
	return rep, nil
}
