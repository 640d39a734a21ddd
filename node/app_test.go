package node

import (
	"testing"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/sagachain/sagachain/ledger"
)

// TestBuiltHereTrustsOnlyTheBuiltEntries checks the shortcut that spares
// a proposer re-checking its own block: a copy by value (what consensus
// keeps) qualifies; the same signed header carrying entries that arrived
// from elsewhere, even equal ones, does not.
func TestBuiltHereTrustsOnlyTheBuiltEntries(t *testing.T) {
	k := key(t, 1)
	e, err := ledger.NewEntry(ledger.KindTimeout, &ledger.Timeout{Operation: ledger.Hash{1}, Task: "a"})
	if err != nil {
		t.Fatal(err)
	}
	built, err := ledger.NewBlock(k, "c", 1, 0, 1000, ledger.Hash{}, ledger.Hash{}, ledger.Commit{}, []ledger.Entry{e})
	if err != nil {
		t.Fatal(err)
	}
	copied := *built
	if !builtHere(built, &copied) {
		t.Error("a copy by value of the built block is not recognised")
	}
	raw, err := rlp.EncodeToBytes(built)
	if err != nil {
		t.Fatal(err)
	}
	var decoded ledger.Block
	if err := rlp.DecodeBytes(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	if builtHere(built, &decoded) {
		t.Error("a block decoded from the wire counts as built here")
	}
	forged := *built
	other, _ := ledger.NewEntry(ledger.KindTimeout, &ledger.Timeout{Operation: ledger.Hash{2}, Task: "a"})
	forged.Entries = []ledger.Entry{other}
	if builtHere(built, &forged) {
		t.Error("the built header with other entries counts as built here")
	}
	if builtHere(nil, &copied) {
		t.Error("no built block counts as built here")
	}
}
