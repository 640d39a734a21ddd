package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

// hostile is what issue #10 recorded as a function's error: clear the
// screen, retitle the terminal, ring the bell; plus a carriage return that
// would overwrite the line, a C1 CSI, a bidi override and a byte that is
// not UTF-8.
const hostile = "\x1b[2J\x1b]0;owned\a\rfake ok\u009b31m\u202eevil\xff"

// rawControls lists the control bytes and characters in out that a
// terminal would act on: everything below space but the newline, DEL, C1
// controls, format characters, and bytes that are not UTF-8.
func rawControls(out string) []string {
	var bad []string
	for i := 0; i < len(out); {
		r, size := utf8.DecodeRuneInString(out[i:])
		switch {
		case r == utf8.RuneError && size <= 1,
			r < 0x20 && r != '\n', r == 0x7f, r >= 0x80 && r < 0xa0, r == 0x202e:
			bad = append(bad, out[i:i+size])
		}
		i += size
	}
	return bad
}

func TestPrintableEscapesWhatATerminalWouldAct(t *testing.T) {
	for in, want := range map[string]string{
		hostile:               `\x1b[2J\x1b]0;owned\x07\rfake ok\u009b31m\u202eevil\xff`,
		"✓ flight ▶ hôtel …":  "✓ flight ▶ hôtel …",
		"two\nlines\tand tab": `two\nlines\tand tab`,
		"del\x7f":             `del\x7f`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
	if got := printableText("a\x1b[2J\n\tb\r"); got != "a\\x1b[2J\n\tb\\r" {
		t.Errorf("printableText kept or lost the wrong characters: %q", got)
	}
}

func hostileView() taskrt.OperationView {
	zero, one := 0, 1
	invalid := false
	return taskrt.OperationView{
		ID: "0x" + strings.Repeat("ab", 32), Name: "trip" + hostile, Status: taskrt.OpRolledBack,
		Submitter: "0x" + strings.Repeat("cd", 20),
		Stages: []taskrt.StageView{
			{Index: 0, Status: "rolled_back", Tasks: []taskrt.TaskView{{
				ID: "flight", Run: "airline.reserve" + hostile, Rollback: "airline.cancel", Status: taskrt.TaskRolledBack, Attempts: 1,
				Rule: "true" + hostile, Output: map[string]any{"flight": hostile}, Validation: "passed",
				RollbackAttempts: 2, RollbackError: hostile,
			}}},
			{Index: 1, Status: "rolled_back", Tasks: []taskrt.TaskView{{
				ID: "hotel", Run: "fail", Status: taskrt.TaskRolledBack, Attempts: 3, Error: hostile,
				Outcome: taskrt.TaskFailed, Validation: "",
			}}},
		},
		Events: []taskrt.Event{
			{Height: 1, Seq: 1, Type: taskrt.EventSubmitted},
			{Height: 1, Seq: 2, Type: taskrt.EventStageReleased, Stage: &zero},
			{Height: 2, Seq: 3, Type: taskrt.EventTaskAttested, Stage: &zero, Task: "flight", Valid: &invalid, Reason: hostile},
			{Height: 2, Seq: 4, Type: taskrt.EventStageReleased, Stage: &one},
			{Height: 3, Seq: 5, Type: taskrt.EventTaskFailed, Stage: &one, Task: "hotel", Reason: hostile},
			{Height: 3, Seq: 6, Type: taskrt.EventRollbackReleased, Stage: &one},
			{Height: 4, Seq: 7, Type: taskrt.EventTaskRolledBack, Stage: &one, Task: "hotel"},
			{Height: 4, Seq: 8, Type: taskrt.EventRollbackReleased, Stage: &zero},
			{Height: 5, Seq: 9, Type: taskrt.EventTaskRollbackFailed, Stage: &zero, Task: "flight", Reason: hostile},
			{Height: 6, Seq: 10, Type: taskrt.EventFinished, Status: string(taskrt.OpRollbackFailed) + hostile},
		},
	}
}

// Finding (#10): "escape sequences in a recorded error (\e[2J\e]0;owned\a)
// reach the terminal raw through submit --wait and op get". An operation
// whose name, function, rule, output, error and reasons carry them prints
// no raw control byte through op get's layout (writeOperation), the live
// log of submit --wait (the renderer over a node's views) and the failure
// summary; what they say is still there, escaped. On a2a74ac the raw bytes
// went out.
func TestHumanOutputEscapesRecordedText(t *testing.T) {
	v := hostileView()
	var op strings.Builder
	writeOperation(&op, v)
	out := printableText(op.String())

	var live bytes.Buffer
	r := newRenderer(&live, v.ID, viewTasks(v), false, true)
	for _, e := range v.Events {
		r.event(e, newViewState(v))
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	for what, got := range map[string]string{"op get": out, "submit --wait": live.String()} {
		if bad := rawControls(got); len(bad) > 0 {
			t.Errorf("%s printed raw control characters %q:\n%s", what, bad, got)
		}
		if !strings.Contains(got, `\x1b[2J\x1b]0;owned\x07\rfake ok`) {
			t.Errorf("%s does not show the recorded error, escaped:\n%s", what, got)
		}
	}
	// The colours of a terminal stay: only recorded text is escaped.
	live.Reset()
	r = newRenderer(&live, v.ID, viewTasks(v), true, true)
	r.event(v.Events[4], newViewState(v))
	if got := live.String(); !strings.Contains(got, "\x1b[31m✗\x1b[0m") || strings.Contains(got, "\x1b[2J") {
		t.Errorf("a coloured line: %q; want our colour codes and the recorded ones escaped", got)
	}
}

// op list and chain block print recorded names, task ids, errors and
// function lists too.
func TestListAndBlockEscapeRecordedText(t *testing.T) {
	var blk strings.Builder
	var stage uint64
	op := common.Hash{1}
	writeBlock(&blk, &rpc.BlockInfo{Height: 3, ProposerName: "v0" + hostile, Entries: []rpc.EntryInfo{
		{Index: 0, Kind: "submission", Operation: &op, Name: "trip" + hostile},
		{Index: 1, Kind: "stage", Operation: &op, Stage: &stage, Tasks: []rpc.TaskRefInfo{{ID: "a" + hostile}}},
		{Index: 2, Kind: "attestation", Operation: &op, Task: "hotel", Attempts: 3, Error: hostile},
		{Index: 3, Kind: "announcement", Functions: []string{"echo", hostile}},
		{Index: 4, Kind: "junk", DecodeError: hostile},
	}})
	if bad := rawControls(printableText(blk.String())); len(bad) > 0 {
		t.Errorf("chain block printed raw control characters %q:\n%s", bad, blk.String())
	}
	if n := strings.Count(blk.String(), "\n"); n != 11 {
		t.Errorf("chain block printed %d lines, want 11: a recorded newline must not start a line of its own:\n%s", n, blk.String())
	}
}

// The JSON output keeps the exact recorded strings: encoding/json escapes
// control characters itself, and decoding gives the same bytes back.
func TestJSONOutputKeepsTheRecordedStrings(t *testing.T) {
	var buf bytes.Buffer
	a := &app{stdout: &buf}
	if err := a.printJSON(hostileView()); err != nil {
		t.Fatal(err)
	}
	if bad := rawControls(strings.ToValidUTF8(buf.String(), "\ufffd")); len(bad) > 0 {
		t.Errorf("--json printed raw control characters %q", bad)
	}
	var back taskrt.OperationView
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	// encoding/json replaces bytes that are not UTF-8 with U+FFFD; every
	// other character comes back as recorded.
	want := strings.ToValidUTF8(hostile, "\ufffd")
	if got := back.Stages[1].Tasks[0].Error; got != want {
		t.Errorf("--json error %q, want %q", got, want)
	}
}

// The same finding through the real binary: `run` (which prints what
// submit --wait prints) of an operation whose function fails with the
// hostile message and outputs it. The person's log shows it escaped; --json
// carries it exactly.
func TestRunPrintsAFunctionsEscapesEscaped(t *testing.T) {
	t.Parallel()
	msg, err := json.Marshal(hostile[:len(hostile)-1]) // an operation file is UTF-8
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "hostile.json", `{"name": "hostile", "tasks": [
		{"id": "echo", "run": "echo", "rollback": "noop", "outputs": ["said"], "params": {"said": `+string(msg)+`}},
		{"id": "boom", "run": "fail", "after": ["echo"], "params": {"message": `+string(msg)+`}, "retry": {"attempts": 1, "backoff": "1ms"}}]}`)
	r := sagachain(t, nil, "run", file)
	r.wantCode(t, exitRolledBack)
	if bad := rawControls(r.stdout + r.stderr); len(bad) > 0 {
		t.Errorf("run printed raw control characters %q:\n%s%s", bad, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, `\x1b[2J\x1b]0;owned\x07\rfake ok`) {
		t.Errorf("run does not show the function's error, escaped:\n%s", r.stdout)
	}
	r = sagachain(t, nil, "run", file, "--json")
	r.wantCode(t, exitRolledBack)
	if bad := rawControls(r.stdout); len(bad) > 0 {
		t.Errorf("run --json printed raw control characters %q", bad)
	}
	v := decodeView(t, r)
	if got := viewTask(t, v, "boom").Error; !strings.Contains(got, hostile[:len(hostile)-1]) {
		t.Errorf("run --json: error %q, want it to hold %q exactly", got, hostile[:len(hostile)-1])
	}
	if got := viewTask(t, v, "echo").Output["said"]; got != hostile[:len(hostile)-1] {
		t.Errorf("run --json: output %q, want %q exactly", got, hostile[:len(hostile)-1])
	}
}
