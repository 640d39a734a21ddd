//go:build !linux

package main

import "syscall"

// benchProcAttr has nothing to set where there is no parent-death signal:
// a bench killed with SIGKILL may leave its nodes running there.
func benchProcAttr() *syscall.SysProcAttr { return nil }
