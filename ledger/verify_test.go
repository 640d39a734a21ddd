package ledger

import (
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/rlp"
)

// signedChain turns a testChain's blocks into a real signed chain: headers
// linked by hash, signed by the one validator, each committed by its
// precommit.
func signedChain(t *testing.T, c *testChain) ([]*Block, []*Commit) {
	t.Helper()
	g := c.m.Genesis()
	var blocks []*Block
	var commits []*Commit
	prev, results := g.Hash(), MerkleRoot(nil)
	var last Commit
	for h, entries := range c.blocks {
		b, err := NewBlock(c.val, g.ChainID, uint64(h+1), 0, c.ctxs[h].Time, prev, results, last, entries)
		if err != nil {
			t.Fatal(err)
		}
		v := Vote{Type: Precommit, Height: uint64(h + 1), BlockHash: b.Hash()}
		if err := v.Sign(c.val, g.ChainID); err != nil {
			t.Fatal(err)
		}
		cm := &Commit{Height: v.Height, BlockHash: v.BlockHash, Signatures: []CommitSig{{Validator: v.Validator, Signature: v.Signature}}}
		blocks, commits = append(blocks, b), append(commits, cm)
		prev, results, last = b.Hash(), c.roots[h], *cm
	}
	return blocks, commits
}

type sliceSource struct {
	blocks  []*Block
	commits []*Commit
	i       int
}

func (s *sliceSource) Next() (*Block, *Commit, error) {
	if s.i >= len(s.blocks) {
		return nil, nil, io.EOF
	}
	s.i++
	return s.blocks[s.i-1], s.commits[s.i-1], nil
}

// busyChain runs two trips to their end, one completing and one rolling
// back when its car fails, and returns the chain and both operation ids.
func busyChain(t *testing.T) (*testChain, Hash, Hash) {
	c := newTestChain(t)
	sub1, id1 := c.submit(tripYAML)
	sub2, id2 := c.submit(strings.Replace(tripYAML, "name: trip", "name: trip-b", 1))
	c.block(10, sub1, sub2)
	fail := func(task string, rb bool) (map[string]any, string) {
		if task == "car" && !rb {
			return nil, "no cars"
		}
		return nil, ""
	}
	for n := 0; n < 50 && !(c.op(id1).Saga.Status.Final() && c.op(id2).Saga.Status.Final()); n++ {
		c.block(10, append(c.attest(id1, c.val, ok), c.attest(id2, c.val, fail)...)...)
	}
	return c, id1, id2
}

func TestVerifyChainAcceptsAnHonestChain(t *testing.T) {
	c, _, _ := busyChain(t)
	blocks, commits := signedChain(t, c)
	rep, err := VerifyChain(c.m.Genesis(), &sliceSource{blocks: blocks, commits: commits})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blocks != uint64(len(blocks)) || rep.Operations != 2 {
		t.Fatalf("report %+v, want %d blocks and 2 operations", rep, len(blocks))
	}
	// Each block: proposer + own certificate; every block after the first
	// carries its parent's certificate too; plus the signed entries.
	if rep.Signatures <= 2*rep.Blocks {
		t.Fatalf("only %d signatures counted", rep.Signatures)
	}
}

// Flipping any byte of any block's encoding is caught at that block, and
// inside an entry's body at that entry.
func TestVerifyChainNamesTamperedBlockAndEntry(t *testing.T) {
	c, _, _ := busyChain(t)
	blocks, commits := signedChain(t, c)
	g := c.m.Genesis()
	rng := rand.New(rand.NewPCG(1, 2))
	for h := range blocks {
		enc, err := rlp.EncodeToBytes(blocks[h])
		if err != nil {
			t.Fatal(err)
		}
		for range 40 {
			pos := rng.IntN(len(enc))
			bad := append([]byte(nil), enc...)
			bad[pos] ^= 1 << rng.IntN(8)
			tampered := append([]*Block(nil), blocks...)
			var b Block
			if err := rlp.DecodeBytes(bad, &b); err != nil {
				continue // not a block any more: a reader refuses it with its own error
			}
			tampered[h] = &b
			_, err := VerifyChain(g, &sliceSource{blocks: tampered, commits: commits})
			var f *Fault
			if !errors.As(err, &f) {
				t.Fatalf("block %d byte %d flipped: verify said %v", h+1, pos, err)
			}
			if f.Height != uint64(h+1) {
				t.Fatalf("block %d byte %d flipped: fault named block %d (%v)", h+1, pos, f.Height, f)
			}
		}
		// A flip inside an entry's body names that entry.
		for k, e := range blocks[h].Entries {
			tampered := append([]*Block(nil), blocks...)
			b := *blocks[h]
			b.Entries = append([]Entry(nil), b.Entries...)
			body := append([]byte(nil), e.Body...)
			body[len(body)/2] ^= 0x01
			b.Entries[k] = Entry{Kind: e.Kind, Body: body}
			tampered[h] = &b
			_, err := VerifyChain(g, &sliceSource{blocks: tampered, commits: commits})
			var f *Fault
			if !errors.As(err, &f) || f.Height != uint64(h+1) || f.Entry != k {
				t.Fatalf("block %d entry %d (%s) flipped: got %v", h+1, k, e.Kind, err)
			}
		}
	}
}

func TestVerifyChainRefusesABadCertificate(t *testing.T) {
	c, _, _ := busyChain(t)
	blocks, commits := signedChain(t, c)
	stranger := testKey(t, 9)
	v := Vote{Type: Precommit, Height: 2, BlockHash: blocks[1].Hash()}
	if err := v.Sign(stranger, c.m.Genesis().ChainID); err != nil {
		t.Fatal(err)
	}
	forged := append([]*Commit(nil), commits...)
	forged[1] = &Commit{Height: 2, BlockHash: v.BlockHash, Signatures: []CommitSig{{Validator: v.Validator, Signature: v.Signature}}}
	_, err := VerifyChain(c.m.Genesis(), &sliceSource{blocks: blocks, commits: forged})
	var f *Fault
	if !errors.As(err, &f) || f.Height != 2 || !errors.Is(err, ErrNotValidator) {
		t.Fatalf("certificate by a stranger: got %v", err)
	}
	empty := append([]*Commit(nil), commits...)
	empty[0] = &Commit{Height: 1, BlockHash: blocks[0].Hash()}
	_, err = VerifyChain(c.m.Genesis(), &sliceSource{blocks: blocks, commits: empty})
	if !errors.As(err, &f) || f.Height != 1 || !errors.Is(err, ErrQuorum) {
		t.Fatalf("empty certificate: got %v", err)
	}
}
