package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

// devNode is a `sagachain dev` process of a test.
type devNode struct {
	cmd    *exec.Cmd
	home   string // the node's home
	env    []string
	url    string // its RPC URL
	banner []string
	stderr *syncBuffer
	exited chan struct{}
}

// startDev runs `sagachain dev --home home --rpc 127.0.0.1:0` with the
// environment env and waits for its banner, which names the port it got.
// The process is killed if the test leaves it running.
func startDev(t *testing.T, env []string, home string, extra ...string) *devNode {
	t.Helper()
	cmd := command(t, env, append([]string{"dev", "--home", home, "--rpc", "127.0.0.1:0"}, extra...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &devNode{cmd: cmd, home: home, env: env, stderr: new(syncBuffer), exited: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-d.exited
	})
	lines := make(chan string, 64)
	go func() {
		defer close(d.exited)
		defer cmd.Wait()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dev exited before it was ready; banner %q, stderr:\n%s", d.banner, d.stderr)
			}
			d.banner = append(d.banner, l)
			if u, ok := strings.CutPrefix(l, "RPC: "); ok {
				d.url = u
			}
			if strings.HasPrefix(l, "try: ") {
				// Drain the rest, so the process never blocks on stdout.
				go func() {
					for range lines {
					}
				}()
				return d
			}
		case <-timeout:
			t.Fatalf("dev printed no banner within a minute; stderr:\n%s", d.stderr)
		}
	}
}

// syncBuffer lets the test read what a process writes meanwhile: exec
// copies into a writer that is not a file on a goroutine of its own.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stop interrupts the node, as Ctrl-C would, and waits for it to exit 0.
func (d *devNode) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30s of SIGINT")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("dev exited %d after SIGINT, want 0; stderr:\n%s", code, d.stderr)
	}
}

// run runs a client command against the node.
func (d *devNode) run(t *testing.T, args ...string) result {
	t.Helper()
	return sagachain(t, append(slices.Clip(d.env), "SAGACHAIN_RPC="+d.url), args...)
}

// decodeOp decodes the operation a command printed as JSON.
func decodeOp(t *testing.T, r result) taskrt.OperationView {
	t.Helper()
	var v taskrt.OperationView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("printed %q: %v\nstderr:\n%s", r.stdout, err, r.stderr)
	}
	return v
}

// ledgerState is what tells whether anything was recorded: the head and the
// ids of the operations.
func (d *devNode) ledgerState(t *testing.T) (uint64, []string) {
	t.Helper()
	r := d.run(t, "chain", "head", "--json")
	r.wantCode(t, exitOK)
	var h rpc.HeadInfo
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatalf("chain head --json printed %q: %v", r.stdout, err)
	}
	r = d.run(t, "op", "list", "--json")
	r.wantCode(t, exitOK)
	var ops []taskrt.OperationView
	if err := json.Unmarshal([]byte(r.stdout), &ops); err != nil {
		t.Fatalf("op list --json printed %q: %v", r.stdout, err)
	}
	ids := make([]string, len(ops))
	for i, v := range ops {
		ids[i] = v.ID
	}
	return h.Height, ids
}

