package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/rlp"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// Namespace is the JSON-RPC namespace of the API: its methods are called
// sc_submit, sc_operation, and so on.
const Namespace = "sc"

const (
	// defaultBodyLimit is go-ethereum's default HTTP request limit, kept
	// unless the genesis allows larger operation files.
	defaultBodyLimit = 5 << 20
	// defaultWebsocketReadLimit is go-ethereum's default WebSocket message
	// limit, raised likewise.
	defaultWebsocketReadLimit = 32 << 20
	// commitBuffer is the room between the node's commit feed and a
	// subscription's pump, which drains it without waiting on anyone.
	commitBuffer = 16
	// summaryQueue is how many block summaries a newBlocks subscriber may
	// fall behind before its subscription is ended.
	summaryQueue = 1024
)

// opStatuses are the statuses sc_operations filters by, in SPEC order.
var opStatuses = []taskrt.OpStatus{taskrt.OpRunning, taskrt.OpCompleted, taskrt.OpRollingBack, taskrt.OpRolledBack, taskrt.OpRollbackFailed}

// API is the sc JSON-RPC service. go-ethereum's rpc package exposes each
// exported method as sc_ followed by the method's name with its first letter
// lowercased; the methods returning a *gethrpc.Subscription are
// subscriptions, opened with sc_subscribe and their name as first
// parameter.
type API struct {
	b      Backend
	limits taskrt.Limits
	// pageBytes bounds the RLP one Blocks call returns.
	pageBytes int
	// maxResponseBytes bounds the JSON one Operations call returns.
	maxResponseBytes int
}

// NewServer returns a JSON-RPC server serving the API of b under the sc
// namespace, within lim (zero fields take their defaults). Serve it with
// Handler, or directly; Stop it to close its WebSocket connections and end
// their subscriptions.
func NewServer(b Backend, lim Limits) (*gethrpc.Server, error) {
	if b == nil {
		return nil, errors.New("rpc server: no backend")
	}
	lim = lim.withDefaults()
	if err := lim.check(); err != nil {
		return nil, fmt.Errorf("rpc server: %w", err)
	}
	p := b.Genesis().Params
	srv := gethrpc.NewServer()
	// Without these, one batch of 2,000 sc_blocks calls held gigabytes of
	// results before the first byte went out.
	srv.SetBatchLimits(lim.BatchRequestLimit, lim.BatchResponseMaxBytes)
	// A submitted entry carries an operation file of up to
	// max_operation_bytes, which hex doubles.
	limit := max(defaultBodyLimit, 2*p.MaxOperationBytes+1<<20)
	srv.SetHTTPBodyLimit(limit)
	srv.SetWebsocketReadLimit(int64(max(defaultWebsocketReadLimit, limit)))
	api := &API{b: b, limits: p.TaskLimits(),
		// A page's RLP goes out as hex, twice its size.
		pageBytes: min(maxBlocksBytes, lim.MaxResponseBytes/2), maxResponseBytes: lim.MaxResponseBytes}
	if err := srv.RegisterName(Namespace, api); err != nil {
		return nil, fmt.Errorf("rpc server: register the %s API: %w", Namespace, err)
	}
	return srv, nil
}

func invalidf(format string, args ...any) error {
	return &Error{Code: CodeInvalidInput, Message: fmt.Sprintf(format, args...)}
}

func notFoundf(format string, args ...any) error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// refusal reports a backend's error under the code of the first *Error in
// its chain, CodeInternal if none, with what was refused in front.
func refusal(what string, err error) error {
	code := CodeInternal
	var e *Error
	if errors.As(err, &e) {
		code = e.Code
	}
	return &Error{Code: code, Message: what + ": " + err.Error(), err: err}
}

