package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/demo"
	"github.com/sagachain/sagachain/node/monitor"
	"github.com/sagachain/sagachain/taskrt"
)

// The rule trip-travel.yaml's tasks check their confirmations with.
var confirmationRule = regexp.MustCompile(`^[A-Z0-9]{6}$`)

// travelServer serves a travel demo over the default inventory, and writes
// a config file whose functions point at it.
func travelServer(t *testing.T) (*demo.Travel, string) {
	t.Helper()
	travel, err := demo.NewTravel(filepath.Join(t.TempDir(), "travel.json"), demo.DefaultInventory())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(travel.Handler())
	t.Cleanup(srv.Close)
	return travel, writeFile(t, "config.yaml", demoConfigText(srv.URL))
}

// bookings are the confirmations of a view's tasks, by task id.
func bookings(t *testing.T, v taskrt.OperationView) map[string]string {
	t.Helper()
	confs := make(map[string]string)
	for _, s := range v.Stages {
		for _, task := range s.Tasks {
			if task.Output == nil {
				continue
			}
			out, _ := task.Output[task.ID].(map[string]any)
			conf, _ := out["confirmation"].(string)
			if !confirmationRule.MatchString(conf) {
				t.Errorf("task %s: output %v, want a confirmation matching %s", task.ID, task.Output, confirmationRule)
			}
			confs[task.ID] = conf
		}
	}
	return confs
}

// reservationsByTask are a demo's reservations by the task of their
// idempotency key (<operation id>:<task>).
func reservationsByTask(t *testing.T, rs []demo.Reservation, op string) map[string]demo.Reservation {
	t.Helper()
	byTask := make(map[string]demo.Reservation)
	for _, r := range rs {
		task, ok := strings.CutPrefix(r.Key, op+":")
		if !ok {
			t.Errorf("reservation under key %q, which is not of operation %s", r.Key, op)
			continue
		}
		byTask[task] = r
	}
	return byTask
}

func TestRunTravelTripBooksEverything(t *testing.T) {
	t.Parallel()
	travel, cfg := travelServer(t)
	initial := travel.Inventory()
	r := sagachain(t, nil, "run", "testnet/ops/trip-travel.yaml", "--config", cfg, "--json")
	r.wantCode(t, exitOK)
	v := decodeView(t, r)
	for _, s := range v.Stages {
		for _, task := range s.Tasks {
			if task.Status != taskrt.TaskSucceeded || task.Validation != taskrt.ValidationPassed || task.Attempts != 1 {
				t.Errorf("task %s: %s, rule %s, %d attempts; want succeeded at once, rule passed", task.ID, task.Status, task.Validation, task.Attempts)
			}
		}
	}
	confs := bookings(t, v)
	if len(confs) != 5 {
		t.Fatalf("confirmations %v, want one per task", confs)
	}
	byTask := reservationsByTask(t, travel.Reservations(), v.ID)
	if !slices.Equal(slices.Sorted(maps.Keys(byTask)), slices.Sorted(maps.Keys(confs))) {
		t.Fatalf("the demo holds reservations for %v, want one per task %v", slices.Sorted(maps.Keys(byTask)), slices.Sorted(maps.Keys(confs)))
	}
	for task, conf := range confs {
		if r := byTask[task]; r.Status != demo.StatusActive || r.Confirmation != conf {
			t.Errorf("task %s: the demo holds %s %s, want active %s", task, r.Status, r.Confirmation, conf)
		}
	}
	if p := byTask["payment"]; p.Amount != 1840 || p.Currency != "EUR" || p.Card != "1111" || byTask["flight"].Traveler != "Ada Lovelace" {
		t.Errorf("payment %+v and flight %+v: want 1840 EUR on card …1111, for Ada Lovelace", p, byTask["flight"])
	}
	want := initial.Clone()
	want.Seats["BA117"]--
	want.Rooms["Grand"]--
	want.Cars["Compact"]--
	want.Spots["Greenwich by boat"]--
	if got := travel.Inventory(); !reflect.DeepEqual(got, want) {
		t.Errorf("inventory after the trip %+v, want one seat, room, car and spot fewer: %+v", got, want)
	}
}

