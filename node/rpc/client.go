package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"

	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/rlp"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// DefaultURL is the node's RPC address when none is configured (SPEC §2).
const DefaultURL = "http://127.0.0.1:8645"

// wsMessageLimit bounds one WebSocket message the client reads: well above
// a page of sc_blocks, which the server keeps to a few megabytes plus one
// block.
const wsMessageLimit = 256 << 20

// Client is a typed client of a node's sc API. It is safe for concurrent
// use.
type Client struct {
	url   string
	wsURL string
	c     *gethrpc.Client

	mu     sync.Mutex
	ws     *gethrpc.Client // for subscriptions; c itself for a ws:// URL
	closed bool
}

// Dial connects to the node at rawurl: http:// or https:// for calls over
// HTTP, ws:// or wss:// for calls over one WebSocket connection.
// Subscriptions always need a WebSocket: a client dialed over HTTP opens one
// to the same host and path, with the scheme ws:// (or wss://), on its
// first subscription. Dialing over HTTP does not contact the node.
func Dial(ctx context.Context, rawurl string) (*Client, error) {
	u, err := url.Parse(rawurl)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("rpc URL %q: want a URL such as %s", rawurl, DefaultURL)
	}
	ws := *u
	switch u.Scheme {
	case "http":
		ws.Scheme = "ws"
	case "https":
		ws.Scheme = "wss"
	case "ws", "wss":
	default:
		return nil, fmt.Errorf("rpc URL %q: scheme %q: want http, https, ws or wss", rawurl, u.Scheme)
	}
	c, err := gethrpc.DialOptions(ctx, rawurl, gethrpc.WithWebsocketMessageSizeLimit(wsMessageLimit), gethrpc.WithHTTPClient(newHTTPClient()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", rawurl, err)
	}
	cl := &Client{url: rawurl, wsURL: ws.String(), c: c}
	if u.Scheme == "ws" || u.Scheme == "wss" {
		cl.ws = c
	}
	return cl, nil
}

// newHTTPClient returns the client for calls over HTTP. It keeps up to 256
// idle connections to the node where Go's default keeps 2: with more
// concurrent callers than that, every call beyond the second opened and
// closed a TCP connection, which cost the client and the node a fifth of
// their CPU under `sagachain bench` at concurrency 64.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: t}
}

// URL returns the URL the client was dialed with.
func (c *Client) URL() string { return c.url }

// Close closes the client's connections, which ends its subscriptions.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.c.Close()
	if c.ws != nil && c.ws != c.c {
		c.ws.Close()
	}
}

// call calls sc_<method>.
func (c *Client) call(ctx context.Context, result any, method string, args ...any) error {
	name := Namespace + "_" + method
	if err := c.c.CallContext(ctx, result, name, args...); err != nil {
		return c.fail(name, err)
	}
	return nil
}

// fail returns an error the node sent as *Error, so callers match its code
// with errors.Is, and names the method and node for any other failure.
func (c *Client) fail(method string, err error) error {
	var re gethrpc.Error
	if errors.As(err, &re) {
		return &Error{Code: re.ErrorCode(), Message: re.Error()}
	}
	return fmt.Errorf("%s on %s: %w", method, c.url, err)
}

// Submit sends a signed entry to the node, which checks it and queues it.
// An entry the node refuses gives an error matching ErrInvalidInput;
// nothing was recorded.
func (c *Client) Submit(ctx context.Context, e ledger.Entry) (SubmitResult, error) {
	raw, err := rlp.EncodeToBytes(e)
	if err != nil {
		return SubmitResult{}, fmt.Errorf("encode %s entry: %w", e.Kind, err)
	}
	var res SubmitResult
	if err := c.call(ctx, &res, "submit", hexutil.Bytes(raw)); err != nil {
		return SubmitResult{}, err
	}
	return res, nil
}

// Operation returns one operation; an unknown id gives an error matching
// ErrNotFound.
func (c *Client) Operation(ctx context.Context, id ledger.Hash) (*taskrt.OperationView, error) {
	var v taskrt.OperationView
	if err := c.call(ctx, &v, "operation", id); err != nil {
		return nil, err
	}
	return &v, nil
}

// Operations lists operations newest first, as q selects.
func (c *Client) Operations(ctx context.Context, q OpsQuery) ([]taskrt.OperationView, error) {
	var out []taskrt.OperationView
	if err := c.call(ctx, &out, "operations", q); err != nil {
		return nil, err
	}
	return out, nil
}

