package ledger

import (
	"bytes"
	"testing"
)

// benchPayload is about the size of an RLP-encoded vote or small attestation.
var benchPayload = bytes.Repeat([]byte{0x5a}, 200)

func BenchmarkSign(b *testing.B) {
	k := testKey(b, 40)
	for b.Loop() {
		if _, err := k.Sign(DomainVote, testChainID, benchPayload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecover(b *testing.B) {
	k := testKey(b, 41)
	sig := mustSign(b, k, DomainVote, testChainID, benchPayload)
	for b.Loop() {
		if _, err := Recover(DomainVote, testChainID, benchPayload, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSigningHash(b *testing.B) {
	for b.Loop() {
		SigningHash(DomainVote, testChainID, benchPayload)
	}
}

func BenchmarkMerkleRoot1000(b *testing.B) {
	leaves := make([][]byte, 1000)
	for i := range leaves {
		leaves[i] = benchPayload
	}
	for b.Loop() {
		MerkleRoot(leaves)
	}
}

func BenchmarkMerkleProof1000(b *testing.B) {
	leaves := make([][]byte, 1000)
	for i := range leaves {
		leaves[i] = benchPayload
	}
	for b.Loop() {
		if _, err := MerkleProof(leaves, 617); err != nil {
			b.Fatal(err)
		}
	}
}
