package taskrt

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"
	"github.com/ethereum/go-ethereum/crypto"
)

// RuleCostLimit bounds the work one evaluation of a rule may do, in CEL's
// cost units (roughly one per operation, more for string and list work). Every
// node evaluates every rule on the ledger, so a rule must not be able to
// stall block application; a rule that exceeds the limit fails with an error.
const RuleCostLimit = 1_000_000

// Rule is a compiled validate rule (SPEC §1): a CEL expression over the
// variables output, inputs and params that returns a bool. A Rule is safe for
// concurrent use. A nil *Rule, like a Rule compiled from an empty source, is
// always true.
type Rule struct {
	source  string
	hash    [32]byte
	program cel.Program   // nil for the empty rule
	adapter types.Adapter // the environment's, converting Eval's arguments
	ast     *cel.Ast      // the checked rule, for MaxCost
}

// ruleEnv is built once: building a CEL environment costs far more than
// compiling a rule with it.
var ruleEnv = sync.OnceValues(newRuleEnv)

// newRuleEnv declares the three rule variables on CEL's standard library only.
// No extension library is added, so a rule has no clock (no now()), no
// randomness and no I/O: its verdict depends on its variables alone.
func newRuleEnv() (*cel.Env, error) {
	dynMap := cel.MapType(cel.StringType, cel.DynType)
	base, err := cel.NewEnv(
		cel.Variable("output", dynMap),
		cel.Variable("inputs", dynMap),
		cel.Variable("params", dynMap),
		// 1.5 < 2 type-checks, as dyn values already compare across numeric types.
		cel.CrossTypeNumericComparisons(true),
		// getHours() and friends must not depend on the zone a node runs in.
		cel.DefaultUTCTimeZone(true),
	)
	if err != nil {
		return nil, err
	}
	return base.Extend(cel.CustomTypeAdapter(sortedAdapter{base.CELTypeAdapter()}))
}

// CompileRule compiles a validate rule. The empty source is the rule that is
// always true. The rule must type-check with output, inputs and params as
// map(string, dyn) and return bool; a rule whose type is only known at run
// time (dyn, as in `output.ok`) compiles, and Eval rejects a non-bool result.
func CompileRule(src string) (*Rule, error) {
	r := &Rule{source: src, hash: crypto.Keccak256Hash([]byte(src))}
	if src == "" {
		return r, nil
	}
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("validate: rule is blank (omit it for a rule that is always true)")
	}
	env, err := ruleEnv()
	if err != nil {
		return nil, fmt.Errorf("validate: CEL environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("validate: %w", iss.Err())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsDyn() {
		return nil, fmt.Errorf("validate: rule `%s` returns %s, want bool", src, t)
	}
	prg, err := env.Program(ast,
		cel.CostLimit(RuleCostLimit),
		// Precompiles constant regular expressions, such as the pattern of
		// matches(), once per rule instead of once per evaluation.
		cel.EvalOptions(cel.OptOptimize),
		cel.CustomDecoratorV2(sortMapLiterals),
	)
	if err != nil {
		return nil, fmt.Errorf("validate: rule `%s`: %w", src, err)
	}
	r.program = prg
	r.adapter = env.CELTypeAdapter()
	r.ast = ast
	return r, nil
}

// MaxCost returns the most an evaluation of the rule can cost, in CEL's
// cost units: cel-go's static estimate, given that no string, list or map
// in output is larger than outputBytes and none in inputs or params larger
// than otherBytes, and at most RuleCostLimit, where evaluation stops. The
// estimate is a function of the source and the sizes alone, so every node
// computes the same. The empty rule costs nothing.
func (r *Rule) MaxCost(outputBytes, otherBytes int) uint64 {
	if r == nil || r.ast == nil {
		return 0
	}
	env, err := ruleEnv()
	if err != nil {
		return RuleCostLimit // cannot happen once the rule compiled
	}
	est, err := env.EstimateCost(r.ast, sizeHints{output: uint64(max(outputBytes, 0)), other: uint64(max(otherBytes, 0))})
	if err != nil {
		return RuleCostLimit
	}
	return min(est.Max, RuleCostLimit)
}

// sizeHints bounds the size of every value a rule's variables hold: a
// value of a task's output cannot be longer than the output's JSON, nor
// one of its inputs or params longer than the operation file or an
// output. Without hints cel-go assumes any size, and every rule that looks
// at a string or a list is estimated at the maximum.
type sizeHints struct{ output, other uint64 }

