package e2e

import "syscall"

// nodeProcAttr makes a node process die with the test process, so that a
// test run killed before its cleanup leaves no node running.
func nodeProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
