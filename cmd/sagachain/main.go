// Command sagachain runs sagas: operations of tasks that are planned into
// stages from their data dependencies, run stage by stage with every output
// checked by a rule, and rolled back in reverse stage order when anything
// fails.
//
// Usage:
//
//	sagachain plan FILE [--json] [--dot]
//	sagachain run FILE [--config FILE] [--input k=v]... [--json]
//	sagachain version
//
// Exit codes: 0 success, 2 the input or the command line is wrong (nothing
// ran), 3 the operation was rolled back, 4 it is rollback_failed, 1 anything
// else. Errors go to stderr.
package main

import "os"

func main() {
	os.Exit(execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
