package rpc

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Defaults of the zero fields of Limits, which are also the defaults of the
// rpc.* keys of the node's configuration.
const (
	// DefaultBatchRequestLimit is the most calls one JSON-RPC batch may
	// carry (rpc.batch_request_limit). go-ethereum's default is 1,000, for
	// calls far cheaper than a page of blocks.
	DefaultBatchRequestLimit = 100
	// DefaultBatchResponseMaxBytes bounds the results of one batch together
	// (rpc.batch_response_max_bytes): the calls after the one that crosses it
	// are not run, and answered "response too large".
	DefaultBatchResponseMaxBytes = 32 << 20
	// DefaultMaxResponseBytes bounds the JSON one list call returns
	// (rpc.max_response_bytes): sc_operations refuses a list above it, and
	// sc_blocks cuts its page below it.
	DefaultMaxResponseBytes = 24 << 20
)

// Limits bounds what one client can make the endpoint do, and which web
// pages may talk to it. Zero fields take the defaults above; the zero value
// is the configuration of a node that sets nothing.
type Limits struct {
	// BatchRequestLimit is the most calls of one batch; a larger batch is
	// refused as a whole ("batch too large", code -32600).
	BatchRequestLimit int
	// BatchResponseMaxBytes bounds the results of one batch: once the calls
	// run so far have returned more, the rest are answered "response too
	// large" (code -32003) without being run.
	BatchResponseMaxBytes int
	// MaxResponseBytes bounds the JSON of one list call (see Limits'
	// defaults).
	MaxResponseBytes int
	// WSOrigins are the origins (scheme://host[:port], as a browser sends
	// them) of the web pages that may open a WebSocket, besides the node's
	// own UI; "*" admits any page. As go-ethereum's ws.origins.
	WSOrigins []string
	// CORSDomains are the origins of the web pages that may POST JSON-RPC
	// calls, besides the node's own UI; "*" admits any page. As
	// go-ethereum's http.corsdomain.
	CORSDomains []string
}

func (l Limits) withDefaults() Limits {
	if l.BatchRequestLimit == 0 {
		l.BatchRequestLimit = DefaultBatchRequestLimit
	}
	if l.BatchResponseMaxBytes == 0 {
		l.BatchResponseMaxBytes = DefaultBatchResponseMaxBytes
	}
	if l.MaxResponseBytes == 0 {
		l.MaxResponseBytes = DefaultMaxResponseBytes
	}
	return l
}

// check reports the first bad field of defaulted limits, named by its
// configuration key.
func (l Limits) check() error {
	switch {
	case l.BatchRequestLimit < 0:
		return fmt.Errorf("rpc.batch_request_limit: want a positive number, got %d", l.BatchRequestLimit)
	case l.BatchResponseMaxBytes < 0:
		return fmt.Errorf("rpc.batch_response_max_bytes: want a positive number, got %d", l.BatchResponseMaxBytes)
	case l.MaxResponseBytes < 0:
		return fmt.Errorf("rpc.max_response_bytes: want a positive number, got %d", l.MaxResponseBytes)
	}
	if err := checkOrigins("rpc.ws_origins", l.WSOrigins); err != nil {
		return err
	}
	return checkOrigins("rpc.cors_domains", l.CORSDomains)
}

// checkOrigins reports the first entry of the origin allow-list key that
// is neither "*" nor an origin as a browser sends it: scheme://host[:port],
// with no path.
func checkOrigins(key string, origins []string) error {
	for i, o := range origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%s[%d]: want \"*\" or an origin such as http://127.0.0.1:3000, got %q", key, i, o)
		}
	}
	return nil
}

// originPolicy decides which web pages may call the endpoint.
type originPolicy struct {
	any     bool
	allowed []string // normalised origins
}

func newOriginPolicy(origins []string) originPolicy {
	var p originPolicy
	for _, o := range origins {
		if o == "*" {
			p.any = true
			continue
		}
		p.allowed = append(p.allowed, normalOrigin(o))
	}
	return p
}

// normalOrigin lowercases an origin and drops a trailing slash, so that
// the comparison is the browser's.
func normalOrigin(o string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
}

// admits reports whether r may be served. A request without an Origin
// header (or with an empty one) is not from a web page (browsers send Origin on every WebSocket
// handshake and every POST), so it is admitted: the origin check defends
// the user's browser against the pages it visits, not the node against
// programs, which can send any header they like.
//
// The node's own UI is admitted without configuration: a page whose origin
// is the very host:port the request was sent to, provided that host is an
// IP address or "localhost". A domain name is not enough, since a hostile
// page can point its own name at 127.0.0.1 (DNS rebinding) and would then
// be "same-origin"; a node served under a name lists that origin.
func (p originPolicy) admits(r *http.Request) bool {
	// An empty Origin is a program's too: a browser sends "null" for a
	// page without an origin.
	origin := normalOrigin(r.Header.Get("Origin"))
	if origin == "" || p.any {
		return true
	}
	if slices.Contains(p.allowed, origin) {
		return true
	}
	return isOwnOrigin(origin, r.Host)
}

func isOwnOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, host) {
		return false
	}
	name := u.Hostname()
	return strings.EqualFold(name, "localhost") || net.ParseIP(name) != nil
}