// EstimateSize implements cost.Estimator.
func (h sizeHints) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	p := n.Path()
	if len(p) == 0 {
		return nil
	}
	size := h.other
	if p[0] == "output" {
		size = h.output
	}
	return &cost.SizeEstimate{Min: 0, Max: size}
}

// EstimateCallCost implements cost.Estimator: the standard library's own
// estimates are the right ones.
func (sizeHints) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// RuleCostError reports an operation whose rules may cost more, together,
// than the limit. Every node evaluates every rule on the ledger, so this
// sum is what one operation can make each of them do.
type RuleCostError struct {
	// Cost is the sum of the rules' MaxCost; Limit the limit it exceeds.
	Cost, Limit uint64
	// Task is the task whose rule costs most, and TaskCost its cost.
	Task     string
	TaskCost uint64
}

// Error names the operation's cost, the limit's key and the dearest rule.
func (e *RuleCostError) Error() string {
	return fmt.Sprintf("the rules of the operation may cost %d, over the limit of %d (max_operation_rule_cost); the dearest is task %q's, at %d",
		e.Cost, e.Limit, e.Task, e.TaskCost)
}

// CheckRuleCost returns the MaxCost of each rule of op (rules[i] is task
// i's, as [CompileRules] returns them), with sizes bounded by l, or a
// [*RuleCostError] when their sum is over l.MaxRuleCost (zero means
// DefaultMaxRuleCost).
func CheckRuleCost(op *Operation, rules []*Rule, l Limits) ([]uint64, error) {
	l = l.withDefaults()
	other := max(l.MaxFileBytes, l.MaxOutputBytes)
	costs := make([]uint64, len(rules))
	var total, dearest uint64
	task := ""
	for i, r := range rules {
		c := r.MaxCost(l.MaxOutputBytes, other)
		costs[i] = c
		total += c // at most 10,000 rules of at most RuleCostLimit: no overflow
		if c > dearest && i < len(op.Tasks) {
			dearest, task = c, op.Tasks[i].ID
		}
	}
	if total > l.MaxRuleCost {
		return costs, &RuleCostError{Cost: total, Limit: l.MaxRuleCost, Task: task, TaskCost: dearest}
	}
	return costs, nil
}

// CompileRules compiles the validate rule of every task of op, in task order,
// so that each rule is compiled once per operation. The error names the task.
func CompileRules(op *Operation) ([]*Rule, error) {
	rules := make([]*Rule, len(op.Tasks))
	for i := range op.Tasks {
		r, err := CompileRule(op.Tasks[i].Validate)
		if err != nil {
			return nil, fmt.Errorf("task %q: %w", op.Tasks[i].ID, err)
		}
		rules[i] = r
	}
	return rules, nil
}

// Source returns the rule's CEL text, empty for the rule that is always true.
func (r *Rule) Source() string {
	if r == nil {
		return ""
	}
	return r.source
}

// Hash returns the Keccak-256 hash of the rule's source, which stage records
// carry so that a node can tell which rule it is asked to evaluate.
func (r *Rule) Hash() [32]byte {
	if r == nil {
		return crypto.Keccak256Hash(nil)
	}
	return r.hash
}

// Reason returns the failure reason to record when the rule returns false.
func (r *Rule) Reason() string {
	return fmt.Sprintf("rule returned false: %s", r.Source())
}

// Eval evaluates the rule on a task's output, the inputs it consumed and its
// params, which must hold normalised JSON values (map[string]any, []any,
// string, bool, nil, int64, float64). A nil map is empty. The verdict depends
// on these values alone. A run-time error (a missing key, the cost limit, a
// result that is not a bool) returns false and an error naming the rule.
func (r *Rule) Eval(output, inputs, params map[string]any) (bool, error) {
	ok, _, err := r.EvalCost(output, inputs, params)
	return ok, err
}

// EvalCost is Eval that also returns what the evaluation cost, in CEL's
// cost units, at most RuleCostLimit: cel-go's count of the work done,
// which depends on the rule and the values alone (maps iterate in sorted
// order), so every node counts the same for one evaluation. An evaluation
// stopped by the cost limit costs RuleCostLimit; the empty rule costs 0.
func (r *Rule) EvalCost(output, inputs, params map[string]any) (bool, uint64, error) {
	if r == nil || r.program == nil {
		return true, 0, nil
	}
	vars := map[string]any{
		"output": r.adapter.NativeToValue(emptyIfNil(output)),
		"inputs": r.adapter.NativeToValue(emptyIfNil(inputs)),
		"params": r.adapter.NativeToValue(emptyIfNil(params)),
	}
	v, det, err := r.program.Eval(vars)
	cost := uint64(RuleCostLimit)
	if det != nil {
		if c := det.ActualCost(); c != nil {
			cost = min(*c, RuleCostLimit)
		}
	}
	if err != nil {
		return false, cost, fmt.Errorf("rule `%s`: %w", r.source, err)
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, cost, fmt.Errorf("rule `%s`: returned %s, want bool", r.source, v.Type().TypeName())
	}
	return bool(b), cost, nil
}

func emptyIfNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// CEL's maps iterate in Go map order, which differs from run to run: without
// the types below, `output.map(k, k)[0]`, or the cost of an `exists` that
// stops early, could differ between two evaluations or two nodes. Maps reach
// a rule in two ways, both covered: as values of its variables, which go
// through the environment's adapter (sortedAdapter), and as map literals,
// which the program builds (sortMapLiterals).

// sortedAdapter converts Go values to CEL values, giving every
// map[string]any a sorted iteration order.
type sortedAdapter struct{ types.Adapter }

// NativeToValue implements types.Adapter.
func (a sortedAdapter) NativeToValue(v any) ref.Val {
	switch v := v.(type) {
	case map[string]any:
		// The map converts its values through a, for nested maps.
		return &sortedMap{Mapper: types.NewStringInterfaceMap(a, v)}
	case []any:
		// Likewise for maps in lists.
		return types.NewDynamicList(a, v)
	}
	return a.Adapter.NativeToValue(v)
}

// sortMapLiterals makes the maps that a rule's map literals build iterate in
// sorted order.
func sortMapLiterals(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	if c, ok := i.(interpreter.InterpretableConstructor); ok && c.Type().TypeName() == types.MapType.TypeName() {
		return sortedMapLiteral{i}, nil
	}
	return i, nil
}

// sortedMapLiteral evaluates a map literal to a [sortedMap].
type sortedMapLiteral struct{ interpreter.InterpretableV2 }

// Exec implements interpreter.InterpretableV2.
func (l sortedMapLiteral) Exec(f *interpreter.ExecutionFrame) ref.Val {
	return sortedMapOf(l.InterpretableV2.Exec(f))
}

// Eval implements interpreter.Interpretable.
func (l sortedMapLiteral) Eval(a interpreter.Activation) ref.Val {
	return sortedMapOf(l.InterpretableV2.Eval(a))
}

func sortedMapOf(v ref.Val) ref.Val {
	if m, ok := v.(traits.Mapper); ok {
		return &sortedMap{Mapper: m}
	}
	return v // an error or unknown
}

// sortedMap is a CEL map whose iteration (comprehensions, fold) follows its
// sorted keys. Lookups go to the wrapped map.
type sortedMap struct {
	traits.Mapper
	// keys are sorted on first iteration: most rules only look keys up.
	once sync.Once
	keys []ref.Val
}

func (s *sortedMap) sortedKeys() []ref.Val {
	s.once.Do(func() {
		for it := s.Mapper.Iterator(); it.HasNext() == types.True; {
			s.keys = append(s.keys, it.Next())
		}
		slices.SortFunc(s.keys, compareKeys)
	})
	return s.keys
}

// Iterator implements traits.Iterable.
func (s *sortedMap) Iterator() traits.Iterator {
	return types.NewRefValList(types.DefaultTypeAdapter, s.sortedKeys()).Iterator()
}

// Fold implements traits.Foldable, which CEL's comprehensions prefer to
// Iterator.
func (s *sortedMap) Fold(f traits.Folder) {
	for _, k := range s.sortedKeys() {
		if !f.FoldEntry(k, s.Mapper.Get(k)) {
			return
		}
	}
}

// compareKeys orders CEL map keys, which are bools, ints, uints or strings:
// by kind in that order, then by value.
func compareKeys(a, b ref.Val) int {
	if c := cmp.Compare(keyKind(a), keyKind(b)); c != 0 {
		return c
	}
	switch a := a.(type) {
	case types.Bool:
		return cmp.Compare(boolRank(bool(a)), boolRank(bool(b.(types.Bool))))
	case types.Int:
		return cmp.Compare(a, b.(types.Int))
	case types.Uint:
		return cmp.Compare(a, b.(types.Uint))
	case types.String:
		return cmp.Compare(a, b.(types.String))
	}
	// No other type can be a map key; order what cannot occur by its text.
	return cmp.Compare(fmt.Sprint(a.Value()), fmt.Sprint(b.Value()))
}

func keyKind(v ref.Val) int {
	switch v.(type) {
	case types.Bool:
		return 0
	case types.Int:
		return 1
	case types.Uint:
		return 2
	case types.String:
		return 3
	}
	return 4
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