// Submit decodes an entry (its RLP, hex-encoded), checks that it is of a
// kind clients submit (submission, retry, attestation, rollback
// attestation, attestations, announcement, evidence), and hands it to the
// node, which checks it against the committed state and queues it.
func (api *API) Submit(entry hexutil.Bytes) (SubmitResult, error) {
	var e ledger.Entry
	if err := rlp.DecodeBytes(entry, &e); err != nil {
		return SubmitResult{}, invalidf("entry is not the RLP encoding of [kind, body]: %v", err)
	}
	switch {
	case e.Kind.Derived():
		return SubmitResult{}, invalidf("entry kind %s: derived by the state machine, never submitted", e.Kind)
	case e.Kind == ledger.KindTimeout:
		return SubmitResult{}, invalidf("entry kind %s: proposed by validators when a deadline passes, never submitted", e.Kind)
	}
	body, err := e.Decode()
	if err != nil {
		return SubmitResult{}, invalidf("entry: %v", err)
	}
	res := SubmitResult{Hash: e.Hash(), Kind: e.Kind.String()}
	switch b := body.(type) {
	case *ledger.Submission:
		id := res.Hash
		res.ID = &id
	case *ledger.Retry:
		res.ID = &b.Operation
	case *ledger.Attestation:
		res.ID = &b.Operation
	}
	if err := api.b.Submit(e); err != nil {
		// The same bytes sent again are a no-op: a resend that a block
		// committed while the node checked it (which then finds it a
		// duplicate) gets the answer the first send got.
		if _, _, lerr := api.b.Store().EntryLocation(res.Hash); lerr == nil {
			return res, nil
		}
		return SubmitResult{}, refusal(fmt.Sprintf("%s %s", e.Kind, res.Hash.Hex()), err)
	}
	return res, nil
}

// Operation returns an operation as `sagachain op get --json` prints it.
func (api *API) Operation(id common.Hash) (*taskrt.OperationView, error) {
	r, err := api.b.Store().Operation(id)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, notFoundf("operation %s not found", id.Hex())
	}
	if err != nil {
		return nil, err
	}
	v, err := api.b.Machine().View(r)
	if err != nil {
		return nil, fmt.Errorf("operation %s: %w", id.Hex(), err)
	}
	return &v, nil
}

// Operations lists operations newest first (by submission height), as q
// selects; q may be omitted. A list whose JSON would exceed
// rpc.max_response_bytes is refused with an error naming that key, rather
// than cut short, since a shorter list would read as the end of the
// operations: the caller asks again with a smaller limit.
func (api *API) Operations(q *OpsQuery) ([]taskrt.OperationView, error) {
	var query OpsQuery
	if q != nil {
		query = *q
	}
	status := taskrt.OpStatus(query.Status)
	if status != "" && !slices.Contains(opStatuses, status) {
		names := make([]string, len(opStatuses))
		for i, s := range opStatuses {
			names[i] = string(s)
		}
		return nil, invalidf("unknown status %q: want one of %s", query.Status, strings.Join(names, ", "))
	}
	limit := query.Limit
	switch {
	case limit < 0:
		return nil, invalidf("limit %d: must not be negative", limit)
	case limit == 0:
		limit = DefaultOpsLimit
	case limit > MaxOpsLimit:
		return nil, invalidf("limit %d: over the maximum of %d; page with before", limit, MaxOpsLimit)
	}
	recs, err := api.b.Store().Operations(ledger.OpQuery{Status: status, Limit: limit, BeforeHeight: query.Before})
	if err != nil {
		return nil, err
	}
	out := make([]taskrt.OperationView, 0, len(recs))
	size := 0
	for _, r := range recs {
		v, err := api.b.Machine().View(r)
		if err != nil {
			return nil, fmt.Errorf("operation %s: %w", r.ID.Hex(), err)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("operation %s: %w", r.ID.Hex(), err)
		}
		if size += len(raw) + 1; size > api.maxResponseBytes {
			return nil, invalidf("the %d operations asked for exceed rpc.max_response_bytes (%d bytes) after %d of them; ask for fewer with limit", len(recs), api.maxResponseBytes, len(out))
		}
		out = append(out, v)
	}
	return out, nil
}

