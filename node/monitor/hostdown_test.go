package monitor

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// A block that marks executors down raises one host_down alert per
// executor and distinct webhook of the rules matching what it runs (its
// announced functions and the builtins), or one without webhook; the ids
// depend on the chain alone, and the alert lists the work the block moved.
func TestObserveHostsAlertsOnExecutorsMarkedDown(t *testing.T) {
	airline, builtinOnly, old, up := ledger.Address{1}, ledger.Address{2}, ledger.Address{3}, ledger.Address{4}
	hosts := &ledger.Hosts{ByValidator: map[ledger.Address]ledger.HostEntry{
		airline:     {Seq: 1, Functions: []string{"airline.reserve", "airline.cancel"}, LastSeen: 5_000, Down: true, DownHeight: 9},
		builtinOnly: {LastSeen: 4_000, Down: true, DownHeight: 9},
		old:         {Seq: 1, Functions: []string{"airline.reserve"}, Down: true, DownHeight: 7}, // marked by an earlier block
		up:          {Seq: 1, Functions: []string{"airline.reserve"}, LastSeen: 8_000},
	}}
	op := &ledger.OpRecord{ID: opID(1), Events: []taskrt.Event{
		{Height: 8, Seq: 1, Type: taskrt.EventSubmitted},
		{Height: 9, Seq: 2, Type: taskrt.EventTaskMoved, Stage: intp(0), Task: "reserve", From: airline.Hex(), To: up.Hex(), Reason: "executor silent"},
		{Height: 9, Seq: 3, Type: taskrt.EventRollbackMoved, Stage: intp(0), Task: "book", From: builtinOnly.Hex(), To: up.Hex(), Reason: "executor silent"},
	}}
	w := newWatch(t, nil,
		rule(3, time.Minute, "http://airline/alerts", "airline.*"),
		rule(1, time.Second, "http://airline/alerts", "airline.reserve"), // same webhook: one alert
		rule(3, time.Minute, "http://ops/alerts", "echo"),                // a builtin: every host
		rule(3, time.Minute, "http://hotel/alerts", "hotel.*"),           // no host of it went down
	)
	alerts, err := w.ObserveHosts(9, hosts, []*ledger.OpRecord{op}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		exec    ledger.Address
		webhook string
		rule    int
	}
	var have []got
	for _, a := range alerts {
		if a.Kind != KindHostDown || a.Height != 9 || a.Executor == nil || a.ID == "" {
			t.Fatalf("alert %+v: want a host_down alert at 9 with its executor and id", a)
		}
		have = append(have, got{*a.Executor, a.Webhook, a.Rule})
	}
	want := []got{{airline, "http://airline/alerts", 0}, {airline, "http://ops/alerts", 2}, {builtinOnly, "http://ops/alerts", 2}}
	if !slices.Equal(have, want) {
		t.Fatalf("alerts to %+v, want %+v", have, want)
	}
	a := alerts[0]
	if !slices.Contains(a.Functions, "airline.reserve") || !slices.Contains(a.Functions, "echo") || !slices.IsSorted(a.Functions) {
		t.Errorf("functions %v: want the announced ones and the builtins, sorted", a.Functions)
	}
	if a.LastSeen != 5_000 || a.Count != 1 || len(a.Failures) != 1 ||
		a.Failures[0] != (Failure{Operation: op.ID, Task: "reserve", Function: "airline.reserve", Kind: FailureMoved, Reason: "executor silent", Height: 9}) {
		t.Errorf("airline host's alert: last seen %d, %d moved %+v; want 5000 and the reserve task", a.LastSeen, a.Count, a.Failures)
	}
	if f := alerts[2].Failures; len(f) != 1 || f[0].Function != "hotel.cancel" {
		t.Errorf("builtin host's alert lists %+v, want the rollback of book (hotel.cancel)", f)
	}
	// Every node computes the same ids: another watch over the same rules
	// and chain; the id differs per executor, webhook and marking.
	again, err := newWatch(t, nil, w.rules...).ObserveHosts(9, hosts, []*ledger.OpRecord{op}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i, a := range again {
		if a.ID != alerts[i].ID {
			t.Errorf("alert %d: id %s on one node, %s on another", i, alerts[i].ID, a.ID)
		}
		ids[a.ID] = true
	}
	if len(ids) != len(alerts) {
		t.Errorf("ids %v are not distinct", ids)
	}
	remarked := *hosts
	remarked.ByValidator = map[ledger.Address]ledger.HostEntry{airline: {Functions: []string{"airline.reserve"}, Down: true, DownHeight: 12}}
	later, err := w.ObserveHosts(12, &remarked, nil, lookup)
	if err != nil || len(later) != 2 || later[0].ID == alerts[0].ID {
		t.Errorf("a second marking at 12: %+v, %v; want new ids", later, err)
	}
	// The payload names what it is about, and an empty list of moves is a list.
	body, err := json.Marshal(later[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"kind":"host_down"`, `"executor":"` + strings.ToLower(airline.Hex()), `"height":12`, `"failures":[]`} {
		if !strings.Contains(strings.ToLower(string(body)), strings.ToLower(k)) {
			t.Errorf("payload %s lacks %s", body, k)
		}
	}

	// No rule matches: one alert without webhook, which the node only logs.
	none, err := newWatch(t, nil, rule(1, time.Minute, "http://hotel/alerts", "hotel.*")).ObserveHosts(9, hosts, nil, lookup)
	if err != nil || len(none) != 2 || none[0].Webhook != "" || none[0].Rule != NoRule {
		t.Errorf("no matching rule: %+v, %v; want one alert without webhook per executor", none, err)
	}
	// A block that marks nobody down raises nothing, and neither does a
	// host that came back up before a replay.
	if a, err := w.ObserveHosts(10, hosts, nil, lookup); err != nil || len(a) != 0 {
		t.Errorf("block 10: %+v, %v; want nothing", a, err)
	}
}
