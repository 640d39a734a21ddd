package main

import (
	"errors"
	"fmt"

	"github.com/sagachain/sagachain/taskrt"
)

// Exit codes (SPEC §2).
const (
	exitOK             = 0
	exitFailure        = 1
	exitUsage          = 2
	exitRolledBack     = 3
	exitRollbackFailed = 4
	exitFault          = 5
)

// exitError is an error that ends the process with a chosen exit code.
type exitError struct {
	code int
	err  error
	// usage says the command line was wrong: a pointer to --help follows the error.
	usage bool
	// quiet says everything has been printed already: nothing goes to stderr.
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// inputError marks err as bad input (a file, a flag value, a config key):
// exit code 2, nothing has run.
func inputError(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: exitUsage, err: err}
}

// inputErrorf is [inputError] of a formatted error.
func inputErrorf(format string, args ...any) error {
	return inputError(fmt.Errorf(format, args...))
}

// usageError marks err as a command-line mistake: exit code 2 and a pointer
// to --help.
func usageError(err error) error {
	return &exitError{code: exitUsage, err: err, usage: true}
}

// statusExitCode is the exit code of a finished operation (SPEC §2: the
// codes of `submit --wait`). An operation still running or rolling back has
// not finished, which is a failure of whoever stopped following it.
func statusExitCode(s taskrt.OpStatus) int {
	switch s {
	case taskrt.OpCompleted:
		return exitOK
	case taskrt.OpRolledBack:
		return exitRolledBack
	case taskrt.OpRollbackFailed:
		return exitRollbackFailed
	}
	return exitFailure
}

// exitCode is the exit code for an error returned by a command: the code it
// carries, else 1. Errors that cobra itself returns (an unknown command, a
// wrong number of arguments) never reach here unmarked: see execute.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitFailure
}
