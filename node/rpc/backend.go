package rpc

import (
	"github.com/ethereum/go-ethereum/event"
	"github.com/sagachain/sagachain/ledger"
)

// Backend is what the API needs of a node. The node implements it; tests
// implement it over an in-memory store.
type Backend interface {
	// Genesis returns the chain's genesis.
	Genesis() *ledger.Genesis
	// Machine returns the chain's state machine, which renders operation
	// views.
	Machine() *ledger.Machine
	// Store returns the node's committed ledger.
	Store() ledger.Store
	// Submit checks e against the committed state (Machine.Check) and
	// queues it in the mempool. An entry that does not fit is refused with
	// an error that wraps ErrInvalidInput (see InvalidInput) and names the
	// problem; a full mempool gives an error wrapping ErrMempoolFull. Any
	// other error is reported as the node's own failure.
	Submit(e ledger.Entry) error
	// MempoolSize returns the number of queued entries.
	MempoolSize() int
	// Self returns this node's validator address.
	Self() ledger.Address
	// Peers returns the validators currently connected to this node; none
	// in dev mode.
	Peers() []ledger.Address
	// SubscribeCommits delivers a CommitEvent on ch after each block is
	// committed (written to the store), until the subscription is
	// unsubscribed; its Err channel is closed when the node stops
	// publishing. The API drains ch promptly and never blocks on a client.
	SubscribeCommits(ch chan<- CommitEvent) event.Subscription
}

// PendingChecker is implemented by a Backend that can tell whether an entry
// waits in its mempool. The operationEvents subscription uses it to refuse
// an id that is neither committed nor pending; without it, such an id is
// waited for until a block records it. For the answer to be exact, a
// committed entry must be in the store before it leaves the mempool.
type PendingChecker interface {
	// Pending reports whether the entry with hash h is queued.
	Pending(h ledger.Hash) bool
}

// CommitEvent is published after each committed block. Receivers share it
// and must not modify it.
type CommitEvent struct {
	Block *ledger.Block
	// Ops are the operation records the block changed, as committed.
	Ops []*ledger.OpRecord
}
