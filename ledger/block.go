package ledger

import (
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/crypto"
)

// Header is what a block's hash and its proposer's signature cover.
type Header struct {
	ChainID string
	Height  uint64
	// Round is the consensus round in which the proposer built the block.
	Round uint64
	// Time is the proposer's clock in Unix milliseconds; it only grows.
	Time     uint64
	Prev     Hash
	Proposer Address
	// EntriesRoot is the Merkle root of the block's entry hashes.
	EntriesRoot Hash
	// ResultsRoot is the Merkle root of what applying the previous block
	// decided (DESIGN §4).
	ResultsRoot Hash
	// LastCommitHash is the hash of the previous block's certificate.
	LastCommitHash Hash
}

// Hash returns the header's hash, the block's identity.
func (h *Header) Hash() Hash { return crypto.Keccak256Hash(mustRLP(h)) }

// Block is one unit of consensus: a header, the entries it orders, the
// certificate that committed the previous block, and the proposer's
// signature over the header.
type Block struct {
	Header     Header
	Entries    []Entry
	LastCommit Commit
	Signature  Signature
}

// NewBlock assembles a block on top of prev and signs it with the
// proposer's key.
func NewBlock(key *PrivateKey, chainID string, height, round, time uint64, prev, results Hash, lastCommit Commit, entries []Entry) (*Block, error) {
	b := &Block{
		Header: Header{ChainID: chainID, Height: height, Round: round, Time: time, Prev: prev, Proposer: key.Address(),
			EntriesRoot: EntriesRoot(entries), ResultsRoot: results, LastCommitHash: lastCommit.Hash()},
		Entries:    entries,
		LastCommit: lastCommit,
	}
	if err := b.Sign(key); err != nil {
		return nil, err
	}
	return b, nil
}

// Hash returns the block's hash.
func (b *Block) Hash() Hash { return b.Header.Hash() }

// EntriesRoot computes the Merkle root of the block's entries.
func EntriesRoot(entries []Entry) Hash {
	leaves := make([][]byte, len(entries))
	for i, e := range entries {
		h := e.Hash()
		leaves[i] = h[:]
	}
	return MerkleRoot(leaves)
}

// Sign signs the header with key, which must be the header's proposer.
func (b *Block) Sign(key *PrivateKey) error {
	if key.Address() != b.Header.Proposer {
		return fmt.Errorf("block %d: key %s is not the proposer %s", b.Header.Height, key.Address(), b.Header.Proposer)
	}
	sig, err := key.Sign(DomainBlock, b.Header.ChainID, mustRLP(&b.Header))
	if err != nil {
		return fmt.Errorf("sign block %d: %w", b.Header.Height, err)
	}
	b.Signature = sig
	return nil
}

// VerifySignature checks the proposer's signature over the header.
func (b *Block) VerifySignature() error {
	if err := Verify(DomainBlock, b.Header.ChainID, mustRLP(&b.Header), b.Signature, b.Header.Proposer); err != nil {
		return fmt.Errorf("block %d proposer signature: %w", b.Header.Height, err)
	}
	return nil
}

// VoteType is the step a vote belongs to.
type VoteType uint8

// Vote types.
const (
	Prevote   VoteType = 1
	Precommit VoteType = 2
)

func (t VoteType) String() string {
	switch t {
	case Prevote:
		return "prevote"
	case Precommit:
		return "precommit"
	}
	return fmt.Sprintf("vote(%d)", uint8(t))
}

// Vote is a validator's signed vote for a block hash, or for nothing (the
// zero hash), at one height, round and step.
type Vote struct {
	Type      VoteType
	Height    uint64
	Round     uint64
	BlockHash Hash
	Validator Address
	Signature Signature
}

// SigningPayload is the RLP of [type, height, round, block hash]; the chain
// id and the vote domain enter through SigningHash (DESIGN §9).
func (v *Vote) SigningPayload() []byte {
	return mustRLP([]any{uint8(v.Type), v.Height, v.Round, v.BlockHash})
}

// Sign signs the vote with key, which becomes its validator.
func (v *Vote) Sign(key *PrivateKey, chainID string) error {
	v.Validator = key.Address()
	sig, err := key.Sign(DomainVote, chainID, v.SigningPayload())
	if err != nil {
		return fmt.Errorf("sign %s: %w", v.Type, err)
	}
	v.Signature = sig
	return nil
}

// Verify checks that the vote is signed by its validator.
func (v *Vote) Verify(chainID string) error {
	if err := Verify(DomainVote, chainID, v.SigningPayload(), v.Signature, v.Validator); err != nil {
		return fmt.Errorf("%s of %s at %d/%d: %w", v.Type, v.Validator, v.Height, v.Round, err)
	}
	return nil
}

