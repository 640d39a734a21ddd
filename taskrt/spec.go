package taskrt

import (
	"time"
)

// Operation is an operation file after parsing and checking: a named set of
// tasks with optional inputs, an overall timeout and task defaults.
type Operation struct {
	// Name is the operation's name, [a-z0-9][a-z0-9._-]{0,63}.
	Name string `json:"name" yaml:"name"`
	// Inputs are the operation's input labels and their JSON values.
	Inputs map[string]any `json:"inputs,omitempty" yaml:"inputs"`
	// Timeout bounds the time the operation's stages may take, zero for none.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout"`
	// Defaults apply to every task that does not set its own.
	Defaults Defaults `json:"defaults,omitzero" yaml:"defaults"`
	// Tasks in file order.
	Tasks []Task `json:"tasks" yaml:"tasks"`
}

// Defaults hold the timeout and retry policy of tasks that set none.
type Defaults struct {
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout"`
	Retry   *Retry   `json:"retry,omitempty" yaml:"retry"`
}

// Task is one step of an operation.
type Task struct {
	// ID is unique in the operation: [A-Za-z0-9_.-]{1,64}.
	ID string `json:"id" yaml:"id"`
	// Run names the function that does the task.
	Run string `json:"run" yaml:"run"`
	// Rollback names the function that undoes Run; empty means nothing to undo.
	Rollback string `json:"rollback,omitempty" yaml:"rollback"`
	// Inputs are the labels the task consumes.
	Inputs []string `json:"inputs,omitempty" yaml:"inputs"`
	// Outputs are the labels the task produces.
	Outputs []string `json:"outputs,omitempty" yaml:"outputs"`
	// After names tasks this task follows without taking their data.
	After []string `json:"after,omitempty" yaml:"after"`
	// Params is static JSON handed to the function.
	Params map[string]any `json:"params,omitempty" yaml:"params"`
	// Validate is a CEL rule over output, inputs and params; empty means true.
	Validate string `json:"validate,omitempty" yaml:"validate"`
	// Timeout bounds the task, all attempts included; zero takes the default.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout"`
	// Retry is the task's retry policy; nil takes the default.
	Retry *Retry `json:"retry,omitempty" yaml:"retry"`
}

// Retry is a retry policy: how many attempts in all, and the first backoff,
// which doubles after each failed attempt.
type Retry struct {
	Attempts int      `json:"attempts" yaml:"attempts"`
	Backoff  Duration `json:"backoff,omitempty" yaml:"backoff"`
}

// Duration is a time.Duration written as a Go duration string ("30s",
// "200ms") in operation files and JSON.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d as a Go duration string.
func (d Duration) String() string { return time.Duration(d).String() }
