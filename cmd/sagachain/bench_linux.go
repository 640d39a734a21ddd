package main

import "syscall"

// benchProcAttr makes a node process bench starts die with bench, so that
// a bench killed with SIGKILL, whose deferred clean-up never runs, leaves
// no node running. (The kernel signals when the thread that started the
// process ends; Go ends a thread only with a goroutine locked to it, which
// bench never starts nodes from.)
func benchProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
