package monitor

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// fns maps task ids to their run and rollback functions, for every
// operation of a test.
var fns = map[string][2]string{
	"reserve": {"airline.reserve", "airline.cancel"},
	"book":    {"hotel.book", "hotel.cancel"},
	"rent":    {"car.rent", ""},
	"report":  {"report.build", "report.discard"},
	"plain":   {"airline", ""},
}

func lookup(_ ledger.Hash, task string) (string, string, bool) {
	f, ok := fns[task]
	return f[0], f[1], ok
}

func opID(n int) ledger.Hash { return ledger.Hash{0: byte(n >> 8), 1: byte(n), 31: 0x5a} }

func intp(v int) *int { return &v }

// failedOp is an operation whose task failed at height (submitted a block
// before, at height-1, when there is one).
func failedOp(n int, height uint64, task, eventType string) *ledger.OpRecord {
	r := &ledger.OpRecord{ID: opID(n), Height: height, Saga: taskrt.SagaState{Status: taskrt.OpRollingBack}}
	if height > 1 {
		r.Height = height - 1
		r.Events = append(r.Events,
			taskrt.Event{Height: height - 1, Seq: 1, Type: taskrt.EventSubmitted},
			taskrt.Event{Height: height - 1, Seq: 2, Type: taskrt.EventStageReleased, Stage: intp(0)})
	}
	ev := taskrt.Event{Height: height, Seq: len(r.Events) + 1, Type: eventType, Stage: intp(0), Task: task, Reason: "boom"}
	if eventType == taskrt.EventTaskAttested {
		ev.Valid = new(bool)
	}
	r.Events = append(r.Events, ev,
		taskrt.Event{Height: height, Seq: len(r.Events) + 2, Type: taskrt.EventRollbackReleased, Stage: intp(0)})
	return r
}

// stuckOp is an operation whose rollback of task failed at height, leaving
// it rollback_failed.
func stuckOp(n int, height uint64, task string) *ledger.OpRecord {
	r := &ledger.OpRecord{ID: opID(n), Height: 1, Saga: taskrt.SagaState{Status: taskrt.OpRollbackFailed}}
	r.Events = []taskrt.Event{
		{Height: 1, Seq: 1, Type: taskrt.EventSubmitted},
		{Height: 1, Seq: 2, Type: taskrt.EventStageReleased, Stage: intp(0)},
		{Height: height - 1, Seq: 3, Type: taskrt.EventTaskFailed, Stage: intp(0), Task: task, Reason: "sold out"},
		{Height: height - 1, Seq: 4, Type: taskrt.EventRollbackReleased, Stage: intp(0)},
		{Height: height, Seq: 5, Type: taskrt.EventTaskRollbackFailed, Stage: intp(0), Task: task, Reason: "cancel refused"},
		{Height: height, Seq: 6, Type: taskrt.EventFinished, Status: string(taskrt.OpRollbackFailed)},
	}
	return r
}

func rule(threshold int, window time.Duration, webhook string, patterns ...string) config.MonitorRule {
	return config.MonitorRule{Functions: patterns, Threshold: threshold, Window: window, Webhook: webhook}
}

