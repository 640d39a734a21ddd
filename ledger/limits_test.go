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
