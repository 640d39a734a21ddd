package ledger

import (
	"bytes"
	"testing"

	"github.com/ethereum/go-ethereum/rlp"
)

// FuzzDecodeBlock feeds arbitrary bytes to the block decoder: it must never
// panic, and whatever it accepts must encode back to the same bytes (RLP is
// canonical, so one block has one encoding and one hash), with every entry
// body either decoding or refused with an error.
func FuzzDecodeBlock(f *testing.F) {
	c, _, _ := busyChain(&testing.T{})
	blocks, commits := signedChain(&testing.T{}, c)
	for i, b := range blocks {
		enc, _ := rlp.EncodeToBytes(b)
		f.Add(enc)
		cenc, _ := rlp.EncodeToBytes(commits[i])
		f.Add(cenc)
	}
	f.Add([]byte{})
	f.Add([]byte{0xc0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Block
		if err := rlp.DecodeBytes(data, &b); err != nil {
			return
		}
		again, err := rlp.EncodeToBytes(&b)
		if err != nil {
			t.Fatalf("decoded block does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("block re-encodes differently:\n%x\n%x", data, again)
		}
		for _, e := range b.Entries {
			v, err := e.Decode()
			if err == nil && v == nil {
				t.Fatal("entry decoded to nothing without an error")
			}
		}
		_ = b.Hash()
	})
}

// FuzzDecodeEntry does the same for a single entry body of every kind.
func FuzzDecodeEntry(f *testing.F) {
	c, _, _ := busyChain(&testing.T{})
	for _, entries := range c.blocks {
		for _, e := range entries {
			f.Add(uint8(e.Kind), e.Body)
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		e := Entry{Kind: Kind(kind), Body: body}
		v, err := e.Decode()
		if err != nil {
			return
		}
		again, err := rlp.EncodeToBytes(v)
		if err != nil {
			t.Fatalf("decoded %s does not encode: %v", e.Kind, err)
		}
		if !bytes.Equal(again, body) {
			t.Fatalf("%s re-encodes differently", e.Kind)
		}
	})
}
