package metrics

import (
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// scrape fetches /metrics from the handler and parses the text format.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// series finds the series of name whose labels include want.
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) *dto.Metric {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range fam.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == want[i] && l.GetValue() == want[i+1])
			}
			if !found {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no series %s%v", name, want)
	return nil
}

// value is a counter's or gauge's value.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := series(t, fams, name, labels...)
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s%v is neither counter nor gauge", name, labels)
	return 0
}

// histogram returns a histogram's sample count and sum.
func histogram(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) (uint64, float64) {
	t.Helper()
	h := series(t, fams, name, labels...).Histogram
	if h == nil {
		t.Fatalf("%s%v is not a histogram", name, labels)
	}
	return h.GetSampleCount(), h.GetSampleSum()
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestBlocksMempoolAndPeers(t *testing.T) {
	m := New(prometheus.NewRegistry())
	fams := scrape(t, m)
	if v := value(t, fams, "sagachain_blocks_total"); v != 0 {
		t.Fatalf("blocks before any commit = %v", v)
	}

	m.BlockCommitted(1, 0, 3, 20*time.Millisecond)
	m.BlockCommitted(2, 2, 5, 40*time.Millisecond)
	m.Mempool(7)
	m.Peers(3)
	fams = scrape(t, m)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"sagachain_blocks_total", 2},
		{"sagachain_entries_total", 8},
		{"sagachain_height", 2},
		{"sagachain_mempool_entries", 7},
		{"sagachain_peers", 3},
	} {
		if got := value(t, fams, c.name); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if n, sum := histogram(t, fams, "sagachain_block_commit_seconds"); n != 2 || !near(sum, 0.06) {
		t.Errorf("commit latency: %d samples summing %v, want 2 summing 0.06", n, sum)
	}
	// Rounds taken: round 0 is the first.
	if n, sum := histogram(t, fams, "sagachain_consensus_rounds"); n != 2 || sum != 4 {
		t.Errorf("rounds: %d samples summing %v, want 2 summing 1+3", n, sum)
	}
}

func TestTaskDurationsAndFailures(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.TaskFinished("airline.reserve", false, 2*time.Second, false)
	m.TaskFinished("airline.reserve", false, time.Second, true)
	m.TaskFinished("airline.cancel", true, 500*time.Millisecond, true)
	m.TaskFinished("hotel.book", false, 250*time.Millisecond, false)
	fams := scrape(t, m)

	if n, sum := histogram(t, fams, "sagachain_task_duration_seconds", "function", "airline.reserve"); n != 2 || sum != 3 {
		t.Errorf("airline.reserve durations: %d summing %v, want 2 summing 3", n, sum)
	}
	if n, sum := histogram(t, fams, "sagachain_rollback_duration_seconds", "function", "airline.cancel"); n != 1 || sum != 0.5 {
		t.Errorf("airline.cancel rollback durations: %d summing %v, want 1 summing 0.5", n, sum)
	}
	if v := value(t, fams, "sagachain_task_failures_total", "function", "airline.reserve", "kind", KindRun); v != 1 {
		t.Errorf("airline.reserve run failures = %v, want 1", v)
	}
	if v := value(t, fams, "sagachain_task_failures_total", "function", "airline.cancel", "kind", KindRollback); v != 1 {
		t.Errorf("airline.cancel rollback failures = %v, want 1", v)
	}
	if got := len(fams["sagachain_task_failures_total"].Metric); got != 2 {
		t.Errorf("%d failure series, want 2 (hotel.book did not fail)", got)
	}
}

func intp(v int) *int { return &v }

func op(n byte, status taskrt.OpStatus, events ...taskrt.Event) *ledger.OpRecord {
	for i := range events {
		events[i].Seq = i + 1
	}
	return &ledger.OpRecord{ID: ledger.Hash{n}, Saga: taskrt.SagaState{Status: status}, Events: events}
}

func ev(height uint64, typ string, extra ...func(*taskrt.Event)) taskrt.Event {
	e := taskrt.Event{Height: height, Type: typ, Stage: intp(0), Task: "reserve"}
	for _, f := range extra {
		f(&e)
	}
	return e
}

func status(s taskrt.OpStatus) func(*taskrt.Event) {
	return func(e *taskrt.Event) { e.Status = string(s) }
}

