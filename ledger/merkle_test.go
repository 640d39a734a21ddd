package ledger

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// refRoot is RFC 6962 §2.1 MTH, written from the definition with no sharing
// of code or structure with merkle.go.
func refRoot(d [][]byte) common.Hash {
	switch n := len(d); n {
	case 0:
		return crypto.Keccak256Hash()
	case 1:
		return crypto.Keccak256Hash([]byte{0x00}, d[0])
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		l, r := refRoot(d[:k]), refRoot(d[k:])
		return crypto.Keccak256Hash([]byte{0x01}, l[:], r[:])
	}
}

// refPath is RFC 6962 §2.1.1 PATH(m, D[n]).
func refPath(m int, d [][]byte) []common.Hash {
	n := len(d)
	if n <= 1 {
		return nil
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	if m < k {
		return append(refPath(m, d[:k]), refRoot(d[k:]))
	}
	return append(refPath(m-k, d[k:]), refRoot(d[:k]))
}

// testLeaves returns n distinct leaves of varied lengths.
func testLeaves(n int) [][]byte {
	leaves := make([][]byte, n)
	for i := range leaves {
		leaves[i] = []byte(fmt.Sprintf("entry %d %s", i, strings.Repeat("x", i%7)))
	}
	return leaves
}

func TestMerkleRootMatchesRFC6962(t *testing.T) {
	for n := 0; n <= 33; n++ {
		leaves := testLeaves(n)
		orig := make([][]byte, n)
		for i, l := range leaves {
			orig[i] = bytes.Clone(l)
		}
		if got, want := MerkleRoot(leaves), refRoot(leaves); got != want {
			t.Fatalf("%d leaves: root %s, RFC 6962 reference %s", n, got, want)
		}
		for i := range leaves {
			if !bytes.Equal(leaves[i], orig[i]) {
				t.Fatalf("%d leaves: MerkleRoot modified leaf %d", n, i)
			}
		}
	}
}

func TestMerkleRootOfNothing(t *testing.T) {
	// Documented on MerkleRoot: Keccak-256 of the empty string.
	want := common.HexToHash("0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
	if got := MerkleRoot(nil); got != want || crypto.Keccak256Hash() != want {
		t.Fatalf("MerkleRoot(nil) = %s, want %s", got, want)
	}
	// One empty leaf is not the empty tree.
	if MerkleRoot([][]byte{{}}) == want {
		t.Fatal("a tree of one empty leaf has the empty tree's root")
	}
}

func TestMerkleRootDependsOnOrderAndEveryLeaf(t *testing.T) {
	leaves := testLeaves(9)
	root := MerkleRoot(leaves)
	swapped := slices.Clone(leaves)
	swapped[3], swapped[4] = swapped[4], swapped[3]
	if MerkleRoot(swapped) == root {
		t.Fatal("swapping two leaves kept the root")
	}
	if MerkleRoot(leaves[:8]) == root {
		t.Fatal("dropping the last leaf kept the root")
	}
}

func TestMerkleProofs(t *testing.T) {
	for n := 1; n <= 33; n++ {
		leaves := testLeaves(n)
		root := MerkleRoot(leaves)
		for i := range leaves {
			proof, err := MerkleProof(leaves, i)
			if err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			if want := refPath(i, leaves); !slices.Equal(proof, want) {
				t.Fatalf("n=%d i=%d: proof %v, RFC 6962 PATH %v", n, i, proof, want)
			}
			if !VerifyMerkleProof(root, leaves[i], i, n, proof) {
				t.Fatalf("n=%d i=%d: valid proof rejected", n, i)
			}
			checkProofRejections(t, leaves, root, i, proof)
		}
	}
}

// checkProofRejections checks that changing any one input of a valid proof
// check makes it fail.
func checkProofRejections(t *testing.T, leaves [][]byte, root common.Hash, i int, proof []common.Hash) {
	t.Helper()
	n := len(leaves)
	fail := func(what string, ok bool) {
		t.Helper()
		if ok {
			t.Fatalf("n=%d i=%d: proof accepted with %s", n, i, what)
		}
	}
	fail("a wrong leaf", VerifyMerkleProof(root, append(bytes.Clone(leaves[i]), '!'), i, n, proof))
	if n > 1 {
		fail("another leaf of the tree", VerifyMerkleProof(root, leaves[(i+1)%n], i, n, proof))
	}
	for j := -1; j <= n; j++ {
		if j != i {
			fail(fmt.Sprintf("index %d", j), VerifyMerkleProof(root, leaves[i], j, n, proof))
		}
	}
	badRoot := root
	badRoot[0] ^= 1
	fail("a wrong root", VerifyMerkleProof(badRoot, leaves[i], i, n, proof))
	fail("size 0", VerifyMerkleProof(root, leaves[i], i, 0, proof))
	for k := range proof {
		bad := slices.Clone(proof)
		bad[k][31] ^= 1
		fail(fmt.Sprintf("proof element %d altered", k), VerifyMerkleProof(root, leaves[i], i, n, bad))
	}
	if len(proof) > 0 {
		fail("the last proof element dropped", VerifyMerkleProof(root, leaves[i], i, n, proof[:len(proof)-1]))
	}
	fail("an extra proof element", VerifyMerkleProof(root, leaves[i], i, n, append(slices.Clone(proof), root)))
}

func TestMerkleProofIndexOutOfRange(t *testing.T) {
	leaves := testLeaves(5)
	for _, i := range []int{-1, 5, 100} {
		_, err := MerkleProof(leaves, i)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("leaf index %d out of range for 5 leaves", i)) {
			t.Fatalf("index %d: err = %v", i, err)
		}
	}
	if _, err := MerkleProof(nil, 0); err == nil {
		t.Fatal("proof in an empty tree: no error")
	}
}

// A leaf whose bytes are the concatenation of two child hashes must not
// reproduce the parent: the 0x00/0x01 prefixes separate leaves from nodes.
func TestMerkleLeafAndNodePrefixesDiffer(t *testing.T) {
	leafHash := func(d []byte) []byte { return crypto.Keccak256([]byte{0x00}, d) }
	a, b, c, d := []byte("a"), []byte("b"), []byte("c"), []byte("d")

	twoLeaves := MerkleRoot([][]byte{a, b})
	forged := slices.Concat(leafHash(a), leafHash(b)) // 64 bytes
	if MerkleRoot([][]byte{forged}) == twoLeaves {
		t.Fatal("a 64-byte leaf made of two leaf hashes has the two-leaf root")
	}

	fourLeaves := MerkleRoot([][]byte{a, b, c, d})
	forgedPair := [][]byte{forged, slices.Concat(leafHash(c), leafHash(d))}
	if MerkleRoot(forgedPair) == fourLeaves {
		t.Fatal("two 64-byte leaves made of leaf hashes have the four-leaf root")
	}
	// Nor may the forged leaf be proven against the real root with the real
	// right subtree as its sibling.
	right := MerkleRoot([][]byte{c, d})
	if VerifyMerkleProof(fourLeaves, forged, 0, 2, []common.Hash{right}) {
		t.Fatal("a 64-byte leaf made of two leaf hashes proved against the four-leaf root")
	}

	// Without the prefixes the same forgery succeeds; this keeps the test
	// honest about what it guards against.
	h := crypto.Keccak256
	plainFour := h(h(h(a), h(b)), h(h(c), h(d)))
	plainForged := h(h(slices.Concat(h(a), h(b))), h(slices.Concat(h(c), h(d))))
	if !bytes.Equal(plainFour, plainForged) {
		t.Fatal("test setup: the forgery does not work on an unprefixed tree, so the checks above prove nothing")
	}
}
