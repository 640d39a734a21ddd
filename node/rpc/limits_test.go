package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/sagachain/sagachain/ledger"
)

type rpcReply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// postBatch POSTs n calls of method with params as one batch and returns
// the raw body and its replies: a list, or one reply for the whole batch.
func postBatch(t *testing.T, url string, n int, method string, params ...any) ([]byte, []rpcReply) {
	t.Helper()
	calls := make([]map[string]any, n)
	for i := range calls {
		calls[i] = map[string]any{"jsonrpc": "2.0", "id": i + 1, "method": method, "params": params}
	}
	body, err := json.Marshal(calls)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var replies []rpcReply
	if err := json.Unmarshal(raw, &replies); err != nil {
		var one rpcReply
		if err := json.Unmarshal(raw, &one); err != nil {
			t.Fatalf("batch reply %d %q: %v", resp.StatusCode, raw, err)
		}
		replies = []rpcReply{one}
	}
	return raw, replies
}

// Finding (#10): "no JSON-RPC batch limit: one batch of 2,000 sc_blocks
// calls grew a dev node by 4.9 GiB". With the default limits, a batch of
// one call more than rpc.batch_request_limit is refused as a whole, and
// one at the limit is served. On a2a74ac every call of the batch ran.
func TestBatchOverTheLimitIsRefused(t *testing.T) {
	b := newTestBackend(t)
	b.commit()
	url := serve(t, b)

	_, replies := postBatch(t, url, DefaultBatchRequestLimit+1, "sc_head")
	if len(replies) != 1 || replies[0].Error == nil || replies[0].Error.Code != -32600 || !strings.Contains(replies[0].Error.Message, "batch too large") {
		t.Fatalf("a batch of %d calls: %d replies, first %+v; want it refused as too large", DefaultBatchRequestLimit+1, len(replies), replies[0])
	}
	_, replies = postBatch(t, url, DefaultBatchRequestLimit, "sc_head")
	if len(replies) != DefaultBatchRequestLimit || replies[0].Error != nil {
		t.Fatalf("a batch at the limit: %d replies, first %+v; want %d results", len(replies), replies[0], DefaultBatchRequestLimit)
	}
}

// The results of one batch are bounded by rpc.batch_response_max_bytes:
// the calls after the one that crosses it are not run, and the reply stays
// near the bound however many calls the batch asks for.
func TestBatchResponseIsBounded(t *testing.T) {
	b := newTestBackend(t)
	b.commitAnnouncements(4, 4<<10)
	const limit = 64 << 10
	url := serveWith(t, b, Limits{BatchResponseMaxBytes: limit})
	raw, replies := postBatch(t, url, DefaultBatchRequestLimit, "sc_blocks", 1, 4)
	if len(raw) > 2*limit {
		t.Fatalf("a batch of %d sc_blocks calls answered %d bytes; want at most about %d", DefaultBatchRequestLimit, len(raw), limit)
	}
	last := replies[len(replies)-1]
	if last.Error == nil || last.Error.Code != -32003 || !strings.Contains(last.Error.Message, "response too large") {
		t.Fatalf("the last call of an oversized batch: %+v; want response too large", last)
	}
}

// Finding (#10), list methods: an sc_operations list whose JSON would pass
// rpc.max_response_bytes is refused with an error naming the key, and a
// smaller limit is served.
func TestOperationsRefusesAListOverTheResponseCap(t *testing.T) {
	b := newTestBackend(t)
	var last ledger.Entry
	for i := range 3 {
		last = b.submission(b.user, tripYAML, uint64(i+1))
		b.commit(last)
	}
	one := b.viewJSON(last.Hash())
	c := dial(t, serveWith(t, b, Limits{MaxResponseBytes: 2*len(one) + 8}))
	ctx := context.Background()
	_, err := c.Operations(ctx, OpsQuery{})
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "rpc.max_response_bytes") {
		t.Fatalf("three operations over a cap of two: %v; want an invalid-input error naming rpc.max_response_bytes", err)
	}
	if views, err := c.Operations(ctx, OpsQuery{Limit: 1}); err != nil || len(views) != 1 {
		t.Fatalf("one operation within the cap: %d, %v", len(views), err)
	}
}

func dialWS(url, origin string) (*gethrpc.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return gethrpc.DialOptions(ctx, wsURL(url), gethrpc.WithHeader("Origin", origin))
}

