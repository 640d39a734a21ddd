package taskrt

import (
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// specRule is the validate rule of SPEC §1's example.
const specRule = `output.flight.confirmation.matches("^[A-Z0-9]{6}$")`

func mustCompileRule(t testing.TB, src string) *Rule {
	t.Helper()
	r, err := CompileRule(src)
	if err != nil {
		t.Fatalf("CompileRule(%q): %v", src, err)
	}
	return r
}

func TestCompileRuleErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // substrings of the error
	}{
		{"syntax", `output.x ==`, []string{"validate: ERROR: <input>:1:", "Syntax error", "output.x =="}},
		{"unbalanced", `(output.x == 1`, []string{"validate: ERROR: <input>:1:", "Syntax error"}},
		{"int result", `1 + 2`, []string{"validate: rule `1 + 2` returns int, want bool"}},
		{"string result", `params.class + "x"`, []string{"returns string, want bool"}},
		{"list result", `[true]`, []string{"returns list(bool), want bool"}},
		{"unknown variable", `foo.bar == 1`, []string{"undeclared reference to 'foo'", "foo.bar == 1"}},
		{"misspelt variable", `outputs.x == 1`, []string{"undeclared reference to 'outputs'"}},
		{"no clock", `now() > timestamp("2024-01-01T00:00:00Z")`, []string{"undeclared reference to 'now'"}},
		{"no randomness", `random() > 0.5`, []string{"undeclared reference to 'random'"}},
		{"no extension strings", `params.s.lowerAscii() == "a"`, []string{"undeclared reference to 'lowerAscii'"}},
		{"blank", "  \n", []string{"validate: rule is blank"}},
		{"bad regex constant", `output.s.matches("(")`, []string{"validate: rule", "missing closing )"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := CompileRule(tt.src)
			if err == nil {
				t.Fatalf("CompileRule(%q) = %v, want an error", tt.src, r.Source())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CompileRule(%q) error %q does not contain %q", tt.src, err, w)
				}
			}
		})
	}
}

func TestCompileRules(t *testing.T) {
	op := &Operation{Name: "trip", Tasks: []Task{
		{ID: "flight", Run: "echo", Validate: specRule},
		{ID: "car", Run: "echo"},
		{ID: "hotel", Run: "echo", Validate: `output.hotel == "x"`},
	}}
	rules, err := CompileRules(op)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != len(op.Tasks) {
		t.Fatalf("got %d rules for %d tasks", len(rules), len(op.Tasks))
	}
	for i, r := range rules {
		if r.Source() != op.Tasks[i].Validate {
			t.Errorf("rule %d has source %q, want task %q's %q", i, r.Source(), op.Tasks[i].ID, op.Tasks[i].Validate)
		}
	}

	op.Tasks[2].Validate = `output.hotel ==`
	_, err = CompileRules(op)
	if err == nil {
		t.Fatal("CompileRules accepted a rule with a syntax error")
	}
	if want := `task "hotel": validate: ERROR: <input>:1:`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

func TestRuleEval(t *testing.T) {
	flight := func(conf string) map[string]any {
		return map[string]any{"flight": map[string]any{"confirmation": conf}}
	}
	tests := []struct {
		name   string
		src    string
		output map[string]any
		inputs map[string]any
		params map[string]any
		want   bool
	}{
		{"spec regex ok", specRule, flight("AB12CD"), nil, nil, true},
		{"spec regex lower case", specRule, flight("ab12cd"), nil, nil, false},
		{"spec regex too short", specRule, flight("AB12C"), nil, nil, false},
		{"spec regex too long", specRule, flight("AB12CDE"), nil, nil, false},
		{"inputs", `inputs.traveler == "Ada Lovelace"`, nil, map[string]any{"traveler": "Ada Lovelace"}, nil, true},
		{"inputs differ", `inputs.traveler == "Ada Lovelace"`, nil, map[string]any{"traveler": "Charles"}, nil, false},
		{"params", `params.class == "economy" && output.seat.startsWith("E")`,
			map[string]any{"seat": "E12"}, nil, map[string]any{"class": "economy"}, true},
		{"output against params", `output.price <= params.max`,
			map[string]any{"price": int64(120)}, nil, map[string]any{"max": float64(100)}, false},
		{"int below double", `output.price < 100.5`, map[string]any{"price": int64(100)}, nil, nil, true},
		{"int above double", `output.price < 100.5`, map[string]any{"price": int64(101)}, nil, nil, false},
		{"double equals int", `output.n == 3`, map[string]any{"n": float64(3)}, nil, nil, true},
		{"double not equal int", `output.n == 3`, map[string]any{"n": 3.5}, nil, nil, false},
		{"int equals double", `output.n == 3.0`, map[string]any{"n": int64(3)}, nil, nil, true},
		{"double above int", `output.n > 2`, map[string]any{"n": 2.5}, nil, nil, true},
		{"constant cross-type", `1.5 < 2`, nil, nil, nil, true},
		{"null", `output.x == null`, map[string]any{"x": nil}, nil, nil, true},
		{"has present", `has(output.x)`, map[string]any{"x": false}, nil, nil, true},
		{"has missing", `has(output.x)`, map[string]any{"y": 1}, nil, nil, false},
		{"in", `"x" in output`, map[string]any{"x": 1}, nil, nil, true},
		{"list size", `output.items.size() == 2`, map[string]any{"items": []any{"a", "b"}}, nil, nil, true},
		{"list of maps", `output.items.exists(i, i.sku == "b" && i.qty >= 2)`,
			map[string]any{"items": []any{
				map[string]any{"sku": "a", "qty": int64(1)},
				map[string]any{"sku": "b", "qty": int64(2)},
			}}, nil, nil, true},
		{"dyn bool result", `output.ok`, map[string]any{"ok": true}, nil, nil, true},
		{"dyn bool false", `output.ok`, map[string]any{"ok": false}, nil, nil, false},
		{"timestamp literal", `timestamp(output.at) < timestamp("2025-01-01T00:00:00Z")`,
			map[string]any{"at": "2024-06-01T12:00:00Z"}, nil, nil, true},
		// getHours() reads UTC, whatever zone the node runs in and whatever
		// offset the literal carries.
		{"utc hours", `timestamp("2024-01-01T05:00:00+05:00").getHours() == 0`, nil, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustCompileRule(t, tt.src)
			got, err := r.Eval(tt.output, tt.inputs, tt.params)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if got != tt.want {
				t.Errorf("%s on output %v inputs %v params %v = %v, want %v", tt.src, tt.output, tt.inputs, tt.params, got, tt.want)
			}
		})
	}
}

