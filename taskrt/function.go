package taskrt

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Request is what a function receives for one attempt of a task or of its
// rollback. Its JSON form is the body of an http call and the stdin of an
// exec call.
type Request struct {
	Operation      string         `json:"operation"`
	Task           string         `json:"task"`
	Attempt        int            `json:"attempt"`
	IdempotencyKey string         `json:"idempotency_key"`
	Inputs         map[string]any `json:"inputs"`
	Params         map[string]any `json:"params"`
	// Outcome is set for rollbacks: succeeded, failed or timed_out.
	Outcome string `json:"outcome,omitempty"`
	// Output is set for rollbacks: the task's recorded output, if any.
	Output map[string]any `json:"output,omitempty"`
	// Outputs are the task's declared output labels; builtins use them.
	Outputs []string `json:"-"`
}

// Function does one task or undoes it. It returns a JSON object holding at
// least the task's declared output labels. Errors are retried unless marked
// with [Permanent].
type Function interface {
	Call(ctx context.Context, req Request) (map[string]any, error)
}

// FunctionFunc adapts a plain function to [Function].
type FunctionFunc func(ctx context.Context, req Request) (map[string]any, error)

// Call calls f.
func (f FunctionFunc) Call(ctx context.Context, req Request) (map[string]any, error) {
	return f(ctx, req)
}

// PermanentError wraps an error that retrying cannot fix (an http 4xx, say).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying. It returns nil for nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// Registry maps function names to the functions a process hosts. It is safe
// for concurrent use.
type Registry struct {
	mu sync.RWMutex
	m  map[string]Function
}

// NewRegistry returns a registry holding the builtin functions (SPEC §1).
func NewRegistry() *Registry {
	r := &Registry{m: make(map[string]Function)}
	for name, f := range Builtins() {
		r.m[name] = f
	}
	return r
}

// Register adds a function. It refuses an empty name and a name already
// registered, builtins included.
func (r *Registry) Register(name string, f Function) error {
	if name == "" {
		return errors.New("function name is empty")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[name]; ok {
		return fmt.Errorf("function %q is already registered", name)
	}
	r.m[name] = f
	return nil
}

// Lookup returns the function registered under name.
func (r *Registry) Lookup(name string) (Function, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.m[name]
	return f, ok
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Missing returns, sorted and without repeats, the run and rollback functions
// of op that r does not host.
func (r *Registry) Missing(op *Operation) []string {
	seen := make(map[string]bool)
	var missing []string
	for _, t := range op.Tasks {
		for _, name := range []string{t.Run, t.Rollback} {
			if name == "" || seen[name] {
				continue
			}
			seen[name] = true
			if _, ok := r.Lookup(name); !ok {
				missing = append(missing, name)
			}
		}
	}
	sort.Strings(missing)
	return missing
}
