package ledger

import (
	"strings"
	"testing"
)

// TestResultsRootLeavesOutLibraryText runs one operation on two chains
// that differ only in an output that makes the task's rule fail with a
// different cel-go error message. The events keep each message for
// display, but the results roots must be equal: a library's wording is
// not consensus state (issue #10; on a2a74ac the roots differ).
func TestResultsRootLeavesOutLibraryText(t *testing.T) {
	const op = `
name: judged
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [x], validate: 'output.x.y == 1'}
`
	run := func(output map[string]any) (*testChain, Hash) {
		c := newTestChain(t)
		sub, id := c.submit(op)
		c.block(10, sub)
		c.block(10, c.attest(id, c.val, func(string, bool) (map[string]any, string) { return output, "" })...)
		return c, id
	}
	c1, id1 := run(map[string]any{"x": map[string]any{}})
	c2, id2 := run(map[string]any{"x": []any{int64(1)}})
	if id1 != id2 {
		t.Fatal("the two chains carry different submissions")
	}
	r1, r2 := attestedReason(t, c1.op(id1)), attestedReason(t, c2.op(id2))
	if r1 == r2 || !strings.Contains(r1, "output.x.y") {
		t.Fatalf("want two different library messages for display, got %q and %q", r1, r2)
	}
	for h := range c1.roots {
		if c1.roots[h] != c2.roots[h] {
			t.Fatalf("block %d: results roots differ (%s vs %s) although only cel-go's error text differs: %q vs %q", h+1, c1.roots[h], c2.roots[h], r1, r2)
		}
	}
}

// TestResultsRootKeepsSignedErrors checks the other side: an executor's
// signed error text is the executor's statement and stays in the root.
func TestResultsRootKeepsSignedErrors(t *testing.T) {
	run := func(msg string) *testChain {
		c := newTestChain(t)
		sub, id := c.submit(tripYAML)
		c.block(10, sub)
		c.block(10, c.attest(id, c.val, func(task string, rb bool) (map[string]any, string) {
			if task == "flight" {
				return nil, msg
			}
			return nil, ""
		})...)
		return c
	}
	a, b := run("no seats"), run("no planes")
	if a.roots[1] == b.roots[1] {
		t.Fatal("two different signed errors gave the same results root")
	}
}

func attestedReason(t *testing.T, r *OpRecord) string {
	t.Helper()
	for _, e := range r.Events {
		if e.Type == "task_attested" && e.Reason != "" {
			return e.Reason
		}
	}
	t.Fatalf("no failed task_attested event in %s", eventTypes(r))
	return ""
}
