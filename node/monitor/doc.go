// Package monitor is the node's failure watch (DESIGN §8, SPEC §4
// monitoring): it counts the task failures the chain records per function
// over sliding windows of block time and raises an alert when a monitoring
// rule's threshold is reached, when an operation is left rollback_failed,
// or when the chain marks an executor down (host_down), and it delivers
// those alerts to the rules' webhooks.
//
// The watch ([Watch]) is deterministic: it reads the committed blocks and
// operation records and nothing else (no clock, no goroutines), so every node
// computes the same alerts with the same ids from the same chain, and a
// receiver that hears from several nodes drops the duplicates by id.
//
// The node drives the two halves in this order after each committed block:
//
//	alerts, err := watch.Observe(height, blockTime, ops, lookup)
//	down, err := watch.ObserveHosts(height, hostsAfterTheBlock, ops, lookup)
//	err = notifier.Enqueue(append(alerts, down...)...) // persisted in the outbox
//	err = watch.Save()                // windows and armed flags
//
// Enqueueing before saving means a crash in between makes the watch fire the
// same alert (same id) again after the restart rather than lose it; the
// outbox drops an id it already holds and receivers drop an id they already
// have. Blocks after [Watch.Height] have not been observed; a node that
// restarts feeds them again.
//
// The [Notifier] owns delivery: each alert is written to its outbox before
// the first attempt and removed after a 2xx answer, so a restart resends
// what was not delivered and never what was.
package monitor
