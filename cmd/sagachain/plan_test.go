package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestPlanJSON(t *testing.T) {
	t.Parallel()
	r := sagachain(t, nil, "plan", "testnet/ops/fig2-library-update.yaml", "--json")
	r.wantCode(t, exitOK)
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	var got struct {
		Name   string     `json:"name"`
		Stages [][]string `json:"stages"`
	}
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("plan --json printed %q: %v", r.stdout, err)
	}
	// FIG. 2: accounts and auth are independent, library needs both, the
	// database needs the library.
	want := [][]string{{"accounts", "auth"}, {"library"}, {"database"}}
	if got.Name != "library-update" || !reflect.DeepEqual(got.Stages, want) {
		t.Errorf("plan --json = %+v, want name library-update and stages %q", got, want)
	}
	if r.stderr != "" {
		t.Errorf("stderr = %q, want nothing", r.stderr)
	}
}

func TestPlanDot(t *testing.T) {
	t.Parallel()
	r := sagachain(t, nil, "plan", "testnet/ops/fig4.yaml", "--dot")
	r.wantCode(t, exitOK)
	if !strings.HasPrefix(r.stdout, "digraph") || !strings.HasSuffix(strings.TrimSpace(r.stdout), "}") {
		t.Errorf("plan --dot printed %q, want a Graphviz digraph", r.stdout)
	}
}

func TestPlanListing(t *testing.T) {
	t.Parallel()
	r := sagachain(t, nil, "plan", "testnet/ops/fig2-library-update.yaml")
	r.wantCode(t, exitOK)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	var stages []string
	tasks := map[string][]string{}
	for _, l := range lines {
		if strings.HasPrefix(l, "stage ") {
			stages = append(stages, l)
		}
		if f := strings.Fields(l); strings.HasPrefix(l, "  ") && len(f) > 0 {
			tasks[f[0]] = f
		}
	}
	want := []string{"stage 0: accounts, auth", "stage 1: library", "stage 2: database"}
	if !reflect.DeepEqual(stages, want) {
		t.Errorf("stage lines %q, want %q\n%s", stages, want, r.stdout)
	}
	if lib := strings.Join(tasks["library"], " "); lib != "library run echo rollback noop needs accounts, auth" {
		t.Errorf("library line %q, want its functions and the tasks it needs", lib)
	}
	if acc := strings.Join(tasks["accounts"], " "); strings.Contains(acc, "needs") {
		t.Errorf("accounts line %q needs nothing", acc)
	}
}

func TestPlanReadsStdin(t *testing.T) {
	t.Parallel()
	op := "name: piped\ntasks:\n  - {id: a, run: echo, outputs: [x]}\n  - {id: b, run: echo, inputs: [x]}\n"
	cmd := command(t, nil, "plan", "-", "--json")
	cmd.Stdin = strings.NewReader(op)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(out.String()), `{"name":"piped","stages":[["a"],["b"]]}`; got != want {
		t.Errorf("plan - --json = %s, want %s", got, want)
	}
}

func TestPlanRefusesBadFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown key", "name: x\ntasks:\n  - id: a\n    run: echo\n    rolback: noop\n", `line 5, column 5: unknown key "rolback"`},
		{"cycle", "name: x\ntasks:\n  - {id: a, run: echo, inputs: [y], outputs: [x]}\n  - {id: b, run: echo, inputs: [x], outputs: [y]}\n", "cycle"},
		{"bad rule", "name: x\ntasks:\n  - {id: a, run: echo, outputs: [x], validate: 'output.x +'}\n", `task "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := writeFile(t, "op.yaml", tc.body)
			r := sagachain(t, nil, "plan", file)
			r.wantCode(t, exitUsage)
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			if want := "sagachain: " + file + ": "; !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want %q naming %q", r.stderr, want, tc.want)
			}
		})
	}
}
