package consensus

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/ethereum/go-ethereum/rlp"

	"github.com/sagachain/sagachain/ledger"
)

// DomainProposal is the signing domain of a Proposal. A proposal signature
// covers only (height, round, POL round, block hash), so it can never be
// replayed as a block or a vote signature, which use their own domains.
const DomainProposal ledger.Domain = "sagachain/proposal/v1"

// ErrInvalidMessage reports a proposal or vote the core refused: malformed,
// badly signed, from a non-validator or from the wrong proposer, or a
// re-proposal whose proof of lock does not hold. Errors returned by
// Core.Step wrap it together with the cause.
var ErrInvalidMessage = errors.New("invalid consensus message")

// Proposal is the proposer's offer of a block for one height and round.
//
// A fresh proposal has POLRound -1 and a block built in Round. A re-proposal
// of a block that was already prevoted by a quorum carries that round in
// POLRound and the quorum's prevotes in POL (its proof of lock), so a
// validator that missed those prevotes can still check the lock it may
// release. The block keeps the header and signature of the proposer of the
// round it was built in (Block.Header.Round), which may differ from the
// proposer of Round.
type Proposal struct {
	Height uint64
	Round  uint64
	// POLRound is the round of the proof of lock, or -1 for none.
	POLRound int64
	Block    ledger.Block
	// POL holds prevotes of a quorum for Block at POLRound when POLRound >= 0.
	POL []ledger.Vote
	// Signature is the signature of the proposer of (Height, Round) under
	// DomainProposal over SigningPayload.
	Signature ledger.Signature
}

// SigningPayload is the RLP of [height, round, POL round + 1, block hash]:
// the POL round is shifted by one so that "none" (-1) encodes as 0 in RLP's
// unsigned integers. The POL votes themselves are not covered; each is
// checked under its own signature.
func (p *Proposal) SigningPayload() []byte {
	return proposalPayload(p.Height, p.Round, p.POLRound, p.Block.Hash())
}

func proposalPayload(height, round uint64, polRound int64, blockHash ledger.Hash) []byte {
	b, err := rlp.EncodeToBytes([]any{height, round, encodeRound(polRound), blockHash})
	if err != nil {
		panic(fmt.Sprintf("consensus: encode proposal payload: %v", err)) // unsigned integers and a hash always encode
	}
	return b
}

// Sign signs the proposal with s, which must be the proposer of (Height,
// Round) for the proposal to verify.
func (p *Proposal) Sign(s Signer, chainID string) error {
	sig, err := s.Sign(DomainProposal, chainID, p.SigningPayload())
	if err != nil {
		return fmt.Errorf("sign proposal %d/%d: %w", p.Height, p.Round, err)
	}
	p.Signature = sig
	return nil
}

// Verify checks that the proposal is signed by proposer on chainID.
func (p *Proposal) Verify(chainID string, proposer ledger.Address) error {
	if err := ledger.Verify(DomainProposal, chainID, p.SigningPayload(), p.Signature, proposer); err != nil {
		return fmt.Errorf("proposal %d/%d: %w", p.Height, p.Round, err)
	}
	return nil
}

// proposalRLP is the wire form of a Proposal; RLP has no signed integers,
// so POLRound travels shifted by one as in the signing payload.
type proposalRLP struct {
	Height    uint64
	Round     uint64
	POLRound  uint64
	Block     ledger.Block
	POL       []ledger.Vote
	Signature ledger.Signature
}

// EncodeRLP implements rlp.Encoder.
func (p *Proposal) EncodeRLP(w io.Writer) error {
	return rlp.Encode(w, &proposalRLP{Height: p.Height, Round: p.Round, POLRound: encodeRound(p.POLRound),
		Block: p.Block, POL: p.POL, Signature: p.Signature})
}

