package taskrt

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Limits bound what an operation may hold (SPEC §1). A node may configure
// its own; [DefaultLimits] are the specified ones.
type Limits struct {
	// MaxTasks bounds the number of tasks of one operation.
	MaxTasks int
	// MaxFileBytes bounds the size of an operation file.
	MaxFileBytes int
	// MaxOutputBytes bounds one task's output, encoded as JSON.
	MaxOutputBytes int

	// The limits below bound the work one operation can make a node do.
	// Zero means the default of [DefaultLimits], so that callers that
	// predate them (and genesis files that do not name them) get the
	// bound rather than none.

	// MaxAttempts bounds "attempts" of a retry policy (max_attempts).
	MaxAttempts int
	// MinBackoff is the least "backoff" of a retry policy of more than one
	// attempt (min_backoff).
	MinBackoff time.Duration
	// MaxSleep bounds params.ms of a task that runs or rolls back with the
	// sleep builtin (max_sleep).
	MaxSleep time.Duration
	// MaxRuleCost bounds the sum of the worst-case costs of an operation's
	// rules, checked by [CheckRuleCost] (max_operation_rule_cost).
	MaxRuleCost uint64
}

// Default values of the work limits, with why:
const (
	// DefaultMaxAttempts: a hundred attempts outlast any outage a retry
	// can ride out within a task's timeout (the backoff doubles up to
	// MaxBackoff), while 10^9 attempts made a node hammer a failing
	// service for as long as the task's timeout let it.
	DefaultMaxAttempts = 100
	// DefaultMinBackoff: 10ms is well above a loopback round trip and below
	// anything a person notices, so a retry of 100 attempts cannot call a
	// service more than about 100 times a second even at its start, and
	// the doubling backoff makes it far fewer after the first few.
	DefaultMinBackoff = 10 * time.Millisecond
	// DefaultMaxSleep: an hour is far beyond what a test or a demo waits,
	// and far below the 292 years at which milliseconds overflow a
	// time.Duration.
	DefaultMaxSleep = time.Hour
	// DefaultMaxRuleCost: ten rules at RuleCostLimit. One rule at that
	// limit took about 150ms on the development machine, so an operation
	// can make each node evaluate for about 1.5 s in all, where 200 such
	// rules stretched blocks to 24-37 s. The example operations
	// (testnet/ops) cost 0 to 126,192 in all, and 10,000 tasks of simple
	// comparisons pass too; 8,000 regular expressions on 64 KiB outputs
	// do not (about 11,500 each).
	DefaultMaxRuleCost = 10 * RuleCostLimit
)

// DefaultLimits returns the limits of SPEC §1: 10,000 tasks, 1 MiB for the
// file and 64 KiB for one task's output, and the work limits'
// defaults: 100 attempts, a backoff of at least 10ms, sleeps of at most
// an hour, and rules costing at most ten times RuleCostLimit together.
func DefaultLimits() Limits {
	return Limits{MaxTasks: 10_000, MaxFileBytes: 1 << 20, MaxOutputBytes: 64 << 10,
		MaxAttempts: DefaultMaxAttempts, MinBackoff: DefaultMinBackoff, MaxSleep: DefaultMaxSleep, MaxRuleCost: DefaultMaxRuleCost}
}

// Validate reports a size limit that is not positive, or a work limit
// that is negative.
func (l Limits) Validate() error {
	switch {
	case l.MaxTasks <= 0:
		return fmt.Errorf("max tasks must be positive, got %d", l.MaxTasks)
	case l.MaxFileBytes <= 0:
		return fmt.Errorf("max file bytes must be positive, got %d", l.MaxFileBytes)
	case l.MaxOutputBytes <= 0:
		return fmt.Errorf("max output bytes must be positive, got %d", l.MaxOutputBytes)
	case l.MaxAttempts < 0:
		return fmt.Errorf("max_attempts must not be negative, got %d", l.MaxAttempts)
	case l.MinBackoff < 0:
		return fmt.Errorf("min_backoff must not be negative, got %s", l.MinBackoff)
	case l.MaxSleep < 0:
		return fmt.Errorf("max_sleep must not be negative, got %s", l.MaxSleep)
	}
	return nil
}

