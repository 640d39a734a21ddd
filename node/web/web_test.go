package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node"
	"github.com/sagachain/sagachain/node/web"
	"github.com/sagachain/sagachain/p2p"
	"github.com/sagachain/sagachain/taskrt"
)

const chainID = "web-test"

func TestHandlerServesThePageAndItsAssets(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()

	get := func(path string, header http.Header) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(body)
	}

	res, index := get("/", nil)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s, %q", res.Status, res.Header.Get("Content-Type"))
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "style-src 'self'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	// Every asset the page names is served, with a type a browser that
	// honours nosniff accepts for it.
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html names %d assets, want the script, the style sheet and the icon", len(refs))
	}
	wantType := map[string]string{".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
	for _, ref := range refs {
		path := ref[1]
		res, body := get(path, nil)
		ext := path[strings.LastIndex(path, "."):]
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), wantType[ext]) || body == "" {
			t.Errorf("GET %s: %s, %q, %d bytes", path, res.Status, res.Header.Get("Content-Type"), len(body))
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", path)
		}
		// A revalidation with the ETag is answered without the body.
		etag := res.Header.Get("ETag")
		if res, _ := get(path, http.Header{"If-None-Match": {etag}}); etag == "" || res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %q: %s, want 304", path, etag, res.Status)
		}
	}

	for _, path := range []string{"/assets/", "/assets/missing.js", "/index.html", "/favicon.ico", "/assets/../web.go"} {
		if res, _ := get(path, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, res.Status)
		}
	}
	res, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") == "" {
		t.Errorf("POST /: %s, Allow %q; want 405 with Allow", res.Status, res.Header.Get("Allow"))
	}
}

// chromium finds a Chromium or Chrome binary, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found on PATH (chromium, chromium-browser, google-chrome, headless-shell); on Debian: apt-get install chromium")
	return ""
}

