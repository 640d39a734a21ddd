package taskrt

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Load. Nothing may panic; a refusal
// must say something; an accepted operation must plan, and must survive a
// round trip through its JSON form unchanged.
func FuzzDecode(f *testing.F) {
	for _, pattern := range []string{"../testnet/ops/*.yaml", "testdata/plans/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	for _, s := range []string{
		"",
		"name: x\ntasks: [{id: a, run: echo}]",
		`{"name": "x", "tasks": [{"id": "a", "run": "echo", "params": {"n": 1e3, "f": 0.5}}]}`,
		"name: x\ntasks:\n  - id: a\n    run: echo\n    rolback: noop\n",
		"name: x\ntasks: [{id: a, run: echo, inputs: [b], outputs: [b]}]",
		"name: x\ntasks: [{id: a, run: echo, after: [b]}, {id: b, run: echo, after: [a]}]",
		"name: x\ntimeout: -1s\ntasks: [{id: a, run: echo, retry: {attempts: 0}}]",
		"name: [x\n",
		"- a\n- b\n",
		"name: x\n---\nname: y\n",
		"name: &a x\ntasks: *a\n",
		"name: !!str x\n",
		"name: x\ninputs: {a: .nan, b: 1e999}\n",
		"name: x\ninputs: {a: [[[[[[[[[[]]]]]]]]]]}\ntasks: [{id: a, run: echo}]",
		"name: x\ntasks:\n- id: a\n  run: echo\n  validate: |\n    output.x == 1\n  timeout: 0\n",
		"\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// NewPlan must be safe on whatever Decode lets through.
		if raw, err := Decode(data); err == nil {
			_, _ = NewPlan(raw)
		}
		op, err := Load(data, nil, DefaultLimits())
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("Load refused %q with an empty message", data)
			}
			return
		}
		p, err := NewPlan(op)
		if err != nil {
			t.Fatalf("checked operation does not plan: %v", err)
		}
		checkPlanInvariants(t, p)
		js, err := json.Marshal(op)
		if err != nil {
			t.Fatalf("accepted operation has no JSON form: %v", err)
		}
		back, err := Decode(js)
		if err != nil {
			t.Fatalf("JSON form %s does not decode: %v", js, err)
		}
		if !reflect.DeepEqual(back, op) {
			t.Fatalf("JSON round trip changed the operation:\nbefore %#v\nafter  %#v\njson %s", op, back, js)
		}
	})
}
