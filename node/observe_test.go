package node

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/taskrt"
)

// Failures of a watched function past the rule's threshold post exactly one
// alert to its webhook, and a restarted node neither resends nor forgets it.
func TestNodeAlertsOnceAcrossRestart(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		ids = append(ids, r.Header.Get("X-Sagachain-Alert-Id"))
		mu.Unlock()
	}))
	defer hook.Close()
	watch := func(c *config.Config) {
		c.Monitoring = []config.MonitorRule{{Functions: []string{"fail"}, Threshold: 2, Window: time.Hour, Webhook: hook.URL}}
	}
	home := t.TempDir()
	tn := startNodeWith(t, home, watch)
	for range 3 {
		if r := tn.wait(t, tn.submit(t, "../testnet/ops/trip-hotel-fails.yaml")); r.Saga.Status != taskrt.OpRolledBack {
			t.Fatalf("failing trip: %s", r.Saga.Status)
		}
	}
	delivered := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ids...)
	}
	for i := 0; i < 100 && len(delivered()) == 0; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	tn.stop()
	tn = startNodeWith(t, home, watch)
	time.Sleep(time.Second) // give a wrong resend the chance to happen
	if got := delivered(); len(got) != 1 || got[0] == "" {
		t.Fatalf("webhook got alerts %v, want exactly one with an id", got)
	}
}

// /metrics is Prometheus text whose counters move as operations run.
func TestNodeMetricsMoveWithOperations(t *testing.T) {
	tn := startNode(t, "")
	scrape := func() map[string]*dto {
		resp, err := http.Get("http://" + tn.RPCAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*dto{}
		for name, f := range fams {
			if strings.HasPrefix(name, "sagachain_") {
				v := 0.0
				for _, m := range f.Metric {
					switch {
					case m.Counter != nil:
						v += m.Counter.GetValue()
					case m.Gauge != nil:
						v += m.Gauge.GetValue()
					case m.Histogram != nil:
						v += float64(m.Histogram.GetSampleCount())
					}
				}
				out[name] = &dto{v}
			}
		}
		return out
	}
	before := scrape()
	tn.wait(t, tn.submit(t, "../testnet/ops/trip.yaml"))
	after := scrape()
	for _, name := range []string{"sagachain_blocks_total", "sagachain_entries_total", "sagachain_block_commit_seconds", "sagachain_task_duration_seconds", "sagachain_operations_finished_total"} {
		a, ok := after[name]
		if !ok {
			t.Errorf("%s missing from /metrics", name)
			continue
		}
		b := 0.0
		if x, ok := before[name]; ok {
			b = x.v
		}
		if a.v <= b {
			t.Errorf("%s did not move: %v -> %v", name, b, a.v)
		}
	}
}

type dto struct{ v float64 }