// Head describes the newest committed block.
func (api *API) Head() (HeadInfo, error) {
	g := api.b.Genesis()
	info := HeadInfo{Hash: g.Hash(), Time: g.Time, ChainID: g.ChainID, Validators: len(g.Validators), Mempool: api.b.MempoolSize()}
	s := api.b.Store()
	h, err := s.Head()
	if err != nil {
		return HeadInfo{}, err
	}
	if h > 0 {
		b, err := s.Block(h)
		if err != nil {
			return HeadInfo{}, err
		}
		info.Height, info.Hash, info.Time = h, b.Hash(), b.Header.Time
	}
	return info, nil
}

// Block returns the block at height, decoded.
func (api *API) Block(height uint64) (*BlockInfo, error) {
	if height == 0 {
		return nil, invalidf("height 0 is the genesis (sc_genesis); blocks start at height 1")
	}
	s := api.b.Store()
	b, err := s.Block(height)
	if errors.Is(err, ledger.ErrNotFound) {
		head, herr := s.Head()
		if herr != nil {
			return nil, herr
		}
		return nil, notFoundf("block %d not found: the head is at height %d", height, head)
	}
	if err != nil {
		return nil, err
	}
	c, err := s.Commit(height)
	if err != nil {
		return nil, err
	}
	names := make(map[common.Address]string)
	for _, v := range api.b.Genesis().Validators {
		names[v.Address] = v.Name
	}
	hd := &b.Header
	info := &BlockInfo{
		Height: hd.Height, Hash: b.Hash(), ChainID: hd.ChainID, Round: hd.Round, Time: hd.Time, Prev: hd.Prev,
		Proposer: hd.Proposer, ProposerName: names[hd.Proposer], EntriesRoot: hd.EntriesRoot, ResultsRoot: hd.ResultsRoot,
		LastCommitHash: hd.LastCommitHash, Signature: hexutil.Bytes(b.Signature[:]),
		Entries: make([]EntryInfo, len(b.Entries)), Commit: commitInfo(c), LastCommit: commitInfo(&b.LastCommit),
	}
	for i, e := range b.Entries {
		info.Entries[i] = entryInfo(i, e)
	}
	return info, nil
}

func commitInfo(c *ledger.Commit) CommitInfo {
	info := CommitInfo{Height: c.Height, Round: c.Round, BlockHash: c.BlockHash, Signers: make([]common.Address, len(c.Signatures))}
	for i, s := range c.Signatures {
		info.Signers[i] = s.Validator
	}
	return info
}

// entryInfo decodes one entry for display.
func entryInfo(i int, e ledger.Entry) EntryInfo {
	info := EntryInfo{Index: i, Kind: e.Kind.String(), Hash: e.Hash()}
	body, err := e.Decode()
	if err != nil {
		info.DecodeError = err.Error()
		return info
	}
	switch b := body.(type) {
	case *ledger.Submission:
		id := info.Hash
		info.Operation, info.Nonce, info.Submitter = &id, b.Nonce, &b.Submitter
		var named struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(b.Operation, &named) == nil {
			info.Name = named.Name
		}
	case *ledger.StageRecord:
		info.Operation, info.Stage, info.Prev = &b.Operation, &b.Stage, &b.Prev
		info.Tasks = make([]TaskRefInfo, len(b.Tasks))
		for k, t := range b.Tasks {
			info.Tasks[k] = TaskRefInfo{ID: t.ID, Run: t.Run, Rollback: t.Rollback, Rule: t.Rule, Executor: t.Executor, Deadline: t.Deadline}
		}
	case *ledger.Attestation:
		info.Operation, info.Task, info.Rollback, info.Executor = &b.Operation, b.Task, b.Rollback, &b.Executor
		info.Attempts, info.Error, info.Permanent = b.Attempts, b.Error, b.Permanent
		info.Output = outputJSON(b.Output)
	case *ledger.Timeout:
		info.Operation, info.Task, info.Rollback = &b.Operation, b.Task, b.Rollback
	case *ledger.Heartbeat:
		info.Executor, info.Time = &b.Executor, b.Time
	case *ledger.Failover:
		info.Operation, info.Task, info.Rollback, info.From = &b.Operation, b.Task, b.Rollback, &b.From
	case *ledger.Retry:
		info.Operation, info.Nonce, info.Submitter = &b.Operation, b.Nonce, &b.Submitter
	case *ledger.Announcement:
		info.Validator, info.Functions, info.Seq = &b.Validator, b.Functions, b.Seq
	case *ledger.Evidence:
		info.Evidence = &EvidenceInfo{Validator: b.A.Validator, Type: b.A.Type.String(), Height: b.A.Height, Round: b.A.Round,
			BlockHashes: [2]common.Hash{b.A.BlockHash, b.B.BlockHash}}
	}
	return info
}

