// Package ledger holds sagachain's ledger: entries, blocks, encoding, hashing,
// signatures, Merkle roots, the state machine, the badger store, verify and
// export.
//
// # Signatures
//
// Every signed object (block, vote, submission, attestation, node-functions
// announcement) is signed with a node's secp256k1 key, the same curve and the
// same 65-byte recoverable signature format as Ethereum, so any Ethereum
// library can check the ledger. A signature never covers the payload's bytes
// directly: it covers the signing hash
//
//	Keccak256(RLP([domain, chainID, Keccak256(payload)]))
//
// where domain is one of the fixed [Domain] tags ("sagachain/block/v1", ...),
// chainID is the genesis chain id, and payload is the object's canonical RLP
// encoding without its signature (see [SigningHash]). Binding the domain and
// the chain id means a signature made for one kind of object, or on one chain,
// recovers to a different address when presented as another kind or on
// another chain, so it cannot be replayed there. Signers are identified by the
// Ethereum-style address recovered from the signature; a signature is refused
// unless its recovery id V is 0 or 1 and its S lies in the lower half of the
// curve order, so no one but the signer can turn a valid signature into a
// second valid one (ECDSA malleability; see [Recover]).
//
// # For auditors: the exact bytes
//
// Everything below is RLP (go-ethereum/rlp, the Ethereum yellow paper's
// encoding): integers are big-endian with no leading zeros (0 is the empty
// string), booleans are the integers 0 and 1, strings are byte strings,
// hashes are 32-byte strings, addresses 20-byte strings and signatures
// 65-byte strings R ‖ S ‖ V with V in {0, 1}. "sign(D, p)" means a signature
// over SigningHash(D, chainID, p).
//
//   - Block header: [chainID, height, round, time (Unix ms), prev (hash of
//     the previous header; the genesis hash for block 1), proposer,
//     entriesRoot, resultsRoot, lastCommitHash]. The block hash is
//     Keccak256(header). The proposer's signature is
//     sign("sagachain/block/v1", header). A block is the list
//     [header, [entry…], lastCommit, signature].
//   - Vote: payload [type (1 prevote, 2 precommit), height, round,
//     blockHash], signed as sign("sagachain/vote/v1", payload); the zero hash
//     is a vote for nothing.
//   - Commit certificate: [height, round, blockHash, [[validator,
//     signature]…]]; each signature is a precommit vote's for (height,
//     round, blockHash). Its hash (Keccak256 of that RLP) is the next
//     header's lastCommitHash. It is valid when more than two thirds of the
//     genesis validators, counted by recovered address, signed it.
//   - Entry: [kind, body], kind 1 submission, 2 stage release, 3
//     attestation, 4 timeout, 5 rollback release, 6 rollback attestation,
//     7 retry, 8 announcement, 9 evidence, 10 attestations, 11 heartbeat,
//     12 failover. The entry hash is Keccak256 of
//     that RLP; the entries root is the Merkle root (below) of the entry
//     hashes in block order.
//   - Submission body: [operation (the operation file as canonical JSON),
//     nonce, submitter, signature], signed as sign("sagachain/submission/v1",
//     [operation, nonce, submitter]). The operation's id is the hash of its
//     submission entry.
//   - Attestation body (kinds 3 and 6): [operation id, task, rollback,
//     attempts, output (JSON bytes), error, permanent, executor, signature],
//     signature, assignment), signed as sign("sagachain/attestation/v1",
//     the same list without the signature). assignment, the count of moves
//     of the work the executor ran (see Failover below), is left out of
//     both lists when it is 0, so an attestation of work that never moved
//     encodes as it always did. The executor must be the one the ledger
//     assigns the work to now, and assignment its current one.
//   - Attestations body (kind 10), several attestations by one executor:
//     [[[operation id, task, rollback, attempts, output, error,
//     permanent, assignment (left out when 0)]…], executor, signature], signed as
//     sign("sagachain/attestations/v1", [items, executor]). Each item is
//     applied in order as the attestation it stands for; an item that no
//     longer fits the state (its task finished, timed out or moved to
//     another executor first) is skipped and changes nothing; a batch of
//     which no item fits is invalid.
//   - Retry body: [operation id, nonce, submitter, signature], signed as
//     sign("sagachain/retry/v1", [operation id, nonce, submitter]).
//   - Announcement body: [validator, [function…], seq, signature], signed as
//     sign("sagachain/announce/v1", [validator, [function…], seq]).
//   - Stage record body (kinds 2 and 5, unsigned: every validator derives
//     them): [operation id, stage, prev, [[id, run, rollback, rule,
//     Keccak256(rule), executor, deadline (Unix ms)]…]]. prev is the hash of
//     the operation's previous record entry, its submission's for stage 0,
//     so an operation's records form their own hash chain.
//   - Timeout body: [operation id, task ("" for the operation's own
//     timeout), rollback].
//   - Heartbeat body: [executor, time (the signer's clock, Unix ms),
//     signature], signed as sign("sagachain/heartbeat/v1", [executor,
//     time]).
//   - Failover body (made by proposers, unsigned): [operation id, task,
//     rollback, from].
//   - Evidence body: [vote, vote], two conflicting signed votes.
//
// Merkle roots (entries root, results root) follow RFC 6962 with
// Keccak-256: a leaf is Keccak256(0x00 ‖ data), an inner node
// Keccak256(0x01 ‖ left ‖ right), the split at the largest power of two
// below n, and the empty tree's root is Keccak256 of nothing. The results
// root of block h (carried in header h+1) is the root over one leaf per
// decision that applying block h made, each the RLP [operation id, event
// seq, event type, stage+1 (0 for none), task, valid (0 none, 1 false, 2
// true), status, reason], or for an announcement ["announcement",
// validator, seq], for evidence ["evidence", validator, height, round],
// for an executor a failover marks down ["executor_down", executor,
// height], and for one marked down that a block sees again
// ["executor_up", executor, height]. The leaf of a move event
// (task_moved, rollback_moved) carries the two executors after the
// reason: [..., reason, from, to]. An auditor recomputes them by
// replaying the chain.
//
// The reason in a leaf is only text this project produces or a signer
// signed, never a library's message, so that a library upgrade cannot
// change a root: an executor's signed error as it signed it; for a task the
// machine judged, "output rejected" (its output failed the output checks),
// "rule returned false: <rule source>", or "rule could not be evaluated:
// <rule source>" (the CEL program failed at run time); timeouts and the
// other reasons the machine writes itself as they read. The event shown by
// `op get` keeps the full message (cel-go's, say), which is not hashed.
//
// # Rules on entries that an auditor's replay applies
//
//   - No replay: an entry whose hash a committed block (or an earlier entry
//     of the same block) already carries is invalid, whatever its kind,
//     except timeouts, which the proposer derives from the state and which
//     repeat byte for byte after a retry. So a signed Retry, submission or
//     attestation acts once. The store's entry index ("e" keys, see
//     [BadgerStore]) answers the question; a replay keeps the same set in
//     memory. Rollback attempts count across retries, so an executor's
//     attestation of a retried rollback differs from the one before it.
//   - An attestation wins over a timeout: a block that carries the
//     timeout of a task (or of its rollback) and an attestation of that
//     task (or rollback), alone or as a batch item, anywhere in the block,
//     is invalid. The operation's own timeout (task "") is not affected.
//   - Leases and failover. Work released to an executor (a task's run or
//     its rollback) is leased to it from the block time of its assignment;
//     every block that carries an entry it signed (an attestation, a
//     batch, a heartbeat, an announcement) renews the lease, recording that
//     block's time as the executor's last_seen in the host table. When a
//     block's time is past params.executor_lease_ms after the later of the
//     two, or the executor is marked down already, a failover of that work
//     is due: applying it marks the executor down (if it is not) and moves
//     the work to the first live host of its function after the executor,
//     in address order and around, with the same idempotency key, a fresh
//     deadline (the function's timeout was not used) and the assignment
//     count one up; the move is an event of the operation. With no other
//     live host the failover only marks the executor down, and the work
//     waits for it or for its deadline. A timeout of work whose failover
//     to another host is due is invalid: the fault was not the function's.
//     New work is assigned among the live hosts (all of them when every
//     one is down). An executor marked down is up again with the next block
//     that carries an entry it signed. A heartbeat is taken only when
//     signed within the lease before the block's time, and no further
//     after it than params.max_clock_drift_ms. Failovers, like timeouts,
//     are exempt from the no-replay rule, and an attestation wins over a
//     failover as it does over a timeout.
//   - Evidence once: an offence is named by its EvidenceKey, Keccak256 of
//     RLP ["sagachain/evidence-key/v1", validator, height, round, vote
//     type]; evidence whose key a committed block (or the same block)
//     already recorded is invalid, whichever conflicting votes it holds.
//     The store indexes the key beside the entry hashes ("e" keys), at the
//     evidence entry's location.
//   - Retry authority: a Retry must be signed by the operation's submitter
//     or by a key the genesis lists under "operators"; another submitter is
//     refused ([ErrNotAuthorized]).
//   - Canonical data: a submission's operation must be exactly the bytes
//     json.Marshal gives for the operation parsed from it (what
//     `sagachain submit` signs), an attestation's output, when present,
//     canonical JSON as [CanonicalJSON] defines it, and error texts, task
//     and announced function names valid UTF-8: what the state keeps goes
//     into the store as JSON and must come back byte for byte.
//
// The export file's format is documented on [Export]. The examples
// ExampleAttestation_Sign and ExampleBlock_Sign check a signature using only
// go-ethereum's crypto and rlp packages, with a key anyone can reproduce.
package ledger
