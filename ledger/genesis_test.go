package ledger

import (
	"strings"
	"testing"
)

func TestGenesisValidatorPublicKeyMustMatchAddress(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	g := &Genesis{ChainID: "c", Validators: []GenesisValidator{NewGenesisValidator(a, "a")}, Params: DefaultParams()}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if pk, err := g.Validators[0].PublicKey(); err != nil || pk.Address() != a.Address() {
		t.Fatalf("public key %v, %v", pk, err)
	}
	g.Validators[0].PubKey = NewGenesisValidator(b, "").PubKey
	if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "validators[0]") {
		t.Fatalf("mismatched pub_key: got %v", err)
	}
	g.Validators[0].PubKey = "0xzz"
	if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "pub_key") {
		t.Fatalf("bad hex pub_key: got %v", err)
	}
}
