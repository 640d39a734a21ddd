package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
)

const testChainID = "sagachain-test"

var allDomains = []Domain{DomainBlock, DomainVote, DomainSubmission, DomainAttestation, DomainAnnouncement}

func mustSign(t testing.TB, k *PrivateKey, d Domain, chainID string, payload []byte) Signature {
	t.Helper()
	sig, err := k.Sign(d, chainID, payload)
	if err != nil {
		t.Fatalf("Sign(%s, %q): %v", d, chainID, err)
	}
	return sig
}

func TestSignRecoverRoundTrip(t *testing.T) {
	k := testKey(t, 20)
	payloads := [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte{0xab}, 1<<16)}
	for _, d := range allDomains {
		for _, p := range payloads {
			sig := mustSign(t, k, d, testChainID, p)
			got, err := Recover(d, testChainID, p, sig)
			if err != nil {
				t.Fatalf("%s, %d-byte payload: %v", d, len(p), err)
			}
			if got != k.Address() {
				t.Fatalf("%s, %d-byte payload: recovered %s, want %s", d, len(p), got.Hex(), k.Address().Hex())
			}
			if err := Verify(d, testChainID, p, sig, k.Address()); err != nil {
				t.Fatalf("%s, %d-byte payload: Verify: %v", d, len(p), err)
			}
		}
	}
}

func TestSignIsDeterministic(t *testing.T) {
	k := testKey(t, 21)
	a := mustSign(t, k, DomainVote, testChainID, []byte("vote"))
	b := mustSign(t, k, DomainVote, testChainID, []byte("vote"))
	if a != b {
		t.Fatalf("two signatures of one message differ:\n%s\n%s", a, b)
	}
}

func TestSignatureIsBoundToDomainAndChain(t *testing.T) {
	k := testKey(t, 22)
	payload := []byte("height 7 round 0 block 0xabc")
	type scope struct {
		d     Domain
		chain string
	}
	var scopes []scope
	for _, d := range allDomains {
		for _, chain := range []string{testChainID, "other-chain", testChainID + " "} {
			scopes = append(scopes, scope{d, chain})
		}
	}
	for _, signed := range scopes {
		sig := mustSign(t, k, signed.d, signed.chain, payload)
		for _, checked := range scopes {
			err := Verify(checked.d, checked.chain, payload, sig, k.Address())
			if checked == signed {
				if err != nil {
					t.Fatalf("signed and checked as %v: %v", signed, err)
				}
				continue
			}
			if !errors.Is(err, ErrWrongSigner) {
				t.Fatalf("signed as %v, checked as %v: err = %v, want ErrWrongSigner", signed, checked, err)
			}
			got, rerr := Recover(checked.d, checked.chain, payload, sig)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if got == k.Address() {
				t.Fatalf("signed as %v, checked as %v: recovered the signer", signed, checked)
			}
			if msg := err.Error(); !strings.Contains(msg, "signature by "+got.Hex()) || !strings.Contains(msg, "want "+k.Address().Hex()) {
				t.Fatalf("error %q does not name the recovered and the wanted signer", msg)
			}
		}
	}
}

func TestSigningHashFieldsAreUnambiguous(t *testing.T) {
	// Moving bytes between the domain and the chain id must change the hash.
	a := SigningHash("sagachain/vote/v1", "chain", []byte("p"))
	b := SigningHash("sagachain/vote/v1c", "hain", []byte("p"))
	if a == b {
		t.Fatal("shifting a byte from chain id to domain left the signing hash unchanged")
	}
}

// Every single-bit change of the signature or the payload must make the
// signature recover another address or fail.
func TestTamperingChangesSignerOrFails(t *testing.T) {
	k := testKey(t, 23)
	payload := []byte("attestation: task build, attempt 1, output ok")
	sig := mustSign(t, k, DomainAttestation, testChainID, payload)
	for i := range sig {
		for _, bit := range []byte{0x01, 0x80} {
			bad := sig
			bad[i] ^= bit
			got, err := Recover(DomainAttestation, testChainID, payload, bad)
			if err == nil && got == k.Address() {
				t.Fatalf("signature byte %d ^ %#x still recovers the signer", i, bit)
			}
			if Verify(DomainAttestation, testChainID, payload, bad, k.Address()) == nil {
				t.Fatalf("signature byte %d ^ %#x verifies", i, bit)
			}
		}
	}
	for i := range payload {
		bad := bytes.Clone(payload)
		bad[i] ^= 0x01
		got, err := Recover(DomainAttestation, testChainID, bad, sig)
		if err == nil && got == k.Address() {
			t.Fatalf("payload byte %d flipped still recovers the signer", i)
		}
	}
	if got, err := Recover(DomainAttestation, testChainID, append(bytes.Clone(payload), 0), sig); err == nil && got == k.Address() {
		t.Fatal("payload with an appended byte still recovers the signer")
	}
}

func TestHighSIsRefused(t *testing.T) {
	k := testKey(t, 24)
	payload := []byte("submission")
	sig := mustSign(t, k, DomainSubmission, testChainID, payload)

	n := crypto.S256().Params().N
	s := new(big.Int).SetBytes(sig[32:64])
	if s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		t.Fatalf("Sign produced a high-S signature %s", sig)
	}
	high := sig
	new(big.Int).Sub(n, s).FillBytes(high[32:64])
	high[64] ^= 1

	// The high-S twin is a valid ECDSA signature for the same key: a library
	// without the low-S rule accepts it. Recover must not.
	h := SigningHash(DomainSubmission, testChainID, payload)
	pub, err := crypto.Ecrecover(h[:], high[:])
	if err != nil || !bytes.Equal(pub, k.Public().Bytes()) {
		t.Fatalf("test setup: the high-S twin does not recover the key in go-ethereum (err %v)", err)
	}
	_, err = Recover(DomainSubmission, testChainID, payload, high)
	if !errors.Is(err, ErrHighS) {
		t.Fatalf("high-S twin: err = %v, want ErrHighS", err)
	}
	if err := Verify(DomainSubmission, testChainID, payload, high, k.Address()); !errors.Is(err, ErrHighS) {
		t.Fatalf("Verify of high-S twin: err = %v, want ErrHighS", err)
	}
}