// outputJSON returns an attested output as JSON: itself when it is JSON,
// else its bytes as a hex string, so that one bad output cannot make the
// whole block unprintable.
func outputJSON(out []byte) json.RawMessage {
	switch {
	case len(out) == 0:
		return nil
	case json.Valid(out):
		return json.RawMessage(bytes.Clone(out))
	}
	return json.RawMessage(strconv.Quote(hexutil.Encode(out)))
}

// Blocks returns the blocks from height from to height to, both included,
// in their ledger encoding with their certificates and results roots. It
// stops at the head, after MaxBlocksPerCall blocks, and before the page
// grows past a few megabytes (but always returns at least one block when
// from is committed): callers page on from the last height received. An
// empty list means from is above the head. The page's bytes are bounded by
// half of rpc.max_response_bytes, as hex doubles them.
func (api *API) Blocks(from, to uint64) ([]RawBlock, error) {
	if from == 0 {
		return nil, invalidf("from 0: blocks start at height 1")
	}
	if to < from {
		return nil, invalidf("to %d is below from %d", to, from)
	}
	s := api.b.Store()
	head, err := s.Head()
	if err != nil {
		return nil, err
	}
	out := []RawBlock{}
	if from > head {
		return out, nil
	}
	to = min(to, head, from+MaxBlocksPerCall-1)
	size := 0
	for h := from; h <= to; h++ {
		b, err := s.Block(h)
		if err != nil {
			return nil, err
		}
		c, err := s.Commit(h)
		if err != nil {
			return nil, err
		}
		res, err := s.ResultsRoot(h)
		if err != nil {
			return nil, err
		}
		braw, err := rlp.EncodeToBytes(b)
		if err != nil {
			return nil, fmt.Errorf("block %d: encode: %w", h, err)
		}
		craw, err := rlp.EncodeToBytes(c)
		if err != nil {
			return nil, fmt.Errorf("certificate of block %d: encode: %w", h, err)
		}
		n := len(braw) + len(craw)
		if len(out) > 0 && size+n > api.pageBytes {
			break
		}
		size += n
		out = append(out, RawBlock{Height: h, Block: braw, Commit: craw, Results: res})
	}
	return out, nil
}

// Validators lists the genesis validators in proposer order, marking this
// node and the validators connected to it online, and those the chain
// marks down as executors down. Online is what this node sees of its
// peers; down is what the committed state says (ledger.Hosts), the same
// on every node.
func (api *API) Validators() ([]ValidatorInfo, error) {
	self := api.b.Self()
	online := map[common.Address]bool{self: true}
	for _, p := range api.b.Peers() {
		online[p] = true
	}
	hosts, err := api.b.Store().Hosts()
	if err != nil {
		return nil, fmt.Errorf("validators: read executor liveness: %w", err)
	}
	vals := api.b.Genesis().Validators
	out := make([]ValidatorInfo, len(vals))
	for i, v := range vals {
		h := hosts.ByValidator[v.Address]
		out[i] = ValidatorInfo{Address: v.Address, Name: v.Name, Online: online[v.Address], Self: v.Address == self,
			Down: h.Down, DownHeight: h.DownHeight}
	}
	return out, nil
}

