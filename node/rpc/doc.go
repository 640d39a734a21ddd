// Package rpc is a node's JSON-RPC 2.0 interface, served over HTTP and
// WebSocket with go-ethereum's rpc package, and the typed client the
// command line uses.
//
// # Methods
//
// Every method lives in the "sc" namespace:
//
//	sc_submit(entry)          queue a signed entry (RLP, hex): SubmitResult
//	sc_operation(id)          one operation as `op get --json` prints it
//	sc_operations(query?)     operations, newest first: {status, limit, before}
//	sc_head()                 HeadInfo
//	sc_block(height)          BlockInfo: header, decoded entries, certificates
//	sc_blocks(from, to)       RawBlock list (RLP), for export and verify over RPC
//	sc_validators()           ValidatorInfo list
//	sc_plan(operation)        the stages of an operation, without running it
//	sc_genesis()              the genesis
//
// and three subscriptions, over WebSocket only:
//
//	sc_subscribe("newBlocks")                a BlockSummary per committed block
//	sc_subscribe("operationEvents", id)      the operation's view, at once and
//	                                         after every block that changes it;
//	                                         ends after a final status
//	sc_subscribe("operationStatus", id)      an OperationStatus, at once and
//	                                         after every block that changes the
//	                                         status; ends after a final one
//
// # Errors
//
// A refused call returns a JSON-RPC error whose code says whose fault it is
// (see the Code constants): CodeInvalidInput (-32602) for bad input, of
// which nothing was recorded; CodeNotFound for an operation or block the
// node does not hold; CodeMempoolFull when the entry was fine but the node
// cannot queue it now (retry later); CodeInternal for the node's own
// failures. The message names the problem. The client returns these as
// *Error, matched with errors.Is(err, ErrInvalidInput) and the like.
//
// # Transport
//
// [Handler] serves JSON-RPC POSTs and WebSocket upgrades on "/", and
// "/healthz". It accepts WebSocket connections from any origin: the node
// listens on 127.0.0.1 unless configured otherwise, every write (sc_submit)
// carries a signature by a key genesis allows, and the reads are the
// ledger, which is public to every auditor anyway. A node exposed beyond
// localhost belongs behind a proxy that decides who may connect.
package rpc