// withDefaults returns l with each zero work limit set to its default.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxAttempts == 0 {
		l.MaxAttempts = d.MaxAttempts
	}
	if l.MinBackoff == 0 {
		l.MinBackoff = d.MinBackoff
	}
	if l.MaxSleep == 0 {
		l.MaxSleep = d.MaxSleep
	}
	if l.MaxRuleCost == 0 {
		l.MaxRuleCost = d.MaxRuleCost
	}
	return l
}

// Load reads, completes and checks an operation file: it refuses a file over
// l.MaxFileBytes before parsing it, decodes it with [Decode], sets the given
// inputs over the file's own (the CLI's --input k=v), and checks the result
// with [Operation.Check]. Invalid limits aside, every error is the fault of
// the file or of the inputs, so callers can report it as bad input.
func Load(data []byte, inputs map[string]any, l Limits) (*Operation, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	if len(data) > l.MaxFileBytes {
		return nil, fmt.Errorf("the operation file is %d bytes, over the limit of %d bytes", len(data), l.MaxFileBytes)
	}
	op, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if len(inputs) > 0 {
		extra, err := NormalizeObject(inputs)
		if err != nil {
			return nil, fmt.Errorf("inputs: %w", err)
		}
		if op.Inputs == nil {
			op.Inputs = make(map[string]any, len(extra))
		}
		maps.Copy(op.Inputs, extra)
	}
	if err := op.Check(l); err != nil {
		return nil, err
	}
	return op, nil
}

// CycleError reports tasks that depend on each other in a circle. Tasks
// lists the cycle in the direction data flows: each task is needed by the
// next, and the last is needed by the first. It starts at the cycle's task
// that comes first in the file.
type CycleError struct {
	Tasks []string
}

// Error prints the cycle as "cycle: a -> b -> c -> a".
func (e *CycleError) Error() string {
	if len(e.Tasks) == 0 {
		return "cycle"
	}
	return "cycle: " + strings.Join(e.Tasks, " -> ") + " -> " + e.Tasks[0]
}

// Check enforces the rules of SPEC §1 that need no function registry and no
// rule compiler: names and ids, labels, `after`, cycles, durations, retry
// policies (within l.MaxAttempts and l.MinBackoff), the sleep builtin's
// params.ms (within l.MaxSleep) and l.MaxTasks. It returns the first problem in file order, naming
// the task and the label or key, so the same file always gets the same
// error. Rules are compiled separately, by [CompileRules].
func (op *Operation) Check(l Limits) error {
	l = l.withDefaults()
	switch {
	case op.Name == "":
		return errors.New(`the operation has no name: "name" is required`)
	case !validName(op.Name):
		return fmt.Errorf("operation name %q is invalid: it must be 1 to 64 of a-z 0-9 . _ - starting with a letter or digit", op.Name)
	}
	if _, ok := op.Inputs[""]; ok {
		return errors.New("an operation input has an empty label")
	}
	if err := checkDuration(op.Timeout, `the operation's "timeout"`); err != nil {
		return err
	}
	if err := checkDuration(op.Defaults.Timeout, `"timeout" of the defaults`); err != nil {
		return err
	}
	if err := checkRetry(op.Defaults.Retry, "the defaults", l); err != nil {
		return err
	}
	switch n := len(op.Tasks); {
	case n == 0:
		return errors.New(`the operation has no tasks: "tasks" must list at least one`)
	case n > l.MaxTasks:
		return fmt.Errorf("the operation has %d tasks, over the limit of %d", n, l.MaxTasks)
	}

	// Each task on its own, then the labels and ids that tie tasks together,
	// then the graph as a whole: each pass in file order.
	index := make(map[string]int, len(op.Tasks))
	producer := make(map[string]int)
	for i := range op.Tasks {
		if err := checkTask(op, i, index, producer, l); err != nil {
			return err
		}
	}
	for i := range op.Tasks {
		if err := checkLinks(op, i, index, producer); err != nil {
			return err
		}
	}
	g, err := buildGraph(op)
	if err != nil {
		return err
	}
	if cycle := findCycle(g.succ); cycle != nil {
		return cycleError(op, cycle)
	}
	return nil
}

