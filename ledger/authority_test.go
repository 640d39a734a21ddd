package ledger

import (
	"errors"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// TestRetryOnlyBySubmitterOrOperator: on a2a74ac any allowed submitter
// could retry anyone's operation (issue #10). Now another submitter is
// refused with ErrNotAuthorized, and an operator named by genesis, who
// need not be a submitter, may retry it.
func TestRetryOnlyBySubmitterOrOperator(t *testing.T) {
	c := newTestChain(t)
	other, operator := testKey(t, 7), testKey(t, 8)
	g := *c.m.Genesis()
	g.Submitters = append(append([]Address(nil), g.Submitters...), other.Address())
	g.Operators = []Address{operator.Address()}
	m, err := NewMachine(&g)
	if err != nil {
		t.Fatal(err)
	}
	c.m = m
	sub, id := c.submit(stuckOp)
	c.block(10, sub)
	if r := c.run(id, stuckFails); r.Saga.Status != taskrt.OpRollbackFailed {
		t.Fatalf("status %s, want rollback_failed", r.Saga.Status)
	}
	retryBy := func(k *PrivateKey) Entry {
		r := &Retry{Operation: id, Nonce: 1}
		if err := r.Sign(k, "test-chain"); err != nil {
			t.Fatal(err)
		}
		e, _ := NewEntry(KindRetry, r)
		return e
	}
	ctx := Context{Height: c.height + 1, Time: c.time + 10}
	err = c.m.Check(c.st, ctx, retryBy(other))
	if !errors.Is(err, ErrNotAuthorized) || !strings.Contains(err.Error(), "only its submitter") {
		t.Fatalf("retry by another submitter: got %v, want ErrNotAuthorized naming the rule", err)
	}
	if err := c.m.Authenticate(retryBy(operator)); err != nil {
		t.Fatalf("gossip drops an operator's retry: %v", err)
	}
	if err := c.m.Check(c.st, ctx, retryBy(operator)); err != nil {
		t.Fatalf("retry by an operator: %v", err)
	}
	if err := c.m.Check(c.st, ctx, retryBy(c.user)); err != nil {
		t.Fatalf("retry by the submitter: %v", err)
	}
	// An operator is not a submitter: it may not submit.
	op := c.op(id).Operation
	s := &Submission{Operation: op, Nonce: 99}
	if err := s.Sign(operator, "test-chain"); err != nil {
		t.Fatal(err)
	}
	se, _ := NewEntry(KindSubmission, s)
	if err := c.m.Check(c.st, ctx, se); !errors.Is(err, ErrSubmitter) {
		t.Fatalf("submission by an operator: got %v, want ErrSubmitter", err)
	}
}

func TestGenesisOperators(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	g := &Genesis{ChainID: "c", Validators: []GenesisValidator{NewGenesisValidator(a, "a")}, Params: DefaultParams()}
	before := g.Hash()
	g.Operators = []Address{}
	if g.Hash() != before {
		t.Fatal("an empty operators list changed the genesis hash: every existing chain would break")
	}
	g.Operators = []Address{b.Address(), b.Address()}
	if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "operators[1]") {
		t.Fatalf("repeated operator: got %v", err)
	}
	g.Operators = []Address{{}}
	if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "operators[0]") {
		t.Fatalf("zero operator: got %v", err)
	}
	g.Operators = []Address{b.Address()}
	if err := g.Validate(); err != nil || !g.Operator(b.Address()) || g.Operator(a.Address()) {
		t.Fatalf("operators: %v", err)
	}
}