func testKey(t *testing.T, seed byte) *ledger.PrivateKey {
	t.Helper()
	b := make([]byte, 32)
	b[31] = seed
	k, err := ledger.PrivateKeyFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// uiNode is a one-validator in-memory node serving the web UI.
type uiNode struct {
	*node.Node
	user *ledger.PrivateKey
	// stop ends a node of startNetwork before the test does.
	stop func()
}

func startNode(t *testing.T) *uiNode {
	t.Helper()
	val, user := testKey(t, 1), testKey(t, 2)
	g := &ledger.Genesis{ChainID: chainID, Time: 1, Validators: []ledger.GenesisValidator{{Address: val.Address(), Name: "val-0"}},
		Submitters: []ledger.Address{user.Address()}, Params: ledger.DefaultParams()}
	cfg := config.Default()
	cfg.ChainID = chainID
	cfg.RPC.Listen = "127.0.0.1:0"
	n, err := node.New(node.Options{Config: cfg, Genesis: g, Key: val, InMemory: true, UI: web.Handler(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("node did not stop")
		}
	})
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("node stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("node did not start")
	}
	return &uiNode{Node: n, user: user}
}

// entry signs a submission of the operation file text.
func (n *uiNode) entry(t *testing.T, text []byte) ledger.Entry {
	t.Helper()
	op, err := taskrt.Load(text, nil, taskrt.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	s := &ledger.Submission{Operation: raw, Nonce: uint64(time.Now().UnixNano())}
	if err := s.Sign(n.user, chainID); err != nil {
		t.Fatal(err)
	}
	e, err := ledger.NewEntry(ledger.KindSubmission, s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (n *uiNode) fileEntry(t *testing.T, path string) ledger.Entry {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return n.entry(t, text)
}

// view is the node's own rendering of an operation, once it is final.
func (n *uiNode) view(t *testing.T, id ledger.Hash) taskrt.OperationView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r, err := n.Store().Operation(id)
		if err == nil && r.Saga.Status.Final() {
			v, err := n.Machine().View(r)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("operation %s did not finish", id.Hex())
	return taskrt.OperationView{}
}

// browser opens a headless Chromium tab for the test and records what the
// page writes to its console.
type browser struct {
	ctx     context.Context
	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func openBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	// Bound the whole conversation with the browser, so that a page that
	// never shows what a test waits for fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel)
	b := &browser{ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// messages returns everything the page logged.
func (b *browser) messages() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, len(b.console))
	for i, m := range b.console {
		out[i] = fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line)
	}
	return out
}

// problems returns the exceptions and errors the page logged.
func (b *browser) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.console {
		if m.IsException() || m.Type == "error" {
			out = append(out, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
		}
	}
	return out
}

func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// poll waits until the JavaScript expression is truthy.
func poll(t *testing.T, b *browser, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second),
		chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		page, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("waiting until %s: %v\npage: %s\nconsole:\n%s", what, err, page, strings.Join(b.messages(), "\n"))
	}
}

// graphStatuses reads the task statuses drawn in the first SVG of
// operation id in the page.
func graphStatuses(t *testing.T, b *browser, id string) map[string]string {
	t.Helper()
	return eval[map[string]string](t, b, fmt.Sprintf(`Object.fromEntries([...document.querySelectorAll('svg[data-op=%q] [data-task]')]
		.map((n) => [n.getAttribute('data-task'), n.getAttribute('data-status')]))`, id))
}

func taskStatuses(v taskrt.OperationView) map[string]string {
	out := make(map[string]string)
	for _, s := range v.Stages {
		for _, t := range s.Tasks {
			out[t.ID] = string(t.Status)
		}
	}
	return out
}

type undoItem struct {
	Task  string `json:"task"`
	Stage int    `json:"stage"`
	Type  string `json:"type"`
}

func TestUIFollowsOperationsLive(t *testing.T) {
	b := openBrowser(t)
	n := startNode(t)
	base := "http://" + n.RPCAddr() + "/"

	// Open the page before anything is submitted: whatever it shows later,
	// it learnt over its subscriptions.
	b.do(t, "open the page", chromedp.Navigate(base))
	poll(t, b, "the WebSocket is up and the empty list is shown",
		`document.querySelector('#conn')?.dataset.state === 'live' && /No operations yet/.test(document.querySelector('#ops-note')?.textContent)`)
	// Record every status each operation card shows, to see it change.
	eval[chromedp.Void](t, b, `window.__seen = {};
		new MutationObserver(() => {
			for (const c of document.querySelectorAll('[data-op-card]')) {
				const s = (window.__seen[c.dataset.opCard] ??= []);
				if (s[s.length - 1] !== c.dataset.status) s.push(c.dataset.status);
			}
		}).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-status']}); true`)

	bad, good := n.fileEntry(t, "../../testnet/ops/trip-hotel-fails.yaml"), n.fileEntry(t, "../../testnet/ops/trip.yaml")
	badID, goodID := bad.Hash().Hex(), good.Hash().Hex()
	errs := make(chan error, 2)
	for _, e := range []ledger.Entry{bad, good} {
		go func() { errs <- n.Submit(e) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("submit: %v", err)
		}
	}
	badView, goodView := n.view(t, bad.Hash()), n.view(t, good.Hash())
	if badView.Status != taskrt.OpRolledBack || goodView.Status != taskrt.OpCompleted {
		t.Fatalf("the node ended the trips %s and %s, want rolled_back and completed", badView.Status, goodView.Status)
	}

	poll(t, b, "both trips show their final status on the home page", fmt.Sprintf(
		`document.querySelector('[data-op-card=%q]')?.dataset.status === 'rolled_back' && document.querySelector('[data-op-card=%q]')?.dataset.status === 'completed'`,
		badID, goodID))
	// The graphs show what the node recorded: the failing trip undone but
	// for the excursion that never started, the other one all succeeded.
	wantBad := map[string]string{"flight": "rolled_back", "payment": "rolled_back", "hotel": "rolled_back", "car": "rolled_back", "excursion": "pending"}
	if got := graphStatuses(t, b, badID); !maps.Equal(got, taskStatuses(badView)) || !maps.Equal(got, wantBad) {
		t.Errorf("failing trip's graph on the home page: %v; the node says %v, want %v", got, taskStatuses(badView), wantBad)
	}
	gotGood := graphStatuses(t, b, goodID)
	if !maps.Equal(gotGood, taskStatuses(goodView)) || len(gotGood) != 5 {
		t.Errorf("completed trip's graph: %v; the node says %v", gotGood, taskStatuses(goodView))
	}
	for task, s := range gotGood {
		if s != string(taskrt.TaskSucceeded) {
			t.Errorf("completed trip: task %s drawn %s, want succeeded", task, s)
		}
	}
	// Each dependency is an arrow: the excursion has two (hotel, car).
	if got := eval[[]string](t, b, fmt.Sprintf(`[...document.querySelectorAll('svg[data-op=%q] .edge[data-to="excursion"]')].map((e) => e.dataset.from).sort()`, goodID)); !slices.Equal(got, []string{"car", "hotel"}) {
		t.Errorf("arrows into the excursion come from %v, want [car hotel]", got)
	}
	// The failing trip was followed while it ran, not only drawn at the end.
	seen := eval[map[string][]string](t, b, `window.__seen`)
	if s := seen[badID]; len(s) < 2 || s[len(s)-1] != "rolled_back" {
		t.Errorf("the failing trip's card showed the statuses %v, want at least one before rolled_back", s)
	} else {
		t.Logf("the failing trip's card showed %v", s)
	}

	// The rolled-back filter keeps only the failing trip.
	b.do(t, "filter rolled back", chromedp.Click(chromedp.CSS(`a[data-filter="rolled_back"]`)))
	poll(t, b, "only the failing trip is listed", fmt.Sprintf(
		`JSON.stringify([...document.querySelectorAll('[data-op-card]')].map((c) => c.dataset.opCard)) === JSON.stringify([%q])`, badID))

	// Its operation page lists the rollbacks in ledger order.
	b.do(t, "open the failing trip", chromedp.Click(chromedp.CSS(fmt.Sprintf(`a.op-link[href="#/op/%s"]`, badID))))
	poll(t, b, "the operation page shows the undo order", fmt.Sprintf(
		`document.querySelector('#op-id')?.textContent === %q && document.querySelectorAll('#undo-order li').length === 4`, badID))
	undo := eval[[]undoItem](t, b, `[...document.querySelectorAll('#undo-order li')].map((li) => ({task: li.dataset.task, stage: Number(li.dataset.stage), type: li.dataset.type}))`)
	var want []undoItem
	for _, e := range badView.Events {
		if e.Type == taskrt.EventTaskRolledBack || e.Type == taskrt.EventTaskRollbackFailed {
			want = append(want, undoItem{Task: e.Task, Stage: *e.Stage, Type: e.Type})
		}
	}
	if !slices.Equal(undo, want) {
		t.Errorf("undo order %v, the node recorded %v", undo, want)
	}
	tasksOf := func(items []undoItem, stage int) []string {
		var out []string
		for _, it := range items {
			if it.Stage != stage {
				t.Errorf("undo order %v: %s of stage %d among stage %d's", items, it.Task, it.Stage, stage)
			}
			out = append(out, it.Task)
		}
		slices.Sort(out)
		return out
	}
	if len(undo) == 4 {
		if got := tasksOf(undo[:2], 1); !slices.Equal(got, []string{"car", "hotel"}) {
			t.Errorf("undone first: %v, want stage 1's car and hotel", got)
		}
		if got := tasksOf(undo[2:], 0); !slices.Equal(got, []string{"flight", "payment"}) {
			t.Errorf("undone last: %v, want stage 0's flight and payment", got)
		}
	}
	if got := graphStatuses(t, b, badID); !maps.Equal(got, wantBad) {
		t.Errorf("failing trip's graph on its page: %v, want %v", got, wantBad)
	}
	if got := eval[int](t, b, `document.querySelectorAll('#timeline tbody tr').length`); got != len(badView.Events) {
		t.Errorf("timeline has %d rows, the operation %d events", got, len(badView.Events))
	}
	// The hotel's failure keeps its reason.
	hotelRow := eval[string](t, b, `document.querySelector('tr[data-task-row="hotel"]').textContent`)
	if !strings.Contains(hotelRow, "no rooms left") {
		t.Errorf("hotel row %q does not give the reason", hotelRow)
	}
	saveScreenshot(t, b)

	// The chain page shows the newest blocks and the validator.
	b.do(t, "open the chain page", chromedp.Navigate(base+"#/chain"))
	poll(t, b, "the blocks are listed", `document.querySelectorAll('#blocks tbody tr').length > 0`)
	head, err := n.Store().Head()
	if err != nil {
		t.Fatal(err)
	}
	heights := eval[[]int](t, b, `[...document.querySelectorAll('#blocks tbody tr')].map((r) => Number(r.dataset.height))`)
	if want := int(min(head, 20)); len(heights) != want || heights[0] != int(head) || heights[len(heights)-1] != int(head)-want+1 {
		t.Errorf("chain page lists heights %v, want the %d newest from the head %d down", heights, want, head)
	}
	vals := eval[[]map[string]string](t, b, `[...document.querySelectorAll('#validators tbody tr')].map((r) => ({address: r.dataset.address, online: r.dataset.online}))`)
	if len(vals) != 1 || !strings.EqualFold(vals[0]["address"], n.Self().Hex()) || vals[0]["online"] != "true" {
		t.Errorf("validators %v, want this node's %s online", vals, n.Self().Hex())
	}

	if p := b.problems(); len(p) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(p, "\n"))
	}
}

