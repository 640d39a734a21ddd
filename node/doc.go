// Package node wires one sagachain process: the badger store, the ledger's
// state machine, the mempool, consensus and its driver, the executor that
// runs the tasks assigned to this validator, the libp2p network, the
// JSON-RPC server with the web UI and /metrics, and the failure watch.
//
// A node commits each block, the state it produces and the consensus
// record in as few synced writes as it can, resumes after a crash from what
// it committed (tasks released to it and not attested run again with the
// same idempotency key), and acknowledges a submission only once a
// committed block holds it.
package node
