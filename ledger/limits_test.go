package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// rawSubmission signs op, the operation's JSON, as c's submitter would,
// without the client's own check: a hostile client skips it.
func (c *testChain) rawSubmission(op string) Entry {
	c.t.Helper()
	s := &Submission{Operation: []byte(op), Nonce: c.height}
	if err := s.Sign(c.user, "test-chain"); err != nil {
		c.t.Fatal(err)
	}
	e, err := NewEntry(KindSubmission, s)
	if err != nil {
		c.t.Fatal(err)
	}
	return e
}

// TestCheckRefusesUnboundedWork: on a2a74ac the node admitted (and
// every validator applied) a submission with retry attempts of 10^9 and
// no backoff, or a sleep of 2^63-1 ms. Check is the node's admission test
// for sc_submit, whose refusal the CLI reports with exit code 2.
func TestCheckRefusesUnboundedWork(t *testing.T) {
	c := newTestChain(t)
	ctx := Context{Height: 1, Time: 2_000}
	for _, tt := range []struct{ op, want string }{
		{`{"name":"x","tasks":[{"id":"a","run":"fail","retry":{"attempts":1000000000,"backoff":"0s"}}]}`,
			`"attempts" in the "retry" of task "a" is 1000000000, over the limit of 100 (max_attempts)`},
		{`{"name":"x","tasks":[{"id":"a","run":"fail","retry":{"attempts":5,"backoff":"0s"}}]}`,
			`under the minimum of 10ms (min_backoff)`},
		{`{"name":"x","tasks":[{"id":"a","run":"sleep","params":{"ms":9223372036854775807}}]}`,
			`task "a" runs sleep with params.ms 9223372036854775807; it must be from 0 to 3600000, 1h0m0s (max_sleep)`},
	} {
		err := c.m.Check(c.st, ctx, c.rawSubmission(tt.op))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check(%s) = %v, want an error containing %q", tt.op, err, tt.want)
		}
	}
	if err := c.m.Check(c.st, ctx, c.rawSubmission(`{"name":"x","tasks":[{"id":"a","run":"fail","retry":{"attempts":100,"backoff":"10ms"}}]}`)); err != nil {
		t.Errorf("a retry at the limits: %v", err)
	}
}

// TestGenesisWorkLimits: the chain's params set the limits; zero takes
// the default, so a genesis that predates them keeps its hash and gets
// the bounds.
func TestGenesisWorkLimits(t *testing.T) {
	old := Params{MaxBlockEntries: 5000, MaxBlockBytes: 4 << 20, MaxTasks: 10000, MaxOperationBytes: 1 << 20, MaxOutputBytes: 64 << 10, MaxClockDriftMS: 10_000}
	g := &Genesis{ChainID: "c", Validators: []GenesisValidator{NewGenesisValidator(testKey(t, 1), "v")}, Params: old}
	if b, _ := json.Marshal(g); strings.Contains(string(b), "max_attempts") || strings.Contains(string(b), "_ms\":0") {
		t.Errorf("a genesis without the work limits marshals them, changing its hash: %s", b)
	}
	l := old.TaskLimits()
	if l.MaxAttempts != 0 || l.MinBackoff != 0 || l.MaxSleep != 0 {
		t.Errorf("TaskLimits of an old genesis = %+v, want zero work limits (the defaults)", l)
	}

	g.Params.MaxAttempts = 2
	m, err := NewMachine(g)
	if err != nil {
		t.Fatal(err)
	}
	s := &Submission{Operation: []byte(`{"name":"x","tasks":[{"id":"a","run":"fail","retry":{"attempts":3,"backoff":"1s"}}]}`)}
	if err := s.Sign(testKey(t, 2), "c"); err != nil {
		t.Fatal(err)
	}
	g.Submitters = []Address{testKey(t, 2).Address()}
	e, _ := NewEntry(KindSubmission, s)
	if err := m.Check(NewMemState(), Context{Height: 1, Time: 1}, e); err == nil || !strings.Contains(err.Error(), "over the limit of 2 (max_attempts)") {
		t.Errorf("params.max_attempts 2: Check = %v", err)
	}

	for _, p := range []Params{{MaxAttempts: -1}, {MaxSleepMS: 1 << 40}, {MinBackoffMS: 1 << 40}} {
		bad := *g
		bad.Params = old
		bad.Params.MaxAttempts, bad.Params.MaxSleepMS, bad.Params.MinBackoffMS = p.MaxAttempts, p.MaxSleepMS, p.MinBackoffMS
		err := bad.Validate()
		var key string
		switch {
		case p.MaxAttempts != 0:
			key = "params.max_attempts"
		case p.MaxSleepMS != 0:
			key = "params.max_sleep_ms"
		default:
			key = "params.min_backoff_ms"
		}
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", p, err, key)
		}
	}
}

