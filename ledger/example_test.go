package ledger_test

import (
	"bytes"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/sagachain/sagachain/ledger"
)

// An auditor checks an attestation with nothing but go-ethereum's crypto and
// rlp packages: rebuild the payload, the signing hash, and recover the
// signer. The key here is the scalar 1, so anyone can reproduce the bytes.
func ExampleAttestation_Sign() {
	key, _ := ledger.ParsePrivateKeyHex("0000000000000000000000000000000000000000000000000000000000000001")
	a := &ledger.Attestation{
		Operation: common.HexToHash("0x1111111111111111111111111111111111111111111111111111111111111111"),
		Task:      "flight",
		Attempts:  1,
		Output:    []byte(`{"flight":{"confirmation":"QX12AB"}}`),
	}
	if err := a.Sign(key, "sagachain-dev"); err != nil {
		panic(err)
	}

	// What the auditor does, independently of sagachain's types:
	payload, _ := rlp.EncodeToBytes([]any{
		a.Operation, a.Task, a.Rollback, a.Attempts, a.Output, a.Error, a.Permanent, a.Executor,
	})
	pre, _ := rlp.EncodeToBytes([]any{[]byte("sagachain/attestation/v1"), []byte("sagachain-dev"), crypto.Keccak256(payload)})
	hash := crypto.Keccak256(pre)
	pub, err := crypto.SigToPub(hash, a.Signature[:])
	if err != nil {
		panic(err)
	}
	fmt.Println("payload matches:", bytes.Equal(payload, a.SigningPayload()))
	fmt.Printf("signing hash:    0x%x\n", hash)
	fmt.Printf("signature:       %s\n", a.Signature)
	fmt.Println("signer:         ", crypto.PubkeyToAddress(*pub).Hex())
	fmt.Println("is the executor:", crypto.PubkeyToAddress(*pub) == a.Executor)
	// Output:
	// payload matches: true
	// signing hash:    0x903eedc7714c3bc5bfc86154aa73303dc0d21ec29cfc2a19c6d5295d01680cfa
	// signature:       0x00ce4fe53acba0e763548953a8dba8c5c2dac5b923c380325528e8802eb0ad597558015da514f2440bb08c7076191b88268aeb817f9abc809f3f846a7f59d82200
	// signer:          0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf
	// is the executor: true
}

// A block's hash is the Keccak-256 of its header's RLP; its proposer signs
// the same RLP under the block domain. The header is a list of nine fields.
func ExampleBlock_Sign() {
	key, _ := ledger.ParsePrivateKeyHex("0000000000000000000000000000000000000000000000000000000000000001")
	b, err := ledger.NewBlock(key, "sagachain-dev", 1, 0, 1_700_000_000_000, common.Hash{}, ledger.MerkleRoot(nil), ledger.Commit{}, nil)
	if err != nil {
		panic(err)
	}
	h := b.Header
	header, _ := rlp.EncodeToBytes([]any{
		h.ChainID, h.Height, h.Round, h.Time, h.Prev, h.Proposer, h.EntriesRoot, h.ResultsRoot, h.LastCommitHash,
	})
	pre, _ := rlp.EncodeToBytes([]any{[]byte("sagachain/block/v1"), []byte("sagachain-dev"), crypto.Keccak256(header)})
	pub, err := crypto.SigToPub(crypto.Keccak256(pre), b.Signature[:])
	if err != nil {
		panic(err)
	}
	fmt.Println("block hash matches:", common.BytesToHash(crypto.Keccak256(header)) == b.Hash())
	fmt.Println("proposer:          ", crypto.PubkeyToAddress(*pub).Hex())
	// Output:
	// block hash matches: true
	// proposer:           0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf
}
