package taskrt

import (
	"errors"
	"fmt"
	"os"
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
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		op, err := Load(data, nil, DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		rules, err := CompileRules(op)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		cost, err := CheckRuleCost(op, rules, DefaultLimits())
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
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
	cost, err := CheckRuleCost(op, rules, DefaultLimits())
	var rce *RuleCostError
	if !errors.As(err, &rce) || cost != 200*RuleCostLimit {
		t.Fatalf("CheckRuleCost = %d, %v; want %d and a *RuleCostError", cost, err, 200*RuleCostLimit)
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
	if cost, err := CheckRuleCost(op, rules, DefaultLimits()); err != nil {
		t.Errorf("10,000 comparisons: %d, %v", cost, err)
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
