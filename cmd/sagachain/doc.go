// Command sagachain runs sagas: operations of tasks that are planned into
// stages from their data dependencies, run stage by stage with every output
// checked by a rule, and rolled back in reverse stage order when anything
// fails; on a network, every step is recorded on a signed ledger.
//
// Usage:
//
//	sagachain dev [--home DIR] [--rpc ADDR] [--fresh]
//	sagachain init --home DIR [--chain-id ID]
//	sagachain node --home DIR
//	sagachain keys new|show --home DIR
//	sagachain plan FILE [--json] [--dot]
//	sagachain run FILE [--config FILE] [--input k=v]... [--json]
//	sagachain submit FILE [--rpc URL] [--input k=v]... [--wait] [--json] [--key FILE]
//	sagachain op get ID | op list [--status S] | op retry ID
//	sagachain chain head | chain block N
//	sagachain export (--home DIR | --rpc URL) --out FILE
//	sagachain verify (--home DIR | --file FILE | --rpc URL) [--genesis FILE] [--json]
//	sagachain bench [--rpc URL] [--ops N] [--concurrency 1,16,64] [--scenario S]
//	sagachain testnet init --validators N --dir DIR [--base-port P] [--json]
//	sagachain version
//
// Exit codes: 0 success, 2 the input or the command line is wrong (nothing
// ran or was recorded), 3 the operation was rolled back, 4 it is
// rollback_failed, 5 verify found a fault, 1 anything else. Errors go to
// stderr.
package main