// Head describes the node's newest committed block.
func (c *Client) Head(ctx context.Context) (HeadInfo, error) {
	var h HeadInfo
	if err := c.call(ctx, &h, "head"); err != nil {
		return HeadInfo{}, err
	}
	return h, nil
}

// Block returns the block at height, decoded.
func (c *Client) Block(ctx context.Context, height uint64) (*BlockInfo, error) {
	var b BlockInfo
	if err := c.call(ctx, &b, "block", height); err != nil {
		return nil, err
	}
	return &b, nil
}

// Blocks returns committed blocks from height from on, in their ledger
// encoding: at most up to height to, and possibly fewer (see API.Blocks).
func (c *Client) Blocks(ctx context.Context, from, to uint64) ([]RawBlock, error) {
	var out []RawBlock
	if err := c.call(ctx, &out, "blocks", from, to); err != nil {
		return nil, err
	}
	return out, nil
}

// Validators lists the chain's validators as the node sees them.
func (c *Client) Validators(ctx context.Context) ([]ValidatorInfo, error) {
	var out []ValidatorInfo
	if err := c.call(ctx, &out, "validators"); err != nil {
		return nil, err
	}
	return out, nil
}

// Plan returns the stages of an operation, given as a JSON object or as a
// JSON string holding an operation file's text.
func (c *Client) Plan(ctx context.Context, operation json.RawMessage) (PlanResult, error) {
	var p PlanResult
	if err := c.call(ctx, &p, "plan", operation); err != nil {
		return PlanResult{}, err
	}
	return p, nil
}

// Genesis returns the node's genesis, checked with Genesis.Validate.
func (c *Client) Genesis(ctx context.Context) (*ledger.Genesis, error) {
	var g ledger.Genesis
	if err := c.call(ctx, &g, "genesis"); err != nil {
		return nil, err
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("genesis from %s: %w", c.url, err)
	}
	return &g, nil
}