func TestRunTravelTripFailsAndGivesEverythingBack(t *testing.T) {
	t.Parallel()
	travel, cfg := travelServer(t)
	initial := travel.Inventory()
	r := sagachain(t, nil, "run", "testnet/ops/trip-travel-fails.yaml", "--config", cfg, "--json")
	r.wantCode(t, exitRolledBack)
	v := decodeView(t, r)
	if v.Status != taskrt.OpRolledBack {
		t.Fatalf("status %s, want rolled_back", v.Status)
	}
	hotel := viewTask(t, v, "hotel")
	if hotel.Outcome != taskrt.TaskFailed || hotel.Attempts != 1 || !strings.Contains(hotel.Error, "409") || !strings.Contains(hotel.Error, "no rooms left at Seaside") {
		t.Errorf("hotel: outcome %s after %d attempts, error %q; want failed at once (409 is permanent) with the demo's reason", hotel.Outcome, hotel.Attempts, hotel.Error)
	}
	for _, id := range []string{"flight", "payment", "hotel", "car"} {
		if task := viewTask(t, v, id); task.Status != taskrt.TaskRolledBack {
			t.Errorf("task %s: %s, want rolled_back", id, task.Status)
		}
	}
	if ex := viewTask(t, v, "excursion"); ex.Status != taskrt.TaskPending {
		t.Errorf("excursion: %s, want pending: stage 2 never started", ex.Status)
	}

	// The inventory is as it was, and the demo says what it undid.
	if got := travel.Inventory(); !reflect.DeepEqual(got, initial) {
		t.Errorf("inventory after the rollback %+v, want the initial %+v", got, initial)
	}
	byTask := reservationsByTask(t, travel.Reservations(), v.ID)
	confs := bookings(t, v)
	for _, task := range []string{"flight", "payment", "car"} {
		if r := byTask[task]; r.Status != demo.StatusCancelled || r.Confirmation != confs[task] {
			t.Errorf("task %s: the demo holds %s %s, want cancelled %s", task, r.Status, r.Confirmation, confs[task])
		}
	}
	if h := byTask["hotel"]; h.Status != demo.StatusVoid || h.Item != "Seaside" {
		t.Errorf("hotel: the demo holds %+v, want void at Seaside: its rollback found nothing to undo", h)
	}
	if _, ok := byTask["excursion"]; ok || len(byTask) != 4 {
		t.Errorf("the demo holds reservations for %v, want flight, payment, hotel and car", slices.Sorted(maps.Keys(byTask)))
	}
}

// testnet/demo/config.yaml is the config the README gives a node for the
// demo on its default address.
func TestDemoConfigFile(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(filepath.Join(repoRoot, "testnet", "demo", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := demoFunctions("http://127.0.0.1:9001"); !reflect.DeepEqual(cfg.Functions, want) {
		t.Errorf("functions %v, want %v", cfg.Functions, want)
	}
	want := []config.MonitorRule{{Functions: []string{"hotel.*"}, Threshold: 2, Window: 5 * time.Minute, Webhook: "http://127.0.0.1:9100/alerts"}}
	if !reflect.DeepEqual(cfg.Monitoring, want) {
		t.Errorf("monitoring %+v, want %+v", cfg.Monitoring, want)
	}
}

// daemon is a long-running sagachain process of a test whose stdout is
// read line by line.
type daemon struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *syncBuffer
	exited chan struct{}
}

// startDaemon starts sagachain with args and returns once it has printed
// n lines, which it returns.
func startDaemon(t *testing.T, n int, args ...string) (*daemon, []string) {
	t.Helper()
	cmd := command(t, nil, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, lines: make(chan string, 256), stderr: new(syncBuffer), exited: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-d.exited
	})
	go func() {
		defer close(d.exited)
		defer cmd.Wait()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
	}()
	return d, d.next(t, n)
}

// next returns the next n lines the daemon prints.
func (d *daemon) next(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	timeout := time.After(time.Minute)
	for len(got) < n {
		select {
		case l, ok := <-d.lines:
			if !ok {
				t.Fatalf("sagachain exited after printing %q; stderr:\n%s", got, d.stderr)
			}
			got = append(got, l)
		case <-timeout:
			t.Fatalf("sagachain printed %q and no more within a minute; stderr:\n%s", got, d.stderr)
		}
	}
	return got
}

