package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

func TestSubmitQueuesASubmission(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	ctx := context.Background()
	e := b.submission(b.user, tripYAML, 1)
	res, err := c.Submit(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if res.Hash != e.Hash() || res.ID == nil || *res.ID != e.Hash() || res.Kind != "submission" {
		t.Fatalf("submit returned %+v, want hash and id %s", res, e.Hash().Hex())
	}
	if !b.Pending(e.Hash()) {
		t.Fatal("the submission is not in the mempool")
	}
	head, err := c.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head.Mempool != 1 {
		t.Fatalf("head reports %d queued entries, want 1", head.Mempool)
	}
	b.commit(b.drain()...)
	if _, err := c.Operation(ctx, *res.ID); err != nil {
		t.Fatalf("the committed submission's operation: %v", err)
	}
}

func TestSubmitRefusesWhatDoesNotFit(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	ctx := context.Background()

	stranger := testKey(t, 9)
	badSig := b.submission(b.user, tripYAML, 1)
	var s ledger.Submission
	if err := rlp.DecodeBytes(badSig.Body, &s); err != nil {
		t.Fatal(err)
	}
	s.Nonce++ // the signature no longer covers the body
	badSig, _ = ledger.NewEntry(ledger.KindSubmission, &s)
	derived, _ := ledger.NewEntry(ledger.KindStageRelease, &ledger.StageRecord{Operation: common.Hash{1}})
	timeout, _ := ledger.NewEntry(ledger.KindTimeout, &ledger.Timeout{Operation: common.Hash{1}})
	unknownKind := ledger.Entry{Kind: 42, Body: []byte{0xc0}}
	badBody := ledger.Entry{Kind: ledger.KindSubmission, Body: []byte{0xc0}}
	unhosted := b.submission(b.user, strings.ReplaceAll(tripYAML, "run: echo", "run: airline.reserve"), 1)
	unknownOp, _ := ledger.NewEntry(ledger.KindRetry, func() *ledger.Retry {
		r := &ledger.Retry{Operation: common.Hash{7}}
		if err := r.Sign(b.user, testChainID); err != nil {
			t.Fatal(err)
		}
		return r
	}())

	for _, tc := range []struct {
		name  string
		entry []byte
		want  string
	}{
		{"malformed", []byte{0x01, 0x02, 0x03}, "not the RLP encoding of [kind, body]"},
		{"trailing bytes", append(mustRLP(t, b.submission(b.user, tripYAML, 2)), 0x00), "not the RLP encoding"},
		{"derived kind", mustRLP(t, derived), "entry kind stage_release: derived by the state machine"},
		{"timeout kind", mustRLP(t, timeout), "entry kind timeout: proposed by validators"},
		{"unknown kind", mustRLP(t, unknownKind), "unknown entry kind: 42"},
		{"body", mustRLP(t, badBody), "decode submission"},
		{"stranger", mustRLP(t, b.submission(stranger, tripYAML, 1)), stranger.Address().Hex() + ": submitter is not allowed by genesis"},
		{"bad signature", mustRLP(t, badSig), "want " + b.user.Address().Hex() + ": wrong signer"},
		{"function nobody hosts", mustRLP(t, unhosted), `function "airline.reserve": no validator hosts the function`},
		{"retry of an unknown operation", mustRLP(t, unknownOp), "operation " + common.Hash{7}.Hex()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.call(ctx, nil, "submit", hexutil.Bytes(tc.entry))
			var re *Error
			if !errors.As(err, &re) || re.Code != CodeInvalidInput || !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("got %v (%T), want an invalid-input error", err, err)
			}
			t.Logf("refused: %s", re.Message)
			if !strings.Contains(re.Message, tc.want) {
				t.Fatalf("message %q does not say %q", re.Message, tc.want)
			}
			if n := b.MempoolSize(); n != 0 {
				t.Fatalf("%d entries queued after a refusal", n)
			}
		})
	}
	// The signature check names the submission entry that failed it.
	err := c.call(ctx, nil, "submit", hexutil.Bytes(mustRLP(t, badSig)))
	if want := "submission " + badSig.Hash().Hex() + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want it to begin with %q", err, want)
	}
}

