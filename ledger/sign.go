package ledger

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
)

// Domain tags what kind of object a signature is for. It is part of the
// signing hash, so a signature made for one kind never verifies as another.
// Changing an object's encoding means a new version suffix, never reusing a
// tag.
type Domain string

// The signing domains. Equivocation evidence has none of its own: it carries
// the two conflicting votes, each checked under DomainVote.
const (
	DomainBlock        Domain = "sagachain/block/v1"
	DomainVote         Domain = "sagachain/vote/v1"
	DomainSubmission   Domain = "sagachain/submission/v1"
	DomainAttestation  Domain = "sagachain/attestation/v1"
	DomainAttestations Domain = "sagachain/attestations/v1"
	DomainAnnouncement Domain = "sagachain/announce/v1"
)

// Errors a caller may branch on. They are returned wrapped with context;
// test with errors.Is.
var (
	// ErrHighS reports a signature whose S is above half the curve order.
	// For every valid (R, S) the pair (R, N-S) is valid too, so accepting both
	// would let anyone alter a signature's bytes without the key; like
	// Ethereum since Homestead, only the low-S form is accepted.
	ErrHighS = errors.New("signature S is in the upper half of the curve order")
	// ErrBadRecoveryID reports a recovery id V other than 0 or 1 (for example
	// Ethereum's 27/28 transaction form).
	ErrBadRecoveryID = errors.New("signature recovery id V is not 0 or 1")
	// ErrInvalidSignature reports a signature from which no public key can be
	// recovered: R or S zero or not below the curve order, or R not the
	// x-coordinate of a curve point.
	ErrInvalidSignature = errors.New("invalid signature")
	// ErrWrongSigner reports a valid signature by another key than required.
	ErrWrongSigner = errors.New("wrong signer")
	// ErrNoChainID reports an empty chain id, which would let a signature be
	// replayed on any chain that left its id empty too.
	ErrNoChainID = errors.New("empty chain id")
	// ErrNoDomain reports an empty signing domain.
	ErrNoDomain = errors.New("empty signing domain")
)

// SignatureLength is the length of a Signature in bytes.
const SignatureLength = crypto.SignatureLength

// Signature is a 65-byte recoverable secp256k1 signature in go-ethereum's
// layout: R (32 bytes, big-endian) || S (32 bytes, big-endian) || V, with V the
// recovery id 0 or 1 (not Ethereum's 27/28). RLP encodes it as a 65-byte
// string; JSON and text encode it as 0x-prefixed hex.
type Signature [SignatureLength]byte

// SignatureFromBytes checks the length of b and copies it into a Signature.
// It does not check the values; Recover does.
func SignatureFromBytes(b []byte) (Signature, error) {
	var s Signature
	if len(b) != SignatureLength {
		return s, fmt.Errorf("signature: want %d bytes, got %d", SignatureLength, len(b))
	}
	copy(s[:], b)
	return s, nil
}

// Bytes returns a copy of the signature's 65 bytes.
func (s Signature) Bytes() []byte {
	return append([]byte(nil), s[:]...)
}

// String returns the signature as 0x-prefixed hex.
func (s Signature) String() string {
	return "0x" + hex.EncodeToString(s[:])
}

// MarshalText encodes the signature as 0x-prefixed hex.
func (s Signature) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

// UnmarshalText decodes 130 hex digits, with or without a 0x prefix.
func (s *Signature) UnmarshalText(text []byte) error {
	str := string(text)
	if len(str) >= 2 && str[0] == '0' && (str[1] == 'x' || str[1] == 'X') {
		str = str[2:]
	}
	if len(str) != 2*SignatureLength {
		return fmt.Errorf("signature: want %d hex digits, got %d", 2*SignatureLength, len(str))
	}
	b, err := decodeHex(str)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	copy(s[:], b)
	return nil
}