// DecodeRLP implements rlp.Decoder.
func (p *Proposal) DecodeRLP(s *rlp.Stream) error {
	var w proposalRLP
	if err := s.Decode(&w); err != nil {
		return err
	}
	pol, err := decodeRound(w.POLRound)
	if err != nil {
		return fmt.Errorf("proposal %d/%d POL round: %w", w.Height, w.Round, err)
	}
	*p = Proposal{Height: w.Height, Round: w.Round, POLRound: pol, Block: w.Block, POL: w.POL, Signature: w.Signature}
	return nil
}

// encodeRound maps an optional round (-1 for none) to RLP's unsigned
// integers: none is 0, round r is r+1.
func encodeRound(r int64) uint64 {
	if r < 0 {
		return 0
	}
	return uint64(r) + 1
}

// decodeRound inverts encodeRound.
func decodeRound(v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("round %d is out of range", v-1)
	}
	return int64(v) - 1, nil
}

// Message is what validators exchange: exactly one of Proposal and Vote is
// set.
type Message struct {
	Proposal *Proposal
	Vote     *ledger.Vote
}

// Height returns the height the message is for; the driver uses it to
// notice peers ahead of it and fetch the blocks it missed.
func (m Message) Height() uint64 {
	switch {
	case m.Proposal != nil:
		return m.Proposal.Height
	case m.Vote != nil:
		return m.Vote.Height
	}
	return 0
}

// Round returns the round the message is for.
func (m Message) Round() uint64 {
	switch {
	case m.Proposal != nil:
		return m.Proposal.Round
	case m.Vote != nil:
		return m.Vote.Round
	}
	return 0
}

// String describes the message for logs and test failures.
func (m Message) String() string {
	switch {
	case m.Proposal != nil && m.Vote == nil:
		p := m.Proposal
		return fmt.Sprintf("proposal %d/%d pol %d block %s", p.Height, p.Round, p.POLRound, p.Block.Hash().TerminalString())
	case m.Vote != nil && m.Proposal == nil:
		v := m.Vote
		return fmt.Sprintf("%s %d/%d %s by %s", v.Type, v.Height, v.Round, v.BlockHash.TerminalString(), v.Validator.Hex())
	}
	return "malformed message"
}

// Message kinds on the wire. The numbers are part of the encoding.
const (
	wireProposal uint8 = 1
	wireVote     uint8 = 2
)

// messageRLP is the wire envelope: the kind and the RLP of the body.
type messageRLP struct {
	Kind uint8
	Body rlp.RawValue
}

// MarshalBinary encodes the message as RLP([kind, body]) for the consensus
// topic.
func (m Message) MarshalBinary() ([]byte, error) {
	var (
		w   messageRLP
		err error
	)
	switch {
	case m.Proposal != nil && m.Vote == nil:
		w.Kind = wireProposal
		w.Body, err = rlp.EncodeToBytes(m.Proposal)
	case m.Vote != nil && m.Proposal == nil:
		w.Kind = wireVote
		w.Body, err = rlp.EncodeToBytes(m.Vote)
	default:
		return nil, fmt.Errorf("%w: want exactly one of proposal and vote", ErrInvalidMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m, err)
	}
	return rlp.EncodeToBytes(&w)
}

// UnmarshalBinary decodes what MarshalBinary produced. It checks only the
// encoding; the core checks signatures and membership.
func (m *Message) UnmarshalBinary(b []byte) error {
	var w messageRLP
	if err := rlp.DecodeBytes(b, &w); err != nil {
		return fmt.Errorf("%w: envelope: %w", ErrInvalidMessage, err)
	}
	switch w.Kind {
	case wireProposal:
		p := new(Proposal)
		if err := rlp.DecodeBytes(w.Body, p); err != nil {
			return fmt.Errorf("%w: proposal: %w", ErrInvalidMessage, err)
		}
		*m = Message{Proposal: p}
	case wireVote:
		v := new(ledger.Vote)
		if err := rlp.DecodeBytes(w.Body, v); err != nil {
			return fmt.Errorf("%w: vote: %w", ErrInvalidMessage, err)
		}
		*m = Message{Vote: v}
	default:
		return fmt.Errorf("%w: unknown message kind %d", ErrInvalidMessage, w.Kind)
	}
	return nil
}