func TestOperationsByStatus(t *testing.T) {
	m := New(prometheus.NewRegistry())
	ops := func() map[taskrt.OpStatus]float64 {
		fams := scrape(t, m)
		out := map[taskrt.OpStatus]float64{}
		for _, s := range statuses {
			out[s] = value(t, fams, "sagachain_operations", "status", string(s))
		}
		out["finished_completed"] = value(t, fams, "sagachain_operations_finished_total", "status", "completed")
		out["finished_rolled_back"] = value(t, fams, "sagachain_operations_finished_total", "status", "rolled_back")
		return out
	}
	check := func(step string, want map[taskrt.OpStatus]float64) {
		t.Helper()
		got := ops()
		for k, g := range got {
			if g != want[k] {
				t.Errorf("%s: %s = %v, want %v", step, k, g, want[k])
			}
		}
	}

	// Height 3: a and b are submitted.
	a := []taskrt.Event{ev(3, taskrt.EventSubmitted), ev(3, taskrt.EventStageReleased)}
	b := []taskrt.Event{ev(3, taskrt.EventSubmitted), ev(3, taskrt.EventStageReleased)}
	m.OperationsChanged([]*ledger.OpRecord{op(1, taskrt.OpRunning, a...), op(2, taskrt.OpRunning, b...)})
	check("height 3", map[taskrt.OpStatus]float64{taskrt.OpRunning: 2})

	// Height 4: a completes, b's output fails its rule.
	a = append(a, ev(4, taskrt.EventTaskAttested, func(e *taskrt.Event) { e.Valid = new(bool); *e.Valid = true }), ev(4, taskrt.EventFinished, status(taskrt.OpCompleted)))
	b = append(b, ev(4, taskrt.EventTaskAttested, func(e *taskrt.Event) { e.Valid = new(bool) }), ev(4, taskrt.EventRollbackReleased))
	h4 := []*ledger.OpRecord{op(1, taskrt.OpCompleted, a...), op(2, taskrt.OpRollingBack, b...)}
	m.OperationsChanged(h4)
	want4 := map[taskrt.OpStatus]float64{taskrt.OpCompleted: 1, taskrt.OpRollingBack: 1, "finished_completed": 1}
	check("height 4", want4)
	// The same block reported again counts nothing.
	m.OperationsChanged(h4)
	check("height 4 again", want4)

	// Height 5: b is rolled back; a, changed without an event, stays.
	b = append(b, ev(5, taskrt.EventTaskRolledBack), ev(5, taskrt.EventFinished, status(taskrt.OpRolledBack)))
	m.OperationsChanged([]*ledger.OpRecord{op(1, taskrt.OpCompleted, a...), op(2, taskrt.OpRolledBack, b...)})
	check("height 5", map[taskrt.OpStatus]float64{taskrt.OpCompleted: 1, taskrt.OpRolledBack: 1, "finished_completed": 1, "finished_rolled_back": 1})

	// A restart sets the counts from the store; blocks it covers are ignored.
	m.SetOperations(10, map[taskrt.OpStatus]int{taskrt.OpRunning: 4, taskrt.OpCompleted: 9})
	m.OperationsChanged([]*ledger.OpRecord{op(3, taskrt.OpRunning, ev(10, taskrt.EventSubmitted))})
	check("set at 10", map[taskrt.OpStatus]float64{taskrt.OpRunning: 4, taskrt.OpCompleted: 9, "finished_completed": 1, "finished_rolled_back": 1})
	m.OperationsChanged([]*ledger.OpRecord{op(3, taskrt.OpCompleted, ev(10, taskrt.EventSubmitted), ev(11, taskrt.EventFinished, status(taskrt.OpCompleted)))})
	check("height 11", map[taskrt.OpStatus]float64{taskrt.OpRunning: 3, taskrt.OpCompleted: 10, "finished_completed": 2, "finished_rolled_back": 1})
}

func TestStatusBeforeReplaysEvents(t *testing.T) {
	invalid := func(e *taskrt.Event) { e.Valid = new(bool) }
	events := []taskrt.Event{
		ev(1, taskrt.EventSubmitted),
		ev(2, taskrt.EventTaskAttested, invalid),
		ev(3, taskrt.EventTaskRollbackFailed),
		ev(3, taskrt.EventFinished, status(taskrt.OpRollbackFailed)),
		ev(4, taskrt.EventRollbackRetried),
	}
	for _, c := range []struct {
		height uint64
		want   taskrt.OpStatus
		ok     bool
	}{
		{1, "", false},
		{2, taskrt.OpRunning, true},
		{3, taskrt.OpRollingBack, true},
		{4, taskrt.OpRollbackFailed, true},
		{5, taskrt.OpRollingBack, true},
	} {
		got, ok := statusBefore(events, c.height)
		if got != c.want || ok != c.ok {
			t.Errorf("before height %d: %q, %v; want %q, %v", c.height, got, ok, c.want, c.ok)
		}
	}
}

func TestNewWithoutRegistryServesRuntimeMetrics(t *testing.T) {
	m := New(nil)
	m.Peers(2)
	fams := scrape(t, m)
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no go_goroutines from the runtime collector")
	}
	if v := value(t, fams, "sagachain_peers"); v != 2 {
		t.Errorf("sagachain_peers = %v, want 2", v)
	}
}

func TestExecutorsDown(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.ExecutorsDown(2, 2)
	m.ExecutorsDown(1, 0) // one came back up
	fams := scrape(t, m)
	if got := value(t, fams, "sagachain_executors_down"); got != 1 {
		t.Errorf("sagachain_executors_down = %v, want 1", got)
	}
	if got := value(t, fams, "sagachain_executor_down_total"); got != 2 {
		t.Errorf("sagachain_executor_down_total = %v, want 2", got)
	}
}
