package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// decodeView decodes what `run --json` printed.
func decodeView(t *testing.T, r result) taskrt.OperationView {
	t.Helper()
	var v taskrt.OperationView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("run --json printed %q: %v\nstderr:\n%s", r.stdout, err, r.stderr)
	}
	return v
}

// viewTask finds a task of a view by id.
func viewTask(t *testing.T, v taskrt.OperationView, id string) taskrt.TaskView {
	t.Helper()
	for _, s := range v.Stages {
		for _, task := range s.Tasks {
			if task.ID == id {
				return task
			}
		}
	}
	t.Fatalf("no task %q in the view", id)
	return taskrt.TaskView{}
}

var operationID = regexp.MustCompile(`^0x[0-9a-f]{64}$`)

func TestRunTripCompletes(t *testing.T) {
	t.Parallel()
	r := sagachain(t, nil, "run", "testnet/ops/trip.yaml", "--json")
	r.wantCode(t, exitOK)
	if r.stderr != "" {
		t.Errorf("stderr = %q, want nothing", r.stderr)
	}
	v := decodeView(t, r)
	if v.Status != taskrt.OpCompleted || !operationID.MatchString(v.ID) || v.Name != "book-trip" {
		t.Errorf("status %s, id %q, name %q; want completed, 0x and 64 hex digits, book-trip", v.Status, v.ID, v.Name)
	}
	n := 0
	for _, s := range v.Stages {
		for _, task := range s.Tasks {
			n++
			if task.Status != taskrt.TaskSucceeded || task.Validation != taskrt.ValidationPassed || task.Attempts < 1 {
				t.Errorf("task %s: status %s, validation %q, %d attempts; want succeeded, passed", task.ID, task.Status, task.Validation, task.Attempts)
			}
			for _, l := range taskOutputs(t, "testnet/ops/trip.yaml", task.ID) {
				if _, ok := task.Output[l]; !ok {
					t.Errorf("task %s: output %v lacks label %q", task.ID, task.Output, l)
				}
			}
		}
	}
	if n != 5 {
		t.Errorf("the view holds %d tasks, want the file's 5", n)
	}
	checkEvents(t, v)
	if last := v.Events[len(v.Events)-1]; last.Status != string(taskrt.OpCompleted) {
		t.Errorf("last event %+v, want finished completed", last)
	}
}

// taskOutputs reads a task's declared outputs from an operation file of
// the repository.
func taskOutputs(t *testing.T, file, id string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	op, err := taskrt.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range op.Tasks {
		if task.ID == id {
			return task.Outputs
		}
	}
	t.Fatalf("%s has no task %q", file, id)
	return nil
}

// checkEvents checks what every history has: seq 1, 2, 3, ... in order,
// height 0 (no ledger), submitted first and finished last.
func checkEvents(t *testing.T, v taskrt.OperationView) {
	t.Helper()
	if len(v.Events) < 2 {
		t.Fatalf("events %+v: want at least submitted and finished", v.Events)
	}
	for i, e := range v.Events {
		if e.Seq != i+1 || e.Height != 0 {
			t.Errorf("event %d: seq %d, height %d; want seq %d, height 0", i, e.Seq, e.Height, i+1)
		}
	}
	if first, last := v.Events[0], v.Events[len(v.Events)-1]; first.Type != taskrt.EventSubmitted || last.Type != taskrt.EventFinished || last.Status != string(v.Status) {
		t.Errorf("first event %+v, last %+v; want submitted ... finished %s", first, last, v.Status)
	}
}