// Plan returns the stages of an operation without running anything. The
// operation is given either as a JSON object, or as a JSON string holding
// the text of an operation file (YAML or JSON); the chain's limits apply.
func (api *API) Plan(operation json.RawMessage) (PlanResult, error) {
	data := []byte(operation)
	var text string
	if json.Unmarshal(operation, &text) == nil {
		data = []byte(text)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return PlanResult{}, invalidf("operation: empty")
	}
	op, err := taskrt.Load(data, nil, api.limits)
	if err != nil {
		return PlanResult{}, invalidf("operation: %v", err)
	}
	plan, err := taskrt.NewPlan(op)
	if err != nil {
		return PlanResult{}, invalidf("operation %q: %v", op.Name, err)
	}
	return PlanResult{Name: op.Name, Stages: plan.StageIDs()}, nil
}

// Genesis returns the chain's genesis.
func (api *API) Genesis() (*ledger.Genesis, error) { return api.b.Genesis(), nil }

// NewBlocks is the newBlocks subscription: a BlockSummary for every block
// committed while it lasts. A client that falls summaryQueue blocks behind
// is dropped (it receives nothing more), so that it holds up no one.
func (api *API) NewBlocks(ctx context.Context) (*gethrpc.Subscription, error) {
	n, ok := gethrpc.NotifierFromContext(ctx)
	if !ok {
		return nil, gethrpc.ErrNotificationsUnsupported
	}
	rpcSub := n.CreateSubscription()
	queue := make(chan BlockSummary, summaryQueue)
	stop, done := api.follow(func(ev CommitEvent) bool {
		select {
		case queue <- summarize(ev):
			return true
		default:
			return false
		}
	})
	go func() {
		defer stop()
		for {
			select {
			case s := <-queue:
				if n.Notify(rpcSub.ID, s) != nil {
					return // the connection failed; the server closes it
				}
			case <-rpcSub.Err():
				return
			case <-done:
				return
			}
		}
	}()
	return rpcSub, nil
}

func summarize(ev CommitEvent) BlockSummary {
	b := ev.Block
	s := BlockSummary{Height: b.Header.Height, Hash: b.Hash(), Time: b.Header.Time, Proposer: b.Header.Proposer,
		Entries: len(b.Entries), Operations: make([]common.Hash, len(ev.Ops))}
	for i, r := range ev.Ops {
		s.Operations[i] = r.ID
	}
	slices.SortFunc(s.Operations, func(a, b common.Hash) int { return bytes.Compare(a[:], b[:]) })
	return s
}

// OperationEvents is the operationEvents subscription: it sends the
// operation's view at once, if a block has recorded the operation, and
// again after every committed block that changes it, and ends after sending
// a final status. An id no block has recorded yet is accepted while its
// submission waits in the mempool (so a client may subscribe right after
// submitting), and refused as not found otherwise (see PendingChecker).
//
// A client slower than the blocks misses no state: every view holds the
// whole history, and only the newest is sent when several blocks changed
// the operation while the previous view was being written.
func (api *API) OperationEvents(ctx context.Context, id common.Hash) (*gethrpc.Subscription, error) {
	return api.followOperation(ctx, id, nil, func(r *ledger.OpRecord) (any, bool, error) {
		v, err := api.b.Machine().View(r)
		if err != nil {
			return nil, false, err
		}
		return v, v.Status.Final(), nil
	})
}

