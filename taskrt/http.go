package taskrt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// maxResultSize bounds what an http or exec function may return. The node's
// own output limit (64 KiB by default) is checked later, on the normalised
// output; this bound only keeps a broken function from filling memory.
const maxResultSize = 1 << 20

// errorBodySize is how much of a failed response, or of an exec function's
// stderr, an error quotes.
const errorBodySize = 512

// HTTPFunction is a function hosted by a web service (SPEC §1, §4). Call
// POSTs the [Request] as JSON, with the request's idempotency key in the
// Idempotency-Key header, and expects a JSON object back.
//
// A 2xx response with a JSON object body is success. Any other 2xx, a 3xx
// (redirects are not followed, so a POST is never replayed elsewhere or as a
// GET) and a 4xx are permanent failures, except 408 Request Timeout, 425 Too
// Early and 429 Too Many Requests, which HTTP defines as worth retrying. A
// 5xx, a network error and a timeout are retried.
type HTTPFunction struct {
	// URL is the endpoint, http or https.
	URL string
	// Client sends the requests; nil means a client that follows no
	// redirects.
	Client *http.Client
	// Timeout bounds one call on top of the caller's context; zero means the
	// context alone bounds it.
	Timeout time.Duration
}

var _ Function = (*HTTPFunction)(nil)

// defaultHTTPClient is http.DefaultClient without redirects: following a
// 301 or 302 would turn the POST into a GET.
var defaultHTTPClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// NewHTTPFunction returns the function that POSTs to rawURL, which must be an
// absolute http or https URL.
func NewHTTPFunction(rawURL string) (*HTTPFunction, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("http function: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("http function %q: scheme must be http or https", rawURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("http function %q: no host", rawURL)
	}
	return &HTTPFunction{URL: rawURL}, nil
}

// HTTPStatusError is the error of a call answered with a status that is not
// a success.
type HTTPStatusError struct {
	URL        string
	StatusCode int
	// Body holds the first 512 bytes of the response body.
	Body string
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("POST %s: %d %s: %q", e.URL, e.StatusCode, http.StatusText(e.StatusCode), e.Body)
}

// Call implements [Function].
func (f *HTTPFunction) Call(ctx context.Context, req Request) (map[string]any, error) {
	body, err := requestJSON(req)
	if err != nil {
		return nil, Permanent(err)
	}
	if f.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.Timeout)
		defer cancel()
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(body))
	if err != nil {
		return nil, Permanent(fmt.Errorf("http function: %w", err))
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("Idempotency-Key", req.IdempotencyKey)
	client := f.Client
	if client == nil {
		client = defaultHTTPClient
	}
	resp, err := client.Do(hreq)
	if err != nil {
		// A url.Error names the method and URL and wraps the cause, such as
		// context.DeadlineExceeded.
		return nil, err
	}
	defer func() {
		// Drain a little so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodySize))
		err := &HTTPStatusError{URL: f.URL, StatusCode: resp.StatusCode, Body: string(head)}
		if resp.StatusCode >= 500 || retryableStatus(resp.StatusCode) {
			return nil, err
		}
		return nil, Permanent(err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResultSize+1))
	if err != nil {
		return nil, fmt.Errorf("POST %s: reading response: %w", f.URL, err)
	}
	if len(data) > maxResultSize {
		return nil, Permanent(fmt.Errorf("POST %s: response is larger than %d bytes", f.URL, maxResultSize))
	}
	out, err := decodeResult(data)
	if err != nil {
		return nil, Permanent(fmt.Errorf("POST %s: %d response: %w", f.URL, resp.StatusCode, err))
	}
	return out, nil
}

// retryableStatus reports whether a 4xx status says "try again later" rather
// than "this request is wrong".
func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return false
}

// requestJSON encodes req as the body of an http call or the stdin of an exec
// call. Nil inputs and params are sent as {}, so that a function can always
// index them.
func requestJSON(req Request) ([]byte, error) {
	if req.Inputs == nil {
		req.Inputs = map[string]any{}
	}
	if req.Params == nil {
		req.Params = map[string]any{}
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("task %q: encoding request: %w", req.Task, err)
	}
	return b, nil
}

// decodeResult decodes what an http or exec function returned: exactly one
// JSON object, normalised with [NormalizeObject] so that its numbers are
// int64 or float64 as everywhere else.
func decodeResult(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	// Numbers stay exact until NormalizeObject decides int64 or float64.
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("result is empty, want a JSON object")
		}
		return nil, fmt.Errorf("result is not JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("result has data after its JSON value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("result is %s, want a JSON object", jsonKind(v))
	}
	return NormalizeObject(obj)
}

// jsonKind names the kind of a decoded JSON value for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