func TestRunHotelFailsRollsBackInReverseStageOrder(t *testing.T) {
	t.Parallel()
	r := sagachain(t, nil, "run", "testnet/ops/trip-hotel-fails.yaml", "--json")
	r.wantCode(t, exitRolledBack)
	v := decodeView(t, r)
	if v.Status != taskrt.OpRolledBack {
		t.Fatalf("status %s, want rolled_back", v.Status)
	}
	checkEvents(t, v)

	var released []int
	var undone []string
	stageOf := map[string]int{}
	for _, s := range v.Stages {
		for _, task := range s.Tasks {
			stageOf[task.ID] = s.Index
		}
	}
	for _, e := range v.Events {
		switch e.Type {
		case taskrt.EventRollbackReleased:
			released = append(released, *e.Stage)
		case taskrt.EventTaskRolledBack:
			if len(released) == 0 || *e.Stage != released[len(released)-1] || stageOf[e.Task] != *e.Stage {
				t.Errorf("task_rolled_back %+v outside the rollback of its stage (released so far: %v)", e, released)
			}
			undone = append(undone, e.Task)
		}
	}
	if !slices.Equal(released, []int{1, 0}) {
		t.Errorf("rollback_released for stages %v, want [1 0]", released)
	}
	// Stage 1's tasks (hotel failed, car ran beside it) are undone before
	// stage 0's; the excursion never started.
	slices.Sort(undone[:2])
	slices.Sort(undone[2:])
	if want := []string{"car", "hotel", "flight", "payment"}; !slices.Equal(undone, want) {
		t.Errorf("task_rolled_back order %v, want stage 1 (car, hotel) then stage 0 (flight, payment)", undone)
	}
	hotel := viewTask(t, v, "hotel")
	if hotel.Status != taskrt.TaskRolledBack || hotel.Outcome != taskrt.TaskFailed || !strings.Contains(hotel.Error, "no rooms left") {
		t.Errorf("hotel = %+v, want rolled_back after failing with the function's error", hotel)
	}
	if ex := viewTask(t, v, "excursion"); ex.Status != taskrt.TaskPending {
		t.Errorf("excursion status %s, want pending: its stage never started", ex.Status)
	}
	if !strings.HasPrefix(r.stderr, "sagachain: operation book-trip-hotel-fails rolled_back: task hotel failed: ") {
		t.Errorf("stderr = %q, want one line saying the hotel failed", r.stderr)
	}
}

func TestRunLiveLog(t *testing.T) {
	t.Parallel()
	r := sagachain(t, nil, "run", "testnet/ops/trip-hotel-fails.yaml")
	r.wantCode(t, exitRolledBack)
	if r.stderr != "" {
		t.Errorf("stderr = %q, want nothing: the log says it all", r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	index := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		t.Errorf("no line starting %q in\n%s", prefix, r.stdout)
		return -1
	}
	order := []int{index("book-trip-hotel-fails 0x"), index("stage 0 ▶ flight, payment"), index("stage 1 ▶ hotel, car"),
		index("  ✗ hotel "), index("rollback stage 1 ◀"), index("rollback stage 0 ◀"), index("rolled_back in ")}
	if !slices.IsSorted(order) {
		t.Errorf("lines out of order (%v):\n%s", order, r.stdout)
	}
	if !strings.Contains(lines[index("  ✗ hotel ")], "no rooms left") {
		t.Errorf("the hotel's line does not say why it failed:\n%s", r.stdout)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "task hotel failed") {
		t.Errorf("last line %q, want the cause", last)
	}
	if strings.Contains(r.stdout, "\x1b[") {
		t.Errorf("colour codes written to a pipe:\n%q", r.stdout)
	}
}

func TestRunRuleFails(t *testing.T) {
	t.Parallel()
	r := sagachain(t, nil, "run", "testnet/ops/trip-rule-fails.yaml", "--json")
	r.wantCode(t, exitRolledBack)
	v := decodeView(t, r)
	var invalid []string
	for _, e := range v.Events {
		if e.Type == taskrt.EventTaskAttested && e.Valid != nil && !*e.Valid {
			invalid = append(invalid, e.Task)
			if !strings.Contains(e.Reason, "rule") {
				t.Errorf("event %+v: want the rule as the reason", e)
			}
			if task := viewTask(t, v, e.Task); task.Validation != taskrt.ValidationFailed {
				t.Errorf("task %s: validation %q, want failed", e.Task, task.Validation)
			}
		}
	}
	if len(invalid) != 1 || v.Status != taskrt.OpRolledBack {
		t.Errorf("tasks failing their rule %v, status %s; want one, rolled_back", invalid, v.Status)
	}
}

func TestRunRefusesBadInputBeforeRunning(t *testing.T) {
	t.Parallel()
	unknownKey := writeFile(t, "op.yaml", "name: x\ntasks:\n  - id: a\n    run: echo\n    outputs: [x]\n    timout: 1s\n")
	unhosted := writeFile(t, "op.yaml", "name: x\ntasks:\n  - {id: a, run: airline.reserve, rollback: airline.cancel, outputs: [x]}\n")
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown key", unknownKey, `line 6, column 5: unknown key "timout"`},
		{"unknown function", unhosted, "unknown functions airline.cancel, airline.reserve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, args := range [][]string{{"run", tc.file}, {"run", tc.file, "--json"}} {
				r := sagachain(t, nil, args...)
				r.wantCode(t, exitUsage)
				if r.stdout != "" {
					t.Errorf("%v: stdout = %q, want nothing", args, r.stdout)
				}
				if want := "sagachain: " + tc.file + ": "; !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, tc.want) {
					t.Errorf("%v: stderr = %q, want %q naming %q", args, r.stderr, want, tc.want)
				}
			}
		})
	}
}