// costlyOp is an operation of n echo tasks whose rules cel-go estimates at
// RuleCostLimit each (a comparison of every pair of a list's items).
func costlyOp(n int) string {
	var b strings.Builder
	b.WriteString(`{"name":"costly","tasks":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"t%d","run":"echo","outputs":["o%d"],"validate":"output.o%d.all(a, output.o%d.all(b, a == b))"}`, i, i, i, i)
	}
	b.WriteString("]}")
	return b.String()
}

// TestCheckRefusesCostlyRules: on a2a74ac a submission of 200 rules at
// CEL's cost limit was admitted, and every node evaluated them all
// (blocks of 24-37 s). The node now refuses it at admission, naming the
// limit.
func TestCheckRefusesCostlyRules(t *testing.T) {
	c := newTestChain(t)
	ctx := Context{Height: 1, Time: 2_000}
	err := c.m.Check(c.st, ctx, c.rawSubmission(costlyOp(200)))
	var rce *taskrt.RuleCostError
	if !errors.As(err, &rce) || !strings.Contains(err.Error(), "over the limit of 10000000 (max_operation_rule_cost)") {
		t.Fatalf("Check = %v, want a *taskrt.RuleCostError naming max_operation_rule_cost", err)
	}
	if err := c.m.Check(c.st, ctx, c.rawSubmission(costlyOp(10))); err != nil {
		t.Errorf("ten rules at the cost limit: %v", err)
	}
}

// costlyOutput is an output for costlyOp's tasks whose rule evaluation
// costs nearly RuleCostLimit: 400 equal items, compared pairwise.
func costlyOutput(task string, _ bool) (map[string]any, string) {
	list := make([]any, 400)
	for i := range list {
		list[i] = int64(1)
	}
	return map[string]any{"o" + strings.TrimPrefix(task, "t"): list}, ""
}