// taskName names task i for messages: by id when it has one, else by its
// place in the file.
func taskName(op *Operation, i int) string {
	if id := op.Tasks[i].ID; id != "" {
		return fmt.Sprintf("task %q", id)
	}
	return fmt.Sprintf("task #%d", i+1)
}

// checkTask checks task i alone, and that its id and outputs are not taken
// by an earlier task; it records them in index and producer. Messages are
// built only on failure: this runs for every task of every submission.
func checkTask(op *Operation, i int, index map[string]int, producer map[string]int, l Limits) error {
	t := &op.Tasks[i]
	switch {
	case t.ID == "":
		return fmt.Errorf(`%s has no id: "id" is required`, taskName(op, i))
	case !validTaskID(t.ID):
		return fmt.Errorf("task #%d: id %q is invalid: it must be 1 to 64 of A-Z a-z 0-9 . _ -", i+1, t.ID)
	}
	if j, dup := index[t.ID]; dup {
		return fmt.Errorf("%s (task #%d) has the same id as task #%d; ids must be unique", taskName(op, i), i+1, j+1)
	}
	index[t.ID] = i
	if t.Run == "" {
		return fmt.Errorf(`%s has no "run": it must name the function that does the task`, taskName(op, i))
	}
	if t.Timeout < 0 {
		return checkDuration(t.Timeout, fmt.Sprintf(`"timeout" of %s`, taskName(op, i)))
	}
	if t.Retry != nil {
		if err := checkRetry(t.Retry, taskName(op, i), l); err != nil {
			return err
		}
	}
	if t.Run == "sleep" || t.Rollback == "sleep" {
		if err := checkSleep(t.Params, taskName(op, i), l.MaxSleep); err != nil {
			return err
		}
	}
	if err := checkLabelList(op, i, t.Inputs, "input label"); err != nil {
		return err
	}
	if err := checkLabelList(op, i, t.After, `"after" entry`); err != nil {
		return err
	}
	if err := checkLabelList(op, i, t.Outputs, "output label"); err != nil {
		return err
	}
	for _, label := range t.Outputs {
		if _, ok := op.Inputs[label]; ok {
			return fmt.Errorf("%s outputs %q, which is also an operation input; a label must have one source", taskName(op, i), label)
		}
		if j, ok := producer[label]; ok {
			return fmt.Errorf("%s outputs %q, which %s already outputs; a label must have one source", taskName(op, i), label, taskName(op, j))
		}
		producer[label] = i
	}
	return nil
}

// checkLinks checks that task i's inputs and `after` name things that exist,
// once every id and output is known.
func checkLinks(op *Operation, i int, index map[string]int, producer map[string]int) error {
	t := &op.Tasks[i]
	for _, label := range t.Inputs {
		if j, ok := producer[label]; ok {
			if j == i {
				return fmt.Errorf("%s consumes %q, its own output", taskName(op, i), label)
			}
			continue
		}
		if _, ok := op.Inputs[label]; !ok {
			return fmt.Errorf("%s consumes %q, which is neither an operation input nor the output of a task", taskName(op, i), label)
		}
	}
	for _, id := range t.After {
		j, ok := index[id]
		switch {
		case !ok:
			return fmt.Errorf("%s is after %q, which is not a task of this operation", taskName(op, i), id)
		case j == i:
			return fmt.Errorf("%s is after itself", taskName(op, i))
		}
	}
	return nil
}

// checkLabelList refuses empty and repeated entries of a list of task i.
func checkLabelList(op *Operation, i int, list []string, what string) error {
	for _, s := range list {
		if s == "" {
			return fmt.Errorf("%s has an empty %s", taskName(op, i), what)
		}
	}
	if s, ok := repeated(list); ok {
		return fmt.Errorf("%s lists %s %q twice", taskName(op, i), what, s)
	}
	return nil
}