// Subscription is a live subscription of the client. Err receives the
// error that ended it, if one did (a lost connection, a closed client), and
// is closed after that; it is closed without a value when the subscription
// ends normally: by Unsubscribe, or after an operation's final view.
type Subscription struct {
	err  chan error
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

// Err returns the channel that reports the subscription's end.
func (s *Subscription) Err() <-chan error { return s.err }

// Unsubscribe ends the subscription and waits until nothing more is sent on
// its channel. It may be called more than once.
func (s *Subscription) Unsubscribe() {
	s.once.Do(func() { close(s.quit) })
	<-s.done
}

// SubscribeOperation sends the operation's view on ch at once (if a block
// has recorded it yet) and after every block that changes it, and ends the
// subscription after a view with a final status: ch has received that view
// before Err is closed (a reader of a buffered ch should drain it once Err
// is closed). An id that is neither committed nor waiting in the node's
// mempool gives an error matching ErrNotFound. It needs a WebSocket (see
// Dial).
func (c *Client) SubscribeOperation(ctx context.Context, id ledger.Hash, ch chan<- taskrt.OperationView) (*Subscription, error) {
	return subscribe(ctx, c, ch, func(v taskrt.OperationView) bool { return v.Status.Final() }, "operationEvents", id)
}

// SubscribeOperationStatus sends the operation's status on ch at once (if
// a block has recorded it yet) and after every block that changes it, and
// ends the subscription after a final status, as SubscribeOperation does
// with whole views.
func (c *Client) SubscribeOperationStatus(ctx context.Context, id ledger.Hash, ch chan<- OperationStatus) (*Subscription, error) {
	return subscribe(ctx, c, ch, func(s OperationStatus) bool { return s.Status.Final() }, "operationStatus", id)
}

// SubscribeBlocks sends a summary of every block committed from now on on
// ch until Unsubscribe. It needs a WebSocket (see Dial).
func (c *Client) SubscribeBlocks(ctx context.Context, ch chan<- BlockSummary) (*Subscription, error) {
	return subscribe(ctx, c, ch, nil, "newBlocks")
}

// subscribe opens sc_subscribe(args...) and forwards what it sends to ch
// until final reports a last value (final may be nil), the caller
// unsubscribes, or the subscription fails.
func subscribe[T any](ctx context.Context, c *Client, ch chan<- T, final func(T) bool, args ...any) (*Subscription, error) {
	ws, err := c.wsClient(ctx)
	if err != nil {
		return nil, err
	}
	in := make(chan T)
	sub, err := ws.Subscribe(ctx, Namespace, in, args...)
	if err != nil {
		return nil, c.fail(Namespace+"_subscribe", err)
	}
	s := &Subscription{err: make(chan error, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var failure error
		defer func() {
			sub.Unsubscribe()
			if failure != nil {
				s.err <- failure
			}
			close(s.err)
		}()
		for {
			select {
			case v := <-in:
				select {
				case ch <- v:
				case <-s.quit:
					return
				}
				if final != nil && final(v) {
					return
				}
			case err := <-sub.Err():
				if err == nil {
					err = gethrpc.ErrClientQuit // go-ethereum reports a closed client as nil
				}
				failure = fmt.Errorf("subscription on %s: %w", c.wsURL, err)
				return
			case <-s.quit:
				return
			}
		}
	}()
	return s, nil
}

// wsClient returns the WebSocket client, dialing it the first time.
func (c *Client) wsClient(ctx context.Context) (*gethrpc.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("subscribe on %s: %w", c.url, gethrpc.ErrClientQuit)
	}
	if c.ws != nil {
		return c.ws, nil
	}
	ws, err := gethrpc.DialOptions(ctx, c.wsURL, gethrpc.WithWebsocketMessageSizeLimit(wsMessageLimit))
	if err != nil {
		return nil, fmt.Errorf("subscriptions need a WebSocket: dial %s: %w", c.wsURL, err)
	}
	c.ws = ws
	return ws, nil
}

// BlockSource returns a ledger.BlockSource that reads the node's chain from
// height 1 through sc_blocks, a page at a time, up to the node's head as it
// was when first asked (Head), so that ledger.VerifyChain can verify a chain
// over RPC.
func (c *Client) BlockSource(ctx context.Context) *BlockPager {
	return &BlockPager{ctx: ctx, c: c, next: 1}
}

// BlockPager is the ledger.BlockSource of Client.BlockSource. Its errors
// are sticky.
type BlockPager struct {
	ctx       context.Context
	c         *Client
	next      uint64 // height of the block Next returns next
	head      uint64
	headKnown bool
	page      []RawBlock
	results   ledger.Hash
	err       error
}

var _ ledger.BlockSource = (*BlockPager)(nil)

// Head returns the height of the last block the pager yields: the node's
// head when Head or Next was first called.
func (p *BlockPager) Head() (uint64, error) {
	if !p.headKnown {
		h, err := p.c.Head(p.ctx)
		if err != nil {
			return 0, err
		}
		p.head, p.headKnown = h.Height, true
	}
	return p.head, nil
}

// Next returns the next block and the certificate that committed it, and
// io.EOF after the last.
func (p *BlockPager) Next() (*ledger.Block, *ledger.Commit, error) {
	if p.err != nil {
		return nil, nil, p.err
	}
	b, c, err := p.read()
	if err != nil && !errors.Is(err, io.EOF) {
		p.err = err
	}
	return b, c, err
}

func (p *BlockPager) read() (*ledger.Block, *ledger.Commit, error) {
	head, err := p.Head()
	if err != nil {
		return nil, nil, err
	}
	if p.next > head {
		return nil, nil, io.EOF
	}
	if len(p.page) == 0 {
		page, err := p.c.Blocks(p.ctx, p.next, head)
		if err != nil {
			return nil, nil, err
		}
		if len(page) == 0 {
			return nil, nil, fmt.Errorf("%s returned no block at height %d, though its head was at %d", p.c.url, p.next, head)
		}
		p.page = page
	}
	raw := p.page[0]
	p.page = p.page[1:]
	if raw.Height != p.next {
		return nil, nil, fmt.Errorf("%s returned block %d where block %d was due", p.c.url, raw.Height, p.next)
	}
	b := new(ledger.Block)
	if err := rlp.DecodeBytes(raw.Block, b); err != nil {
		return nil, nil, fmt.Errorf("block %d from %s: decode: %w", raw.Height, p.c.url, err)
	}
	if b.Header.Height != raw.Height {
		return nil, nil, fmt.Errorf("block %d from %s: header says height %d", raw.Height, p.c.url, b.Header.Height)
	}
	c := new(ledger.Commit)
	if err := rlp.DecodeBytes(raw.Commit, c); err != nil {
		return nil, nil, fmt.Errorf("certificate of block %d from %s: decode: %w", raw.Height, p.c.url, err)
	}
	p.results = raw.Results
	p.next++
	return b, c, nil
}

// Results returns the results root of the block Next returned last, which
// an export file keeps next to it.
func (p *BlockPager) Results() ledger.Hash { return p.results }
