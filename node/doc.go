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
//
// Work is bounded where it enters: the mempool and gossip drop entries a
// committed block already carries, gossip refuses a proposal whose body is
// not its header's before relaying it, the executor keeps each attestation
// batch within the chain's per-block rule budget, and the rpc.* limits of
// the configuration reach the JSON-RPC endpoint.
package node
