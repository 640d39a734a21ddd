package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

// signRaw signs op, an operation's JSON, as the node's submitter, without
// the client's own check.
func signRaw(t *testing.T, tn *testNode, op string) ledger.Entry {
	t.Helper()
	s := &ledger.Submission{Operation: []byte(op), Nonce: 1}
	if err := s.Sign(tn.user, tn.Genesis().ChainID); err != nil {
		t.Fatal(err)
	}
	e, err := ledger.NewEntry(ledger.KindSubmission, s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The node refuses what the work limits forbid as invalid input (the CLI's
// exit code 2), naming the limit; on a2a74ac it queued both.
func TestSubmitRefusesUnboundedWork(t *testing.T) {
	tn := startNode(t, "")
	for _, tt := range []struct{ op, want string }{
		{`{"name":"x","tasks":[{"id":"a","run":"fail","retry":{"attempts":1000000000,"backoff":"0s"}}]}`, "(max_attempts)"},
		{`{"name":"x","tasks":[{"id":"a","run":"sleep","params":{"ms":9223372036854775807}}]}`, "(max_sleep)"},
	} {
		err := tn.Submit(signRaw(t, tn, tt.op))
		var re *rpc.Error
		if !errors.As(err, &re) || re.Code != rpc.CodeInvalidInput || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Submit(%s) = %v, want invalid input naming %s", tt.op, err, tt.want)
		}
	}
}

// With a block budget below any rule's cost, every block takes one
// attestation: the executor signs each alone (a batch of them would be
// over the budget), the proposer leaves the rest in the mempool, and the
// operation still completes with nothing dropped. No app change is
// needed: ProposeBlock keeps an entry that authenticates but does not fit.
func TestNodeSpreadsCostlyAttestationsOverBlocks(t *testing.T) {
	g, cfg, val, user := oneValidator(t)
	g.Params.MaxBlockRuleCost = 1
	cfg.RPC.Listen = "127.0.0.1:0"
	n, err := New(Options{Config: cfg, Genesis: g, Key: val, InMemory: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	tn := newTestNode(t, n, user)
	tn.launch()
	tn.ready(t)

	var b strings.Builder
	b.WriteString(`{"name":"spread","tasks":[`)
	for i := range 4 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"t%d","run":"echo","outputs":["o%d"],"validate":"output.o%d.size() > 0"}`, i, i, i)
	}
	b.WriteString("]}")
	e := signRaw(t, tn, string(canonicalOp(t, []byte(b.String()))))
	if err := tn.Submit(e); err != nil {
		t.Fatal(err)
	}
	if r := tn.wait(t, e.Hash()); r.Saga.Status != taskrt.OpCompleted {
		t.Fatalf("operation %s, want completed", r.Saga.Status)
	}
	head, _ := tn.store.Head()
	attested := 0
	for h := uint64(1); h <= head; h++ {
		blk, err := tn.store.Block(h)
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, en := range blk.Entries {
			switch en.Kind {
			case ledger.KindAttestation:
				k++
			case ledger.KindAttestations:
				t.Errorf("block %d carries a batch, whose rules are over the budget", h)
			}
		}
		if k > 1 {
			t.Errorf("block %d carries %d attestations, want at most one", h, k)
		}
		attested += k
	}
	if attested != 4 {
		t.Errorf("%d attestations committed, want 4", attested)
	}
	if _, err := ledger.VerifyChain(tn.Genesis(), ledger.StoreSource(tn.store)); err != nil {
		t.Fatal(err)
	}
}
