package taskrt

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// The repo's example operations (the testnet's, which the demo submits, and
// the end-to-end tests') pass the default rule budget with a wide margin.
// The log lists what each costs (go test -v -run TestRuleCostOfExamples).
func TestRuleCostOfExamples(t *testing.T) {
	var files []string
	for _, g := range []string{"../testnet/ops/*.yaml", "../testnet/e2e/testdata/*.yaml"} {
		f, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	if len(files) < 7 {
		t.Fatalf("found %d example operations, want at least 7", len(files))
	}
	for _, f := range files {
		op := loadExample(t, f)
		rules, err := CompileRules(op)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		costs, err := CheckRuleCost(op, rules, DefaultLimits())
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
		cost := sum(costs)
		if cost > DefaultMaxRuleCost/10 {
			t.Errorf("%s: rules cost %d, within a tenth of the default budget %d", f, cost, uint64(DefaultMaxRuleCost))
		}
		t.Logf("%-40s %d tasks, rules cost %d", filepath.Base(f), len(op.Tasks), cost)
	}
}

// TestRuleCostRefusesCostlyOperations: on a2a74ac nothing capped an
// operation's rules together, and 200 rules at the cost limit stretched
// blocks to 24-37 s. The sum of cel-go's estimates is now bounded.
func TestRuleCostRefusesCostlyOperations(t *testing.T) {
	build := func(n int, rule string) *Operation {
		var b strings.Builder
		b.WriteString("name: costly\ntasks:\n")
		for i := range n {
			fmt.Fprintf(&b, "- {id: t%d, run: echo, outputs: [o%d], validate: '%s'}\n", i, i, strings.ReplaceAll(rule, "L", fmt.Sprintf("o%d", i)))
		}
		op, err := Load([]byte(b.String()), nil, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	quadratic := "output.L.all(a, output.L.all(b, a == b))" // estimated far above RuleCostLimit
	op := build(200, quadratic)
	rules, err := CompileRules(op)
	if err != nil {
		t.Fatal(err)
	}
	if c := rules[0].MaxCost(64<<10, 1<<20); c != RuleCostLimit {
		t.Errorf("MaxCost of %q = %d, want it capped at RuleCostLimit %d", rules[0].Source(), c, RuleCostLimit)
	}
	costs, err := CheckRuleCost(op, rules, DefaultLimits())
	var rce *RuleCostError
	if cost := sum(costs); !errors.As(err, &rce) || cost != 200*RuleCostLimit || rce.Cost != cost {
		t.Fatalf("CheckRuleCost = %d, %v; want %d and a *RuleCostError", sum(costs), err, 200*RuleCostLimit)
	}
	want := `the rules of the operation may cost 200000000, over the limit of 10000000 (max_operation_rule_cost); the dearest is task "t0"'s, at 1000000`
	if err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}

	// Ten at the limit fit, and a chain may allow fewer.
	op = build(10, quadratic)
	rules, _ = CompileRules(op)
	if _, err := CheckRuleCost(op, rules, DefaultLimits()); err != nil {
		t.Errorf("ten rules at the cost limit: %v", err)
	}
	l := DefaultLimits()
	l.MaxRuleCost = 5 * RuleCostLimit
	if _, err := CheckRuleCost(op, rules, l); !errors.As(err, &rce) || rce.Limit != 5*RuleCostLimit {
		t.Errorf("a budget of 5 rules at the limit: %v", err)
	}

	// The budget is about the worst case, not the count: the largest
	// operation allowed, with a cheap rule each, passes.
	op = build(10_000, "output.L > 0")
	rules, _ = CompileRules(op)
	if costs, err := CheckRuleCost(op, rules, DefaultLimits()); err != nil {
		t.Errorf("10,000 comparisons: %d, %v", sum(costs), err)
	}

	// The size hints matter: the output limit bounds what a string
	// function can cost.
	r := mustCompileRule(t, `output.s.matches("^[A-Z0-9]{6}$")`)
	if small, large := r.MaxCost(1<<10, 1<<10), r.MaxCost(64<<10, 1<<10); small == 0 || small >= large || large >= RuleCostLimit {
		t.Errorf("matches() costs %d with 1 KiB outputs and %d with 64 KiB, want 0 < small < large < RuleCostLimit", small, large)
	}
	if c := (*Rule)(nil).MaxCost(64<<10, 1<<20); c != 0 {
		t.Errorf("the empty rule costs %d", c)
	}
}

func sum(costs []uint64) uint64 {
	var n uint64
	for _, c := range costs {
		n += c
	}
	return n
}

// EvalCost counts what cel-go counts, the same on every evaluation of the
// same values, and RuleCostLimit for an evaluation the limit stopped.
func TestEvalCost(t *testing.T) {
	r := mustCompileRule(t, "output.x.all(a, a > 0)")
	small := map[string]any{"x": []any{int64(1), int64(2)}}
	large := map[string]any{"x": make([]any, 0, 500)}
	for i := range 500 {
		large["x"] = append(large["x"].([]any), int64(i+1))
	}
	ok, c1, err := r.EvalCost(small, nil, nil)
	if err != nil || !ok || c1 == 0 {
		t.Fatalf("EvalCost(small) = %v, %d, %v", ok, c1, err)
	}
	_, c2, _ := r.EvalCost(large, nil, nil)
	_, c3, _ := r.EvalCost(large, nil, nil)
	if c2 <= c1 || c2 != c3 {
		t.Errorf("costs small %d, large %d then %d: want large > small, and equal twice", c1, c2, c3)
	}
	huge := mustCompileRule(t, "output.x.all(a, output.x.all(b, a == b))")
	big := make([]any, 2000)
	for i := range big {
		big[i] = "v"
	}
	if _, c, err := huge.EvalCost(map[string]any{"x": big}, nil, nil); err == nil || c != RuleCostLimit {
		t.Errorf("a rule stopped by the cost limit: cost %d, err %v; want %d and an error", c, err, RuleCostLimit)
	}
	if ok, c, err := (*Rule)(nil).EvalCost(nil, nil, nil); !ok || c != 0 || err != nil {
		t.Errorf("the empty rule: %v, %d, %v", ok, c, err)
	}
}