func TestSubmitReportsAFullMempool(t *testing.T) {
	b := newTestBackend(t)
	b.maxPool = 1
	c := dial(t, serve(t, b))
	ctx := context.Background()
	if _, err := c.Submit(ctx, b.submission(b.user, tripYAML, 1)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Submit(ctx, b.submission(b.user, tripYAML, 2))
	if !errors.Is(err, ErrMempoolFull) || errors.Is(err, ErrInvalidInput) {
		t.Fatalf("got %v, want a mempool-full error", err)
	}
	if !strings.Contains(err.Error(), "mempool is full") {
		t.Fatalf("message %q does not say the mempool is full", err)
	}
}

// The error code is on the wire as JSON-RPC puts it, for clients in any
// language.
func TestErrorsCarryTheirCodeOnTheWire(t *testing.T) {
	b := newTestBackend(t)
	url := serve(t, b)
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"sc_submit","params":["0x010203"]}`, CodeInvalidInput},
		{`{"jsonrpc":"2.0","id":1,"method":"sc_operation","params":["0x` + strings.Repeat("ab", 32) + `"]}`, CodeNotFound},
		{`{"jsonrpc":"2.0","id":1,"method":"sc_block","params":[0]}`, CodeInvalidInput},
	} {
		resp, err := http.Post(url, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var msg struct {
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&msg)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if msg.Error.Code != tc.code || msg.Error.Message == "" {
			t.Fatalf("%s: got error %+v, want code %d with a message", tc.body, msg.Error, tc.code)
		}
	}
}

func mustRLP(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := rlp.EncodeToBytes(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestOperationIsTheMachinesView(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	ctx := context.Background()
	e := b.submission(b.user, tripYAML, 1)
	id := e.Hash()
	b.commit(e)
	for !b.record(id).Saga.Status.Final() {
		got, err := c.Operation(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := mustJSON(t, got), b.viewJSON(id); g != w {
			t.Fatalf("sc_operation returned\n%s\nthe machine renders\n%s", g, w)
		}
		b.commit(b.attest(id, nil)...)
	}
	got, err := c.Operation(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != taskrt.OpCompleted || mustJSON(t, got) != b.viewJSON(id) {
		t.Fatalf("final view %s, want the machine's completed view %s", mustJSON(t, got), b.viewJSON(id))
	}

	missing := common.Hash{0xab}
	_, err = c.Operation(ctx, missing)
	if !errors.Is(err, ErrNotFound) || err.Error() != "operation "+missing.Hex()+" not found" {
		t.Fatalf("unknown operation: got %v", err)
	}
}

func TestOperationsListsNewestFirstByStatus(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	ctx := context.Background()
	subA, subB, subC := b.submission(b.user, tripYAML, 1), b.submission(b.user, tripYAML, 2), b.submission(b.user, tripYAML, 3)
	a, bb, cc := subA.Hash(), subB.Hash(), subC.Hash()
	b.commit(subA)
	b.commit(subB)
	b.run(a, nil)
	b.run(bb, map[string]string{"hotel": "no rooms"})
	blkC := b.commit(subC)

	list := func(q *OpsQuery) ([]ledger.Hash, error) {
		var views []taskrt.OperationView
		var err error
		if q == nil {
			err = c.call(ctx, &views, "operations")
		} else {
			views, err = c.Operations(ctx, *q)
		}
		var ids []ledger.Hash
		for _, v := range views {
			ids = append(ids, common.HexToHash(v.ID))
		}
		return ids, err
	}
	for _, tc := range []struct {
		name string
		q    *OpsQuery
		want []ledger.Hash
	}{
		{"no query", nil, []ledger.Hash{cc, bb, a}},
		{"all", &OpsQuery{}, []ledger.Hash{cc, bb, a}},
		{"completed", &OpsQuery{Status: "completed"}, []ledger.Hash{a}},
		{"rolled back", &OpsQuery{Status: "rolled_back"}, []ledger.Hash{bb}},
		{"running", &OpsQuery{Status: "running"}, []ledger.Hash{cc}},
		{"rollback failed", &OpsQuery{Status: "rollback_failed"}, nil},
		{"limit", &OpsQuery{Limit: 2}, []ledger.Hash{cc, bb}},
		{"before", &OpsQuery{Before: blkC.Header.Height}, []ledger.Hash{bb, a}},
	} {
		got, err := list(tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	views, err := c.Operations(ctx, OpsQuery{Status: "rolled_back"})
	if err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, views[0]) != b.viewJSON(bb) {
		t.Fatalf("listed view differs from the machine's:\n%s\n%s", mustJSON(t, views[0]), b.viewJSON(bb))
	}

	for _, tc := range []struct {
		q    OpsQuery
		want string
	}{
		{OpsQuery{Status: "done"}, `unknown status "done": want one of running, completed, rolling_back, rolled_back, rollback_failed`},
		{OpsQuery{Limit: MaxOpsLimit + 1}, "limit 1001: over the maximum of 1000"},
		{OpsQuery{Limit: -1}, "limit -1: must not be negative"},
	} {
		_, err := c.Operations(ctx, tc.q)
		if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("query %+v: got %v, want an invalid-input error saying %q", tc.q, err, tc.want)
		}
	}
}

func TestHeadFollowsTheChain(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	ctx := context.Background()
	head, err := c.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := HeadInfo{Height: 0, Hash: b.genesis.Hash(), Time: b.genesis.Time, ChainID: testChainID, Validators: 1}
	if head != want {
		t.Fatalf("head of an empty chain %+v, want %+v", head, want)
	}
	b.commit(b.submission(b.user, tripYAML, 1))
	last := b.commit()
	if err := b.Submit(b.submission(b.user, tripYAML, 2)); err != nil {
		t.Fatal(err)
	}
	head, err = c.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want = HeadInfo{Height: 2, Hash: last.Hash(), Time: last.Header.Time, ChainID: testChainID, Validators: 1, Mempool: 1}
	if head != want {
		t.Fatalf("head %+v, want %+v", head, want)
	}
}

func TestBlockDecodesEntriesAndCertificates(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	ctx := context.Background()
	e := b.submission(b.user, tripYAML, 1)
	id := e.Hash()
	b1 := b.commit(e)
	b2 := b.commit(b.attest(id, nil)...)
	val := b.val.Address()

	info, err := c.Block(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if info.Hash != b1.Hash() || info.Height != 1 || info.Prev != b.genesis.Hash() || info.Proposer != val ||
		info.ProposerName != "val0" || info.EntriesRoot != b1.Header.EntriesRoot || info.Time != b1.Header.Time ||
		!bytes.Equal(info.Signature, b1.Signature[:]) {
		t.Fatalf("block 1 header %+v does not match the block", info)
	}
	if len(info.Entries) != 2 {
		t.Fatalf("block 1 has %d entries, want the submission and stage 0's release", len(info.Entries))
	}
	sub, rel := info.Entries[0], info.Entries[1]
	if sub.Kind != "submission" || sub.Hash != id || *sub.Operation != id || sub.Name != "trip" || *sub.Submitter != b.user.Address() || sub.Nonce != 1 {
		t.Fatalf("submission decoded as %+v", sub)
	}
	if rel.Kind != "stage_release" || *rel.Operation != id || *rel.Stage != 0 || *rel.Prev != id ||
		len(rel.Tasks) != 1 || rel.Tasks[0].ID != "flight" || rel.Tasks[0].Executor != val || rel.Tasks[0].Run != "echo" {
		t.Fatalf("stage release decoded as %+v", rel)
	}
	if !slices.Equal(info.Commit.Signers, []common.Address{val}) || info.Commit.BlockHash != b1.Hash() {
		t.Fatalf("block 1 certificate %+v", info.Commit)
	}
	if len(info.LastCommit.Signers) != 0 {
		t.Fatalf("block 1 carries a parent certificate %+v", info.LastCommit)
	}

	info, err = c.Block(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if info.Hash != b2.Hash() || info.LastCommit.BlockHash != b1.Hash() || !slices.Equal(info.LastCommit.Signers, []common.Address{val}) {
		t.Fatalf("block 2: hash %s, last commit %+v", info.Hash.Hex(), info.LastCommit)
	}
	att := info.Entries[0]
	if att.Kind != "attestation" || att.Task != "flight" || *att.Executor != val || att.Attempts != 1 || att.Error != "" {
		t.Fatalf("attestation decoded as %+v", att)
	}
	var out map[string]any
	if err := json.Unmarshal(att.Output, &out); err != nil {
		t.Fatalf("attested output %s: %v", att.Output, err)
	}
	if got := mustJSON(t, out); got != `{"flight":{"confirmation":"QX12AB"}}` {
		t.Fatalf("attested output %s", got)
	}
	if next := info.Entries[1]; next.Kind != "stage_release" || *next.Stage != 1 || next.Tasks[0].ID != "hotel" {
		t.Fatalf("entry after the attestation %+v, want stage 1's release", next)
	}

	if _, err := c.Block(ctx, 0); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("block 0: got %v, want invalid input", err)
	}
	if _, err := c.Block(ctx, 3); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "block 3 not found: the head is at height 2") {
		t.Fatalf("block 3: got %v", err)
	}
}

func TestValidatorsMarksSelfAndPeersOnline(t *testing.T) {
	keys := []*ledger.PrivateKey{testKey(t, 1), testKey(t, 3), testKey(t, 4)}
	g := &ledger.Genesis{ChainID: testChainID, Time: 1, Params: ledger.DefaultParams()}
	for i, k := range keys {
		g.Validators = append(g.Validators, ledger.GenesisValidator{Address: k.Address(), Name: []string{"a", "b", "c"}[i]})
	}
	b := newBackendFor(t, g, keys[0], testKey(t, 2))
	b.peers = []ledger.Address{keys[2].Address()}
	c := dial(t, serve(t, b))
	got, err := c.Validators(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []ValidatorInfo{
		{Address: keys[0].Address(), Name: "a", Online: true, Self: true},
		{Address: keys[1].Address(), Name: "b"},
		{Address: keys[2].Address(), Name: "c", Online: true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("validators %+v, want %+v", got, want)
	}
}

func TestPlanReturnsTheStages(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	ctx := context.Background()
	const fiveTasks = `
name: book-trip
inputs: {traveler: Ada}
tasks:
  - {id: flight, run: echo, inputs: [traveler], outputs: [flight]}
  - {id: payment, run: echo, inputs: [traveler], outputs: [charge]}
  - {id: hotel, run: echo, inputs: [flight], outputs: [hotel]}
  - {id: car, run: echo, inputs: [flight, charge], outputs: [car]}
  - {id: excursion, run: echo, inputs: [hotel], outputs: [excursion]}
`
	op, err := taskrt.Load([]byte(fiveTasks), nil, taskrt.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	asJSON, err := json.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	asText, err := json.Marshal(fiveTasks)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"book-trip","stages":[["flight","payment"],["hotel","car"],["excursion"]]}`
	for name, arg := range map[string]json.RawMessage{"JSON object": asJSON, "YAML text": asText} {
		got, err := c.Plan(ctx, arg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if mustJSON(t, got) != want {
			t.Fatalf("%s: plan %s, want %s", name, mustJSON(t, got), want)
		}
	}
	cyclic, _ := json.Marshal("name: loop\ntasks:\n  - {id: a, run: echo, inputs: [y], outputs: [x]}\n  - {id: b, run: echo, inputs: [x], outputs: [y]}\n")
	_, err = c.Plan(ctx, cyclic)
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "cycle: a -> b -> a") {
		t.Fatalf("cyclic operation: got %v, want an invalid-input error naming the cycle", err)
	}
	if _, err := c.Plan(ctx, json.RawMessage(`""`)); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("empty operation: got %v", err)
	}
}

