package taskrt

import "testing"

func BenchmarkRuleEval(b *testing.B) {
	r := mustCompileRule(b, specRule)
	output := map[string]any{"flight": map[string]any{"confirmation": "AB12CD", "price": int64(420)}}
	inputs := map[string]any{"traveler": "Ada Lovelace"}
	params := map[string]any{"class": "economy"}
	b.ReportAllocs()
	for b.Loop() {
		ok, err := r.Eval(output, inputs, params)
		if err != nil || !ok {
			b.Fatalf("Eval = %v, %v", ok, err)
		}
	}
}

func BenchmarkCompileRule(b *testing.B) {
	if _, err := CompileRule(specRule); err != nil { // builds the shared environment
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CompileRule(specRule); err != nil {
			b.Fatal(err)
		}
	}
}