// interrupt stops the daemon as Ctrl-C would and wants exit code 0.
func (d *daemon) interrupt(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exited %d after SIGINT, want 0; stderr:\n%s", code, d.stderr)
	}
}

// The snippet `demo travel` prints is a config that reaches it, and its
// inventory outlives it unless --reset.
func TestDemoTravelCommand(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "inventory.json")
	start := func(extra ...string) (*daemon, string, string) {
		t.Helper()
		d, lines := startDaemon(t, 2+len(demo.Endpoints())+1, append([]string{"demo", "travel", "--listen", "127.0.0.1:0", "--data", data}, extra...)...)
		m := regexp.MustCompile(`^travel demo: inventory page (http://127\.0\.0\.1:\d+)/ \(data in (.+)\)$`).FindStringSubmatch(lines[0])
		if m == nil || m[2] != data || lines[2] != "functions:" {
			t.Fatalf("demo travel printed %q", lines)
		}
		return d, m[1], strings.Join(lines[2:], "\n") + "\n"
	}
	d, base, snippet := start()
	cfg, err := config.Load(writeFile(t, "config.yaml", snippet))
	if err != nil {
		t.Fatalf("the printed snippet is not a config: %v\n%s", err, snippet)
	}
	if !reflect.DeepEqual(cfg.Functions, demoFunctions(base)) {
		t.Errorf("the snippet's functions %v, want %v", cfg.Functions, demoFunctions(base))
	}
	r := sagachain(t, nil, "run", "testnet/ops/trip-travel.yaml", "--config", writeFile(t, "config.yaml", snippet))
	r.wantCode(t, exitOK)
	if n := activeReservations(t, base); n != 5 {
		t.Errorf("%d active reservations after the trip, want 5", n)
	}
	d.interrupt(t)

	d, base, _ = start()
	if n := activeReservations(t, base); n != 5 {
		t.Errorf("%d active reservations after a restart, want the 5 kept", n)
	}
	d.interrupt(t)

	d, base, _ = start("--reset")
	if n := activeReservations(t, base); n != 0 {
		t.Errorf("%d active reservations after --reset, want none", n)
	}
	d.interrupt(t)
}

// activeReservations counts the active reservations of the demo at base.
func activeReservations(t *testing.T, base string) int {
	t.Helper()
	_, rs := demoState(t, base)
	n := 0
	for _, r := range rs {
		if r.Status == demo.StatusActive {
			n++
		}
	}
	return n
}

// inventory reads the inventory of the demo at base.
func inventory(t *testing.T, base string) demo.Inventory {
	t.Helper()
	inv, _ := demoState(t, base)
	return inv
}