func TestGenesisRoundTrips(t *testing.T) {
	b := newTestBackend(t)
	c := dial(t, serve(t, b))
	g, err := c.Genesis(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if g.Hash() != b.genesis.Hash() {
		t.Fatalf("genesis over RPC hashes to %s, the node's to %s", g.Hash().Hex(), b.genesis.Hash().Hex())
	}
}

func TestHandlerRoutes(t *testing.T) {
	b := newTestBackend(t)
	b.commit()
	url := serve(t, b)
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	if code, body := get(url + "/healthz"); code != http.StatusOK || strings.TrimSpace(body) != `{"status":"ok","height":1}` {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, _ := get(url + "/"); code != http.StatusNotFound {
		t.Fatalf("GET / without a UI: %d, want 404", code)
	}

	ep, err := Handler(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ui "+r.URL.Path)
	}), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Stop()
	for path, want := range map[string]string{"/": "ui /", "/app.js": "ui /app.js"} {
		rec := httptest.NewRecorder()
		ep.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK || rec.Body.String() != want {
			t.Fatalf("GET %s: %d %q, want the UI's %q", path, rec.Code, rec.Body.String(), want)
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"sc_head","params":[]}`))
	req.Header.Set("Content-Type", "application/json")
	ep.ServeHTTP(rec, req)
	if !strings.Contains(rec.Body.String(), `"height":1`) {
		t.Fatalf("POST / with a UI: %d %s", rec.Code, rec.Body.String())
	}

	b.shutdown()
	if code, body := get(url + "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"status":"unavailable"`) {
		t.Fatalf("/healthz with the store closed: %d %s", code, body)
	}
}