// The life of a dev chain, in order: operations that complete and roll
// back, the views and lists of them, refusals that record nothing, the
// auditor's checks over RPC, then, with the node stopped, export, verify,
// and a tampered export that verify rejects.
func TestDevChainEndToEnd(t *testing.T) {
	t.Parallel()
	env, user := userEnv(t)
	home := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, env, home)
	if !strings.HasPrefix(d.banner[0], "sagachain dev: chain sagachain-dev, validator 0x") || !strings.HasSuffix(d.banner[0], "height 0") ||
		d.banner[2] != "Web UI: "+d.url+"/" {
		t.Errorf("banner %q", d.banner)
	}
	client := clientAddress(t, user)
	resp, err := http.Get(d.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET %s/: %s %s, want the web UI's page", d.url, resp.Status, resp.Header.Get("Content-Type"))
	}

	// An operation that completes.
	r := d.run(t, "submit", "testnet/ops/trip.yaml", "--wait", "--json")
	r.wantCode(t, exitOK)
	trip := decodeOp(t, r)
	if trip.Status != taskrt.OpCompleted || trip.Submitter != client.Hex() || trip.SubmittedHeight == 0 {
		t.Errorf("trip: status %s, submitter %s, height %d; want completed by %s at a block", trip.Status, trip.Submitter, trip.SubmittedHeight, client.Hex())
	}
	for _, s := range trip.Stages {
		for _, task := range s.Tasks {
			if task.Status != taskrt.TaskSucceeded || task.Validation != taskrt.ValidationPassed || task.Executor == "" {
				t.Errorf("trip task %s: %s, validation %q, executor %q", task.ID, task.Status, task.Validation, task.Executor)
			}
		}
	}
	checkLedgerEvents(t, trip)

	// An operation that rolls back, followed live.
	r = d.run(t, "submit", "testnet/ops/trip-hotel-fails.yaml", "--wait")
	r.wantCode(t, exitRolledBack)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for _, want := range []string{"book-trip-hotel-fails 0x", "stage 0 ▶ flight, payment", "stage 1 ▶ hotel, car",
		"  ✗ hotel", "rollback stage 1 ◀ hotel, car", "rollback stage 0 ◀ flight, payment", "rolled_back at block "} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("submit --wait printed no line starting %q:\n%s", want, r.stdout)
		}
	}
	if i, j := indexOf(lines, "rollback stage 1"), indexOf(lines, "rollback stage 0"); i < 0 || j < i {
		t.Errorf("rollback of stage 1 (line %d) must come before stage 0's (line %d):\n%s", i, j, r.stdout)
	}

	// op list and op get find it.
	r = d.run(t, "op", "list", "--status", "rolled_back", "--json")
	r.wantCode(t, exitOK)
	var rolled []taskrt.OperationView
	if err := json.Unmarshal([]byte(r.stdout), &rolled); err != nil {
		t.Fatal(err)
	}
	if len(rolled) != 1 || rolled[0].Name != "book-trip-hotel-fails" || rolled[0].Status != taskrt.OpRolledBack {
		t.Fatalf("op list --status rolled_back = %+v, want the failing trip alone", rolled)
	}
	failed := rolled[0]
	r = d.run(t, "op", "get", failed.ID, "--json")
	r.wantCode(t, exitOK)
	if v := decodeOp(t, r); v.ID != failed.ID || len(v.Events) != len(failed.Events) {
		t.Errorf("op get --json = %s with %d events, want %s with %d", v.ID, len(v.Events), failed.ID, len(failed.Events))
	}
	r = d.run(t, "op", "get", failed.ID)
	r.wantCode(t, exitOK)
	for _, want := range []string{"status     rolled_back", "hotel", "error     attempt 2: no rooms left", "executor  0x", "finished rolled_back"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("op get lacks %q:\n%s", want, r.stdout)
		}
	}
	r = d.run(t, "op", "list")
	r.wantCode(t, exitOK)
	if !strings.Contains(r.stdout, trip.ID) || !strings.Contains(r.stdout, failed.ID) {
		t.Errorf("op list does not list both operations:\n%s", r.stdout)
	}

	// Bad submissions are refused with exit 2, and nothing is recorded.
	height, ids := d.ledgerState(t)
	if height == 0 || len(ids) != 2 {
		t.Fatalf("head %d, operations %v; want a chain with 2 operations", height, ids)
	}
	stranger := filepath.Join(t.TempDir(), "stranger")
	sagachain(t, nil, "keys", "new", "--home", stranger).wantCode(t, exitOK)
	big := "name: big\ntasks:\n  - {id: a, run: echo}\n#" + strings.Repeat("x", 1<<20) + "\n"
	for _, tc := range []struct {
		name, file string
		args       []string
		want       string
	}{
		{"unknown key", "name: x\ntasks:\n  - {id: a, run: echo, rolback: noop}\n", nil, `unknown key "rolback"`},
		{"unknown function", "name: x\ntasks:\n  - {id: report, run: report.build, outputs: [report]}\n", nil, "report.build"},
		{"unknown submitter", "name: x\ntasks:\n  - {id: a, run: echo}\n", []string{"--key", filepath.Join(stranger, "key.hex")}, "submitter is not allowed by genesis"},
		{"oversize", big, nil, "over the limit"},
	} {
		file := writeFile(t, "op.yaml", tc.file)
		r := d.run(t, append([]string{"submit", file, "--wait"}, tc.args...)...)
		r.wantCode(t, exitUsage)
		first, _, _ := strings.Cut(r.stderr, "\n")
		if !strings.HasPrefix(first, "sagachain: "+file) || !strings.Contains(first, tc.want) {
			t.Errorf("%s: stderr %q, want a line naming the file and %q", tc.name, r.stderr, tc.want)
		}
	}
	r = d.run(t, "op", "retry", failed.ID)
	r.wantCode(t, exitUsage)
	if !strings.Contains(r.stderr, "not rollback_failed") {
		t.Errorf("op retry of a rolled_back operation: stderr %q, want the reason", r.stderr)
	}
	r = d.run(t, "op", "get", "0x"+strings.Repeat("0", 63)+"7")
	r.wantCode(t, exitUsage)
	if !strings.Contains(r.stderr, "not found") {
		t.Errorf("op get of an unknown id: stderr %q, want not found", r.stderr)
	}
	if h, after := d.ledgerState(t); h != height || !slices.Equal(after, ids) {
		t.Errorf("after the refusals: head %d, operations %v; want %d, %v unchanged", h, after, height, ids)
	}

	// The chain as a client sees it: the block the trip was submitted at
	// holds its submission (block 1 may hold the node's announcement of
	// the functions it hosts before it).
	r = d.run(t, "chain", "block", strconv.FormatUint(trip.SubmittedHeight, 10), "--json")
	r.wantCode(t, exitOK)
	var b rpc.BlockInfo
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil {
		t.Fatal(err)
	}
	if b.Height != trip.SubmittedHeight || !slices.ContainsFunc(b.Entries, func(e rpc.EntryInfo) bool {
		return e.Kind == "submission" && e.Operation != nil && e.Operation.Hex() == trip.ID
	}) {
		t.Errorf("block %d = %+v, want the trip's submission in it", trip.SubmittedHeight, b)
	}

	// bench, briefly: every operation ends as its scenario says.
	r = d.run(t, "bench", "--ops", "4", "--concurrency", "1,3", "--json")
	r.wantCode(t, exitOK)
	var rows []benchResult
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("bench --json printed %q: %v", r.stdout, err)
	}
	if len(rows) != 4 {
		t.Fatalf("bench rows %+v, want 2 scenarios x 2 levels", rows)
	}
	for _, row := range rows {
		if row.Ops != 4 || row.Unexpected != 0 || row.P50 <= 0 || row.P99 < row.P50 || row.OpsPerSec <= 0 {
			t.Errorf("bench row %+v", row)
		}
	}

	// The auditor's check over RPC, against the genesis they hold.
	genesis := filepath.Join(home, "genesis.json")
	r = d.run(t, "verify", "--rpc", d.url, "--genesis", genesis)
	r.wantCode(t, exitOK)
	if !strings.HasPrefix(r.stdout, "verified ") {
		t.Errorf("verify --rpc printed %q", r.stdout)
	}
	r = d.run(t, "export", "--home", home, "--out", filepath.Join(t.TempDir(), "x"))
	r.wantCode(t, exitFailure)
	if !strings.Contains(r.stderr, "is running") || !strings.Contains(r.stderr, "--rpc") {
		t.Errorf("export --home of a running node: stderr %q, want the hint to use --rpc", r.stderr)
	}
	viaRPC := filepath.Join(t.TempDir(), "rpc.export")
	d.run(t, "export", "--rpc", d.url, "--out", viaRPC).wantCode(t, exitOK)
	finalHeight, _ := d.ledgerState(t)
	d.stop(t)

	// Offline: export the stopped node's home; it is the same file.
	file := filepath.Join(t.TempDir(), "chain.export")
	r = sagachain(t, env, "export", "--home", home, "--out", file)
	r.wantCode(t, exitOK)
	fromHome, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fromRPC, err := os.ReadFile(viaRPC)
	if err != nil {
		t.Fatal(err)
	}
	if string(fromHome) != string(fromRPC) {
		t.Errorf("export --home (%d bytes) and export --rpc (%d bytes) differ", len(fromHome), len(fromRPC))
	}
	r = sagachain(t, env, "verify", "--file", file, "--json")
	r.wantCode(t, exitOK)
	var rep struct {
		OK bool `json:"ok"`
		ledger.VerifyReport
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Blocks != finalHeight || rep.Operations != uint64(2+4*4+2*benchWarmup) {
		t.Errorf("verify --file = %+v, want ok, %d blocks, %d operations", rep, finalHeight, 2+4*4+2*benchWarmup)
	}
	if !strings.Contains(r.stderr, "using the genesis embedded in the file") {
		t.Errorf("verify --file without --genesis: stderr %q, want it to say whose genesis it used", r.stderr)
	}
	sagachain(t, env, "verify", "--file", file, "--genesis", genesis).wantCode(t, exitOK)
	sagachain(t, env, "verify", "--home", home).wantCode(t, exitOK)

	// Someone else's genesis is not this chain's.
	other := filepath.Join(t.TempDir(), "other")
	sagachain(t, env, "init", "--home", other).wantCode(t, exitOK)
	r = sagachain(t, env, "verify", "--file", file, "--genesis", filepath.Join(other, "genesis.json"))
	r.wantCode(t, exitFault)
	if !strings.Contains(r.stderr, "is not the one given with --genesis") {
		t.Errorf("verify against another genesis: stderr %q", r.stderr)
	}

	// The file ends with the head's results root, which no later header
	// carries: a flipped bit there is found by the replay, and named (on
	// a2a74ac it verified with exit 0).
	headRoot := slices.Clone(fromHome)
	headRoot[len(headRoot)-1] ^= 0x01
	badRoot := filepath.Join(t.TempDir(), "head-root.export")
	if err := os.WriteFile(badRoot, headRoot, 0o644); err != nil {
		t.Fatal(err)
	}
	r = sagachain(t, env, "verify", "--file", badRoot)
	r.wantCode(t, exitFault)
	if want := fmt.Sprintf("block %d", finalHeight); !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "results root") {
		t.Errorf("verify of an export with the head's results root flipped: stderr %q, want %q and its results root named", r.stderr, want)
	}

	// One flipped byte in the middle of the file is found, and named.
	tampered := slices.Clone(fromHome)
	tampered[len(tampered)/2] ^= 0x01
	bad := filepath.Join(t.TempDir(), "tampered.export")
	if err := os.WriteFile(bad, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	r = sagachain(t, env, "verify", "--file", bad)
	r.wantCode(t, exitFault)
	if !strings.HasPrefix(r.stderr, "verify: using the genesis") || !strings.Contains(r.stderr, "sagachain: verify: block ") {
		t.Errorf("verify of a tampered file: stderr %q, want the bad block named", r.stderr)
	}
	r = sagachain(t, env, "verify", "--file", bad, "--json")
	r.wantCode(t, exitFault)
	var fault struct {
		OK    bool          `json:"ok"`
		Fault *ledger.Fault `json:"fault"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &fault); err != nil {
		t.Fatal(err)
	}
	if fault.OK || fault.Fault == nil || fault.Fault.Height == 0 || fault.Fault.Height > finalHeight || fault.Fault.Reason == "" {
		t.Errorf("verify --json of a tampered file = %s", r.stdout)
	}
}

// checkLedgerEvents checks a history a node recorded: seq 1, 2, 3, ...,
// heights that never decrease, from submitted to finished.
func checkLedgerEvents(t *testing.T, v taskrt.OperationView) {
	t.Helper()
	if len(v.Events) < 2 {
		t.Fatalf("events %+v: want at least submitted and finished", v.Events)
	}
	for i, e := range v.Events {
		if e.Seq != i+1 || e.Height < v.SubmittedHeight || (i > 0 && e.Height < v.Events[i-1].Height) {
			t.Errorf("event %d: %+v; want seq %d and a height from %d on, not below the one before", i, e, i+1, v.SubmittedHeight)
		}
	}
	if first, last := v.Events[0], v.Events[len(v.Events)-1]; first.Type != taskrt.EventSubmitted || last.Type != taskrt.EventFinished || last.Status != string(v.Status) {
		t.Errorf("first event %+v, last %+v; want submitted ... finished %s", first, last, v.Status)
	}
}

// indexOf is the index of the first line starting with prefix, or -1.
func indexOf(lines []string, prefix string) int {
	return slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
}

// dev keeps its chain across restarts; --fresh starts a new one with the
// same validator; a second dev on a home in use is refused.
func TestDevRestartsAndFresh(t *testing.T) {
	t.Parallel()
	env, _ := userEnv(t)
	home := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, env, home)
	validator := d.banner[0][:strings.Index(d.banner[0], ", height")]
	d.run(t, "submit", "testnet/ops/fig4.yaml", "--wait").wantCode(t, exitOK)
	height, ids := d.ledgerState(t)

	r := sagachain(t, env, "dev", "--home", home, "--rpc", "127.0.0.1:0")
	r.wantCode(t, exitFailure)
	if !strings.Contains(r.stderr, "in use by another sagachain process") {
		t.Errorf("a second dev on the same home: stderr %q", r.stderr)
	}
	d.stop(t)

	d = startDev(t, env, home)
	if h, after := d.ledgerState(t); h != height || !slices.Equal(after, ids) || !strings.HasSuffix(d.banner[0], ", height "+strconv.FormatUint(height, 10)) {
		t.Errorf("after a restart: head %d, operations %v, banner %q; want %d and %v kept", h, after, d.banner[0], height, ids)
	}
	d.stop(t)

	d = startDev(t, env, home, "--fresh")
	if !strings.HasPrefix(d.banner[0], validator) || !strings.HasSuffix(d.banner[0], ", height 0") {
		t.Errorf("dev --fresh: banner %q, want %s at height 0", d.banner[0], validator)
	}
	if _, after := d.ledgerState(t); len(after) != 0 {
		t.Errorf("dev --fresh kept operations %v", after)
	}
	d.run(t, "submit", "testnet/ops/fig4.yaml", "--wait").wantCode(t, exitOK)
	d.stop(t)
	if _, err := os.Stat(filepath.Join(home, "config.yaml")); err != nil {
		t.Errorf("dev --fresh removed config.yaml: %v", err)
	}
}
