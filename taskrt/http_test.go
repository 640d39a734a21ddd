package taskrt

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// callBound is how long a call that must return promptly may take before a
// test calls it hung. It is a safety net, not a measurement.
const callBound = 10 * time.Second

// callPromptly runs f.Call in a goroutine and fails the test if it has not
// returned within callBound.
func callPromptly(t *testing.T, ctx context.Context, f Function, req Request) (map[string]any, error) {
	t.Helper()
	type result struct {
		out map[string]any
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := f.Call(ctx, req)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-time.After(callBound):
		t.Fatalf("Call still running after %v", callBound)
		return nil, nil
	}
}

func testRequest() Request {
	return Request{
		Operation:      "op-1",
		Task:           "flight",
		Attempt:        1,
		IdempotencyKey: "op-1/flight",
		Inputs:         map[string]any{"traveler": "Ada Lovelace"},
		Params:         map[string]any{"class": "economy"},
		Outputs:        []string{"flight"},
	}
}

// recorder is an http handler that records every request and answers with
// the responses it is given, repeating the last.
type recorder struct {
	mu        sync.Mutex
	bodies    []map[string]any
	headers   []http.Header
	responses []response
}

type response struct {
	status int
	body   string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		http.Error(w, "bad request body: "+err.Error(), http.StatusTeapot)
		return
	}
	rec.mu.Lock()
	rec.bodies = append(rec.bodies, body)
	rec.headers = append(rec.headers, r.Header.Clone())
	resp := rec.responses[min(len(rec.bodies), len(rec.responses))-1]
	rec.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.status)
	_, _ = io.WriteString(w, resp.body)
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.bodies)
}

func newHTTPTest(t *testing.T, responses ...response) (*HTTPFunction, *recorder) {
	t.Helper()
	rec := &recorder{responses: responses}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	f, err := NewHTTPFunction(srv.URL + "/reserve")
	if err != nil {
		t.Fatal(err)
	}
	return f, rec
}

// callWithRetries is the shape of the executor's retry loop: it stops at
// success or at a permanent error.
func callWithRetries(f Function, req Request, attempts int) (map[string]any, error) {
	var err error
	for req.Attempt = 1; req.Attempt <= attempts; req.Attempt++ {
		var out map[string]any
		out, err = f.Call(context.Background(), req)
		if err == nil || IsPermanent(err) {
			return out, err
		}
	}
	return nil, err
}

func TestHTTPFunctionSuccess(t *testing.T) {
	f, rec := newHTTPTest(t, response{200, `{"flight": {"confirmation": "AB12CD", "price": 420}, "fee": 1.5, "big": 12345678901234567}`})
	out, err := f.Call(context.Background(), testRequest())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"flight": map[string]any{"confirmation": "AB12CD", "price": int64(420)},
		"fee":    1.5,
		"big":    int64(12345678901234567), // exact: beyond float64's 2^53
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("output = %#v, want %#v", out, want)
	}
	if n := rec.count(); n != 1 {
		t.Fatalf("server got %d requests, want 1", n)
	}
	h := rec.headers[0]
	if got := h.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := h.Get("Idempotency-Key"); got != "op-1/flight" {
		t.Errorf("Idempotency-Key = %q, want op-1/flight", got)
	}
}

func TestHTTPFunctionRequestBody(t *testing.T) {
	rollback := testRequest()
	rollback.IdempotencyKey += ":rollback"
	rollback.Outcome = "failed"
	rollback.Output = map[string]any{"flight": map[string]any{"confirmation": "AB12CD"}}
	bare := testRequest()
	bare.Inputs, bare.Params = nil, nil

	tests := []struct {
		name string
		req  Request
		want map[string]any
	}{
		{"run", testRequest(), map[string]any{
			"operation": "op-1", "task": "flight", "attempt": json.Number("1"), "idempotency_key": "op-1/flight",
			"inputs": map[string]any{"traveler": "Ada Lovelace"}, "params": map[string]any{"class": "economy"},
		}},
		{"rollback", rollback, map[string]any{
			"operation": "op-1", "task": "flight", "attempt": json.Number("1"), "idempotency_key": "op-1/flight:rollback",
			"inputs": map[string]any{"traveler": "Ada Lovelace"}, "params": map[string]any{"class": "economy"},
			"outcome": "failed", "output": map[string]any{"flight": map[string]any{"confirmation": "AB12CD"}},
		}},
		// A function may index inputs and params without checking for null.
		{"no inputs or params", bare, map[string]any{
			"operation": "op-1", "task": "flight", "attempt": json.Number("1"), "idempotency_key": "op-1/flight",
			"inputs": map[string]any{}, "params": map[string]any{},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, rec := newHTTPTest(t, response{200, `{}`})
			if _, err := f.Call(context.Background(), tt.req); err != nil {
				t.Fatal(err)
			}
			if got := rec.bodies[0]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("body = %#v\nwant %#v", got, tt.want)
			}
			if got := rec.headers[0].Get("Idempotency-Key"); got != tt.req.IdempotencyKey {
				t.Errorf("Idempotency-Key = %q, want %q", got, tt.req.IdempotencyKey)
			}
		})
	}
}

func TestHTTPFunctionClientErrorIsPermanent(t *testing.T) {
	long := "no such seat class: " + strings.Repeat("x", 1000)
	f, rec := newHTTPTest(t, response{http.StatusUnprocessableEntity, long})
	_, err := callWithRetries(f, testRequest(), 3)
	if err == nil {
		t.Fatal("a 422 succeeded")
	}
	if !IsPermanent(err) {
		t.Errorf("a 422 gave a retryable error: %v", err)
	}
	if n := rec.count(); n != 1 {
		t.Errorf("3 attempts made %d requests, want 1", n)
	}
	var se *HTTPStatusError
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not an *HTTPStatusError", err)
	}
	if se.StatusCode != http.StatusUnprocessableEntity || se.Body != long[:errorBodySize] {
		t.Errorf("status %d body %q, want 422 and the first %d bytes of the body", se.StatusCode, se.Body, errorBodySize)
	}
	if !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "no such seat class") {
		t.Errorf("error %q should give the status and the body", err)
	}
}

