// Package taskrt is the task runtime of sagachain: it reads operation files,
// plans their tasks into stages, compiles and evaluates their CEL rules, calls
// their functions (builtin, http, exec), and decides what happens after each
// result.
//
// The decision logic lives in [Saga], a pure state machine: it reads no clock,
// starts no goroutine and does no I/O. Results go in, and actions (release a
// stage, release the rollbacks of a stage, finish) and events come out. The
// local driver ([Runner]) and the ledger's state machine both drive that same
// type, so an operation rolls back in exactly the same order whether it runs
// in one process or on a network.
//
// taskrt imports no other package of this module.
package taskrt