// Outputs and failure reasons are written by users: the page shows them as
// text and runs nothing they contain.
func TestUIShowsHostileTextAsText(t *testing.T) {
	b := openBrowser(t)
	n := startNode(t)
	const payload = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`
	op := fmt.Sprintf(`name: hostile
tasks:
  - id: say
    run: echo
    outputs: [text]
    params: {text: %q}
  - id: fails
    run: fail
    inputs: [text]
    params: {message: %q}
    retry: {attempts: 1}
`, payload, payload)
	e := n.entry(t, []byte(op))
	if err := n.Submit(e); err != nil {
		t.Fatal(err)
	}
	id := e.Hash().Hex()
	if v := n.view(t, e.Hash()); v.Status != taskrt.OpRolledBack {
		t.Fatalf("hostile operation ended %s, want rolled_back", v.Status)
	}

	b.do(t, "open the operation", chromedp.Navigate("http://"+n.RPCAddr()+"/#/op/"+id))
	poll(t, b, "the operation page is shown", `document.querySelector('#op-status')?.dataset.status === 'rolled_back'`)
	b.do(t, "expand the output", chromedp.Click(chromedp.CSS(`tr[data-task-row="say"] details.output summary`)))
	output := eval[string](t, b, `document.querySelector('tr[data-task-row="say"] details.output pre').textContent`)
	var shown map[string]string
	if err := json.Unmarshal([]byte(output), &shown); err != nil || shown["text"] != payload {
		t.Errorf("output shown as %q, want the JSON of the payload as text", output)
	}
	if got := eval[string](t, b, `document.querySelector('tr[data-task-row="fails"] td.reason').textContent`); !strings.Contains(got, payload) {
		t.Errorf("reason shown as %q, want the payload as text", got)
	}
	if got := eval[int](t, b, `document.querySelectorAll('main img, main script').length`); got != 0 {
		t.Errorf("the page made %d elements from the payload", got)
	}
	if got := eval[*int](t, b, `window.__pwned`); got != nil {
		t.Errorf("the payload ran: window.__pwned = %d", *got)
	}
	if p := b.problems(); len(p) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(p, "\n"))
	}
}

// startNetwork runs n validators on 127.0.0.1 that know each other as
// static peers, each with an in-memory ledger; the first serves the web
// UI. It returns them with the submitter's key set on each.
func startNetwork(t *testing.T, n int) []*uiNode {
	t.Helper()
	user := testKey(t, 100)
	g := &ledger.Genesis{ChainID: chainID, Time: 1, Submitters: []ledger.Address{user.Address()}, Params: ledger.DefaultParams()}
	var keys []*ledger.PrivateKey
	var addrs []string
	for i := range n {
		k := testKey(t, byte(i+1))
		keys = append(keys, k)
		g.Validators = append(g.Validators, ledger.NewGenesisValidator(k, fmt.Sprintf("node%d", i)))
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		id, err := p2p.PeerID(k.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id))
	}
	var nodes []*uiNode
	for i, k := range keys {
		cfg := config.Default()
		cfg.ChainID = chainID
		cfg.RPC.Listen = "127.0.0.1:0"
		cfg.P2P.Listen = addrs[i][:strings.Index(addrs[i], "/p2p/")]
		cfg.Consensus.TimeoutPropose = 500 * time.Millisecond
		for j, a := range addrs {
			if j != i {
				cfg.P2P.Peers = append(cfg.P2P.Peers, a)
			}
		}
		opts := node.Options{Config: cfg, Genesis: g, Key: k, InMemory: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if i == 0 {
			opts.UI = web.Handler()
		}
		nd, err := node.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &uiNode{Node: nd, user: user})
	}
	for _, un := range nodes {
		un.run(t)
	}
	return nodes
}

// run starts the node and waits until it serves; stop ends it, as does
// the end of the test.
func (n *uiNode) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("node did not stop")
			}
		})
	}
	t.Cleanup(n.stop)
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("node stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("node did not start")
	}
}

// moveRow is what the page shows of a task's executors.
type moveRow struct {
	Executors string `json:"executors"`
	Text      string `json:"text"`
	Moves     []int  `json:"moves"`
}

// A validator dies while it holds tasks: the operation page, opened while
// the operation runs, shows each move as it happens (the timeline's
// task_moved rows, from and to) and each moved task's executor history
// (ran on 0xab…→0xcd…, moved at its block, why), as the node records it;
// the chain page marks the dead validator down.
func TestUIShowsTasksMovedFromADeadExecutor(t *testing.T) {
	b := openBrowser(t)
	nodes := startNetwork(t, 4)
	for deadline := time.Now().Add(20 * time.Second); len(nodes[0].Peers()) < 3 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	dead := nodes[3]
	dead.stop()

	// Enough tasks side by side that some land on the dead validator
	// (all but once in a thousand runs).
	var op strings.Builder
	op.WriteString("name: wide\ndefaults: {timeout: 60s}\ntasks:\n")
	for i := range 24 {
		fmt.Fprintf(&op, "  - {id: t%02d, run: echo, rollback: noop, outputs: [x%d]}\n", i, i)
	}
	e := nodes[0].entry(t, []byte(op.String()))
	if err := nodes[0].Submit(e); err != nil {
		t.Fatalf("submit: %v", err)
	}
	id := e.Hash().Hex()
	b.do(t, "open the operation", chromedp.Navigate("http://"+nodes[0].RPCAddr()+"/#/op/"+id))
	poll(t, b, "the operation page is shown", fmt.Sprintf(`document.querySelector('#op-id')?.textContent === %q`, id))

	// The node's own view, once the dead validator's tasks have moved.
	var v taskrt.OperationView
	moved := map[string]taskrt.TaskView{}
	for deadline := time.Now().Add(30 * time.Second); len(moved) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r, err := nodes[0].Store().Operation(e.Hash())
		if err != nil {
			continue
		}
		if v, err = nodes[0].Machine().View(r); err != nil {
			t.Fatal(err)
		}
		for _, tv := range v.Stages[0].Tasks {
			if len(tv.Executors) > 1 && strings.EqualFold(tv.Executors[0].Executor, dead.Self().Hex()) {
				moved[tv.ID] = tv
			}
		}
	}
	if len(moved) == 0 {
		t.Fatalf("no task moved from the dead validator %s; events %+v", dead.Self().Hex(), v.Events)
	}
	var movedEvents int
	for _, ev := range v.Events {
		if ev.Type == taskrt.EventTaskMoved {
			movedEvents++
		}
	}
	poll(t, b, "the page shows every move", fmt.Sprintf(
		`document.querySelectorAll('#timeline tr[data-type="task_moved"]').length >= %d && document.querySelectorAll('td.executor-cell .executors.moved[data-kind="run"]').length >= %d`,
		movedEvents, len(moved)))

	rows := eval[map[string]moveRow](t, b, `Object.fromEntries([...document.querySelectorAll('tr[data-task-row]')].map((tr) => {
		const d = tr.querySelector('td.executor-cell .executors[data-kind="run"]');
		return [tr.dataset.taskRow, d ? {executors: d.dataset.executors, text: d.textContent,
			moves: [...d.querySelectorAll('.move')].map((m) => Number(m.dataset.height))} : null];
	}))`)
	for task, tv := range moved {
		row := rows[task]
		t.Logf("task %s: the page shows %q", task, row.Text)
		var want []string
		var heights []int
		for k, a := range tv.Executors {
			want = append(want, a.Executor)
			if k > 0 {
				heights = append(heights, int(a.Height))
			}
		}
		if !strings.EqualFold(row.Executors, strings.Join(want, " ")) || !slices.Equal(row.Moves, heights) {
			t.Errorf("task %s shows executors %q moved at %v; the node records %v moved at %v", task, row.Executors, row.Moves, want, heights)
		}
		last := tv.Executors[len(tv.Executors)-1]
		shortOf := func(h string) string { return h[:8] + "…" + h[len(h)-4:] }
		wantText := fmt.Sprintf("ran on %s→%s(moved at %d: %s)", shortOf(tv.Executors[0].Executor), shortOf(tv.Executors[1].Executor), tv.Executors[1].Height, tv.Executors[1].Reason)
		if len(tv.Executors) == 2 && row.Text != wantText {
			t.Errorf("task %s's executor cell reads %q, want %q", task, row.Text, wantText)
		}
		if !strings.Contains(tv.Executors[1].Reason, dead.Self().Hex()) || !strings.EqualFold(tv.Executor, last.Executor) {
			t.Errorf("task %s: moved because %q, now on %s; want the dead validator named and the last step current", task, tv.Executors[1].Reason, tv.Executor)
		}
	}
	// A task that never moved shows its one executor, with no path.
	for task, row := range rows {
		if _, ok := moved[task]; !ok && (strings.Contains(row.Executors, " ") || len(row.Moves) > 0) {
			t.Errorf("task %s did not move from the dead validator but shows %+v", task, row)
		}
	}
	// Each move event of the timeline names from and to.
	evs := eval[[]map[string]string](t, b, `[...document.querySelectorAll('#timeline tr[data-type="task_moved"]')].map((tr) => ({task: tr.dataset.eventTask, from: tr.dataset.from, to: tr.dataset.to, detail: tr.querySelector('td.detail').textContent}))`)
	for _, ev := range evs {
		tv, ok := moved[ev["task"]]
		if ok && (!strings.EqualFold(ev["from"], tv.Executors[0].Executor) || !strings.EqualFold(ev["to"], tv.Executors[1].Executor) || !strings.Contains(ev["detail"], "→") || !strings.Contains(ev["detail"], dead.Self().Hex())) {
			t.Errorf("timeline shows the move of %s as %v; the node records %+v", ev["task"], ev, tv.Executors)
		}
	}
	saveMoveScreenshot(t, b)

	// The chain page marks the dead validator down, as the chain does.
	b.do(t, "open the chain page", chromedp.Navigate("http://"+nodes[0].RPCAddr()+"/#/chain"))
	poll(t, b, "the validators are listed", `document.querySelectorAll('#validators tbody tr').length === 4`)
	down := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#validators tbody tr')].map((r) => [r.dataset.address.toLowerCase(), r.dataset.down]))`)
	for _, un := range nodes {
		want := "false"
		if un == dead {
			want = "true"
		}
		if got := down[strings.ToLower(un.Self().Hex())]; got != want {
			t.Errorf("validator %s shown down=%s, want %s", un.Self().Hex(), got, want)
		}
	}
	if p := b.problems(); len(p) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(p, "\n"))
	}
}
