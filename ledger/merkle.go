package ledger

import (
	"fmt"
	"math/bits"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// Leaf and node prefixes of the Merkle tree (see MerkleRoot).
const (
	merkleLeafPrefix byte = 0x00
	merkleNodePrefix byte = 0x01
)

// merkleHasher reuses one Keccak state and scratch buffers across the many
// hashes of a tree, so hashing a tree allocates only its slice of hashes.
type merkleHasher struct {
	state crypto.KeccakState
	pair  [1 + 2*common.HashLength]byte // 0x01 || left || right
	out   common.Hash
}

func newMerkleHasher() *merkleHasher {
	m := &merkleHasher{state: crypto.NewKeccakState()}
	m.pair[0] = merkleNodePrefix
	return m
}

var merkleLeafPrefixBytes = []byte{merkleLeafPrefix}

func (m *merkleHasher) leaf(data []byte) common.Hash {
	m.state.Reset()
	m.state.Write(merkleLeafPrefixBytes)
	m.state.Write(data)
	m.state.Read(m.out[:])
	return m.out
}

func (m *merkleHasher) node(left, right common.Hash) common.Hash {
	copy(m.pair[1:], left[:])
	copy(m.pair[1+common.HashLength:], right[:])
	m.state.Reset()
	m.state.Write(m.pair[:])
	m.state.Read(m.out[:])
	return m.out
}

// leaves hashes every leaf.
func (m *merkleHasher) leaves(data [][]byte) []common.Hash {
	hs := make([]common.Hash, len(data))
	for i, d := range data {
		hs[i] = m.leaf(d)
	}
	return hs
}

// root returns the root over leaf hashes, overwriting hs. Pairing neighbours
// level by level and carrying an unpaired last node up unchanged builds the
// same tree as RFC 6962's split at the largest power of two below n, in O(n)
// hashes and without recursion.
func (m *merkleHasher) root(hs []common.Hash) common.Hash {
	n := len(hs)
	for n > 1 {
		for i := 0; i+1 < n; i += 2 {
			hs[i/2] = m.node(hs[i], hs[i+1])
		}
		if n%2 == 1 {
			hs[n/2] = hs[n-1]
		}
		n = (n + 1) / 2
	}
	return hs[0]
}

// merkleSplit returns the largest power of two smaller than n, for n >= 2.
func merkleSplit(n int) int {
	return 1 << (bits.Len(uint(n-1)) - 1)
}

// MerkleRoot returns the root of the Merkle tree over leaves, the tree of a
// block's entries and of its results. It is the tree of RFC 6962 §2.1
// (Certificate Transparency) with Keccak-256 in place of SHA-256:
//
//	MTH({})     = Keccak256()                                    (no leaves)
//	MTH({d0})   = Keccak256(0x00 || d0)                          (leaf)
//	MTH(D[0:n]) = Keccak256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  (node, n > 1)
//
// where k is the largest power of two smaller than n. The root of no leaves is
// thus Keccak-256 of the empty string,
// 0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470. The
// distinct one-byte leaf and node prefixes mean no leaf can pose as an inner
// node, so a crafted 64-byte leaf cannot stand in for a subtree. Inclusion
// proofs (MerkleProof) are RFC 6962 audit paths and are checked
// (VerifyMerkleProof) with the algorithm of RFC 9162 §2.1.3.2.
func MerkleRoot(leaves [][]byte) common.Hash {
	if len(leaves) == 0 {
		return crypto.Keccak256Hash()
	}
	m := newMerkleHasher()
	return m.root(m.leaves(leaves))
}

// MerkleProof returns the inclusion proof of leaves[index]: the RFC 6962 audit
// path, the sibling hashes from the bottom of the tree to the top. A tree of
// one leaf has an empty proof.
func MerkleProof(leaves [][]byte, index int) ([]common.Hash, error) {
	if index < 0 || index >= len(leaves) {
		return nil, fmt.Errorf("merkle proof: leaf index %d out of range for %d leaves", index, len(leaves))
	}
	m := newMerkleHasher()
	hs := m.leaves(leaves)
	// Descend from the root, collecting the root of the subtree on the other
	// side of each split; the subtrees are disjoint, so this is O(n) hashes.
	var path []common.Hash
	lo, hi := 0, len(hs)
	for hi-lo > 1 {
		k := merkleSplit(hi - lo)
		if index < lo+k {
			path = append(path, m.root(append([]common.Hash(nil), hs[lo+k:hi]...)))
			hi = lo + k
		} else {
			path = append(path, m.root(append([]common.Hash(nil), hs[lo:lo+k]...)))
			lo += k
		}
	}
	// Collected top-down; proofs list them bottom-up.
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path, nil
}

// VerifyMerkleProof reports whether proof shows that leaf is leaf number index
// of a tree of size leaves whose root is root.
func VerifyMerkleProof(root common.Hash, leaf []byte, index, size int, proof []common.Hash) bool {
	if index < 0 || index >= size {
		return false
	}
	m := newMerkleHasher()
	// RFC 9162 §2.1.3.2: fn is the node's index at the current level and sn
	// the index of the level's last node; a node that is right of its
	// sibling, or last and unpaired, is hashed as the right child.
	fn, sn := uint(index), uint(size-1)
	r := m.leaf(leaf)
	for _, p := range proof {
		if sn == 0 {
			return false // the proof is longer than the tree is deep
		}
		if fn&1 == 1 || fn == sn {
			r = m.node(p, r)
			if fn&1 == 0 {
				// A last, unpaired node rises unchanged until it is a right child.
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = m.node(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && r == root
}