func TestMalformedSignatureValues(t *testing.T) {
	k := testKey(t, 25)
	payload := []byte("block")
	sig := mustSign(t, k, DomainBlock, testChainID, payload)
	order := secp256k1Order()

	withV := func(v byte) Signature { s := sig; s[64] = v; return s }
	for _, v := range []byte{27, 28, 2, 255} {
		_, err := Recover(DomainBlock, testChainID, payload, withV(v))
		if !errors.Is(err, ErrBadRecoveryID) {
			t.Fatalf("V = %d: err = %v, want ErrBadRecoveryID", v, err)
		}
	}

	zeroR, zeroS, bigR, bigS := sig, sig, sig, sig
	clear(zeroR[:32])
	clear(zeroS[32:64])
	copy(bigR[:32], order)
	copy(bigS[32:64], order)
	for name, bad := range map[string]Signature{"R = 0": zeroR, "S = 0": zeroS, "R = N": bigR, "S = N": bigS} {
		_, err := Recover(DomainBlock, testChainID, payload, bad)
		if !errors.Is(err, ErrInvalidSignature) || errors.Is(err, ErrHighS) {
			t.Fatalf("%s: err = %v, want ErrInvalidSignature only", name, err)
		}
	}
}

func TestEmptyScopeIsRefused(t *testing.T) {
	k := testKey(t, 26)
	if _, err := k.Sign(DomainVote, "", nil); !errors.Is(err, ErrNoChainID) {
		t.Fatalf("Sign with empty chain id: err = %v, want ErrNoChainID", err)
	}
	if _, err := k.Sign("", testChainID, nil); !errors.Is(err, ErrNoDomain) {
		t.Fatalf("Sign with empty domain: err = %v, want ErrNoDomain", err)
	}
	sig := mustSign(t, k, DomainVote, testChainID, nil)
	if _, err := Recover(DomainVote, "", nil, sig); !errors.Is(err, ErrNoChainID) {
		t.Fatalf("Recover with empty chain id: err = %v, want ErrNoChainID", err)
	}
}

// An auditor with nothing but an Ethereum library must be able to recompute
// the signing hash and recover the signer.
func TestSigningHashMatchesEthereumTooling(t *testing.T) {
	k := testKey(t, 27)
	for _, d := range allDomains {
		for _, payload := range [][]byte{nil, []byte("p"), bytes.Repeat([]byte{7}, 1000)} {
			enc, err := rlp.EncodeToBytes([]any{[]byte(d), []byte(testChainID), crypto.Keccak256(payload)})
			if err != nil {
				t.Fatal(err)
			}
			want := crypto.Keccak256(enc)
			got := SigningHash(d, testChainID, payload)
			if !bytes.Equal(got[:], want) {
				t.Fatalf("%s: SigningHash = %x, hand-built = %x", d, got, want)
			}
			sig := mustSign(t, k, d, testChainID, payload)
			pub, err := crypto.Ecrecover(want, sig[:])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pub, crypto.FromECDSAPub(&k.key.PublicKey)) {
				t.Fatalf("%s: crypto.Ecrecover gave %x, want the signer's key", d, pub)
			}
			if !crypto.VerifySignature(pub, want, sig[:64]) {
				t.Fatalf("%s: crypto.VerifySignature rejects the signature", d)
			}
		}
	}
}

func TestSignatureEncodings(t *testing.T) {
	k := testKey(t, 28)
	sig := mustSign(t, k, DomainVote, testChainID, []byte("v"))

	j, err := json.Marshal(sig)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"` + sig.String() + `"`; string(j) != want || !strings.HasPrefix(sig.String(), "0x") || len(sig.String()) != 2+130 {
		t.Fatalf("JSON %s, want %s as 0x and 130 hex digits", j, want)
	}
	var back Signature
	if err := json.Unmarshal(j, &back); err != nil || back != sig {
		t.Fatalf("JSON round trip: %v, %s != %s", err, back, sig)
	}
	if err := json.Unmarshal([]byte(`"0x1234"`), &back); err == nil || !strings.Contains(err.Error(), "want 130 hex digits, got 4") {
		t.Fatalf("short JSON signature: err = %v", err)
	}

	// RLP carries it as one 65-byte string, as objects embedding it expect.
	enc, err := rlp.EncodeToBytes(sig)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := rlp.EncodeToBytes(sig[:]); !bytes.Equal(enc, want) {
		t.Fatalf("RLP of Signature = %x, want the byte string %x", enc, want)
	}
	var dec Signature
	if err := rlp.DecodeBytes(enc, &dec); err != nil || dec != sig {
		t.Fatalf("RLP round trip: %v", err)
	}

	fromBytes, err := SignatureFromBytes(sig.Bytes())
	if err != nil || fromBytes != sig {
		t.Fatalf("SignatureFromBytes round trip: %v", err)
	}
	if _, err := SignatureFromBytes(sig[:64]); err == nil || !strings.Contains(err.Error(), "want 65 bytes, got 64") {
		t.Fatalf("64-byte signature: err = %v", err)
	}
}
