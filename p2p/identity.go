package p2p

import (
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// privateKeyLen is the length of a raw secp256k1 scalar in bytes.
const privateKeyLen = 32

// identityKey turns a node's raw secp256k1 key into a libp2p key. libp2p
// reduces an out-of-range scalar modulo the curve order without complaint,
// which would give the node a peer id that does not belong to its validator
// address; such a scalar is refused instead, as the ledger refuses it.
func identityKey(raw []byte) (crypto.PrivKey, error) {
	if len(raw) != privateKeyLen {
		return nil, fmt.Errorf("private key: want %d bytes, got %d", privateKeyLen, len(raw))
	}
	var s secp256k1.ModNScalar
	overflow := s.SetByteSlice(raw)
	zero := s.IsZero()
	s.Zero()
	if overflow || zero {
		return nil, fmt.Errorf("private key: scalar is zero or not below the secp256k1 order")
	}
	k, err := crypto.UnmarshalSecp256k1PrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return k, nil
}

// PeerID returns the peer id of the node whose raw secp256k1 private key
// (32 big-endian bytes, the ledger's key form) is priv.
func PeerID(priv []byte) (peer.ID, error) {
	k, err := identityKey(priv)
	if err != nil {
		return "", err
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("private key: derive peer id: %w", err)
	}
	return id, nil
}

// PeerIDFromPubkey returns the peer id of the node whose secp256k1 public key
// is pub, in SEC 1 form: 33 bytes compressed or 65 bytes uncompressed. Both
// forms of one key give the same id, so a caller can derive the allow list
// from whatever form its genesis file holds.
func PeerIDFromPubkey(pub []byte) (peer.ID, error) {
	if len(pub) != 33 && len(pub) != 65 {
		return "", fmt.Errorf("public key: want 33 (compressed) or 65 (uncompressed) bytes, got %d", len(pub))
	}
	k, err := crypto.UnmarshalSecp256k1PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("public key: not a secp256k1 point: %w", err)
	}
	id, err := peer.IDFromPublicKey(k)
	if err != nil {
		return "", fmt.Errorf("public key: derive peer id: %w", err)
	}
	return id, nil
}
