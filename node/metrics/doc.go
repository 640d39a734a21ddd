// Package metrics exposes a node's Prometheus metrics at /metrics (DESIGN
// §8): operations by status, task and rollback durations, failures by
// function, block commit latency, consensus rounds, height, mempool size and
// peers, all named sagachain_*, so Alertmanager rules can watch what the
// failure watch (package monitor) watches.
//
// The node calls one method per event it sees: [Metrics.BlockCommitted] and
// [Metrics.OperationsChanged] after each committed block,
// [Metrics.TaskFinished] from the executor, [Metrics.Mempool] and
// [Metrics.Peers] as those change.
//
// Two kinds of numbers come out. Those read from the chain (operations,
// blocks, entries, height) are the same on every node: query one node, or
// take the max. Those of the executor (task and rollback durations,
// failures) count the tasks this node ran, and each task runs on one node:
// sum them over the nodes for the network's totals.
package metrics