func TestHTTPFunctionServerErrorIsRetried(t *testing.T) {
	f, rec := newHTTPTest(t,
		response{http.StatusServiceUnavailable, "busy"},
		response{http.StatusInternalServerError, "oops"},
		response{http.StatusOK, `{"flight": "AB12CD"}`},
	)
	out, err := callWithRetries(f, testRequest(), 3)
	if err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	if out["flight"] != "AB12CD" {
		t.Errorf("output = %v", out)
	}
	if n := rec.count(); n != 3 {
		t.Fatalf("server got %d requests, want 3", n)
	}
	for i, h := range rec.headers {
		if got := h.Get("Idempotency-Key"); got != "op-1/flight" {
			t.Errorf("attempt %d: Idempotency-Key = %q, want op-1/flight", i+1, got)
		}
		if got := rec.bodies[i]["attempt"]; got != json.Number(strconv.Itoa(i+1)) {
			t.Errorf("attempt %d: body says attempt %v", i+1, got)
		}
	}
}

func TestHTTPFunctionStatuses(t *testing.T) {
	tests := []struct {
		status    int
		permanent bool
	}{
		{http.StatusBadRequest, true},
		{http.StatusNotFound, true},
		{http.StatusConflict, true},
		{http.StatusRequestTimeout, false},
		{http.StatusTooEarly, false},
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
		{http.StatusBadGateway, false},
		{http.StatusNotModified, true},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			f, _ := newHTTPTest(t, response{tt.status, "nope"})
			_, err := f.Call(context.Background(), testRequest())
			if err == nil {
				t.Fatalf("status %d succeeded", tt.status)
			}
			if IsPermanent(err) != tt.permanent {
				t.Errorf("status %d: permanent = %v, want %v (%v)", tt.status, IsPermanent(err), tt.permanent, err)
			}
		})
	}
}

func TestHTTPFunctionRedirectIsNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/reserve", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		_, _ = io.WriteString(w, `{}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f, err := NewHTTPFunction(srv.URL + "/reserve")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Call(context.Background(), testRequest())
	if !IsPermanent(err) {
		t.Errorf("a 302 gave %v, want a permanent error", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

func TestHTTPFunctionBadSuccessBody(t *testing.T) {
	bodies := map[string]string{
		"not json":     `reserved!`,
		"array":        `[{"flight": "AB12CD"}]`,
		"string":       `"AB12CD"`,
		"null":         `null`,
		"empty":        ``,
		"two objects":  `{"a": 1} {"b": 2}`,
		"truncated":    `{"flight": "AB`,
		"huge":         `{"x": "` + strings.Repeat("x", maxResultSize) + `"}`,
		"huge integer": `{"x": 1e400}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			f, _ := newHTTPTest(t, response{http.StatusOK, body})
			out, err := f.Call(context.Background(), testRequest())
			if err == nil {
				t.Fatalf("body %.40q gave output %v, want an error", body, out)
			}
			if !IsPermanent(err) {
				t.Errorf("body %.40q gave a retryable error: %v", body, err)
			}
		})
	}
}

// hangingServer answers nothing until the test ends.
func hangingServer(t *testing.T) string {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: frees the handlers so Close returns
	return srv.URL
}

func TestHTTPFunctionTimeout(t *testing.T) {
	url := hangingServer(t)
	t.Run("context deadline", func(t *testing.T) {
		f, err := NewHTTPFunction(url)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		checkTimeout(t, func() error { _, err := f.Call(ctx, testRequest()); return err })
	})
	t.Run("Timeout field", func(t *testing.T) {
		f, err := NewHTTPFunction(url)
		if err != nil {
			t.Fatal(err)
		}
		f.Timeout = 50 * time.Millisecond
		checkTimeout(t, func() error { _, err := f.Call(context.Background(), testRequest()); return err })
	})
}

// checkTimeout runs call, which must give up on its deadline, with a
// retryable error.
func checkTimeout(t *testing.T, call func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want context.DeadlineExceeded", err)
		}
		if IsPermanent(err) {
			t.Errorf("a timeout is permanent: %v", err)
		}
	case <-time.After(callBound):
		t.Fatalf("call still running %v after its deadline", callBound)
	}
}

func TestHTTPFunctionNetworkErrorIsRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens at url now
	f, err := NewHTTPFunction(url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Call(context.Background(), testRequest())
	if err == nil {
		t.Fatal("a call to a closed server succeeded")
	}
	if IsPermanent(err) {
		t.Errorf("a refused connection is permanent: %v", err)
	}
}

func TestNewHTTPFunction(t *testing.T) {
	for _, bad := range []string{"", "ftp://example.com/x", "example.com/reserve", "http://", "/reserve", "http://[::1"} {
		if f, err := NewHTTPFunction(bad); err == nil {
			t.Errorf("NewHTTPFunction(%q) = %+v, want an error", bad, f)
		}
	}
	for _, good := range []string{"http://127.0.0.1:9001/reserve", "https://example.com/a?b=c"} {
		f, err := NewHTTPFunction(good)
		if err != nil {
			t.Errorf("NewHTTPFunction(%q): %v", good, err)
		} else if f.URL != good {
			t.Errorf("URL = %q, want %q", f.URL, good)
		}
	}
}