func TestRuleEvalErrors(t *testing.T) {
	tests := []struct {
		name, src string
		output    map[string]any
		want      string
	}{
		{"missing key", specRule, map[string]any{"hotel": "x"}, "no such key: flight"},
		{"missing nested key", specRule, map[string]any{"flight": map[string]any{}}, "no such key: confirmation"},
		{"not a bool", `output.ok`, map[string]any{"ok": "yes"}, "returned string, want bool"},
		{"no overload", `output.n < "x"`, map[string]any{"n": int64(1)}, "no such overload"},
		{"regex on number", specRule, map[string]any{"flight": map[string]any{"confirmation": int64(7)}}, "no such overload"},
		{"division by zero", `output.n / 0 == 1`, map[string]any{"n": int64(1)}, "division by zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustCompileRule(t, tt.src)
			got, err := r.Eval(tt.output, nil, nil)
			if err == nil {
				t.Fatalf("Eval = %v, want an error", got)
			}
			if got {
				t.Error("Eval returned true with an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.src) {
				t.Errorf("error %q does not name the rule %q", err, tt.src)
			}
		})
	}
}

func TestRuleCostLimit(t *testing.T) {
	// Three nested comprehensions over n elements do n³ steps.
	const src = `params.big.all(x, params.big.all(y, params.big.all(z, x + y + z >= 0)))`
	r := mustCompileRule(t, src)
	list := func(n int) map[string]any {
		l := make([]any, n)
		for i := range l {
			l[i] = int64(i)
		}
		return map[string]any{"big": l}
	}
	// A small list stays within the limit, so the failure below is the cost.
	if ok, err := r.Eval(nil, nil, list(10)); err != nil || !ok {
		t.Fatalf("Eval on 10 elements = %v, %v; want true, nil", ok, err)
	}
	ok, err := r.Eval(nil, nil, list(1000))
	if err == nil {
		t.Fatalf("Eval on 1000 elements = %v, want a cost limit error", ok)
	}
	if ok {
		t.Error("Eval returned true with an error")
	}
	if !strings.Contains(err.Error(), "cost limit exceeded") || !strings.Contains(err.Error(), src) {
		t.Errorf("error %q should name the cost limit and the rule", err)
	}
}

