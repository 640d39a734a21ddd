package monitor

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// Alert kinds.
const (
	// KindThreshold: the failures matched by a rule reached its threshold
	// within its window.
	KindThreshold = "threshold"
	// KindRollbackFailed: an operation was left rollback_failed; its effects
	// may not be undone and a person has to look.
	KindRollbackFailed = "rollback_failed"
	// KindHostDown: the chain marked an executor down (its lease on work
	// expired, see ledger.Failover); work it held moved to other hosts, or
	// waits for it when it was the only host of a function.
	KindHostDown = "host_down"
)

// Failure kinds: how a task failed.
const (
	FailureFailed         = "failed"          // the run function failed
	FailureTimedOut       = "timed_out"       // the task passed its deadline
	FailureInvalid        = "invalid"         // the output failed the task's rule
	FailureRollbackFailed = "rollback_failed" // the rollback function failed for good
	// FailureMoved is a task (or rollback) that a host_down alert's block
	// moved away from the executor; not a failure of the function, and
	// never counted against a threshold.
	FailureMoved = "moved"
)

// NoRule is the Rule of a rollback_failed alert that no rule's functions
// match: it goes to no webhook, and the node only logs it.
const NoRule = -1

// Failure is one task failure recorded on the chain.
type Failure struct {
	Operation ledger.Hash `json:"operation"`
	Task      string      `json:"task"`
	// Function is the run function, or the rollback function for a
	// rollback failure: the function whose owner has to look.
	Function string `json:"function"`
	Kind     string `json:"kind"`
	Reason   string `json:"reason,omitempty"`
	// Height is the block that recorded the failure.
	Height uint64 `json:"height"`
}

// Alert is what the watch raises; its JSON is the webhook's request body.
type Alert struct {
	// ID is the same on every node that computes this alert from the same
	// chain, so a receiver drops duplicates by it.
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Rule is the index of the monitoring rule, or NoRule.
	Rule int `json:"rule"`
	// Functions are the functions that failed within the window (threshold),
	// those of the operation's started tasks (rollback_failed), or those
	// the executor runs (host_down: what it announced and the builtins),
	// sorted.
	Functions []string `json:"functions"`
	// Count is the number of failures within the window (threshold), the
	// operation's failures (rollback_failed), or the tasks and rollbacks
	// the block moved away from the executor (host_down).
	Count int `json:"count"`
	// Window is the rule's window; empty for the other kinds.
	Window string `json:"window,omitempty"`
	// Height is the block at which the alert was raised: for host_down, the
	// block that marked the executor down.
	Height uint64 `json:"height"`
	// Executor is the executor a host_down alert is about, and LastSeen the
	// block time (Unix ms) of the last block that carried an entry it
	// signed, 0 if none did.
	Executor *ledger.Address `json:"executor,omitempty"`
	LastSeen uint64          `json:"last_seen,omitempty"`
	// Failures are, for a threshold alert, the most recent failures within
	// the window, at most the rule's threshold of them, oldest first; for a
	// rollback_failed alert, every failure of the operation; for host_down,
	// the work the block moved away from the executor (kind "moved").
	Failures []Failure `json:"failures"`
	// Webhook is where the alert is posted; empty when no rule matches.
	Webhook string `json:"webhook,omitempty"`
}

// Lookup returns the run and rollback functions of a task of an operation,
// with ok false when the operation has no such task.
type Lookup func(op ledger.Hash, task string) (run, rollback string, ok bool)

// Watch counts failures per monitoring rule over sliding windows of block
// time. It is deterministic: it reads no clock and starts no goroutine. It is
// safe for concurrent use.
type Watch struct {
	rules []config.MonitorRule
	state State

	mu   sync.Mutex
	snap snapshot
}

// snapshot is what survives a restart. Its JSON is the saved state.
type snapshot struct {
	Version int `json:"version"`
	// Height is the last block observed.
	Height uint64      `json:"height"`
	Rules  []ruleState `json:"rules"`
}

const snapshotVersion = 1

// ruleState is one rule's window and armed flag.
type ruleState struct {
	// Key fingerprints the rule; a rule changed in the config starts afresh.
	Key   string `json:"key"`
	Armed bool   `json:"armed"`
	// Buckets hold the counts of the blocks within the window, oldest first.
	Buckets []bucket `json:"buckets,omitempty"`
	// Recent holds the details of the latest failures, at most Threshold.
	Recent []Failure `json:"recent,omitempty"`
}

