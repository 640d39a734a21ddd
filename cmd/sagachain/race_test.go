//go:build race

package main

// A race build of the tests runs a race build of the binary, so the races of
// a real run (the runner's goroutines, signals) are caught too.
func init() { buildFlags = append(buildFlags, "-race") }