func TestRunInputOverride(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "greet.yaml", `name: greet
inputs: {traveler: "Ada Lovelace", nights: 1}
defaults: {retry: {attempts: 1}}
tasks:
  - id: greet
    run: echo
    inputs: [traveler, nights]
    outputs: [greeting]
    validate: 'inputs.traveler == "Grace Hopper" && inputs.nights == 3'
`)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{"none", nil, nil, exitRolledBack},
		{"plain string", nil, []string{"--input", "traveler=Grace Hopper", "--input", "nights=3"}, exitOK},
		{"JSON string", nil, []string{"--input", `traveler="Grace Hopper"`, "--input", "nights=3"}, exitOK},
		{"number as string", nil, []string{"--input", "traveler=Grace Hopper", "--input", `nights="3"`}, exitRolledBack},
		{"environment", []string{"SAGACHAIN_INPUT=traveler=Grace Hopper,nights=3"}, nil, exitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := sagachain(t, tc.env, append([]string{"run", file, "--json"}, tc.args...)...)
			r.wantCode(t, tc.code)
		})
	}
}

// recorder is a fake partner API: it records every request and answers
// POST /reserve with a confirmation and POST /cancel with an empty object.
type recorder struct {
	mu   sync.Mutex
	seen []recorded
}

type recorded struct {
	path, key string
	body      map[string]any
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec.mu.Lock()
	rec.seen = append(rec.seen, recorded{path: r.URL.Path, key: r.Header.Get("Idempotency-Key"), body: body})
	rec.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/reserve":
		fmt.Fprint(w, `{"flight": {"confirmation": "QX12AB"}}`)
	case "/cancel":
		fmt.Fprint(w, `{}`)
	default:
		http.NotFound(w, r)
	}
}

func (rec *recorder) requests() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.seen)
}

func TestRunHTTPFunctionFromConfig(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	cfg := writeFile(t, "config.yaml", fmt.Sprintf(`functions:
  airline.reserve: {http: "%[1]s/reserve"}
  airline.cancel:  {http: "%[1]s/cancel"}
`, srv.URL))
	// The flight is booked, then the hotel fails, so the flight is cancelled.
	file := writeFile(t, "op.yaml", `name: http-trip
inputs: {traveler: "Ada Lovelace"}
defaults: {retry: {attempts: 1, backoff: 1ms}}
tasks:
  - id: flight
    run: airline.reserve
    rollback: airline.cancel
    inputs: [traveler]
    outputs: [flight]
    params: {class: economy}
    validate: 'output.flight.confirmation.matches("^[A-Z0-9]{6}$")'
  - id: hotel
    run: fail
    after: [flight]
    params: {message: "no rooms left"}
`)
	var ids []string
	for range 2 {
		r := sagachain(t, nil, "run", file, "--config", cfg, "--json")
		r.wantCode(t, exitRolledBack)
		v := decodeView(t, r)
		if flight := viewTask(t, v, "flight"); flight.Status != taskrt.TaskRolledBack || flight.Validation != taskrt.ValidationPassed {
			t.Errorf("flight = %+v, want its rule passed and then rolled back", flight)
		}
		ids = append(ids, v.ID)
	}
	if ids[0] == ids[1] {
		t.Fatalf("two runs got the same operation id %s", ids[0])
	}

	reqs := rec.requests()
	for _, id := range ids {
		var reserve, cancel []recorded
		for _, q := range reqs {
			if q.body["operation"] != id {
				continue
			}
			if q.path == "/reserve" {
				reserve = append(reserve, q)
			} else {
				cancel = append(cancel, q)
			}
		}
		if len(reserve) != 1 || len(cancel) != 1 {
			t.Fatalf("operation %s: %d reserve and %d cancel calls, want one each", id, len(reserve), len(cancel))
		}
		res, can := reserve[0], cancel[0]
		if want := id + ":flight"; res.key != want || res.body["idempotency_key"] != want {
			t.Errorf("reserve: Idempotency-Key %q, body key %v; want %q", res.key, res.body["idempotency_key"], want)
		}
		if want := id + ":flight:rollback"; can.key != want || can.body["idempotency_key"] != want {
			t.Errorf("cancel: Idempotency-Key %q, body key %v; want %q", can.key, can.body["idempotency_key"], want)
		}
		inputs, _ := res.body["inputs"].(map[string]any)
		params, _ := res.body["params"].(map[string]any)
		if res.body["task"] != "flight" || inputs["traveler"] != "Ada Lovelace" || params["class"] != "economy" || res.body["attempt"] != 1.0 {
			t.Errorf("reserve request %v, want task flight, attempt 1, its inputs and params", res.body)
		}
		output, _ := can.body["output"].(map[string]any)
		if can.body["outcome"] != "succeeded" || output["flight"] == nil {
			t.Errorf("cancel request %v, want outcome succeeded and the recorded output", can.body)
		}
	}
}

func TestRunExecFunctionFromConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "build-report")
	request := filepath.Join(dir, "request.json")
	err := os.WriteFile(script, []byte(fmt.Sprintf(`#!/bin/sh
cat > %q
printf '{"report": {"pages": %%s, "format": "%%s"}}\n' "$2" "$4"
`, request)), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, "config.yaml", fmt.Sprintf("functions:\n  report.build: {exec: [%q, --pages, 3, --format, pdf]}\n", script))
	file := writeFile(t, "op.yaml", `name: report
inputs: {month: "2026-01"}
tasks:
  - id: report
    run: report.build
    inputs: [month]
    outputs: [report]
    validate: 'output.report.pages == 3 && output.report.format == "pdf"'
`)
	r := sagachain(t, nil, "run", file, "--config", cfg, "--json")
	r.wantCode(t, exitOK)
	v := decodeView(t, r)
	data, err := os.ReadFile(request)
	if err != nil {
		t.Fatalf("the command was not run: %v", err)
	}
	var req map[string]any
	if err := json.Unmarshal(data, &req); err != nil {
		t.Fatalf("stdin of the command %q: %v", data, err)
	}
	inputs, _ := req["inputs"].(map[string]any)
	if req["idempotency_key"] != v.ID+":report" || inputs["month"] != "2026-01" {
		t.Errorf("request on stdin %v, want key %s:report and the month", req, v.ID)
	}
}

func TestRunRollbackFailedExits4(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "op.yaml", `name: stuck
defaults: {retry: {attempts: 1, backoff: 1ms}}
tasks:
  - id: reserve
    run: echo
    rollback: fail
    outputs: [booking]
    params: {message: "cancellation service down"}
  - id: charge
    run: fail
    inputs: [booking]
    params: {message: "card declined"}
`)
	r := sagachain(t, nil, "run", file, "--json")
	r.wantCode(t, exitRollbackFailed)
	v := decodeView(t, r)
	checkEvents(t, v)
	reserve := viewTask(t, v, "reserve")
	if v.Status != taskrt.OpRollbackFailed || reserve.Status != taskrt.TaskRollbackFailed ||
		!strings.Contains(reserve.RollbackError, "cancellation service down") ||
		reserve.RollbackAttempts != taskrt.DefaultRollbackAttempts {
		t.Errorf("status %s, reserve %+v; want rollback_failed after %d rollback attempts", v.Status, reserve, taskrt.DefaultRollbackAttempts)
	}
	if !strings.Contains(r.stderr, "rollback of task reserve failed") {
		t.Errorf("stderr = %q, want the failed rollback named", r.stderr)
	}

	r = sagachain(t, nil, "run", file)
	r.wantCode(t, exitRollbackFailed)
	if !strings.Contains(r.stdout, "rollback_failed in ") || !strings.Contains(r.stdout, "rollback of task reserve failed") {
		t.Errorf("live log does not end in the failed rollback:\n%s", r.stdout)
	}
}

func TestRunInterruptRollsBack(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "op.yaml", `name: slow
tasks:
  - {id: first, run: echo, rollback: noop, outputs: [x]}
  - {id: slow, run: sleep, rollback: noop, inputs: [x], params: {ms: 600000}}
`)
	cmd := command(t, nil, "run", file)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out = append(out, sc.Text())
		if strings.HasPrefix(sc.Text(), "stage 1 ▶") {
			// The slow task is running: interrupt it, as Ctrl-C would.
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitRolledBack {
		t.Fatalf("exit code %d (%v), want %d\nstdout:\n%s\nstderr:\n%s", code, err, exitRolledBack, strings.Join(out, "\n"), stderr.String())
	}
	log := strings.Join(out, "\n")
	for _, want := range []string{"⏱ slow", "rollback stage 1 ◀ slow", "rollback stage 0 ◀ first", "rolled_back in "} {
		if !strings.Contains(log, want) {
			t.Errorf("live log lacks %q:\n%s", want, log)
		}
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr = %q, want the interruption logged", stderr.String())
	}
}