// bucket is the failures one block added to a rule's window.
type bucket struct {
	Height uint64      `json:"height"`
	Time   uint64      `json:"time"`
	Counts []funcCount `json:"counts"`
}

type funcCount struct {
	Function string `json:"function"`
	Count    int    `json:"count"`
}

// NewWatch returns a watch over rules that keeps its windows in state (nil
// keeps them in memory only), restoring what state holds. The state of a
// rule that changed since it was saved is dropped.
func NewWatch(rules []config.MonitorRule, state State) (*Watch, error) {
	for i, r := range rules {
		if err := checkRule(r); err != nil {
			return nil, fmt.Errorf("monitoring rule %d: %w", i, err)
		}
	}
	w := &Watch{rules: slices.Clone(rules), state: state}
	w.snap = snapshot{Version: snapshotVersion, Rules: make([]ruleState, len(rules))}
	for i, r := range rules {
		w.snap.Rules[i] = ruleState{Key: ruleKey(r), Armed: true}
	}
	if state == nil {
		return w, nil
	}
	data, err := state.Load()
	if err != nil {
		return nil, fmt.Errorf("monitor state: %w", err)
	}
	if len(data) == 0 {
		return w, nil
	}
	var saved snapshot
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, fmt.Errorf("monitor state: %w", err)
	}
	if saved.Version != snapshotVersion {
		return nil, fmt.Errorf("monitor state: version %d, want %d", saved.Version, snapshotVersion)
	}
	w.snap.Height = saved.Height
	used := make([]bool, len(saved.Rules))
	for i := range w.snap.Rules {
		for j, rs := range saved.Rules {
			if !used[j] && rs.Key == w.snap.Rules[i].Key {
				w.snap.Rules[i] = rs
				used[j] = true
				break
			}
		}
	}
	return w, nil
}

func checkRule(r config.MonitorRule) error {
	if len(r.Functions) == 0 {
		return errors.New("functions: list at least one function name or pattern")
	}
	for j, p := range r.Functions {
		if p == "" {
			return fmt.Errorf("functions[%d]: empty pattern", j)
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("functions[%d]: pattern %q: %w", j, p, err)
		}
	}
	if r.Threshold <= 0 {
		return fmt.Errorf("threshold: want a positive number, got %d", r.Threshold)
	}
	if r.Window <= 0 {
		return fmt.Errorf("window: want a positive duration, got %s", r.Window)
	}
	return nil
}

// ruleKey fingerprints a rule's settings.
func ruleKey(r config.MonitorRule) string {
	b := []byte("sagachain/monitor-rule/1")
	b = binary.BigEndian.AppendUint64(b, uint64(len(r.Functions)))
	for _, f := range r.Functions {
		b = appendString(b, f)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(r.Threshold))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Window))
	b = appendString(b, r.Webhook)
	return hex.EncodeToString(crypto.Keccak256(b))
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// matches reports whether any of the rule's patterns matches fn.
func matches(r config.MonitorRule, fn string) bool {
	for _, p := range r.Functions {
		if ok, _ := path.Match(p, fn); ok {
			return true
		}
	}
	return false
}

// Height returns the last block observed, 0 for none. Blocks above it have
// not been observed.
func (w *Watch) Height() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap.Height
}

