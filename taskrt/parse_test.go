package taskrt

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func TestDecodeFields(t *testing.T) {
	src := `
name: book-trip
inputs:
  traveler: "Ada Lovelace"
  seats: 2
timeout: 10m
defaults:
  timeout: 30s
  retry: {attempts: 3, backoff: 200ms}
tasks:
  - id: 211
    run: airline.reserve
    rollback: airline.cancel
    inputs: [traveler]
    outputs: [flight]
    after: []
    params: {class: economy}
    validate: |
      output.flight != ""
    timeout: 1m30s
    retry: {attempts: 5, backoff: 0}
  - id: hotel
    run: hotel.book
    rollback: null
    inputs: []
    params: {}
`
	op, err := Decode([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &Operation{
		Name:    "book-trip",
		Inputs:  map[string]any{"traveler": "Ada Lovelace", "seats": int64(2)},
		Timeout: Duration(10 * time.Minute),
		Defaults: Defaults{
			Timeout: Duration(30 * time.Second),
			Retry:   &Retry{Attempts: 3, Backoff: Duration(200 * time.Millisecond)},
		},
		Tasks: []Task{
			{
				ID: "211", Run: "airline.reserve", Rollback: "airline.cancel",
				Inputs: []string{"traveler"}, Outputs: []string{"flight"},
				Params:   map[string]any{"class": "economy"},
				Validate: "output.flight != \"\"\n",
				Timeout:  Duration(90 * time.Second),
				Retry:    &Retry{Attempts: 5},
			},
			{ID: "hotel", Run: "hotel.book"},
		},
	}
	if !reflect.DeepEqual(op, want) {
		t.Errorf("Decode:\n got %#v\nwant %#v", op, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // the whole message
	}{
		{"misspelt rollback", "name: x\ntasks:\n  - id: flight\n    run: echo\n    rolback: noop\n",
			`line 5, column 5: unknown key "rolback" in task "flight" (did you mean "rollback"?)`},
		{"unknown key before the id", "name: x\ntasks:\n  - run: echo\n    colour: red\n    id: flight\n",
			`line 4, column 5: unknown key "colour" in task "flight"`},
		{"unknown key in a task without id", "name: x\ntasks:\n  - run: echo\n  - run: echo\n    colour: red\n",
			`line 5, column 5: unknown key "colour" in task #2`},
		{"unknown top-level key", "name: x\ntask:\n  - id: a\n",
			`line 2, column 1: unknown key "task" in the operation (did you mean "tasks"?)`},
		{"unknown key in defaults", "name: x\ndefaults:\n  retries: 3\n",
			`line 3, column 3: unknown key "retries" in the defaults (did you mean "retry"?)`},
		{"unknown key in retry", "name: x\ntasks:\n  - id: a\n    retry: {attempts: 2, delay: 1s}\n",
			`line 4, column 26: unknown key "delay" in the "retry" of task "a"`},
		{"unknown key in JSON", "{\"name\": \"x\",\n \"tasks\": [{\"id\": \"a\", \"rolback\": \"noop\"}]}",
			`line 2, column 24: unknown key "rolback" in task "a" (did you mean "rollback"?)`},
		{"syntax error", "name: x\ntasks: [a\n",
			`line 2, column 8: invalid YAML: sequence end token ']' not found`},
		{"repeated key", "name: x\ntasks:\n  - id: a\n    run: x\n    run: y\n",
			`line 5, column 5: invalid YAML: mapping key "run" already defined at line 4, column 5`},
		{"empty", "", "the operation file is empty"},
		{"only comments", "# nothing here\n---\n", "the operation file is empty"},
		{"two documents", "name: a\n---\nname: b\n",
			"line 3, column 1: the file holds more than one YAML document; an operation file holds one"},
		{"a list", "- name: a\n",
			"line 1, column 1: the operation file must be a mapping of keys to values, got a list"},
		{"a scalar", "hello\n",
			"line 1, column 1: the operation file must be a mapping of keys to values, got a string"},
		{"tasks not a list", "name: x\ntasks: {a: 1}\n",
			`line 2, column 8: "tasks" must be a list of tasks, got a mapping`},
		{"task not a mapping", "name: x\ntasks:\n  - flight\n",
			"line 3, column 5: task #1 must be a mapping of keys to values, got a string"},
		{"id a list", "name: x\ntasks:\n  - id: [a]\n",
			`line 3, column 9: "id" of task #1 must be a string, got a list`},
		{"inputs a string", "name: x\ntasks:\n  - id: a\n    inputs: traveler\n",
			`line 4, column 13: "inputs" of task "a" must be a list of labels, got a string`},
		{"nested label list", "name: x\ntasks:\n  - id: a\n    outputs: [[a]]\n",
			`line 4, column 15: "outputs" of task "a" must be a list of labels; this item is a list`},
		{"after a mapping", "name: x\ntasks:\n  - id: a\n    after: {b: 1}\n",
			`line 4, column 12: "after" of task "a" must be a list of task ids, got a mapping`},
		{"bad task timeout", "name: x\ntasks:\n  - id: a\n    timeout: 10 sec\n",
			`line 4, column 14: "timeout" of task "a": invalid duration "10 sec": write a number and a unit, such as "30s", "200ms" or "1m30s"`},
		{"timeout without unit", "name: x\ntimeout: 30\n",
			`line 2, column 10: "timeout": invalid duration "30"`},
		{"bad backoff", "name: x\ntasks:\n  - id: a\n    retry: {attempts: 2, backoff: soon}\n",
			`line 4, column 35: "backoff" in the "retry" of task "a": invalid duration "soon"`},
		{"bad default timeout", "name: x\ndefaults: {timeout: [1]}\n",
			`line 2, column 21: "timeout" of the defaults must be a string, got a list`},
		{"attempts a word", "name: x\ntasks:\n  - id: a\n    retry: {attempts: three}\n",
			`line 4, column 23: "attempts" in the "retry" of task "a" must be a whole number, got a string "three"`},
		{"attempts a fraction", "name: x\ndefaults:\n  retry: {attempts: 1.5}\n",
			`line 3, column 21: "attempts" in the "retry" of the defaults must be a whole number that fits in 64 bits, got 1.5`},
		{"params a list", "name: x\ntasks:\n  - id: a\n    params: [1, 2]\n",
			`line 4, column 13: "params" of task "a" must be a mapping of keys to values, got a list`},
		{"inputs a number", "name: x\ninputs: 3\n",
			`line 2, column 9: operation inputs must be a mapping of keys to values, got a number`},
		{"NaN param", "name: x\ntasks:\n  - id: a\n    params: {ratio: .nan}\n",
			`line 4, column 21: "params" of task "a": .nan is not a JSON number`},
		{"infinite input", "name: x\ninputs: {limit: -.inf}\n",
			`line 2, column 17: operation inputs: -.inf is not a JSON number`},
		{"number out of range", "name: x\ninputs: {big: 1e999}\n",
			`line 2, column 15: operation inputs: number 1e999 is out of range`},
		{"anchor", "name: x\ndefaults:\n  retry: &r {attempts: 2}\n",
			"line 3, column 10: YAML anchors and aliases are not supported in operation files"},
		{"alias", "name: x\ninputs: {a: 1}\ntasks:\n  - id: a\n    params: {x: *r}\n",
			"line 5, column 17: YAML anchors and aliases are not supported in operation files"},
		{"tag", "name: x\ninputs: {a: !!str 1}\n",
			"line 2, column 13: YAML tags are not supported in operation files; quote the value to make it a string"},
		{"not UTF-8", "name: x\ninputs: {a: \"caf\xe9\"}\n",
			"line 2, column 17: the operation file is not valid UTF-8"},
		{"deep nesting", "name: x\ninputs: {a: " + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "}\n",
			"line 2, column 112: values nest deeper than 100 levels"},
		{"complex key", "name: x\ninputs: {[a]: 1}\n",
			"line 2, column 13: invalid YAML: found an invalid key for this map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := Decode([]byte(tt.src))
			if err == nil {
				t.Fatalf("Decode accepted %q: %+v", tt.src, op)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n got %q\nwant %q", err, tt.want)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Errorf("error %T is not a *DecodeError", err)
			}
		})
	}
}

// A task's id may sit anywhere among its keys; messages still name it.
func TestDecodeNamesTaskByLaterID(t *testing.T) {
	_, err := Decode([]byte("name: x\ntasks:\n  - run: echo\n    timeout: soon\n    id: pay\n"))
	if err == nil || !strings.Contains(err.Error(), `"timeout" of task "pay"`) {
		t.Fatalf("error %v does not name task \"pay\"", err)
	}
}

// The same operation written in YAML and in JSON decodes to equal
// Operations, numbers included.
func TestDecodeYAMLEqualsJSON(t *testing.T) {
	yamlSrc := `
name: mixed
inputs:
  count: 3
  ratio: 0.25
  big: 1e3
  huge: 123456789012345678901234
  whole: 2.0
  maxint: 9223372036854775807
  beyond: 18446744073709551615
  flag: true
  none: null
  text: "007"
  list: [1, "two", [3.5], {four: 4}]
timeout: 2m
tasks:
  - id: a
    run: echo
    outputs: [x]
    params:
      nested: {deep: {deeper: [1, 2, {k: -1.5e-3}]}}
      empty: {}
      emptylist: []
    retry: {attempts: 2, backoff: 100ms}
  - id: b
    run: echo
    inputs: [x, count]
    after: [a]
    validate: 'output.y == "b.y"'
    outputs: [y]
`
	jsonSrc := `{
  "name": "mixed",
  "inputs": {"count": 3, "ratio": 0.25, "big": 1e3, "huge": 123456789012345678901234,
             "whole": 2.0, "maxint": 9223372036854775807, "beyond": 18446744073709551615,
             "flag": true, "none": null, "text": "007",
             "list": [1, "two", [3.5], {"four": 4}]},
  "timeout": "2m",
  "tasks": [
    {"id": "a", "run": "echo", "outputs": ["x"],
     "params": {"nested": {"deep": {"deeper": [1, 2, {"k": -1.5e-3}]}}, "empty": {}, "emptylist": []},
     "retry": {"attempts": 2, "backoff": "100ms"}},
    {"id": "b", "run": "echo", "inputs": ["x", "count"], "after": ["a"],
     "validate": "output.y == \"b.y\"", "outputs": ["y"]}
  ]
}`
	fromYAML, err := Decode([]byte(yamlSrc))
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := Decode([]byte(jsonSrc))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromYAML, fromJSON) {
		t.Errorf("YAML and JSON differ:\nYAML %#v\nJSON %#v", fromYAML, fromJSON)
	}
	wantInputs := map[string]any{
		"count": int64(3), "ratio": 0.25, "big": int64(1000), "huge": 1.2345678901234568e23,
		"whole": int64(2), "maxint": int64(math.MaxInt64), "beyond": 1.8446744073709552e19,
		"flag": true, "none": nil, "text": "007",
		"list": []any{int64(1), "two", []any{3.5}, map[string]any{"four": int64(4)}},
	}
	if !reflect.DeepEqual(fromYAML.Inputs, wantInputs) {
		t.Errorf("inputs:\n got %#v\nwant %#v", fromYAML.Inputs, wantInputs)
	}
	wantParams := map[string]any{
		"nested":    map[string]any{"deep": map[string]any{"deeper": []any{int64(1), int64(2), map[string]any{"k": -0.0015}}}},
		"empty":     map[string]any{},
		"emptylist": []any{},
	}
	if !reflect.DeepEqual(fromYAML.Tasks[0].Params, wantParams) {
		t.Errorf("params:\n got %#v\nwant %#v", fromYAML.Tasks[0].Params, wantParams)
	}
}

// Quoted numbers stay strings; only plain scalars read as numbers.
func TestDecodeQuotedNumbersStayStrings(t *testing.T) {
	op, err := Decode([]byte("name: x\ninputs: {a: '1e3', b: \"42\", c: 1e3, d: 0x10}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": "1e3", "b": "42", "c": int64(1000), "d": int64(16)}
	if !reflect.DeepEqual(op.Inputs, want) {
		t.Errorf("inputs = %#v, want %#v", op.Inputs, want)
	}
}

func TestDurationJSON(t *testing.T) {
	d := Duration(1500 * time.Millisecond)
	b, err := d.MarshalJSON()
	if err != nil || string(b) != `"1.5s"` {
		t.Fatalf("MarshalJSON = %s, %v; want \"1.5s\"", b, err)
	}
	var back Duration
	if err := back.UnmarshalJSON(b); err != nil || back != d {
		t.Fatalf("UnmarshalJSON(%s) = %v, %v; want %v", b, back, err, d)
	}
	if err := back.UnmarshalJSON([]byte("null")); err != nil || back != d {
		t.Errorf("UnmarshalJSON(null) changed %v to %v (err %v)", d, back, err)
	}
	for _, bad := range []string{`1500`, `"fast"`, `"10"`, `{}`} {
		if err := back.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("UnmarshalJSON(%s) accepted it as %v", bad, back)
		}
	}
}

func TestNormalizeJSON(t *testing.T) {
	type point struct {
		X int     `json:"x"`
		Y float64 `json:"y"`
	}
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"int", 7, int64(7)},
		{"uint8", uint8(7), int64(7)},
		{"whole float", 2.0, int64(2)},
		{"negative zero", math.Copysign(0, -1), int64(0)},
		{"fraction", 2.5, 2.5},
		{"max int64", int64(math.MaxInt64), int64(math.MaxInt64)},
		{"min int64", int64(math.MinInt64), int64(math.MinInt64)},
		{"2^63 as float", float64(1 << 63), float64(1 << 63)},
		{"max uint64", uint64(math.MaxUint64), float64(math.MaxUint64)},
		{"large float", 1e300, 1e300},
		{"string", "x", "x"},
		{"nil", nil, nil},
		{"struct", point{1, 0.5}, map[string]any{"x": int64(1), "y": 0.5}},
		{"nested", map[string]any{"a": []int{1, 2}, "b": map[string]float64{"c": 3}},
			map[string]any{"a": []any{int64(1), int64(2)}, "b": map[string]any{"c": int64(3)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeJSON(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("NormalizeJSON(%#v) = %#v, want %#v", tt.in, got, tt.want)
			}
			again, err := NormalizeJSON(got)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("not idempotent: %#v became %#v (err %v)", got, again, err)
			}
		})
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), map[int]any{1: func() {}}, make(chan int)} {
		if v, err := NormalizeJSON(bad); err == nil {
			t.Errorf("NormalizeJSON(%T) = %#v, want an error", bad, v)
		}
	}
}