func newWatch(t *testing.T, state State, rules ...config.MonitorRule) *Watch {
	t.Helper()
	w, err := NewWatch(rules, state)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// feed observes block height at time ms with ops and returns its alerts.
func feed(t *testing.T, w *Watch, height, ms uint64, ops ...*ledger.OpRecord) []Alert {
	t.Helper()
	alerts, err := w.Observe(height, ms, ops, lookup)
	if err != nil {
		t.Fatalf("observe %d: %v", height, err)
	}
	return alerts
}

func TestThresholdWithinWindowFiresOnce(t *testing.T) {
	w := newWatch(t, nil, rule(3, time.Minute, "http://hooks/airline", "airline.*"))
	var fired []Alert
	for h := uint64(1); h <= 6; h++ {
		alerts := feed(t, w, h, h*1000, failedOp(int(h), h, "reserve", taskrt.EventTaskFailed))
		if len(alerts) > 0 && h != 3 {
			t.Fatalf("height %d raised %+v; only height 3 should", h, alerts)
		}
		fired = append(fired, alerts...)
	}
	if len(fired) != 1 {
		t.Fatalf("got %d alerts, want 1", len(fired))
	}
	a := fired[0]
	if a.Kind != KindThreshold || a.Rule != 0 || a.Count != 3 || a.Height != 3 || a.Window != "1m0s" ||
		a.Webhook != "http://hooks/airline" || !reflect.DeepEqual(a.Functions, []string{"airline.reserve"}) {
		t.Fatalf("alert = %+v", a)
	}
	if len(a.Failures) != 3 {
		t.Fatalf("alert lists %d failures, want 3", len(a.Failures))
	}
	for i, f := range a.Failures {
		want := Failure{Operation: opID(i + 1), Task: "reserve", Function: "airline.reserve", Kind: FailureFailed, Reason: "boom", Height: uint64(i + 1)}
		if f != want {
			t.Errorf("failure %d = %+v, want %+v", i, f, want)
		}
	}
	if len(a.ID) != 64 {
		t.Errorf("id %q is not 32 bytes of hex", a.ID)
	}
}

func TestFailuresWiderThanWindowDoNotFire(t *testing.T) {
	// Three failures fire only when the first is still inside the window
	// at the third: a failure at t counts until t+window, exclusive.
	for _, tc := range []struct {
		third uint64
		fire  bool
	}{
		{third: 59_999, fire: true},
		{third: 60_000, fire: false},
	} {
		w := newWatch(t, nil, rule(3, time.Minute, "http://hooks/a", "airline.reserve"))
		feed(t, w, 1, 0, failedOp(1, 1, "reserve", taskrt.EventTaskFailed))
		feed(t, w, 2, 30_000, failedOp(2, 2, "reserve", taskrt.EventTaskFailed))
		got := feed(t, w, 3, tc.third, failedOp(3, 3, "reserve", taskrt.EventTaskFailed))
		if (len(got) == 1) != tc.fire || len(got) > 1 {
			t.Errorf("third failure at %d ms: %d alerts, want fire=%v", tc.third, len(got), tc.fire)
		}
	}

	// One failure every 30 s never puts three within a minute.
	w := newWatch(t, nil, rule(3, time.Minute, "http://hooks/a", "airline.*"))
	for h := uint64(1); h <= 20; h++ {
		if got := feed(t, w, h, (h-1)*30_000, failedOp(int(h), h, "reserve", taskrt.EventTaskFailed)); len(got) != 0 {
			t.Fatalf("height %d raised %+v", h, got)
		}
	}
}

func TestRearmsAfterCountDrops(t *testing.T) {
	w := newWatch(t, nil, rule(2, 10*time.Second, "http://hooks/a", "airline.*"))
	count := func(h, ms uint64, ops ...*ledger.OpRecord) int { return len(feed(t, w, h, ms, ops...)) }

	if n := count(1, 1_000, failedOp(1, 1, "reserve", taskrt.EventTaskFailed)); n != 0 {
		t.Fatalf("first failure raised %d alerts", n)
	}
	if n := count(2, 2_000, failedOp(2, 2, "reserve", taskrt.EventTaskFailed)); n != 1 {
		t.Fatalf("second failure raised %d alerts, want 1", n)
	}
	// The burst goes on: the count stays at or over the threshold.
	for h := uint64(3); h <= 8; h++ {
		if n := count(h, h*1_000, failedOp(int(h), h, "reserve", taskrt.EventTaskFailed)); n != 0 {
			t.Fatalf("height %d within the burst raised %d alerts", h, n)
		}
	}
	// A block long after, with an unwatched failure, empties the window.
	if n := count(9, 30_000, failedOp(9, 9, "book", taskrt.EventTaskFailed)); n != 0 {
		t.Fatalf("unwatched failure raised %d alerts", n)
	}
	if n := count(10, 31_000, failedOp(10, 10, "reserve", taskrt.EventTaskFailed)); n != 0 {
		t.Fatalf("first failure after re-arm raised %d alerts", n)
	}
	alerts := feed(t, w, 11, 32_000, failedOp(11, 11, "reserve", taskrt.EventTaskFailed))
	if len(alerts) != 1 || alerts[0].Count != 2 || alerts[0].Height != 11 {
		t.Fatalf("after re-arm: %+v, want one alert of count 2 at height 11", alerts)
	}
	if alerts[0].Failures[0].Height != 10 {
		t.Errorf("re-armed alert lists %+v; the burst before the gap is out of the window", alerts[0].Failures)
	}
}

func TestRulesMatchFunctionsByPattern(t *testing.T) {
	rules := []config.MonitorRule{
		rule(1, time.Minute, "http://hooks/airline", "airline.*"),
		rule(2, time.Minute, "http://hooks/travel", "hotel.book", "car.*"),
		rule(1, time.Minute, "http://hooks/cancel", "airline.cancel"),
	}
	w := newWatch(t, nil, rules...)

	// "airline" itself does not match "airline.*"; one hotel failure is
	// below rule 1's threshold.
	if got := feed(t, w, 1, 1_000, failedOp(1, 1, "plain", taskrt.EventTaskFailed), failedOp(2, 1, "book", taskrt.EventTaskFailed)); len(got) != 0 {
		t.Fatalf("height 1 raised %+v", got)
	}
	// A car failure adds to the hotel one under rule 1; the airline
	// output that failed its rule fires rule 0, not the rollback's rule 2.
	got := feed(t, w, 2, 2_000, failedOp(3, 2, "rent", taskrt.EventTaskTimedOut), failedOp(4, 2, "reserve", taskrt.EventTaskAttested))
	if len(got) != 2 {
		t.Fatalf("height 2 raised %d alerts (%+v), want 2", len(got), got)
	}
	if got[0].Rule != 0 || got[0].Failures[0].Kind != FailureInvalid || !reflect.DeepEqual(got[0].Functions, []string{"airline.reserve"}) {
		t.Errorf("first alert = %+v, want rule 0 for the invalid output", got[0])
	}
	if got[1].Rule != 1 || got[1].Count != 2 || !reflect.DeepEqual(got[1].Functions, []string{"car.rent", "hotel.book"}) {
		t.Errorf("second alert = %+v, want rule 1 over car.rent and hotel.book", got[1])
	}
	if got[1].Failures[1].Kind != FailureTimedOut {
		t.Errorf("car failure kind = %q, want %q", got[1].Failures[1].Kind, FailureTimedOut)
	}

	// A rollback failure counts against the rollback function.
	got = feed(t, w, 3, 3_000, stuckOp(5, 3, "reserve"))
	var threshold []Alert
	for _, a := range got {
		if a.Kind == KindThreshold {
			threshold = append(threshold, a)
		}
	}
	if len(threshold) != 1 || threshold[0].Rule != 2 || threshold[0].Failures[0].Function != "airline.cancel" ||
		threshold[0].Failures[0].Kind != FailureRollbackFailed {
		t.Fatalf("threshold alerts at height 3 = %+v, want rule 2 for airline.cancel", threshold)
	}

	// A valid attestation is no failure.
	ok := failedOp(6, 4, "report", taskrt.EventTaskAttested)
	*ok.Events[2].Valid = true
	w2 := newWatch(t, nil, rule(1, time.Minute, "http://hooks/r", "report.*"))
	if got := feed(t, w2, 4, 4_000, ok); len(got) != 0 {
		t.Errorf("a valid output raised %+v", got)
	}
}

func TestRollbackFailedAlwaysAlerts(t *testing.T) {
	rules := []config.MonitorRule{
		rule(100, time.Minute, "http://hooks/a", "airline.*"),
		rule(100, time.Minute, "http://hooks/h", "hotel.*"),
		rule(100, time.Minute, "http://hooks/a", "airline.reserve"), // same webhook as rule 0
		rule(100, time.Minute, "http://hooks/c", "airline.cancel"),
	}
	w := newWatch(t, nil, rules...)
	got := feed(t, w, 5, 5_000, stuckOp(2, 5, "report"), stuckOp(1, 5, "reserve"))
	if len(got) != 3 {
		t.Fatalf("got %d alerts (%+v), want 3", len(got), got)
	}
	// Operations in id order; per operation, one alert per webhook.
	wantRules := []int{0, 3, NoRule}
	wantHooks := []string{"http://hooks/a", "http://hooks/c", ""}
	for i, a := range got {
		if a.Kind != KindRollbackFailed || a.Rule != wantRules[i] || a.Webhook != wantHooks[i] || a.Height != 5 {
			t.Errorf("alert %d = %+v, want rule %d to %q", i, a, wantRules[i], wantHooks[i])
		}
	}
	a := got[0]
	if !reflect.DeepEqual(a.Functions, []string{"airline.cancel", "airline.reserve"}) || a.Count != 2 ||
		a.Failures[0].Kind != FailureFailed || a.Failures[1].Kind != FailureRollbackFailed || a.Failures[1].Operation != opID(1) {
		t.Errorf("alert = %+v, want the operation's functions and its two failures", a)
	}
	if got[2].Failures[0].Operation != opID(2) {
		t.Errorf("unmatched alert names %s, want operation 2", got[2].Failures[0].Operation)
	}
	if got[0].ID == got[1].ID {
		t.Error("alerts to two webhooks share an id")
	}

	// The record changes again later: it became rollback_failed earlier,
	// so no new alert.
	later := stuckOp(1, 5, "reserve")
	later.Events = append(later.Events, taskrt.Event{Height: 6, Seq: 7, Type: taskrt.EventTaskRolledBack, Task: "reserve"})
	if got := feed(t, w, 6, 6_000, later); len(got) != 0 {
		t.Errorf("height 6 raised %+v", got)
	}
}

func TestAlertIDsAreDeterministic(t *testing.T) {
	rules := []config.MonitorRule{
		rule(2, time.Minute, "http://hooks/a", "airline.*"),
		rule(2, time.Minute, "http://hooks/b", "airline.*"),
	}
	run := func(reverse bool) []Alert {
		w := newWatch(t, nil, rules...)
		var all []Alert
		for h := uint64(2); h <= 5; h++ {
			ops := []*ledger.OpRecord{failedOp(int(h), h, "reserve", taskrt.EventTaskFailed), stuckOp(100+int(h), h, "reserve")}
			if reverse {
				ops[0], ops[1] = ops[1], ops[0]
			}
			all = append(all, feed(t, w, h, h*1_000, ops...)...)
		}
		return all
	}
	a, b := run(false), run(true)
	if len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Fatalf("two watches disagree:\n%+v\n%+v", a, b)
	}
	ids := map[string]bool{}
	for _, x := range a {
		if ids[x.ID] {
			t.Errorf("id %s repeats", x.ID)
		}
		ids[x.ID] = true
	}
	// The body is the alert's JSON, in snake_case.
	body, err := json.Marshal(a[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"id"`, `"kind"`, `"rule"`, `"functions"`, `"count"`, `"window"`, `"height"`, `"failures"`, `"webhook"`, `"operation"`, `"task"`, `"function"`, `"reason"`} {
		if !strings.Contains(string(body), key) {
			t.Errorf("alert JSON %s lacks %s", body, key)
		}
	}
}

func TestSnapshotRestoreMidWindow(t *testing.T) {
	dir := t.TempDir()
	state := FileState(filepath.Join(dir, "monitor.json"))
	rules := []config.MonitorRule{rule(3, time.Minute, "http://hooks/a", "airline.*")}

	w1 := newWatch(t, state, rules...)
	total := 0
	for h := uint64(1); h <= 2; h++ {
		total += len(feed(t, w1, h, h*1_000, failedOp(int(h), h, "reserve", taskrt.EventTaskFailed)))
	}
	if err := w1.Save(); err != nil {
		t.Fatal(err)
	}

	w2 := newWatch(t, state, rules...)
	if w2.Height() != 2 {
		t.Fatalf("restored height %d, want 2", w2.Height())
	}
	// A block observed before the restart is not counted twice.
	total += len(feed(t, w2, 2, 2_000, failedOp(2, 2, "reserve", taskrt.EventTaskFailed)))
	if total != 0 {
		t.Fatalf("%d alerts before the threshold", total)
	}
	got := feed(t, w2, 3, 3_000, failedOp(3, 3, "reserve", taskrt.EventTaskFailed))
	if len(got) != 1 || got[0].Count != 3 {
		t.Fatalf("third failure after restore: %+v, want one alert of count 3", got)
	}
	if err := w2.Save(); err != nil {
		t.Fatal(err)
	}

	// Restored after firing, the rule stays disarmed.
	w3 := newWatch(t, state, rules...)
	if got := feed(t, w3, 4, 4_000, failedOp(4, 4, "reserve", taskrt.EventTaskFailed)); len(got) != 0 {
		t.Fatalf("restored after firing, height 4 raised %+v", got)
	}

	// A rule changed in the config starts afresh, armed, with an empty
	// window.
	w4 := newWatch(t, state, rule(2, time.Minute, "http://hooks/a", "airline.*"))
	got = feed(t, w4, 4, 4_000, failedOp(4, 4, "reserve", taskrt.EventTaskFailed), failedOp(5, 4, "reserve", taskrt.EventTaskFailed))
	if len(got) != 1 || got[0].Count != 2 {
		t.Fatalf("changed rule: %+v, want one alert of count 2", got)
	}
}

func TestNewWatchRefusesBadRules(t *testing.T) {
	_, err := NewWatch([]config.MonitorRule{
		rule(1, time.Minute, "http://hooks/a", "airline.*"),
		rule(1, time.Minute, "http://hooks/a", "hotel.book", "airline.["),
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "monitoring rule 1") || !strings.Contains(err.Error(), `"airline.["`) {
		t.Fatalf("err = %v, want one naming rule 1 and its pattern", err)
	}
	_, err = NewWatch([]config.MonitorRule{rule(0, time.Minute, "http://hooks/a", "a")}, nil)
	if err == nil || !strings.Contains(err.Error(), "monitoring rule 0: threshold") {
		t.Fatalf("err = %v, want one naming rule 0's threshold", err)
	}
	_, err = NewWatch(nil, stateOf(`{"version":7}`))
	if err == nil || !strings.Contains(err.Error(), "version 7") {
		t.Fatalf("err = %v, want one naming the state's version", err)
	}
}

func TestObserveUnknownTaskLeavesWatchUnchanged(t *testing.T) {
	w := newWatch(t, nil, rule(1, time.Minute, "http://hooks/a", "*"))
	bad := failedOp(1, 1, "nosuch", taskrt.EventTaskFailed)
	if _, err := w.Observe(1, 1_000, []*ledger.OpRecord{bad}, lookup); err == nil || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Fatalf("err = %v, want one naming the task", err)
	}
	if w.Height() != 0 {
		t.Fatalf("height = %d after a failed observe, want 0", w.Height())
	}
	if got := feed(t, w, 1, 1_000, failedOp(1, 1, "reserve", taskrt.EventTaskFailed)); len(got) != 1 {
		t.Fatalf("height 1 fed again raised %d alerts, want 1", len(got))
	}
}

// memState is a State in memory.
type memState struct{ data []byte }

func stateOf(s string) *memState { return &memState{data: []byte(s)} }

func (m *memState) Load() ([]byte, error) { return m.data, nil }
func (m *memState) Save(b []byte) error   { m.data = append([]byte(nil), b...); return nil }

func TestOnlyTheBlocksOwnFailuresCount(t *testing.T) {
	w := newWatch(t, nil, rule(2, time.Minute, "http://hooks/a", "airline.*"))
	op := failedOp(1, 1, "reserve", taskrt.EventTaskFailed)
	feed(t, w, 1, 1_000, op)
	// The same operation changes again; its old failure is not new.
	op.Events = append(op.Events, taskrt.Event{Height: 2, Seq: 3, Type: taskrt.EventTaskRolledBack, Stage: intp(0), Task: "reserve"})
	if got := feed(t, w, 2, 2_000, op); len(got) != 0 {
		t.Fatalf("a failure recorded at height 1 counted again at height 2: %+v", got)
	}
	if got := feed(t, w, 3, 3_000, failedOp(2, 3, "reserve", taskrt.EventTaskFailed)); len(got) != 1 || got[0].Count != 2 {
		t.Fatalf("second failure: %+v, want one alert of count 2", got)
	}
}