// demoState reads the inventory and reservations of the demo at base.
func demoState(t *testing.T, base string) (demo.Inventory, []demo.Reservation) {
	t.Helper()
	resp, err := http.Get(base + "/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Inventory    demo.Inventory     `json:"inventory"`
		Reservations []demo.Reservation `json:"reservations"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s/inventory.json: %v", base, err)
	}
	return body.Inventory, body.Reservations
}

func TestDemoWebhookPrintsAlerts(t *testing.T) {
	t.Parallel()
	if alertIDHeader != monitor.HeaderAlertID {
		t.Fatalf("demo webhook reads the alert id from %s, the node sends it in %s", alertIDHeader, monitor.HeaderAlertID)
	}
	d, lines := startDaemon(t, 1, "demo", "webhook", "--listen", "127.0.0.1:0")
	m := regexp.MustCompile(`^alert webhook: listening on (http://127\.0\.0\.1:\d+)/`).FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("demo webhook printed %q", lines)
	}
	post := func(body, id string) int {
		req, err := http.NewRequest(http.MethodPost, m[1]+"/alerts", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(monitor.HeaderAlertID, id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("not json", "x"); code != http.StatusBadRequest {
		t.Errorf("a body that is not JSON: %d, want 400", code)
	}
	const alert = `{"id":"a1","kind":"threshold","functions":["hotel.reserve"],"count":2}`
	if code := post(alert, "a1"); code != http.StatusNoContent {
		t.Errorf("an alert: %d, want 204", code)
	}
	var body bytes.Buffer
	if err := json.Indent(&body, []byte(alert), "", "  "); err != nil {
		t.Fatal(err)
	}
	want := "alert a1 (POST /alerts)\n" + body.String()
	if got := strings.Join(d.next(t, strings.Count(want, "\n")+1), "\n"); got != want {
		t.Errorf("demo webhook printed\n%s\nwant\n%s", got, want)
	}
	d.interrupt(t)
}

// dev runs the travel demo and hosts its functions: the travel trip
// completes, the failing one rolls back and gives everything back, and a
// monitoring rule of the config alerts a webhook after the second failure.
// With --no-demo the functions are not hosted.
func TestDevHostsTheTravelDemo(t *testing.T) {
	t.Parallel()
	alerts := make(chan monitor.Alert, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a monitor.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil || r.Header.Get(monitor.HeaderAlertID) != a.ID {
			http.Error(w, "bad alert", http.StatusBadRequest)
			return
		}
		alerts <- a
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	// The monitoring rule of testnet/demo/config.yaml, with this test's
	// webhook, and no functions: those are the demo's.
	cfg := writeFile(t, "config.yaml", fmt.Sprintf("monitoring:\n  - {functions: [\"hotel.*\"], threshold: 2, window: 5m, webhook: %q}\n", hook.URL+"/alerts"))

	env, _ := userEnv(t)
	home := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, env, home, "--config", cfg)
	base := ""
	for _, l := range d.banner {
		if u, ok := strings.CutPrefix(l, "Travel demo: "); ok {
			base = strings.TrimSuffix(u, "/")
		}
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") || d.banner[2] != "Web UI: "+d.url+"/" {
		t.Fatalf("banner %q: want the Web UI, then the travel demo's address", d.banner)
	}

	r := d.run(t, "submit", "testnet/ops/trip-travel.yaml", "--wait", "--json")
	r.wantCode(t, exitOK)
	trip := decodeOp(t, r)
	if confs := bookings(t, trip); len(confs) != 5 {
		t.Errorf("confirmations %v, want one per task", confs)
	}
	booked := inventory(t, base)
	if n := activeReservations(t, base); n != 5 {
		t.Errorf("%d active reservations after the trip, want 5", n)
	}

	for range 2 {
		r = d.run(t, "submit", "testnet/ops/trip-travel-fails.yaml", "--wait", "--json")
		r.wantCode(t, exitRolledBack)
		if v := decodeOp(t, r); !strings.Contains(viewTask(t, v, "hotel").Error, "no rooms left at Seaside") {
			t.Errorf("hotel error %q, want the demo's reason", viewTask(t, v, "hotel").Error)
		}
	}
	if got := inventory(t, base); !reflect.DeepEqual(got, booked) {
		t.Errorf("inventory after two rolled back trips %+v, want it as before them %+v", got, booked)
	}
	if n := activeReservations(t, base); n != 5 {
		t.Errorf("%d active reservations after two rolled back trips, want the first trip's 5", n)
	}
	select {
	case a := <-alerts:
		if a.Kind != monitor.KindThreshold || a.Count != 2 || !slices.Equal(a.Functions, []string{"hotel.reserve"}) {
			t.Errorf("alert %+v, want a threshold alert of 2 hotel.reserve failures", a)
		}
	case <-time.After(time.Minute):
		t.Fatalf("no alert within a minute of the second failure; stderr:\n%s", d.stderr)
	}
	d.stop(t)
	if _, err := os.Stat(filepath.Join(home, devDemoFile)); err != nil {
		t.Errorf("the demo's inventory is not in the home: %v", err)
	}

	d = startDev(t, env, home, "--no-demo")
	for _, l := range d.banner {
		if strings.HasPrefix(l, "Travel demo:") {
			t.Errorf("dev --no-demo printed %q", l)
		}
	}
	r = d.run(t, "submit", "testnet/ops/trip-travel.yaml", "--wait")
	r.wantCode(t, exitUsage)
	if !strings.Contains(r.stderr, "airline.reserve") {
		t.Errorf("submit to dev --no-demo: stderr %q, want it to name airline.reserve", r.stderr)
	}
	d.stop(t)
}