func TestNormalizeObject(t *testing.T) {
	if m, err := NormalizeObject(nil); m != nil || err != nil {
		t.Errorf("NormalizeObject(nil) = %#v, %v; want nil, nil", m, err)
	}
	m, err := NormalizeObject(map[string]any{"n": 1.0, "s": []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"n": int64(1), "s": []any{"a"}}; !reflect.DeepEqual(m, want) {
		t.Errorf("NormalizeObject = %#v, want %#v", m, want)
	}
	if _, err := NormalizeObject(map[string]any{"bad": math.Inf(-1)}); err == nil {
		t.Error("NormalizeObject accepted -Inf")
	}
}

// loadExample loads the example operation file f under the default
// limits, failing the test if it does not load.
func loadExample(t *testing.T, f string) *Operation {
	t.Helper()
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	op, err := Load(data, nil, DefaultLimits())
	if err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	return op
}

// An example operation printed as YAML by goccy (durations through their
// text form) or as JSON decodes to the same Operation.
func TestDecodeRoundTrip(t *testing.T) {
	files, err := filepath.Glob("../testnet/ops/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example operations: %v", err)
	}
	for _, f := range files {
		op := loadExample(t, f)
		y, err := yaml.Marshal(op)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		j, err := json.Marshal(op)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, form := range [][]byte{y, j} {
			back, err := Decode(form)
			if err != nil {
				t.Fatalf("%s: %v in\n%s", f, err, form)
			}
			if !reflect.DeepEqual(back, op) {
				t.Errorf("%s: round trip through\n%s\nchanged the operation:\n got %#v\nwant %#v", f, form, back, op)
			}
		}
	}
}
