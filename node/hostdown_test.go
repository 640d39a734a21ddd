package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/monitor"
	"github.com/sagachain/sagachain/taskrt"
)

// wideOp is an operation of n echo tasks side by side, so that some of
// them land on any one of four validators (all but one in 10^3 times
// for 24 tasks).
func wideOp(n int) string {
	var b strings.Builder
	b.WriteString("name: wide\ndefaults: {timeout: 30s}\ntasks:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {id: t%d, run: echo, rollback: noop, outputs: [x%d]}\n", i, i)
	}
	return b.String()
}

// submitHeldBy submits wide operations through tn until one has a task
// assigned to holder, and returns its id: 24 tasks miss one validator of
// four about once in a thousand operations, and then the test would show
// nothing. Bounded to five tries.
func submitHeldBy(t *testing.T, tn *testNode, holder *testNode) ledger.Hash {
	t.Helper()
	for range 5 {
		id := tn.submitText(t, wideOp(24))
		var r *ledger.OpRecord
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var err error
			if r, err = tn.store.Operation(id); err == nil {
				break
			}
		}
		if r == nil {
			t.Fatalf("operation %s was not recorded within 10s", id.Hex())
		}
		for _, tr := range r.Tasks {
			if tr.Executor == holder.Self() {
				return id
			}
		}
	}
	t.Fatal("five wide operations gave the stopped validator no task")
	return ledger.Hash{}
}

// A validator that dies while it holds work is marked down by the block
// that moves its work, and every live node posts the same host_down alert
// (same id) to the webhook of the rule matching the builtins it ran.
func TestDeadExecutorRaisesOneHostDownAlert(t *testing.T) {
	var mu sync.Mutex
	var alerts []monitor.Alert
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var a monitor.Alert
		if err := json.Unmarshal(body, &a); err != nil || r.Header.Get(monitor.HeaderAlertID) != a.ID {
			t.Errorf("webhook got %q (header id %q): %v", body, r.Header.Get(monitor.HeaderAlertID), err)
		}
		mu.Lock()
		alerts = append(alerts, a)
		mu.Unlock()
	}))
	defer hook.Close()
	nodes := newNetwork(t, 4, nil, func(_ int, c *config.Config) {
		c.Monitoring = []config.MonitorRule{{Functions: []string{"echo"}, Threshold: 100, Window: time.Minute, Webhook: hook.URL}}
	})
	for _, tn := range nodes {
		tn.launch()
	}
	for _, tn := range nodes {
		tn.ready(t)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(nodes[0].Peers()) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	dead := nodes[3]
	dead.stop()
	id := submitHeldBy(t, nodes[0], dead)

	var got []monitor.Alert
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		got = got[:0]
		for _, a := range alerts {
			// A live validator slowed down by the race detector may miss
			// a lease too; only the dead one's alerts are this test's.
			if a.Executor != nil && *a.Executor == dead.Self() {
				got = append(got, a)
			}
		}
		mu.Unlock()
		if len(got) >= 3 {
			break
		}
	}
	if len(got) < 3 {
		r, _ := nodes[0].store.Operation(id)
		t.Fatalf("the webhook got %d alerts, want one from each live node; the operation's events: %+v", len(got), r.Events)
	}
	hosts, err := nodes[0].store.Hosts()
	if err != nil {
		t.Fatal(err)
	}
	h := hosts.ByValidator[dead.Self()]
	if !h.Down || h.DownHeight == 0 {
		t.Fatalf("the chain does not mark the dead validator down: %+v", h)
	}
	for _, a := range got {
		if a.ID != got[0].ID || a.Kind != monitor.KindHostDown || a.Executor == nil || *a.Executor != dead.Self() || a.Height != h.DownHeight {
			t.Errorf("alert %+v: want host_down of %s at %d, id %s like the first", a, dead.Self().Hex(), h.DownHeight, got[0].ID)
		}
		if a.Count == 0 || len(a.Failures) != a.Count || a.Failures[0].Operation != id || a.Failures[0].Kind != monitor.FailureMoved {
			t.Errorf("alert lists %d moved tasks %+v, want the wide operation's", a.Count, a.Failures)
		}
	}
	// The moves are on the operation's record, from the dead validator.
	r, err := nodes[0].store.Operation(id)
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, e := range r.Events {
		if e.Type == taskrt.EventTaskMoved && e.From == dead.Self().Hex() && e.Height == h.DownHeight {
			moved++
		}
	}
	if moved != got[0].Count {
		t.Errorf("%d tasks moved from the dead validator at %d, the alert says %d", moved, h.DownHeight, got[0].Count)
	}
}
