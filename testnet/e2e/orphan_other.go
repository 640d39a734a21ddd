//go:build !linux

package e2e

import "syscall"

// nodeProcAttr has nothing to set where there is no parent-death signal: a
// test run killed before its cleanup may leave node processes running.
func nodeProcAttr() *syscall.SysProcAttr { return nil }