// OperationStatus is the operationStatus subscription: an OperationStatus
// at once, if a block has recorded the operation, and again after every
// committed block that changes the operation's status, ending after a
// final one. It is operationEvents for a client that waits for the outcome
// and needs no view: a few bytes per change, where a view carries every
// task and event. As there, a client slower than the blocks gets the
// newest status, not every one in between.
func (api *API) OperationStatus(ctx context.Context, id common.Hash) (*gethrpc.Subscription, error) {
	statusChanged := func(last, r *ledger.OpRecord) bool { return last.Saga.Status != r.Saga.Status }
	return api.followOperation(ctx, id, statusChanged, func(r *ledger.OpRecord) (any, bool, error) {
		st := OperationStatus{ID: r.ID, Status: r.Saga.Status, Height: r.Height}
		if len(r.Events) > 0 {
			st.Height = r.Events[len(r.Events)-1].Height
		}
		return st, r.Saga.Status.Final(), nil
	})
}

// followOperation runs a subscription to operation id: render turns a
// committed record into the value to send and says whether it is the last
// one. The first value goes out at once if a block has recorded the
// operation; after that, one goes out for each committed block that
// changes the record, unless changed (nil for always) says that nothing
// the subscriber wants changed since the last record sent. An id no block
// has recorded yet is accepted while its submission waits in the mempool
// (so a client may subscribe right after submitting), and refused as not
// found otherwise (see PendingChecker).
func (api *API) followOperation(ctx context.Context, id common.Hash, changed func(last, r *ledger.OpRecord) bool, render func(*ledger.OpRecord) (v any, final bool, err error)) (*gethrpc.Subscription, error) {
	n, ok := gethrpc.NotifierFromContext(ctx)
	if !ok {
		return nil, gethrpc.ErrNotificationsUnsupported
	}
	var (
		mu     sync.Mutex
		latest *ledger.OpRecord
	)
	wake := make(chan struct{}, 1)
	// Follow the commits before reading the store, so that no block
	// committed in between goes unseen.
	stop, done := api.follow(func(ev CommitEvent) bool {
		for _, r := range ev.Ops {
			if r.ID == id {
				mu.Lock()
				latest = r
				mu.Unlock()
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}
		return true
	})
	initial, err := api.committedOrPending(id)
	if err != nil {
		stop()
		return nil, err
	}
	rpcSub := n.CreateSubscription()
	go func() {
		defer stop()
		// Every change to an operation adds to its history, so the number
		// of events orders its records: a record received from a block
		// committed before the initial read is not sent after it.
		var last *ledger.OpRecord
		send := func(r *ledger.OpRecord) (end bool) {
			if last != nil && (len(r.Events) <= len(last.Events) || changed != nil && !changed(last, r)) {
				return false
			}
			v, final, err := render(r)
			if err != nil || n.Notify(rpcSub.ID, v) != nil {
				return true // cannot render or write: end the subscription
			}
			last = r
			return final
		}
		if initial != nil && send(initial) {
			return
		}
		for {
			select {
			case <-wake:
				mu.Lock()
				r := latest
				mu.Unlock()
				if send(r) {
					return
				}
			case <-rpcSub.Err():
				return
			case <-done:
				return
			}
		}
	}()
	return rpcSub, nil
}

// committedOrPending returns the committed record of operation id, or nil
// when its submission is still pending. Checking the store again after the
// mempool covers a block that commits the submission between the two looks.
func (api *API) committedOrPending(id common.Hash) (*ledger.OpRecord, error) {
	s := api.b.Store()
	r, err := s.Operation(id)
	if err == nil || !errors.Is(err, ledger.ErrNotFound) {
		return r, err
	}
	pc, ok := api.b.(PendingChecker)
	if !ok || pc.Pending(id) {
		return nil, nil
	}
	r, err = s.Operation(id)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, notFoundf("operation %s not found: no block records it and no submission of it is pending", id.Hex())
	}
	return r, err
}