func TestRuleEmpty(t *testing.T) {
	r := mustCompileRule(t, "")
	var nilRule *Rule
	for name, r := range map[string]*Rule{"empty": r, "nil": nilRule} {
		ok, err := r.Eval(map[string]any{"x": 1}, nil, nil)
		if err != nil || !ok {
			t.Errorf("%s rule: Eval = %v, %v; want true, nil", name, ok, err)
		}
		if r.Source() != "" {
			t.Errorf("%s rule: Source = %q", name, r.Source())
		}
		// Keccak-256 of the empty string.
		const want = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
		if h := r.Hash(); hex.EncodeToString(h[:]) != want {
			t.Errorf("%s rule: Hash = %x, want %s", name, h, want)
		}
	}
}

func TestRuleHash(t *testing.T) {
	a1 := mustCompileRule(t, specRule)
	a2 := mustCompileRule(t, specRule)
	b := mustCompileRule(t, specRule+" ")
	if a1.Hash() != a2.Hash() {
		t.Errorf("one source, two hashes: %x and %x", a1.Hash(), a2.Hash())
	}
	if a1.Hash() == b.Hash() {
		t.Errorf("sources %q and %q share hash %x", a1.Source(), b.Source(), a1.Hash())
	}
	if h := mustCompileRule(t, "").Hash(); a1.Hash() == h {
		t.Errorf("rule %q has the empty rule's hash", specRule)
	}
}

func TestRuleReason(t *testing.T) {
	r := mustCompileRule(t, specRule)
	if got, want := r.Reason(), "rule returned false: "+specRule; got != want {
		t.Errorf("Reason = %q, want %q", got, want)
	}
}

// TestRuleMapOrder checks that comprehensions over a map see its keys in
// sorted order. Go randomises map iteration, so without sorting these rules
// would give different verdicts on different runs and nodes.
func TestRuleMapOrder(t *testing.T) {
	output := map[string]any{
		"e": int64(5), "b": int64(2), "d": int64(4), "a": int64(1), "c": int64(3),
		"nested": []any{map[string]any{"z": 1.0, "y": 2.0, "x": 3.0, "w": 4.0}},
	}
	rules := []*Rule{
		mustCompileRule(t, `output.map(k, k) == ["a", "b", "c", "d", "e", "nested"]`),
		mustCompileRule(t, `output.filter(k, k != "nested").map(k, output[k]) == [1, 2, 3, 4, 5]`),
		mustCompileRule(t, `output.nested[0].map(k, k) == ["w", "x", "y", "z"]`),
		mustCompileRule(t, `inputs.map(k, k) == ["a", "b"]`),
		// Maps built by the rule itself.
		mustCompileRule(t, `{"b": 1, "a": 2, "e": 3, "d": 4, "c": 5}.map(k, k) == ["a", "b", "c", "d", "e"]`),
		mustCompileRule(t, `{"b": output.b, "a": output.a, "c": 0}.map(k, k) == ["a", "b", "c"]`),
		mustCompileRule(t, `[{"z": 1, "y": 2, "x": 3}][0].map(k, k) == ["x", "y", "z"]`),
		mustCompileRule(t, `{"x": 1, 2: 1, true: 1, 1: 1, 3u: 1}.map(k, string(k)) == ["true", "1", "2", "3", "x"]`),
	}
	inputs := map[string]any{"b": nil, "a": nil}
	for i := 0; i < 50; i++ {
		for _, r := range rules {
			ok, err := r.Eval(output, inputs, nil)
			if err != nil || !ok {
				t.Fatalf("run %d: %s = %v, %v; want true", i, r.Source(), ok, err)
			}
		}
	}
}

func TestRuleDeterministic(t *testing.T) {
	srcs := []string{
		specRule,
		`output.flight.confirmation.size() == params.len && inputs.seats.all(s, s > 0)`,
		`output.exists(k, k.startsWith("fl"))`,
	}
	output := map[string]any{"flight": map[string]any{"confirmation": "AB12CD"}, "car": "x", "hotel": "y"}
	inputs := map[string]any{"seats": []any{int64(1), 2.5, int64(3)}}
	params := map[string]any{"len": int64(6)}
	for _, src := range srcs {
		// Two compilations of one source, evaluated concurrently, agree.
		rs := []*Rule{mustCompileRule(t, src), mustCompileRule(t, src)}
		want, err := rs[0].Eval(output, inputs, params)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := 0; i < 32; i++ {
			r := rs[i%2]
			wg.Go(func() {
				got, err := r.Eval(output, inputs, params)
				if err != nil {
					errs <- err
				} else if got != want {
					errs <- fmt.Errorf("%s: verdict %v, want %v", src, got, want)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}
