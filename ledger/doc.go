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
package ledger