// propose tries entries in order as node.App.ProposeBlock does, each on a
// child of the block's overlay, and returns those that fit and the errors
// of the others.
func (c *testChain) propose(ctx Context, pending []Entry) (*Overlay, []Entry, []error) {
	prop := NewOverlay(c.st)
	var in []Entry
	var errs []error
	for _, e := range pending {
		child := NewOverlay(prop)
		got, err := c.m.Try(child, ctx, e, &Applied{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		prop.Absorb(child)
		in = append(in, got...)
	}
	return prop, in, errs
}

// proposeSome is propose for a block budget: every entry it refuses must be
// refused with sentinel naming key, and it must take some of pending but
// not all (what names them in a failure).
func (c *testChain) proposeSome(ctx Context, pending []Entry, sentinel error, key, what string) (*Overlay, []Entry, int) {
	c.t.Helper()
	prop, in, errs := c.propose(ctx, pending)
	for _, err := range errs {
		if !errors.Is(err, sentinel) || !strings.Contains(err.Error(), "("+key+")") {
			c.t.Errorf("refused with %v, want %v naming %s", err, sentinel, key)
		}
	}
	taken := len(pending) - len(errs)
	if taken < 2 || taken == len(pending) {
		c.t.Fatalf("the proposer took %d of %d %s, want some but not all", taken, len(pending), what)
	}
	return prop, in, taken
}

// TestBlockRuleBudget: on a2a74ac a block took every attestation that
// fitted the state, so one operation's costly rules made each block as
// slow as they were (24-37 s). Now a proposer stops taking attestations
// once the block's rules have cost max_block_rule_cost; the rest wait for
// the next block, and a block that carries them anyway is invalid.
func TestBlockRuleBudget(t *testing.T) {
	c := newTestChain(t)
	sub := c.rawSubmission(costlyOp(10))
	c.block(10, sub)
	id := sub.Hash()
	atts := c.attest(id, c.val, costlyOutput)
	if len(atts) != 10 {
		t.Fatalf("%d attestations, want 10", len(atts))
	}
	budget := c.m.Genesis().Params.BlockRuleCost()
	if budget != DefaultMaxBlockRuleCost {
		t.Fatalf("budget %d, want the default %d", budget, uint64(DefaultMaxBlockRuleCost))
	}

	ctx := Context{Height: c.height + 1, Time: c.time + 10}
	prop, in, taken := c.proposeSome(ctx, atts, ErrBlockBudget, "max_block_rule_cost", "costly attestations")
	if spent := prop.RuleCost(); spent < budget || spent > budget+taskrt.RuleCostLimit {
		t.Errorf("the block's rules cost %d, want from the budget %d to one rule over it", spent, budget)
	}

	// Every validator counts the same: the proposer's block is valid, and
	// the block with all ten is not, at the first attestation over budget.
	if _, err := c.m.ApplyEntries(NewOverlay(c.st), ctx, in); err != nil {
		t.Fatalf("the proposer's block: %v", err)
	}
	var all []Entry
	all = append(all, atts...)
	_, err := c.m.ApplyEntries(NewOverlay(c.st), ctx, all)
	var ee *EntryError
	if !errors.As(err, &ee) || !errors.Is(err, ErrBlockBudget) || ee.Index != taken {
		t.Errorf("a block of all ten: %v, want ErrBlockBudget at entry %d", err, taken)
	}

	// The ones left out fit the next block, and the operation completes.
	c.apply(ctx, in)
	c.height, c.time = ctx.Height, ctx.Time
	rest := c.attest(id, c.val, costlyOutput)
	if len(rest) != len(atts)-taken {
		t.Fatalf("%d attestations left after the first block, want %d", len(rest), len(atts)-taken)
	}
	ctx = Context{Height: c.height + 1, Time: c.time + 10}
	if _, in, errs := c.propose(ctx, rest); len(errs) > 0 {
		t.Fatalf("the next block refused %v", errs)
	} else {
		c.apply(ctx, in)
	}
	if st := c.op(id).Saga.Status; st != taskrt.OpCompleted {
		t.Errorf("operation %s, want completed", st)
	}
}

// A budget smaller than any rule never starves an attestation: one always
// fits a block that has evaluated nothing, after due timeouts (which
// evaluate nothing) included; the next waits.
func TestBlockRuleBudgetAlwaysTakesOne(t *testing.T) {
	c := newTestChain(t)
	c.m.genesis.Params.MaxBlockRuleCost = 1
	sub := c.rawSubmission(costlyOp(3))
	c.block(10, sub)
	atts := c.attest(sub.Hash(), c.val, costlyOutput)
	for n := 3; n > 0; n-- {
		ctx := Context{Height: c.height + 1, Time: c.time + 10}
		_, in, errs := c.propose(ctx, atts)
		if len(errs) != n-1 {
			t.Fatalf("with %d waiting, %d refused (%v), want %d", n, len(errs), errs, n-1)
		}
		c.apply(ctx, in)
		c.height, c.time = ctx.Height, ctx.Time
		atts = c.attest(sub.Hash(), c.val, costlyOutput)
	}
	if st := c.op(sub.Hash()).Saga.Status; st != taskrt.OpCompleted {
		t.Errorf("operation %s, want completed", st)
	}
}

// A batch is judged as one entry: refused while the block's budget is
// spent (it waits), and invalid if its rules may cost more than the whole
// budget, since it could otherwise carry a block far over it.
func TestBlockRuleBudgetBatches(t *testing.T) {
	c := newTestChain(t)
	sub := c.rawSubmission(costlyOp(10))
	c.block(10, sub)
	atts := c.attest(sub.Hash(), c.val, costlyOutput)
	ctx := Context{Height: c.height + 1, Time: c.time + 10}

	big := batchOf(t, c.val, atts) // ten rules estimated at RuleCostLimit
	err := c.m.Check(c.st, ctx, big)
	if err == nil || errors.Is(err, ErrBlockBudget) || !strings.Contains(err.Error(), "may cost 10000000, over the limit of 5000000 (max_block_rule_cost)") {
		t.Errorf("Check of a batch over the whole budget = %v", err)
	}
	if got := c.m.BatchRuleCost(c.st, []AttestationItem{{Operation: sub.Hash(), Task: "t0"}, {Operation: sub.Hash(), Task: "t1", Rollback: true}, {Task: "none"}}); got != taskrt.RuleCostLimit {
		t.Errorf("BatchRuleCost = %d, want one rule's %d (a rollback and an unknown task cost nothing)", got, taskrt.RuleCostLimit)
	}

	// Five, then one alone, spend the budget; a batch of the other four
	// waits.
	small := batchOf(t, c.val, atts[:5])
	rest := batchOf(t, c.val, atts[6:])
	_, in, errs := c.propose(ctx, []Entry{small, atts[5], rest})
	if len(errs) != 1 || !errors.Is(errs[0], ErrBlockBudget) {
		t.Fatalf("a batch of five, one, a batch of four: refused %v, want the last to wait with ErrBlockBudget", errs)
	}
	c.apply(ctx, in)
	c.height, c.time = ctx.Height, ctx.Time
	ctx = Context{Height: c.height + 1, Time: c.time + 10}
	if _, in, errs := c.propose(ctx, []Entry{rest}); len(errs) > 0 {
		t.Fatalf("the waiting batch: %v", errs)
	} else {
		c.apply(ctx, in)
	}
	if st := c.op(sub.Hash()).Saga.Status; st != taskrt.OpCompleted {
		t.Errorf("operation %s, want completed", st)
	}
}
