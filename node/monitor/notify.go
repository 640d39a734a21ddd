package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"
)

// HeaderAlertID carries the alert's id on every webhook request, so a
// receiver can drop a duplicate without reading the body.
const HeaderAlertID = "X-Sagachain-Alert-Id"

// Retry timing of deliveries.
const (
	defaultMinBackoff     = 500 * time.Millisecond
	defaultMaxBackoff     = time.Minute
	defaultAttemptTimeout = 10 * time.Second
	// rememberDelivered bounds the ids of delivered alerts the outbox keeps,
	// enough to refuse an alert the watch raises again after a crash.
	rememberDelivered = 1024
)

// Notifier delivers alerts to their webhooks: each is POSTed as JSON until
// the webhook answers 2xx, retried with exponential backoff for as long as
// the notifier runs. Alerts are written to the outbox before the first
// attempt and removed after delivery, so a restart resends exactly the
// undelivered ones. A Notifier is safe for concurrent use.
type Notifier struct {
	outbox State
	client *http.Client
	log    *slog.Logger

	minBackoff     time.Duration
	maxBackoff     time.Duration
	attemptTimeout time.Duration

	wake chan struct{}

	mu        sync.Mutex
	pending   []*delivery
	delivered []string // ids, oldest first
}

// delivery is one pending alert and its retry schedule. The schedule is not
// persisted: after a restart every pending alert is tried at once.
type delivery struct {
	alert    Alert
	attempts int
	next     time.Time
}

// outboxFile is the outbox's saved form.
type outboxFile struct {
	Version   int      `json:"version"`
	Pending   []Alert  `json:"pending"`
	Delivered []string `json:"delivered,omitempty"`
}

const outboxVersion = 1

// NewNotifier returns a notifier whose pending alerts are those left in
// outbox. A nil client is http.DefaultClient; a nil log discards.
func NewNotifier(outbox State, client *http.Client, log *slog.Logger) (*Notifier, error) {
	if outbox == nil {
		return nil, fmt.Errorf("alert outbox: no state given")
	}
	if client == nil {
		client = http.DefaultClient
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{
		outbox:         outbox,
		client:         client,
		log:            log,
		minBackoff:     defaultMinBackoff,
		maxBackoff:     defaultMaxBackoff,
		attemptTimeout: defaultAttemptTimeout,
		wake:           make(chan struct{}, 1),
	}
	data, err := outbox.Load()
	if err != nil {
		return nil, fmt.Errorf("alert outbox: %w", err)
	}
	if len(data) == 0 {
		return n, nil
	}
	var f outboxFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("alert outbox: %w", err)
	}
	if f.Version != outboxVersion {
		return nil, fmt.Errorf("alert outbox: version %d, want %d", f.Version, outboxVersion)
	}
	for _, a := range f.Pending {
		n.pending = append(n.pending, &delivery{alert: a})
	}
	n.delivered = f.Delivered
	return n, nil
}

// Enqueue persists the alerts to the outbox and wakes [Notifier.Run] to
// deliver them. An alert whose id is pending or was delivered is dropped,
// and one without webhook is only logged. When it returns an error nothing
// was enqueued.
func (n *Notifier) Enqueue(alerts ...Alert) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	prev := len(n.pending)
	for _, a := range alerts {
		if a.Webhook == "" {
			n.log.Warn("alert without webhook", alertAttrs(a)...)
			continue
		}
		if n.known(a.ID) {
			continue
		}
		n.pending = append(n.pending, &delivery{alert: a})
	}
	if len(n.pending) == prev {
		return nil
	}
	if err := n.persistLocked(); err != nil {
		clear(n.pending[prev:])
		n.pending = n.pending[:prev]
		return err
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}

func (n *Notifier) known(id string) bool {
	return slices.Contains(n.delivered, id) ||
		slices.ContainsFunc(n.pending, func(d *delivery) bool { return d.alert.ID == id })
}

func (n *Notifier) persistLocked() error {
	f := outboxFile{Version: outboxVersion, Pending: make([]Alert, len(n.pending)), Delivered: n.delivered}
	for i, d := range n.pending {
		f.Pending[i] = d.alert
	}
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("alert outbox: %w", err)
	}
	if err := n.outbox.Save(data); err != nil {
		return fmt.Errorf("alert outbox: %w", err)
	}
	return nil
}

// Pending returns the number of alerts not yet delivered.
func (n *Notifier) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.pending)
}

// Run delivers pending alerts until ctx is done. Call it once, on a
// goroutine of the caller's.
func (n *Notifier) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait, ok := n.deliverDue(ctx)
		if ctx.Err() != nil {
			return
		}
		timer.Stop()
		var tick <-chan time.Time
		if ok {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-tick:
		}
	}
}

// deliverDue attempts every alert whose retry time has come, and returns
// how long until the next one is due, with false when none is pending.
func (n *Notifier) deliverDue(ctx context.Context) (time.Duration, bool) {
	now := time.Now()
	n.mu.Lock()
	var due []*delivery
	for _, d := range n.pending {
		if !d.next.After(now) {
			due = append(due, d)
		}
	}
	n.mu.Unlock()

	for _, d := range due {
		if ctx.Err() != nil {
			break
		}
		err := n.post(ctx, d.alert)
		n.mu.Lock()
		if err == nil {
			n.delivered = append(n.delivered, d.alert.ID)
			if over := len(n.delivered) - rememberDelivered; over > 0 {
				n.delivered = slices.Delete(n.delivered, 0, over)
			}
			n.pending = slices.DeleteFunc(n.pending, func(p *delivery) bool { return p == d })
			if perr := n.persistLocked(); perr != nil {
				// Delivered but still in the file: a restart sends it again
				// and the receiver drops it by id.
				n.log.Error("alert delivered but outbox not updated", "id", d.alert.ID, "err", perr)
			}
		} else if ctx.Err() == nil {
			d.attempts++
			d.next = time.Now().Add(n.backoff(d.attempts))
			n.log.Warn("alert not delivered", "id", d.alert.ID, "webhook", d.alert.Webhook,
				"attempts", d.attempts, "retry_in", time.Until(d.next).Round(time.Millisecond), "err", err)
		}
		n.mu.Unlock()
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.pending) == 0 {
		return 0, false
	}
	next := n.pending[0].next
	for _, d := range n.pending[1:] {
		if d.next.Before(next) {
			next = d.next
		}
	}
	return max(time.Until(next), 0), true
}

// backoff is the wait after the given number of failed attempts.
func (n *Notifier) backoff(attempts int) time.Duration {
	d := n.minBackoff
	for i := 1; i < attempts && d < n.maxBackoff; i++ {
		d *= 2
	}
	return min(d, n.maxBackoff)
}

// post makes one delivery attempt, bounded by the attempt timeout.
func (n *Notifier) post(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("alert %s: %w", a.ID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.Webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert %s: %w", a.ID, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderAlertID, a.ID)
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("alert %s: %w", a.ID, err)
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("alert %s: webhook %s answered %s", a.ID, a.Webhook, resp.Status)
	}
	return nil
}

func alertAttrs(a Alert) []any {
	ops := make([]string, 0, len(a.Failures))
	for _, f := range a.Failures {
		if op := f.Operation.Hex(); !slices.Contains(ops, op) {
			ops = append(ops, op)
		}
	}
	return []any{"id", a.ID, "kind", a.Kind, "rule", a.Rule, "functions", a.Functions,
		"count", a.Count, "height", a.Height, "operations", ops}
}
