package ledger

import (
	"bytes"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
)

// TestEntryHashIsKeccakOfItsRLP pins Entry.Hash to what the auditor's
// document says it is, keccak256(rlp([kind, body])), across the body
// lengths where RLP changes its length prefix.
func TestEntryHashIsKeccakOfItsRLP(t *testing.T) {
	bodies := [][]byte{nil, {0x00}, {0x7f}, {0x80}, bytes.Repeat([]byte{1}, 55), bytes.Repeat([]byte{2}, 56),
		bytes.Repeat([]byte{3}, 255), bytes.Repeat([]byte{4}, 256), bytes.Repeat([]byte{5}, 70_000)}
	for k := Kind(0); k <= KindEvidence+1; k++ {
		for _, body := range bodies {
			e := Entry{Kind: k, Body: body}
			enc, err := rlp.EncodeToBytes(e)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := e.Hash(), crypto.Keccak256Hash(enc); got != want {
				t.Errorf("kind %d, body of %d bytes: hash %x, want %x", k, len(body), got, want)
			}
		}
	}
}

func BenchmarkEntryHash(b *testing.B) {
	e := Entry{Kind: KindAttestation, Body: bytes.Repeat([]byte{7}, 300)}
	for b.Loop() {
		e.Hash()
	}
}
