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
//	sc_validators()           ValidatorInfo list: online here, down on the chain
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
// "/healthz", within [Limits]:
//
//   - A batch carries at most rpc.batch_request_limit calls (else it is
//     refused whole, "batch too large", -32600) and its results at most
//     rpc.batch_response_max_bytes (the calls after the one that crosses it
//     are not run: "response too large", -32003). These are go-ethereum's
//     own batch limits; its messages do not name our keys.
//   - sc_operations refuses a list whose JSON would exceed
//     rpc.max_response_bytes, naming the key (a list cut short would read
//     as the last page); sc_blocks cuts its page below half of it (hex
//     doubles the RLP) and the caller pages on from the last height, as it
//     does after MaxBlocksPerCall blocks.
//   - A web page may open a WebSocket only if it is the node's own UI or
//     its origin is in rpc.ws_origins, and may POST only if it is the UI or
//     in rpc.cors_domains ("*" admits any page, as go-ethereum's ws.origins
//     and http.corsdomain). The UI is the page served from the host:port
//     the request went to, when that host is an IP address or localhost: a
//     domain name could be a hostile page's, pointed at 127.0.0.1 (DNS
//     rebinding). Programs, which send no Origin, are not affected: the
//     check protects the user's browser from the pages it visits. Every
//     write (sc_submit) still carries a signature by a key genesis allows.
//
// A node exposed beyond localhost belongs behind a proxy that decides who
// may connect.
package rpc
