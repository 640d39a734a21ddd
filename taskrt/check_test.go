package taskrt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestCheckRules(t *testing.T) {
	labels := make([]string, 40)
	for i := range labels {
		labels[i] = fmt.Sprintf("l%d", i)
	}
	longList := strings.Join(labels, ", ")
	tests := []struct {
		name string
		src  string
		want string // the whole message
	}{
		{"no name", "tasks: [{id: a, run: echo}]",
			`the operation has no name: "name" is required`},
		{"bad name", "name: Book Trip\ntasks: [{id: a, run: echo}]",
			`operation name "Book Trip" is invalid: it must be 1 to 64 of a-z 0-9 . _ - starting with a letter or digit`},
		{"name starts with a dash", "name: -trip\ntasks: [{id: a, run: echo}]",
			`operation name "-trip" is invalid`},
		{"name too long", "name: " + strings.Repeat("a", 65) + "\ntasks: [{id: a, run: echo}]",
			`operation name "` + strings.Repeat("a", 65) + `" is invalid`},
		{"no tasks", "name: x\n",
			`the operation has no tasks: "tasks" must list at least one`},
		{"empty task list", "name: x\ntasks: []\n",
			`the operation has no tasks: "tasks" must list at least one`},
		{"no id", "name: x\ntasks: [{id: a, run: echo}, {run: echo}]",
			`task #2 has no id: "id" is required`},
		{"bad id", "name: x\ntasks: [{id: 'a b', run: echo}]",
			`task #1: id "a b" is invalid: it must be 1 to 64 of A-Z a-z 0-9 . _ -`},
		{"id too long", "name: x\ntasks: [{id: " + strings.Repeat("a", 65) + ", run: echo}]",
			`task #1: id "` + strings.Repeat("a", 65) + `" is invalid`},
		{"repeated id", "name: x\ntasks: [{id: a, run: echo}, {id: b, run: echo}, {id: a, run: echo}]",
			`task "a" (task #3) has the same id as task #1; ids must be unique`},
		{"no run", "name: x\ntasks: [{id: a, rollback: noop}]",
			`task "a" has no "run": it must name the function that does the task`},
		{"empty input label", "name: x\ntasks: [{id: a, run: echo, inputs: ['']}]",
			`task "a" has an empty input label`},
		{"empty output label", "name: x\ntasks: [{id: a, run: echo, outputs: [x, '']}]",
			`task "a" has an empty output label`},
		{"null label", "name: x\ntasks: [{id: a, run: echo, outputs: [~]}]",
			`task "a" has an empty output label`},
		{"empty operation input label", "name: x\ninputs: {'': 1}\ntasks: [{id: a, run: echo}]",
			`an operation input has an empty label`},
		{"input listed twice", "name: x\ninputs: {p: 1}\ntasks: [{id: a, run: echo, inputs: [p, p]}]",
			`task "a" lists input label "p" twice`},
		{"output listed twice", "name: x\ntasks: [{id: a, run: echo, outputs: [x, x]}]",
			`task "a" lists output label "x" twice`},
		{"label produced twice", "name: x\ntasks:\n- {id: a, run: echo, outputs: [x]}\n- {id: b, run: echo, outputs: [y, x]}",
			`task "b" outputs "x", which task "a" already outputs; a label must have one source`},
		{"output shadows an operation input", "name: x\ninputs: {card: 1}\ntasks: [{id: pay, run: echo, outputs: [card]}]",
			`task "pay" outputs "card", which is also an operation input; a label must have one source`},
		{"unknown input label", "name: x\ninputs: {traveler: ada}\ntasks:\n- {id: flight, run: echo, inputs: [traveler], outputs: [flight]}\n- {id: hotel, run: echo, inputs: [flihgt]}",
			`task "hotel" consumes "flihgt", which is neither an operation input nor the output of a task`},
		{"own output", "name: x\ntasks: [{id: a, run: echo, inputs: [x], outputs: [x]}]",
			`task "a" consumes "x", its own output`},
		{"after unknown task", "name: x\ntasks: [{id: a, run: echo}, {id: b, run: echo, after: [c]}]",
			`task "b" is after "c", which is not a task of this operation`},
		{"after itself", "name: x\ntasks: [{id: a, run: echo, after: [a]}]",
			`task "a" is after itself`},
		{"after listed twice", "name: x\ntasks: [{id: a, run: echo}, {id: b, run: echo, after: [a, a]}]",
			`task "b" lists "after" entry "a" twice`},
		{"repeat in a long list", "name: x\ntasks: [{id: a, run: echo, outputs: [" + longList + ", l7]}]",
			`task "a" lists output label "l7" twice`},
		{"empty after entry", "name: x\ntasks: [{id: a, run: echo, after: ['']}]",
			`task "a" has an empty "after" entry`},
		{"cycle of two by labels", "name: x\ntasks:\n- {id: a, run: echo, inputs: [y], outputs: [x]}\n- {id: b, run: echo, inputs: [x], outputs: [y]}",
			`cycle: a -> b -> a`},
		{"cycle of three", "name: x\ntasks:\n- {id: c, run: echo, inputs: [fromb], outputs: [fromc]}\n- {id: a, run: echo, inputs: [fromc], outputs: [froma]}\n- {id: b, run: echo, inputs: [froma], outputs: [fromb]}",
			`cycle: c -> a -> b -> c`},
		{"cycle through after", "name: x\ntasks:\n- {id: a, run: echo, after: [c]}\n- {id: b, run: echo, after: [a]}\n- {id: c, run: echo, after: [b]}",
			`cycle: a -> b -> c -> a`},
		{"negative operation timeout", "name: x\ntimeout: -1s\ntasks: [{id: a, run: echo}]",
			`the operation's "timeout" is negative (-1s); it must be zero or more`},
		{"negative default timeout", "name: x\ndefaults: {timeout: -5ms}\ntasks: [{id: a, run: echo}]",
			`"timeout" of the defaults is negative (-5ms); it must be zero or more`},
		{"zero default attempts", "name: x\ndefaults: {retry: {attempts: 0}}\ntasks: [{id: a, run: echo}]",
			`"attempts" in the "retry" of the defaults is 0; it must be at least 1`},
		{"negative task timeout", "name: x\ntasks: [{id: a, run: echo, timeout: -2s}]",
			`"timeout" of task "a" is negative (-2s); it must be zero or more`},
		{"retry without attempts", "name: x\ntasks: [{id: a, run: echo, retry: {backoff: 1s}}]",
			`"attempts" in the "retry" of task "a" is 0; it must be at least 1`},
		{"negative attempts", "name: x\ntasks: [{id: a, run: echo, retry: {attempts: -3}}]",
			`"attempts" in the "retry" of task "a" is -3; it must be at least 1`},
		{"negative backoff", "name: x\ntasks: [{id: a, run: echo, retry: {attempts: 2, backoff: -1s}}]",
			`"backoff" in the "retry" of task "a" is negative (-1s); it must be zero or more`},
		// The first problem in file order wins, whatever kind it is.
		{"first problem in file order", "name: x\ntasks:\n- {id: a, run: echo, inputs: [missing]}\n- {id: b}",
			`task "b" has no "run"`},
		{"earlier task's link first", "name: x\ntasks:\n- {id: a, run: echo, inputs: [nope1]}\n- {id: b, run: echo, inputs: [nope2]}",
			`task "a" consumes "nope1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := Load([]byte(tt.src), nil, DefaultLimits())
			if err == nil {
				t.Fatalf("Load accepted it: %+v", op)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n got %q\nwant %q", err, tt.want)
			}
		})
	}
}

// A cycle is a *CycleError naming its tasks in data-flow order, from the
// cycle's first task in the file.
func TestCheckCycleError(t *testing.T) {
	src := `
name: x
tasks:
  - {id: start, run: echo, outputs: [s]}
  - {id: d, run: echo, inputs: [s, fromc], outputs: [fromd]}
  - {id: b, run: echo, inputs: [fromd], outputs: [fromb]}
  - {id: c, run: echo, inputs: [fromb], outputs: [fromc]}
`
	_, err := Load([]byte(src), nil, DefaultLimits())
	var ce *CycleError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *CycleError", err)
	}
	if want := []string{"d", "b", "c"}; !reflect.DeepEqual(ce.Tasks, want) {
		t.Errorf("cycle %v, want %v", ce.Tasks, want)
	}
	if want := "cycle: d -> b -> c -> d"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// A chain far longer than any recursion could follow is checked and planned.
func TestCheckLongChain(t *testing.T) {
	const n = 100_000
	op := chain(n)
	l := DefaultLimits()
	l.MaxTasks = n
	if err := op.Check(l); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(op)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Stages) != n {
		t.Fatalf("%d stages, want %d", len(p.Stages), n)
	}
	// Close the chain into one long cycle.
	op.Tasks[0].Inputs = []string{fmt.Sprintf("l%d", n-1)}
	var ce *CycleError
	if err := op.Check(l); !errors.As(err, &ce) || len(ce.Tasks) != n {
		t.Fatalf("closed chain: error %.80v, want a cycle of %d tasks", err, n)
	}
	if ce.Tasks[0] != "t0" || ce.Tasks[1] != "t1" || ce.Tasks[n-1] != fmt.Sprintf("t%d", n-1) {
		t.Errorf("cycle starts %v ... %v", ce.Tasks[:2], ce.Tasks[n-1])
	}
}

// chain returns n tasks, each consuming the output of the one before.
func chain(n int) *Operation {
	op := &Operation{Name: "chain", Tasks: make([]Task, n)}
	for i := range op.Tasks {
		op.Tasks[i] = Task{ID: fmt.Sprintf("t%d", i), Run: "echo", Outputs: []string{fmt.Sprintf("l%d", i)}}
		if i > 0 {
			op.Tasks[i].Inputs = []string{fmt.Sprintf("l%d", i-1)}
		}
	}
	return op
}

func TestCheckMaxTasks(t *testing.T) {
	op := chain(11)
	l := DefaultLimits()
	l.MaxTasks = 10
	err := op.Check(l)
	if want := "the operation has 11 tasks, over the limit of 10"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	l.MaxTasks = 11
	if err := op.Check(l); err != nil {
		t.Errorf("11 tasks within a limit of 11: %v", err)
	}
}

func TestLimitsValidate(t *testing.T) {
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatalf("default limits: %v", err)
	}
	if l := DefaultLimits(); l.MaxTasks != 10_000 || l.MaxFileBytes != 1<<20 || l.MaxOutputBytes != 64<<10 {
		t.Errorf("DefaultLimits() = %+v, want SPEC §1's 10000 tasks, 1 MiB, 64 KiB", l)
	}
	for _, l := range []Limits{
		{MaxTasks: 0, MaxFileBytes: 1, MaxOutputBytes: 1},
		{MaxTasks: 1, MaxFileBytes: -1, MaxOutputBytes: 1},
		{MaxTasks: 1, MaxFileBytes: 1, MaxOutputBytes: 0},
	} {
		if err := l.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", l)
		}
		if _, err := Load([]byte("name: x\ntasks: [{id: a, run: echo}]"), nil, l); err == nil || !strings.HasPrefix(err.Error(), "limits: ") {
			t.Errorf("Load with %+v: error %v, want a limits error", l, err)
		}
	}
}

func TestLoadFileSize(t *testing.T) {
	src := []byte("name: x\ntasks: [{id: a, run: echo}]\n")
	l := DefaultLimits()
	l.MaxFileBytes = len(src)
	if _, err := Load(src, nil, l); err != nil {
		t.Fatalf("a file of exactly the limit: %v", err)
	}
	l.MaxFileBytes = len(src) - 1
	_, err := Load(src, nil, l)
	want := fmt.Sprintf("the operation file is %d bytes, over the limit of %d bytes", len(src), len(src)-1)
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	// The size is checked before parsing: a huge malformed file gets the
	// size error, not a syntax error.
	huge := []byte(strings.Repeat("[", 2<<20))
	if _, err := Load(huge, nil, DefaultLimits()); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("2 MiB file: error %v, want the size limit", err)
	}
}

func TestLoadInputs(t *testing.T) {
	src := []byte(`
name: x
inputs: {traveler: "Ada", seats: 1}
tasks:
  - {id: a, run: echo, inputs: [traveler, seats, card]}
`)
	if _, err := Load(src, nil, DefaultLimits()); err == nil || !strings.Contains(err.Error(), `"card"`) {
		t.Fatalf("without --input card: error %v, want one naming \"card\"", err)
	}
	op, err := Load(src, map[string]any{"card": "4111", "seats": 3, "traveler": "Grace"}, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"traveler": "Grace", "seats": int64(3), "card": "4111"}
	if !reflect.DeepEqual(op.Inputs, want) {
		t.Errorf("inputs = %#v, want %#v", op.Inputs, want)
	}
	// Inputs are added to a file that has none.
	op, err = Load([]byte("name: x\ntasks: [{id: a, run: echo, inputs: [k]}]"), map[string]any{"k": []int{1}}, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"k": []any{int64(1)}}; !reflect.DeepEqual(op.Inputs, want) {
		t.Errorf("inputs = %#v, want %#v", op.Inputs, want)
	}
	// An input may not take a label a task outputs, nor be something JSON
	// cannot hold.
	if _, err := Load([]byte("name: x\ntasks: [{id: a, run: echo, outputs: [k]}]"), map[string]any{"k": 1}, DefaultLimits()); err == nil || !strings.Contains(err.Error(), `outputs "k", which is also an operation input`) {
		t.Errorf("input shadowing an output: error %v", err)
	}
	if _, err := Load(src, map[string]any{"card": make(chan int)}, DefaultLimits()); err == nil || !strings.HasPrefix(err.Error(), "inputs: ") {
		t.Errorf("channel input: error %v", err)
	}
}

// Every example operation decodes, checks and plans, and the trip matches
// SPEC §2's plan example.
func TestLoadExampleOperations(t *testing.T) {
	files, err := filepath.Glob("../testnet/ops/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %d example operations in testnet/ops, want at least 5", len(files))
	}
	stages := map[string][][]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		op, err := Load(data, nil, DefaultLimits())
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		p, err := NewPlan(op)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		// The travel trips call the demo's http functions; the demo's own
		// tests run them. Every other example runs on builtins alone.
		travel := strings.HasPrefix(filepath.Base(f), "trip-travel")
		for _, task := range op.Tasks {
			for _, fn := range []string{task.Run, task.Rollback} {
				if _, ok := Builtins()[fn]; fn != "" && !ok && !travel {
					t.Errorf("%s: task %q names %q, not a builtin", f, task.ID, fn)
				}
			}
		}
		stages[filepath.Base(f)] = p.StageIDs()
	}
	trip := [][]string{{"flight", "payment"}, {"hotel", "car"}, {"excursion"}}
	want := map[string][][]string{
		"fig2-library-update.yaml": {{"accounts", "auth"}, {"library"}, {"database"}},
		"fig4.yaml":                {{"411", "412"}, {"413"}, {"414", "415", "416"}, {"417"}},
		"trip.yaml":                trip,
		"trip-hotel-fails.yaml":    trip,
		"trip-rule-fails.yaml":     trip,
	}
	for name, w := range want {
		if got := stages[name]; !reflect.DeepEqual(got, w) {
			t.Errorf("%s: stages %v, want %v", name, got, w)
		}
	}
}

// The hand-written name and id checks accept exactly SPEC §1's patterns.
func TestCheckNamePatterns(t *testing.T) {
	namePattern := regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	idPattern := regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	chars := []rune("azAZ09._- /é\x00")
	rapid.Check(t, func(t *rapid.T) {
		alphabet := chars
		if rapid.Bool().Draw(t, "valid characters only") {
			alphabet = []rune("az09._-") // lengths near 64 then come up often
		}
		rs := rapid.SliceOfN(rapid.SampledFrom(alphabet), 0, 70).Draw(t, "runes")
		s := string(rs)
		if got, want := validName(s), namePattern.MatchString(s); got != want {
			t.Fatalf("validName(%q) = %v, want %v", s, got, want)
		}
		if got, want := validTaskID(s), idPattern.MatchString(s); got != want {
			t.Fatalf("validTaskID(%q) = %v, want %v", s, got, want)
		}
	})
}

// TestCheckWorkLimits: on a2a74ac, Load accepted retry attempts of 10^9
// with no backoff (2,124 calls to a failing service in 3 s) and a sleep of
// 2^63-1 ms; each is now refused, naming the task and the limit's key.
func TestCheckWorkLimits(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"attempts over the limit", "name: x\ntasks: [{id: a, run: fail, retry: {attempts: 1000000000, backoff: 1s}}]",
			`"attempts" in the "retry" of task "a" is 1000000000, over the limit of 100 (max_attempts)`},
		{"default attempts over the limit", "name: x\ndefaults: {retry: {attempts: 101, backoff: 1s}}\ntasks: [{id: a, run: fail}]",
			`"attempts" in the "retry" of the defaults is 101, over the limit of 100 (max_attempts)`},
		{"no backoff", "name: x\ntasks: [{id: a, run: fail, retry: {attempts: 3, backoff: 0s}}]",
			`"backoff" in the "retry" of task "a" is 0s, under the minimum of 10ms (min_backoff) for a retry of more than one attempt`},
		{"backoff omitted", "name: x\ndefaults: {retry: {attempts: 3}}\ntasks: [{id: a, run: fail}]",
			`"backoff" in the "retry" of the defaults is 0s, under the minimum of 10ms (min_backoff)`},
		{"sleep overflows", "name: x\ntasks: [{id: a, run: sleep, params: {ms: 9223372036854775807}}]",
			`task "a" runs sleep with params.ms 9223372036854775807; it must be from 0 to 3600000, 1h0m0s (max_sleep)`},
		{"sleep negative", "name: x\ntasks: [{id: a, run: echo, rollback: sleep, params: {ms: -5}}]",
			`task "a" runs sleep with params.ms -5; it must be from 0 to 3600000`},
		{"sleep ms not a number", "name: x\ntasks: [{id: a, run: sleep, params: {ms: soon}}]",
			`task "a" runs sleep: param ms: want a whole number, got soon`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load([]byte(tt.src), nil, DefaultLimits())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tt.want)
			}
		})
	}

	// At the limits, and with the limits a node may configure instead;
	// zero takes the default.
	ok := []struct {
		src string
		l   Limits
	}{
		{"name: x\ntasks: [{id: a, run: fail, retry: {attempts: 100, backoff: 10ms}}]", DefaultLimits()},
		{"name: x\ntasks: [{id: a, run: fail, retry: {attempts: 1}}]", DefaultLimits()},
		{"name: x\ntasks: [{id: a, run: sleep, params: {ms: 3600000}}]", DefaultLimits()},
		{"name: x\ntasks: [{id: a, run: fail, retry: {attempts: 100, backoff: 10ms}}]", Limits{MaxTasks: 1, MaxFileBytes: 1 << 10, MaxOutputBytes: 1}},
		{"name: x\ntasks: [{id: a, run: fail, retry: {attempts: 500, backoff: 1ms}}]",
			Limits{MaxTasks: 1, MaxFileBytes: 1 << 10, MaxOutputBytes: 1, MaxAttempts: 500, MinBackoff: time.Millisecond}},
	}
	for _, tt := range ok {
		if _, err := Load([]byte(tt.src), nil, tt.l); err != nil {
			t.Errorf("Load(%q, %+v) = %v, want it accepted", tt.src, tt.l, err)
		}
	}
	l := DefaultLimits()
	l.MaxAttempts = 2
	if _, err := Load([]byte("name: x\ntasks: [{id: a, run: fail, retry: {attempts: 3, backoff: 1s}}]"), nil, l); err == nil || !strings.Contains(err.Error(), "over the limit of 2 (max_attempts)") {
		t.Errorf("a node's own max_attempts of 2: %v", err)
	}
}