// Observe takes the block at height, committed with block time blockTime
// (Unix ms), and the operation records it changed, and returns the alerts
// it raises: at most one threshold alert per rule, raised when the rule's
// count within its window reaches its threshold and not again until the
// count has dropped below it; and for every operation the block leaves
// rollback_failed, one alert per distinct webhook of the rules matching the
// operation's functions, or one without webhook when none does.
//
// A height not above [Watch.Height] was observed already and raises
// nothing, so feeding a block twice is harmless. On error the watch is
// unchanged. Observe keeps its windows in memory; [Watch.Save] persists them.
func (w *Watch) Observe(height, blockTime uint64, ops []*ledger.OpRecord, lookup func(op ledger.Hash, task string) (run, rollback string, ok bool)) ([]Alert, error) {
	if height == 0 {
		return nil, errors.New("observe: height 0 holds no block")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if height <= w.snap.Height {
		return nil, nil
	}
	sorted := slices.Clone(ops)
	sort.Slice(sorted, func(i, j int) bool { return string(sorted[i].ID[:]) < string(sorted[j].ID[:]) })

	var failures []Failure
	for _, op := range sorted {
		fs, err := opFailures(op, height, lookup)
		if err != nil {
			return nil, err
		}
		failures = append(failures, fs...)
	}
	stuck, err := rollbackFailedAlerts(w.rules, sorted, height, lookup)
	if err != nil {
		return nil, err
	}

	w.snap.Height = height
	var alerts []Alert
	for i, r := range w.rules {
		if a, fire := w.count(i, r, height, blockTime, failures); fire {
			alerts = append(alerts, a)
		}
	}
	return append(alerts, stuck...), nil
}

// count adds to rule i's window the failures it matches, drops what fell
// out of the window, and says whether the rule fires.
func (w *Watch) count(i int, r config.MonitorRule, height, blockTime uint64, failures []Failure) (Alert, bool) {
	rs := &w.snap.Rules[i]
	window := uint64((r.Window + time.Millisecond - 1) / time.Millisecond)
	keep := 0
	for keep < len(rs.Buckets) && rs.Buckets[keep].Time+window <= blockTime {
		keep++
	}
	rs.Buckets = slices.Delete(rs.Buckets, 0, keep)

	var matched []Failure
	for _, f := range failures {
		if matches(r, f.Function) {
			matched = append(matched, f)
		}
	}
	if len(matched) > 0 {
		b := bucket{Height: height, Time: blockTime}
		for _, f := range matched {
			k, found := slices.BinarySearchFunc(b.Counts, f.Function, func(c funcCount, fn string) int {
				return cmp.Compare(c.Function, fn)
			})
			if !found {
				b.Counts = slices.Insert(b.Counts, k, funcCount{Function: f.Function})
			}
			b.Counts[k].Count++
		}
		rs.Buckets = append(rs.Buckets, b)
		rs.Recent = append(rs.Recent, matched...)
	}
	// Details older than the window's oldest block are out of it.
	if len(rs.Buckets) == 0 {
		rs.Recent = nil
	} else {
		oldest := rs.Buckets[0].Height
		rs.Recent = slices.DeleteFunc(rs.Recent, func(f Failure) bool { return f.Height < oldest })
	}
	if over := len(rs.Recent) - r.Threshold; over > 0 {
		rs.Recent = slices.Delete(rs.Recent, 0, over)
	}

	total := 0
	var fns []string
	for _, b := range rs.Buckets {
		for _, c := range b.Counts {
			total += c.Count
			fns = append(fns, c.Function)
		}
	}
	if total < r.Threshold {
		rs.Armed = true
		return Alert{}, false
	}
	if !rs.Armed {
		return Alert{}, false
	}
	rs.Armed = false
	slices.Sort(fns)
	return Alert{
		ID:        alertID(i, r.Webhook, height, KindThreshold, ledger.Hash{}),
		Kind:      KindThreshold,
		Rule:      i,
		Functions: slices.Compact(fns),
		Count:     total,
		Window:    r.Window.String(),
		Height:    height,
		Failures:  slices.Clone(rs.Recent),
		Webhook:   r.Webhook,
	}, true
}

// opFailures returns the failures op's events record at height, in event
// order; every height when height is 0.
func opFailures(op *ledger.OpRecord, height uint64, lookup Lookup) ([]Failure, error) {
	var out []Failure
	for _, ev := range op.Events {
		if height != 0 && ev.Height != height {
			continue
		}
		var kind string
		switch ev.Type {
		case taskrt.EventTaskFailed:
			kind = FailureFailed
		case taskrt.EventTaskTimedOut:
			kind = FailureTimedOut
		case taskrt.EventTaskAttested:
			if ev.Valid == nil || *ev.Valid {
				continue
			}
			kind = FailureInvalid
		case taskrt.EventTaskRollbackFailed:
			kind = FailureRollbackFailed
		default:
			continue
		}
		run, rollback, ok := lookup(op.ID, ev.Task)
		if !ok {
			return nil, fmt.Errorf("operation %s: event %d (%s): no task %q", op.ID.Hex(), ev.Seq, ev.Type, ev.Task)
		}
		fn := run
		if kind == FailureRollbackFailed {
			fn = rollback
		}
		out = append(out, Failure{Operation: op.ID, Task: ev.Task, Function: fn, Kind: kind, Reason: ev.Reason, Height: ev.Height})
	}
	return out, nil
}

// rollbackFailedAlerts returns the alerts of the operations, sorted by id,
// that the block at height leaves rollback_failed.
func rollbackFailedAlerts(rules []config.MonitorRule, ops []*ledger.OpRecord, height uint64, lookup Lookup) ([]Alert, error) {
	var alerts []Alert
	for _, op := range ops {
		if !finishedAt(op, height, taskrt.OpRollbackFailed) {
			continue
		}
		fns, err := opFunctions(op, lookup)
		if err != nil {
			return nil, err
		}
		failures, err := opFailures(op, 0, lookup)
		if err != nil {
			return nil, err
		}
		base := Alert{Kind: KindRollbackFailed, Rule: NoRule, Functions: fns, Count: len(failures), Height: height, Failures: failures}
		var sent []string
		for i, r := range rules {
			if slices.Contains(sent, r.Webhook) || !slices.ContainsFunc(fns, func(fn string) bool { return matches(r, fn) }) {
				continue
			}
			sent = append(sent, r.Webhook)
			a := base
			a.Rule, a.Webhook = i, r.Webhook
			a.Functions, a.Failures = slices.Clone(fns), slices.Clone(failures)
			a.ID = alertID(i, r.Webhook, height, KindRollbackFailed, op.ID)
			alerts = append(alerts, a)
		}
		if len(sent) == 0 {
			base.ID = alertID(NoRule, "", height, KindRollbackFailed, op.ID)
			alerts = append(alerts, base)
		}
	}
	return alerts, nil
}

// ObserveHosts returns the host_down alerts of the block at height: one
// for every executor that hosts marks down at that height (HostEntry.Down
// with DownHeight == height), in address order, for each distinct webhook
// of the rules that match a function the executor runs, or one without
// webhook (NoRule) when no rule does. The functions an executor runs are
// what it announced plus the builtins, which every validator runs: a rule
// about a builtin hears of every host lost, one about an announced
// function of the hosts of that function. hosts is the liveness after the
// block, and ops the records it changed, whose moves away from the
// executor at height the alert lists.
//
// It keeps no state: the chain decides who is down where, so every node
// raises the same alerts with the same ids, and a node that replays a
// block raises them again (the outbox and receivers drop them by id). An
// executor that has come back up since the block raises nothing on
// replay: it is up. Call it with Observe, before the alerts are enqueued.
func (w *Watch) ObserveHosts(height uint64, hosts *ledger.Hosts, ops []*ledger.OpRecord, lookup Lookup) ([]Alert, error) {
	if hosts == nil {
		return nil, nil
	}
	var alerts []Alert
	for _, exec := range hosts.Down() {
		h := hosts.ByValidator[exec]
		if h.DownHeight != height {
			continue
		}
		fns := append(slices.Clone(h.Functions), builtinNames()...)
		slices.Sort(fns)
		fns = slices.Compact(fns)
		moved, err := movedFrom(ops, exec, height, lookup)
		if err != nil {
			return nil, err
		}
		base := Alert{Kind: KindHostDown, Rule: NoRule, Functions: fns, Count: len(moved), Height: height,
			Executor: &exec, LastSeen: h.LastSeen, Failures: moved}
		var sent []string
		for i, r := range w.rules {
			if slices.Contains(sent, r.Webhook) || !slices.ContainsFunc(fns, func(fn string) bool { return matches(r, fn) }) {
				continue
			}
			sent = append(sent, r.Webhook)
			a := base
			a.Rule, a.Webhook = i, r.Webhook
			a.Functions, a.Failures = slices.Clone(fns), slices.Clone(moved)
			a.ID = hostAlertID(i, r.Webhook, exec, height)
			alerts = append(alerts, a)
		}
		if len(sent) == 0 {
			base.ID = hostAlertID(NoRule, "", exec, height)
			alerts = append(alerts, base)
		}
	}
	return alerts, nil
}

// movedFrom returns the tasks and rollbacks that ops record moving away
// from exec at height, sorted by operation, in event order.
func movedFrom(ops []*ledger.OpRecord, exec ledger.Address, height uint64, lookup Lookup) ([]Failure, error) {
	sorted := slices.Clone(ops)
	sort.Slice(sorted, func(i, j int) bool { return string(sorted[i].ID[:]) < string(sorted[j].ID[:]) })
	out := []Failure{}
	for _, op := range sorted {
		for _, ev := range op.Events {
			if ev.Height != height || ev.Type != taskrt.EventTaskMoved && ev.Type != taskrt.EventRollbackMoved {
				continue
			}
			if from, err := ledger.ParseAddress(ev.From); err != nil || from != exec {
				continue
			}
			run, rollback, ok := lookup(op.ID, ev.Task)
			if !ok {
				return nil, fmt.Errorf("operation %s: event %d (%s): no task %q", op.ID.Hex(), ev.Seq, ev.Type, ev.Task)
			}
			fn := run
			if ev.Type == taskrt.EventRollbackMoved {
				fn = rollback
			}
			out = append(out, Failure{Operation: op.ID, Task: ev.Task, Function: fn, Kind: FailureMoved, Reason: ev.Reason, Height: ev.Height})
		}
	}
	return out, nil
}

// builtinNames returns the names of the builtin functions, sorted.
func builtinNames() []string {
	var out []string
	for name := range taskrt.Builtins() {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// hostAlertID is alertID for host_down: the rule and webhook, the block
// that marked the executor down, the kind, and the executor in place of
// an operation, so each receiver gets one id per executor and marking.
func hostAlertID(rule int, webhook string, exec ledger.Address, height uint64) string {
	var h ledger.Hash
	copy(h[len(h)-len(exec):], exec[:])
	return alertID(rule, webhook, height, KindHostDown, h)
}

// finishedAt reports whether op's events finish it with status at height.
func finishedAt(op *ledger.OpRecord, height uint64, status taskrt.OpStatus) bool {
	for _, ev := range op.Events {
		if ev.Height == height && ev.Type == taskrt.EventFinished && ev.Status == string(status) {
			return true
		}
	}
	return false
}

// opFunctions returns, sorted, the run and rollback functions of the tasks
// op's events name: every task it started.
func opFunctions(op *ledger.OpRecord, lookup Lookup) ([]string, error) {
	var fns, seen []string
	for _, ev := range op.Events {
		if ev.Task == "" || slices.Contains(seen, ev.Task) {
			continue
		}
		seen = append(seen, ev.Task)
		run, rollback, ok := lookup(op.ID, ev.Task)
		if !ok {
			return nil, fmt.Errorf("operation %s: event %d (%s): no task %q", op.ID.Hex(), ev.Seq, ev.Type, ev.Task)
		}
		for _, fn := range []string{run, rollback} {
			if fn != "" {
				fns = append(fns, fn)
			}
		}
	}
	slices.Sort(fns)
	return slices.Compact(fns), nil
}

// alertID hashes what makes an alert itself: the rule, where it goes, the
// block that raised it, its kind and, for rollback_failed, the operation.
func alertID(rule int, webhook string, height uint64, kind string, op ledger.Hash) string {
	b := []byte("sagachain/alert/1")
	b = binary.BigEndian.AppendUint64(b, uint64(int64(rule)))
	b = appendString(b, webhook)
	b = binary.BigEndian.AppendUint64(b, height)
	b = appendString(b, kind)
	b = append(b, op[:]...)
	return hex.EncodeToString(crypto.Keccak256(b))
}

// Snapshot returns the watch's windows and armed flags as JSON, what
// [NewWatch] restores.
func (w *Watch) Snapshot() ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return json.Marshal(w.snap)
}

// Save writes [Watch.Snapshot] to the watch's state; without a state it
// does nothing.
func (w *Watch) Save() error {
	if w.state == nil {
		return nil
	}
	data, err := w.Snapshot()
	if err != nil {
		return fmt.Errorf("monitor state: %w", err)
	}
	if err := w.state.Save(data); err != nil {
		return fmt.Errorf("monitor state: %w", err)
	}
	return nil
}
