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
// [Limits] bound what one operation may hold and what work it may make
// every node do: [Operation.Check] refuses retries over max_attempts or
// under min_backoff and sleeps over max_sleep, and [CheckRuleCost] refuses
// an operation whose rules may cost more, by cel-go's estimate, than
// max_operation_rule_cost together, since every node evaluates every rule.
// Zero work limits take their defaults, so no caller runs without a bound.
//
// taskrt imports no other package of this module.
package taskrt
