package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// webhook is a test receiver that refuses the first failures requests with
// 500 and accepts the rest.
type webhook struct {
	*httptest.Server

	mu       sync.Mutex
	failures int
	attempts map[string]int   // by alert id header
	accepted map[string]int   // by alert id header
	bodies   map[string]Alert // accepted bodies by id
	arrived  chan string      // ids, as they are accepted
}

func newWebhook(t *testing.T, failures int) *webhook {
	h := &webhook{failures: failures, attempts: map[string]int{}, accepted: map[string]int{}, bodies: map[string]Alert{}, arrived: make(chan string, 16)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderAlertID)
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.attempts[id]++
		if h.failures > 0 {
			h.failures--
			h.mu.Unlock()
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		var a Alert
		if err := json.Unmarshal(body, &a); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			h.mu.Unlock()
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		h.accepted[id]++
		h.bodies[id] = a
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		h.arrived <- id
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *webhook) counts(id string) (attempts, accepted int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts[id], h.accepted[id]
}

// await waits for the webhook to accept the alert with id.
func (h *webhook) await(t *testing.T, id string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-h.arrived:
			if got == id {
				return
			}
		case <-deadline:
			t.Fatalf("alert %s never delivered", id)
		}
	}
}

// waitDelivered waits for the notifier to see its webhooks' answers: a
// notifier stopped between the webhook's accepting and its answer arriving
// rightly keeps the alert.
func waitDelivered(t *testing.T, n *Notifier) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.Pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d alerts still pending", n.Pending())
		}
		time.Sleep(time.Millisecond)
	}
}

func testAlert(id, hook string) Alert {
	return Alert{ID: id, Kind: KindThreshold, Rule: 0, Functions: []string{"airline.reserve"}, Count: 3, Window: "1m0s", Height: 7,
		Failures: []Failure{{Operation: opID(1), Task: "reserve", Function: "airline.reserve", Kind: FailureFailed, Reason: "boom", Height: 7}},
		Webhook:  hook}
}

// running is a notifier with its Run goroutine.
type running struct {
	*Notifier
	stop func()
}

func newNotifier(t *testing.T, outbox State, client *http.Client, log *slog.Logger) *Notifier {
	t.Helper()
	n, err := NewNotifier(outbox, client, log)
	if err != nil {
		t.Fatal(err)
	}
	n.minBackoff, n.maxBackoff = time.Millisecond, 20*time.Millisecond
	return n
}

func start(t *testing.T, n *Notifier) *running {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	r := &running{Notifier: n, stop: func() { cancel(); <-done }}
	t.Cleanup(r.stop)
	return r
}

func startNotifier(t *testing.T, outbox State, log *slog.Logger) *running {
	t.Helper()
	return start(t, newNotifier(t, outbox, nil, log))
}

// unreachable is a transport that fails every request before it leaves,
// counting them.
type unreachable struct {
	mu       sync.Mutex
	attempts int
}

func (u *unreachable) RoundTrip(*http.Request) (*http.Response, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.attempts++
	return nil, errors.New("connection refused")
}

func (u *unreachable) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.attempts
}

func TestNotifierRetriesUntilDelivered(t *testing.T) {
	hook := newWebhook(t, 2)
	n := startNotifier(t, FileState(filepath.Join(t.TempDir(), "outbox.json")), nil)
	a := testAlert("a1", hook.URL)
	if err := n.Enqueue(a); err != nil {
		t.Fatal(err)
	}
	hook.await(t, a.ID)
	waitDelivered(t, n.Notifier)
	n.stop()
	attempts, accepted := hook.counts(a.ID)
	if attempts != 3 || accepted != 1 {
		t.Fatalf("attempts %d, accepted %d; want 3 and 1", attempts, accepted)
	}
	hook.mu.Lock()
	body := hook.bodies[a.ID]
	hook.mu.Unlock()
	if body.ID != a.ID || body.Count != a.Count || body.Failures[0] != a.Failures[0] {
		t.Fatalf("body = %+v, want %+v", body, a)
	}
}