// Finding (#10): "the WebSocket accepts every Origin, so a page the user
// visits can read operations, submit, and OOM the node". A handshake from
// a foreign page is refused; the node's own UI (the page served from the
// address dialled), a program sending no Origin, and an origin listed in
// rpc.ws_origins are accepted; "*" accepts any page.
func TestWebSocketOriginAllowList(t *testing.T) {
	b := newTestBackend(t)
	b.commit()
	url := serve(t, b)
	if c, err := dialWS(url, "http://evil.example"); err == nil {
		c.Close()
		t.Fatal("a WebSocket from http://evil.example was accepted")
	} else if !strings.Contains(err.Error(), "403") {
		t.Fatalf("a WebSocket from a foreign page: %v; want 403 Forbidden", err)
	}
	// Same host and port, but a name: a page can point its own name at
	// 127.0.0.1 (DNS rebinding), so only an IP or localhost counts as the
	// node's own origin.
	if c, err := dialWS(url, strings.Replace(url, "127.0.0.1", "localhost", 1)); err == nil {
		c.Close()
		t.Fatal("a WebSocket from another host:port than the one dialled was accepted")
	}
	for _, origin := range []string{url, ""} {
		c, err := dialWS(url, origin)
		if err != nil {
			t.Fatalf("a WebSocket with Origin %q: %v", origin, err)
		}
		var head HeadInfo
		if err := c.Call(&head, "sc_head"); err != nil || head.Height != 1 {
			t.Fatalf("sc_head over a WebSocket with Origin %q: %+v, %v", origin, head, err)
		}
		c.Close()
	}
	listed := serveWith(t, b, Limits{WSOrigins: []string{"https://ops.example.com"}})
	if c, err := dialWS(listed, "https://OPS.example.com"); err != nil {
		t.Fatalf("a listed origin: %v", err)
	} else {
		c.Close()
	}
	if c, err := dialWS(listed, "http://evil.example"); err == nil {
		c.Close()
		t.Fatal("an unlisted origin was accepted next to a listed one")
	}
	anyPage := serveWith(t, b, Limits{WSOrigins: []string{"*"}})
	if c, err := dialWS(anyPage, "http://evil.example"); err != nil {
		t.Fatalf(`ws_origins ["*"]: %v`, err)
	} else {
		c.Close()
	}
}

// A POST from a foreign page is refused too (a DNS-rebound page would
// otherwise be same-origin to the browser), a CORS preflight from it gets
// no Access-Control-Allow-Origin, and an origin of rpc.cors_domains gets
// both.
func TestPostFromAForeignOriginIsRefused(t *testing.T) {
	b := newTestBackend(t)
	b.commit()
	url := serveWith(t, b, Limits{CORSDomains: []string{"http://127.0.0.1:3000"}})
	do := func(method, origin, host string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"sc_head","params":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "POST")
		}
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	port := url[strings.LastIndexByte(url, ':')+1:]
	for _, tc := range []struct {
		method, origin, host string
		code                 int
		acao                 string
	}{
		{http.MethodPost, "", "", http.StatusOK, ""},
		{http.MethodPost, url, "", http.StatusOK, url},
		{http.MethodPost, "http://evil.example", "", http.StatusForbidden, ""},
		{http.MethodPost, "http://rebound.example:" + port, "rebound.example:" + port, http.StatusForbidden, ""},
		{http.MethodPost, "http://127.0.0.1:3000", "", http.StatusOK, "http://127.0.0.1:3000"},
		{http.MethodOptions, "http://127.0.0.1:3000", "", http.StatusNoContent, "http://127.0.0.1:3000"},
		{http.MethodOptions, "http://evil.example", "", http.StatusForbidden, ""},
	} {
		resp := do(tc.method, tc.origin, tc.host)
		if resp.StatusCode != tc.code || resp.Header.Get("Access-Control-Allow-Origin") != tc.acao {
			t.Errorf("%s with Origin %q, Host %q: %d, Access-Control-Allow-Origin %q; want %d, %q", tc.method, tc.origin, tc.host,
				resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), tc.code, tc.acao)
		}
	}
}

func TestLimitsNameTheirKey(t *testing.T) {
	b := newTestBackend(t)
	for _, tc := range []struct {
		lim  Limits
		want string
	}{
		{Limits{BatchRequestLimit: -1}, "rpc.batch_request_limit"},
		{Limits{BatchResponseMaxBytes: -1}, "rpc.batch_response_max_bytes"},
		{Limits{MaxResponseBytes: -1}, "rpc.max_response_bytes"},
		{Limits{WSOrigins: []string{"evil.example"}}, "rpc.ws_origins[0]"},
		{Limits{CORSDomains: []string{"*", "http://a.example/path"}}, "rpc.cors_domains[1]"},
	} {
		if _, err := Handler(b, nil, tc.lim); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Handler(%+v): %v; want an error naming %s", tc.lim, err, tc.want)
		}
	}
}
