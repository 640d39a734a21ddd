package ledger

import (
	"fmt"

	"github.com/ethereum/go-ethereum/crypto"
)

// Parent is what the next block must link to.
type Parent struct {
	Height uint64
	Hash   Hash
	// Time is the parent's block time, the genesis time for height 0.
	Time uint64
	// Results is the results root of applying the parent.
	Results Hash
}

// GenesisParent is the parent of block 1.
func GenesisParent(g *Genesis) Parent {
	return Parent{Height: 0, Hash: g.Hash(), Time: g.Time, Results: MerkleRoot(nil)}
}

// CheckHeader checks everything about block b that does not need its
// entries applied: chain id, height and hash link to p, time after p's, the
// proposer that the protocol names for the block's height and round, the
// proposer's signature, and the certificate of p that b carries. It also
// checks that the header's entries root matches b's entries.
func (m *Machine) CheckHeader(p Parent, b *Block) error {
	g, hd := m.genesis, &b.Header
	h := p.Height + 1
	switch {
	case hd.ChainID != g.ChainID:
		return fmt.Errorf("chain id %q, genesis says %q", hd.ChainID, g.ChainID)
	case hd.Height != h:
		return fmt.Errorf("header says height %d, want %d", hd.Height, h)
	case hd.Prev != p.Hash:
		return fmt.Errorf("prev hash %s does not link to block %d (%s)", hd.Prev, p.Height, p.Hash)
	case hd.Time <= p.Time:
		return fmt.Errorf("time %d is not after the previous block's %d", hd.Time, p.Time)
	case hd.Proposer != m.vals.Proposer(h, hd.Round):
		return fmt.Errorf("proposer %s, but round %d of height %d belongs to %s", hd.Proposer.Hex(), hd.Round, h, m.vals.Proposer(h, hd.Round).Hex())
	case hd.ResultsRoot != p.Results:
		return fmt.Errorf("results root %s, applying block %d gave %s", hd.ResultsRoot, p.Height, p.Results)
	case hd.LastCommitHash != b.LastCommit.Hash():
		return fmt.Errorf("last commit hash does not match the certificate carried")
	}
	if err := m.VerifyBlockSignature(b); err != nil {
		return err
	}
	if h == 1 {
		if len(b.LastCommit.Signatures) != 0 {
			return fmt.Errorf("block 1 carries a certificate, but genesis needs none")
		}
	} else if err := m.VerifyCommit(p.Height, p.Hash, &b.LastCommit); err != nil {
		return fmt.Errorf("last commit: %w", err)
	}
	return nil
}

// VerifyCommit is the package's VerifyCommit for this chain, remembering
// the signatures it has verified: a certificate is checked when its block
// commits and again inside the next block, and a node catching up can check
// certificates in parallel ahead of applying their blocks.
func (m *Machine) VerifyCommit(height uint64, blockHash Hash, c *Commit) error {
	return verifyCommit(m.vals, height, blockHash, c, m.VerifyVote)
}

// VerifyVote is v.Verify for this chain, remembering the votes it has
// verified: a vote is checked by gossip validation, by consensus, and again
// in the certificates that carry it.
func (m *Machine) VerifyVote(v *Vote) error {
	return m.verifyOnce(crypto.Keccak256Hash(mustRLP(v)), func() error { return v.Verify(m.genesis.ChainID) })
}

// VerifyBlockSignature is Block.VerifySignature remembering what it has
// verified, as VerifyCommit does.
func (m *Machine) VerifyBlockSignature(b *Block) error {
	h := b.Hash()
	key := crypto.Keccak256Hash(h[:], b.Signature[:])
	return m.verifyOnce(key, b.VerifySignature)
}

// CheckEntriesRoot checks the header's entries root against the entries.
func CheckEntriesRoot(b *Block) error {
	if root := EntriesRoot(b.Entries); b.Header.EntriesRoot != root {
		return fmt.Errorf("entries root %s does not match the entries (%s)", b.Header.EntriesRoot, root)
	}
	return nil
}

// CheckBody checks that the body b carries is the one its header commits
// to: the entries root and the last-commit hash of the header match the
// entries and the certificate carried. A block's hash covers only its
// header, so without this check a relay can pair a genuine signed header
// with other entries or another certificate. Once it passes and the
// proposer's signature verifies, the header hash identifies the whole
// block and may key what was learnt about it.
func (b *Block) CheckBody() error {
	if err := CheckEntriesRoot(b); err != nil {
		return fmt.Errorf("block %d: %w", b.Header.Height, err)
	}
	if b.Header.LastCommitHash != b.LastCommit.Hash() {
		return fmt.Errorf("block %d: last commit hash %s does not match the certificate carried", b.Header.Height, b.Header.LastCommitHash)
	}
	return nil
}