func TestNotifierResendsFromOutboxAfterRestart(t *testing.T) {
	hook := newWebhook(t, 0)
	outbox := FileState(filepath.Join(t.TempDir(), "outbox.json"))
	// The first notifier cannot reach the webhook at all, so no request of
	// its can arrive after it stopped.
	down := &unreachable{}
	n1 := start(t, newNotifier(t, outbox, &http.Client{Transport: down}, nil))
	a := testAlert("a1", hook.URL)
	if err := n1.Enqueue(a); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for down.count() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no retry made")
		}
		time.Sleep(time.Millisecond)
	}
	n1.stop()

	restarted := newNotifier(t, outbox, nil, nil)
	if restarted.Pending() != 1 {
		t.Fatalf("restarted with %d pending, want 1", restarted.Pending())
	}
	n2 := start(t, restarted)
	hook.await(t, a.ID)
	waitDelivered(t, n2.Notifier)
	n2.stop()
	if attempts, accepted := hook.counts(a.ID); attempts != 1 || accepted != 1 {
		t.Fatalf("webhook saw %d attempts, accepted %d; want 1 and 1", attempts, accepted)
	}
}

func TestNotifierDoesNotResendDelivered(t *testing.T) {
	hook := newWebhook(t, 0)
	outbox := FileState(filepath.Join(t.TempDir(), "outbox.json"))
	n1 := startNotifier(t, outbox, nil)
	a, b := testAlert("a1", hook.URL), testAlert("b1", hook.URL)
	if err := n1.Enqueue(a); err != nil {
		t.Fatal(err)
	}
	hook.await(t, a.ID)
	waitDelivered(t, n1.Notifier)
	n1.stop()

	n2 := startNotifier(t, outbox, nil)
	if n2.Pending() != 0 {
		t.Fatalf("restarted with %d pending, want 0", n2.Pending())
	}
	// The watch raising a again (a crash before it saved) changes nothing.
	if err := n2.Enqueue(a); err != nil {
		t.Fatal(err)
	}
	if n2.Pending() != 0 {
		t.Fatalf("a delivered alert was enqueued again")
	}
	// Once b, enqueued later, has arrived, a would have been sent before it.
	if err := n2.Enqueue(b); err != nil {
		t.Fatal(err)
	}
	hook.await(t, b.ID)
	waitDelivered(t, n2.Notifier)
	n2.stop()
	if attempts, _ := hook.counts(a.ID); attempts != 1 {
		t.Fatalf("alert a sent %d times, want 1", attempts)
	}
}

func TestNotifierLogsAlertWithoutWebhook(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	n := startNotifier(t, &memState{}, log)
	a := testAlert("lonely", "")
	a.Kind, a.Rule = KindRollbackFailed, NoRule
	if err := n.Enqueue(a); err != nil {
		t.Fatal(err)
	}
	if n.Pending() != 0 {
		t.Fatalf("an alert without webhook is pending")
	}
	mu.Lock()
	defer mu.Unlock()
	if out := buf.String(); !strings.Contains(out, "id=lonely") || !strings.Contains(out, opID(1).Hex()) {
		t.Fatalf("log %q does not name the alert and its operation", out)
	}
}

func TestNotifierEnqueueFailsWhenOutboxFails(t *testing.T) {
	n, err := NewNotifier(failingState{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Enqueue(testAlert("a1", "http://127.0.0.1:1/")); err == nil || !strings.Contains(err.Error(), "alert outbox") {
		t.Fatalf("err = %v, want an outbox error", err)
	}
	if n.Pending() != 0 {
		t.Fatalf("%d pending after a failed enqueue, want 0", n.Pending())
	}
}

type failingState struct{}

func (failingState) Load() ([]byte, error) { return nil, nil }
func (failingState) Save([]byte) error     { return io.ErrShortWrite }

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestNotifierBackoffDoublesUpToItsBound(t *testing.T) {
	n := &Notifier{minBackoff: 100 * time.Millisecond, maxBackoff: time.Second}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i, w := range want {
		if got := n.backoff(i + 1); got != w {
			t.Errorf("backoff after %d attempts = %s, want %s", i+1, got, w)
		}
	}
	if got := n.backoff(1000); got != time.Second {
		t.Errorf("backoff after 1000 attempts = %s, want the bound", got)
	}
}