// CommitSig is one validator's precommit signature in a certificate.
type CommitSig struct {
	Validator Address
	Signature Signature
}

// Commit is a commit certificate: precommits of more than two thirds of the
// validators for one block at one height and round. The certificate of
// height 0 (genesis) is empty.
type Commit struct {
	Height     uint64
	Round      uint64
	BlockHash  Hash
	Signatures []CommitSig
}

// Hash returns the certificate's hash, which the next header carries.
func (c *Commit) Hash() Hash { return crypto.Keccak256Hash(mustRLP(c)) }

// Vote returns the precommit signed by the i-th signer.
func (c *Commit) Vote(i int) Vote {
	return Vote{Type: Precommit, Height: c.Height, Round: c.Round, BlockHash: c.BlockHash,
		Validator: c.Signatures[i].Validator, Signature: c.Signatures[i].Signature}
}

// Certificate errors a caller may branch on.
var (
	ErrQuorum          = errors.New("not more than two thirds of the validators signed")
	ErrDuplicateSigner = errors.New("validator signed twice")
	ErrNotValidator    = errors.New("signer is not a validator")
)

// VerifyCommit checks that c commits blockHash at height with valid,
// distinct precommit signatures of more than two thirds of vals.
func VerifyCommit(chainID string, vals *ValidatorSet, height uint64, blockHash Hash, c *Commit) error {
	return verifyCommit(vals, height, blockHash, c, func(v *Vote) error { return v.Verify(chainID) })
}

// verifyCommit is VerifyCommit with the check of one signature, verify,
// given by the caller.
func verifyCommit(vals *ValidatorSet, height uint64, blockHash Hash, c *Commit, verify func(*Vote) error) error {
	if c.Height != height || c.BlockHash != blockHash {
		return fmt.Errorf("certificate is for block %s at height %d, want %s at %d", c.BlockHash, c.Height, blockHash, height)
	}
	seen := make(map[Address]bool, len(c.Signatures))
	for i := range c.Signatures {
		v := c.Vote(i)
		if !vals.Has(v.Validator) {
			return fmt.Errorf("certificate of height %d, signature %d by %s: %w", height, i, v.Validator, ErrNotValidator)
		}
		if seen[v.Validator] {
			return fmt.Errorf("certificate of height %d, signature %d by %s: %w", height, i, v.Validator, ErrDuplicateSigner)
		}
		seen[v.Validator] = true
		if err := verify(&v); err != nil {
			return fmt.Errorf("certificate of height %d, signature %d: %w", height, i, err)
		}
	}
	if len(seen) < vals.Quorum() {
		return fmt.Errorf("certificate of height %d: %d of %d signed, need %d: %w", height, len(seen), vals.Size(), vals.Quorum(), ErrQuorum)
	}
	return nil
}

// ValidatorSet is the ordered list of validators from genesis.
type ValidatorSet struct {
	list  []Address
	index map[Address]int
}

// NewValidatorSet returns the set of addrs in the given order. It refuses
// an empty list and repeats.
func NewValidatorSet(addrs []Address) (*ValidatorSet, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no validators")
	}
	vs := &ValidatorSet{list: append([]Address(nil), addrs...), index: make(map[Address]int, len(addrs))}
	for i, a := range addrs {
		if _, dup := vs.index[a]; dup {
			return nil, fmt.Errorf("validator %s listed twice", a)
		}
		vs.index[a] = i
	}
	return vs, nil
}

// Size is the number of validators n.
func (vs *ValidatorSet) Size() int { return len(vs.list) }

// Quorum is floor(2n/3)+1.
func (vs *ValidatorSet) Quorum() int { return 2*len(vs.list)/3 + 1 }

// Has reports whether a is a validator.
func (vs *ValidatorSet) Has(a Address) bool { _, ok := vs.index[a]; return ok }

// Index returns a's position in the set.
func (vs *ValidatorSet) Index(a Address) (int, bool) { i, ok := vs.index[a]; return i, ok }

// At returns the i-th validator.
func (vs *ValidatorSet) At(i int) Address { return vs.list[i] }

// List returns the validators in order.
func (vs *ValidatorSet) List() []Address { return append([]Address(nil), vs.list...) }

// Proposer is the validator that proposes at height h, round r: v_{(h+r) mod n}.
func (vs *ValidatorSet) Proposer(h, r uint64) Address {
	return vs.list[(h+r)%uint64(len(vs.list))]
}