// follow subscribes to the backend's commits and calls on for each of them
// in a goroutine that does nothing else, so that a slow client never holds
// up the node's commit path; on must not block. It stops when on returns
// false, when the backend stops publishing, or when stop is called, and
// closes done then. stop waits for it and may be called more than once.
func (api *API) follow(on func(CommitEvent) bool) (stop func(), done <-chan struct{}) {
	ch := make(chan CommitEvent, commitBuffer)
	sub := api.b.SubscribeCommits(ch)
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		defer sub.Unsubscribe()
		for {
			select {
			case ev := <-ch:
				if !on(ev) {
					return
				}
			case <-sub.Err():
				return
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-finished
	}, finished
}

// Endpoint serves a node's API over HTTP: JSON-RPC POSTs and WebSocket
// upgrades on "/", a health check on "/healthz", and everything else by
// the UI handler it was given.
type Endpoint struct {
	b    Backend
	srv  *gethrpc.Server
	ws   http.Handler
	ui   http.Handler
	wsOK originPolicy
	post originPolicy
}

// Handler returns the node's HTTP endpoint over the API of b, within lim.
// Requests that are not JSON-RPC (a GET of "/" without a WebSocket
// upgrade, any other path but "/healthz") go to ui, or get 404 when ui is
// nil. A WebSocket handshake or a POST from a web page is served only when
// the page is the node's own UI or its origin is in lim.WSOrigins or
// lim.CORSDomains respectively (see the package documentation). Stop the
// endpoint when the HTTP server is shut down: the HTTP server does not
// close upgraded connections.
func Handler(b Backend, ui http.Handler, lim Limits) (*Endpoint, error) {
	srv, err := NewServer(b, lim)
	if err != nil {
		return nil, err
	}
	// The origin is checked here, before go-ethereum's handler, whose own
	// check admits any http://localhost page when given no list; "*" turns
	// it off.
	return &Endpoint{b: b, srv: srv, ws: srv.WebsocketHandler([]string{"*"}), ui: ui,
		wsOK: newOriginPolicy(lim.WSOrigins), post: newOriginPolicy(lim.CORSDomains)}, nil
}

// ServeHTTP routes a request.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/healthz":
		e.health(w)
	case r.URL.Path == "/" && isWebsocket(r):
		if !e.wsOK.admits(r) {
			http.Error(w, fmt.Sprintf("origin %q may not open a WebSocket to this node: list it in rpc.ws_origins", r.Header.Get("Origin")), http.StatusForbidden)
			return
		}
		e.ws.ServeHTTP(w, r)
	case r.URL.Path == "/" && r.Method == http.MethodOptions && r.Header.Get("Origin") != "":
		e.preflight(w, r)
	case r.URL.Path == "/" && r.Method == http.MethodPost:
		if !e.post.admits(r) {
			http.Error(w, fmt.Sprintf("origin %q may not call this node: list it in rpc.cors_domains", r.Header.Get("Origin")), http.StatusForbidden)
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Add("Vary", "Origin")
		}
		e.srv.ServeHTTP(w, r)
	case e.ui != nil:
		e.ui.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// preflight answers a browser's CORS preflight for a JSON-RPC POST: a page
// of rpc.cors_domains may send it, any other is told nothing, so the
// browser does not send the call.
func (e *Endpoint) preflight(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	if !e.post.admits(r) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	h.Set("Access-Control-Allow-Methods", http.MethodPost)
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// Stop closes the WebSocket connections, which ends their subscriptions,
// and refuses further requests.
func (e *Endpoint) Stop() { e.srv.Stop() }

func isWebsocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// health answers 200 with the head height when the store answers, 503
// otherwise.
func (e *Endpoint) health(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	h, err := e.b.Store().Head()
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}{"unavailable", err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(struct {
		Status string `json:"status"`
		Height uint64 `json:"height"`
	}{"ok", h})
}