// SigningHash returns the 32-byte hash that is signed for payload, the
// canonical encoding of an object of kind d on the chain chainID. It is
//
//	Keccak256(RLP([ []byte(d), []byte(chainID), Keccak256(payload) ]))
//
// that is, the Keccak-256 of the RLP encoding of a list of three byte strings:
// the domain tag's UTF-8 bytes, the chain id's UTF-8 bytes, and the 32-byte
// Keccak-256 of the payload. With go-ethereum, for example, an auditor
// recomputes it as
//
//	enc, _ := rlp.EncodeToBytes([]any{[]byte(domain), []byte(chainID), crypto.Keccak256(payload)})
//	hash := crypto.Keccak256(enc)
//
// and checks a Signature with crypto.Ecrecover(hash, sig[:]). Hashing the
// payload first keeps the signed preimage short and of fixed shape whatever
// the payload's size; the RLP list makes the three fields unambiguous, so no
// (domain, chainID) pair can be shifted into another.
func SigningHash(d Domain, chainID string, payload []byte) common.Hash {
	w := rlp.NewEncoderBuffer(nil)
	list := w.List()
	w.WriteString(string(d))
	w.WriteString(chainID)
	w.WriteBytes(crypto.Keccak256(payload))
	w.ListEnd(list)
	enc := w.ToBytes()
	w.Flush() // returns the buffer to rlp's pool; with no writer it cannot fail
	return crypto.Keccak256Hash(enc)
}

// checkScope refuses an empty domain or chain id, which would weaken the
// replay protection the signing hash exists for.
func checkScope(d Domain, chainID string) error {
	if d == "" {
		return ErrNoDomain
	}
	if chainID == "" {
		return ErrNoChainID
	}
	return nil
}

// Sign signs payload as an object of kind d on the chain chainID, over
// SigningHash(d, chainID, payload). Signatures are deterministic (RFC 6979)
// and always low-S.
func (k *PrivateKey) Sign(d Domain, chainID string, payload []byte) (Signature, error) {
	if err := checkScope(d, chainID); err != nil {
		return Signature{}, fmt.Errorf("sign %s: %w", d, err)
	}
	h := SigningHash(d, chainID, payload)
	b, err := crypto.Sign(h[:], k.key)
	if err != nil {
		return Signature{}, fmt.Errorf("sign %s: %w", d, err)
	}
	return SignatureFromBytes(b)
}

// Recover returns the address that signed payload as an object of kind d on
// the chain chainID. It accepts only the canonical form of a signature: V must
// be 0 or 1 (ErrBadRecoveryID) and S at most half the curve order (ErrHighS);
// R and S must be in range and recover a key (ErrInvalidSignature).
//
// A signature made for another payload, domain or chain id recovers some
// other address rather than failing, so callers must compare the result with
// the signer they expect; Verify does that.
func Recover(d Domain, chainID string, payload []byte, sig Signature) (Address, error) {
	if err := checkScope(d, chainID); err != nil {
		return Address{}, fmt.Errorf("recover %s signer: %w", d, err)
	}
	v := sig[crypto.RecoveryIDOffset]
	if v != 0 && v != 1 {
		return Address{}, fmt.Errorf("recover %s signer: V = %d: %w", d, v, ErrBadRecoveryID)
	}
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:64])
	// Check the full range first, so that ErrHighS means only that S is high.
	if !crypto.ValidateSignatureValues(v, r, s, false) {
		return Address{}, fmt.Errorf("recover %s signer: R or S is zero or not below the curve order: %w", d, ErrInvalidSignature)
	}
	if !crypto.ValidateSignatureValues(v, r, s, true) {
		return Address{}, fmt.Errorf("recover %s signer: %w", d, ErrHighS)
	}
	h := SigningHash(d, chainID, payload)
	pub, err := crypto.SigToPub(h[:], sig[:])
	if err != nil {
		return Address{}, fmt.Errorf("recover %s signer: %w: %w", d, ErrInvalidSignature, err)
	}
	return crypto.PubkeyToAddress(*pub), nil
}

// Verify checks that sig is want's signature of payload as an object of kind d
// on the chain chainID. When the signature is valid but by another key, the
// error wraps ErrWrongSigner and names both addresses.
func Verify(d Domain, chainID string, payload []byte, sig Signature, want Address) error {
	got, err := Recover(d, chainID, payload, sig)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("verify %s: signature by %s, want %s: %w", d, got.Hex(), want.Hex(), ErrWrongSigner)
	}
	return nil
}