// repeated returns the first entry of list that repeats an earlier one. Short
// lists, the usual case, are scanned without allocating; long ones use a set
// so that a task with many labels stays linear.
func repeated(list []string) (string, bool) {
	if len(list) <= 16 {
		for k, s := range list {
			if slices.Contains(list[:k], s) {
				return s, true
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, len(list))
	for _, s := range list {
		if _, ok := seen[s]; ok {
			return s, true
		}
		seen[s] = struct{}{}
	}
	return "", false
}

// validName reports whether s is a valid operation name,
// [a-z0-9][a-z0-9._-]{0,63}.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '.' || s[0] == '_' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validTaskID reports whether s is a valid task id, [A-Za-z0-9_.-]{1,64}.
func validTaskID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkDuration(d Duration, what string) error {
	if d < 0 {
		return fmt.Errorf("%s is negative (%s); it must be zero or more", what, d)
	}
	return nil
}

// checkRetry checks a retry policy against l; owner names what it belongs
// to.
func checkRetry(r *Retry, owner string, l Limits) error {
	if r == nil {
		return nil
	}
	switch {
	case r.Attempts < 1:
		return fmt.Errorf(`"attempts" in the "retry" of %s is %d; it must be at least 1`, owner, r.Attempts)
	case r.Attempts > l.MaxAttempts:
		return fmt.Errorf(`"attempts" in the "retry" of %s is %d, over the limit of %d (max_attempts)`, owner, r.Attempts, l.MaxAttempts)
	}
	if err := checkDuration(r.Backoff, fmt.Sprintf(`"backoff" in the "retry" of %s`, owner)); err != nil {
		return err
	}
	// One attempt never waits, so its backoff does not matter.
	if r.Attempts > 1 && r.Backoff.Std() < l.MinBackoff {
		return fmt.Errorf(`"backoff" in the "retry" of %s is %s, under the minimum of %s (min_backoff) for a retry of more than one attempt`, owner, r.Backoff, l.MinBackoff)
	}
	return nil
}

// checkSleep checks params.ms of a task the sleep builtin runs or rolls
// back: a whole number of milliseconds from 0 to max. Without the bound,
// ms near 2^63 overflowed the builtin's time.Duration.
func checkSleep(params map[string]any, task string, max time.Duration) error {
	ms, err := intParam(params, "ms", 100)
	if err != nil {
		return fmt.Errorf("%s runs sleep: %w", task, err)
	}
	if ms < 0 || ms > max.Milliseconds() {
		return fmt.Errorf("%s runs sleep with params.ms %d; it must be from 0 to %d, %s (max_sleep)", task, ms, max.Milliseconds(), max)
	}
	return nil
}

// cycleError names the tasks of a cycle found by findCycle.
func cycleError(op *Operation, cycle []int) *CycleError {
	ids := make([]string, len(cycle))
	for k, i := range cycle {
		ids[k] = op.Tasks[i].ID
	}
	return &CycleError{Tasks: ids}
}

// findCycle returns a cycle of the graph whose edges are succ (i -> each of
// succ[i]), or nil if it has none. It walks depth first from each task in
// index order, with an explicit stack so that long chains cannot overflow
// the goroutine stack, and visits each task and edge once. The cycle starts
// at its lowest index, so the result depends only on the graph.
func findCycle(succ [][]int) []int {
	const (
		unseen = iota
		onPath
		done
	)
	n := len(succ)
	state := make([]uint8, n)
	next := make([]int, n) // next edge of succ[v] to follow
	var path []int
	for root := range n {
		if state[root] != unseen {
			continue
		}
		state[root] = onPath
		path = append(path[:0], root)
		for len(path) > 0 {
			v := path[len(path)-1]
			if next[v] == len(succ[v]) {
				state[v] = done
				path = path[:len(path)-1]
				continue
			}
			w := succ[v][next[v]]
			next[v]++
			switch state[w] {
			case unseen:
				state[w] = onPath
				path = append(path, w)
			case onPath:
				start := slices.Index(path, w)
				cycle := slices.Clone(path[start:])
				low := 0
				for k, t := range cycle {
					if t < cycle[low] {
						low = k
					}
				}
				return slices.Concat(cycle[low:], cycle[:low])
			}
		}
	}
	return nil
}
