package ledger

import (
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// Address identifies a validator, executor or submitter: the last 20 bytes of
// the Keccak-256 hash of its uncompressed secp256k1 public key, exactly as in
// Ethereum, so the genesis file and the ledger can be checked with any
// Ethereum tooling.
type Address = common.Address

// ErrKeyFileMode reports a key file that group or others may access. A node key
// signs blocks and votes; like ssh, LoadKey will not use one that other users
// could have read.
var ErrKeyFileMode = errors.New("key file is accessible by group or others")

const (
	// privateKeyLen is the length of a secp256k1 scalar in bytes.
	privateKeyLen = 32
	// maxKeygenAttempts bounds the retries for out-of-range scalars. A scalar
	// is out of range with probability below 2^-127, so hitting the bound means
	// the random source is broken (for example it returns only zeros).
	maxKeygenAttempts = 16
	// maxKeyFileSize bounds what LoadKey reads: 64 hex digits, an optional
	// 0x prefix and surrounding whitespace fit well within it.
	maxKeyFileSize = 256
	// keyFileMode is the only permission LoadKey accepts from SaveKey's files
	// (stricter modes such as 0400 are accepted too).
	keyFileMode fs.FileMode = 0o600
)

// ParseAddress parses a 20-byte address written as 40 hex digits, with or
// without a 0x prefix. An all-lowercase or all-uppercase address is taken as
// is; a mixed-case one must carry a valid EIP-55 checksum, so that a mistyped
// address in a genesis or configuration file is caught rather than trusted.
func ParseAddress(s string) (Address, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(digits) != 2*common.AddressLength {
		return Address{}, fmt.Errorf("address %q: want %d hex digits, got %d", s, 2*common.AddressLength, len(digits))
	}
	b, err := decodeHex(digits)
	if err != nil {
		return Address{}, fmt.Errorf("address %q: %w", s, err)
	}
	addr := common.BytesToAddress(b)
	if digits != strings.ToLower(digits) && digits != strings.ToUpper(digits) {
		if want := addr.Hex(); digits != want[2:] {
			return Address{}, fmt.Errorf("address %q: mixed-case EIP-55 checksum does not match (want %s)", s, want)
		}
	}
	return addr, nil
}

// decodeHex decodes hex digits and, on failure, names the position but never
// echoes the input, since the input may be a secret key.
func decodeHex(digits string) ([]byte, error) {
	if len(digits)%2 != 0 {
		return nil, fmt.Errorf("odd number of hex digits (%d)", len(digits))
	}
	b, err := hex.DecodeString(digits)
	if err != nil {
		var inv hex.InvalidByteError
		if errors.As(err, &inv) {
			return nil, fmt.Errorf("invalid hex character at position %d", strings.IndexByte(digits, byte(inv)))
		}
		return nil, fmt.Errorf("invalid hex: %w", err)
	}
	return b, nil
}

// PrivateKey is a node's secp256k1 signing key. Its String method prints only
// the address, so a key that reaches a log line does not leak.
type PrivateKey struct {
	key *ecdsa.PrivateKey
}

// GenerateKey derives a new key from 32 bytes read from rand, reading again
// whenever the bytes are not a valid scalar (zero, or not below the curve
// order). The same bytes always give the same key, so tests and testnet
// tooling can pass a seeded reader; real nodes pass crypto/rand.Reader.
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	var buf [privateKeyLen]byte
	for range maxKeygenAttempts {
		if _, err := io.ReadFull(rand, buf[:]); err != nil {
			return nil, fmt.Errorf("generate key: read randomness: %w", err)
		}
		k, err := crypto.ToECDSA(buf[:])
		clear(buf[:])
		if err == nil {
			return &PrivateKey{key: k}, nil
		}
	}
	return nil, fmt.Errorf("generate key: random source gave %d out-of-range scalars in a row; it is not random", maxKeygenAttempts)
}

// PrivateKeyFromBytes returns the key whose scalar is the 32 big-endian bytes b.
func PrivateKeyFromBytes(b []byte) (*PrivateKey, error) {
	if len(b) != privateKeyLen {
		return nil, fmt.Errorf("private key: want %d bytes, got %d", privateKeyLen, len(b))
	}
	k, err := crypto.ToECDSA(b)
	if err != nil {
		return nil, fmt.Errorf("private key: scalar is zero or not below the secp256k1 order")
	}
	return &PrivateKey{key: k}, nil
}

// ParsePrivateKeyHex parses a key written as 64 hex digits, with or without a
// 0x prefix (the key file format). Errors never repeat the input.
func ParsePrivateKeyHex(s string) (*PrivateKey, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(digits) != 2*privateKeyLen {
		return nil, fmt.Errorf("private key: want %d hex digits, got %d", 2*privateKeyLen, len(digits))
	}
	b, err := decodeHex(digits)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	defer clear(b)
	return PrivateKeyFromBytes(b)
}

// Bytes returns the key's scalar as 32 big-endian bytes, the form other
// secp256k1 libraries (libp2p's identity among them) import.
func (k *PrivateKey) Bytes() []byte {
	return crypto.FromECDSA(k.key)
}

// Hex returns the key's scalar as 64 lowercase hex digits without a prefix,
// the key file format.
func (k *PrivateKey) Hex() string {
	b := k.Bytes()
	defer clear(b)
	return hex.EncodeToString(b)
}

// Address returns the address derived from the key's public key.
func (k *PrivateKey) Address() Address {
	return crypto.PubkeyToAddress(k.key.PublicKey)
}

// Public returns the key's public key.
func (k *PrivateKey) Public() PublicKey {
	var p PublicKey
	copy(p.b[:], crypto.FromECDSAPub(&k.key.PublicKey))
	return p
}

// String names the key by its address and never prints the secret.
func (k *PrivateKey) String() string {
	if k == nil || k.key == nil {
		return "PrivateKey(nil)"
	}
	return "PrivateKey(" + k.Address().Hex() + ")"
}

// GoString is String, so that %#v does not print the secret either.
func (k *PrivateKey) GoString() string {
	return k.String()
}

// LoadKey reads a key file written by SaveKey: 64 hex digits, optionally
// prefixed by 0x and surrounded by whitespace. Like ssh, it refuses a file that
// group or others may access, with an error wrapping ErrKeyFileMode that names
// the file, its mode and the fix.
func LoadKey(path string) (*PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	defer f.Close()
	// Stat the open file rather than the path, so the mode checked is the mode
	// of the file read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load key: %s is not a regular file (mode %s)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("load key: %s has mode %04o, want %04o (run chmod 600 %s): %w", path, perm, keyFileMode, path, ErrKeyFileMode)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load key: %s: %w", path, err)
	}
	defer clear(data)
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("load key: %s is larger than %d bytes; it is not a key file", path, maxKeyFileSize)
	}
	k, err := ParsePrivateKeyHex(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("load key: %s: %w", path, err)
	}
	return k, nil
}

// SaveKey writes the key to a new file at path with mode 0600, as hex text.
// It refuses to replace an existing file, since that would silently change a
// node's identity. The file appears complete or not at all: the key is written
// and synced to a temporary file in the same directory, which is then linked
// into place.
func (k *PrivateKey) SaveKey(path string) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".key-*.tmp")
	if err != nil {
		return fmt.Errorf("save key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	text := []byte(k.Hex() + "\n")
	defer clear(text)
	// CreateTemp already uses 0600; Chmod makes the mode explicit and
	// independent of that detail.
	if err := tmp.Chmod(keyFileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("save key %s: %w", path, err)
	}
	if _, err := tmp.Write(text); err != nil {
		tmp.Close()
		return fmt.Errorf("save key %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save key %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save key %s: %w", path, err)
	}
	// Link, unlike Rename, fails when path exists.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("save key %s: file exists; refusing to overwrite a key: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("save key %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save key %s: sync directory: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save key %s: sync directory: %w", path, err)
	}
	return nil
}

// PublicKey is a secp256k1 public key. It is a comparable value; the zero
// PublicKey is no key at all.
type PublicKey struct {
	b [65]byte // uncompressed SEC 1 encoding: 0x04 || X || Y
}

// ParsePublicKey parses a public key in SEC 1 form, either uncompressed
// (65 bytes, 0x04 || X || Y) or compressed (33 bytes), and checks that it is a
// point on secp256k1.
func ParsePublicKey(b []byte) (PublicKey, error) {
	var (
		pub *ecdsa.PublicKey
		err error
	)
	switch len(b) {
	case 65:
		pub, err = crypto.UnmarshalPubkey(b)
	case 33:
		pub, err = crypto.DecompressPubkey(b)
	default:
		return PublicKey{}, fmt.Errorf("public key: want 33 (compressed) or 65 (uncompressed) bytes, got %d", len(b))
	}
	if err != nil {
		return PublicKey{}, fmt.Errorf("public key: not a secp256k1 point: %w", err)
	}
	var p PublicKey
	copy(p.b[:], crypto.FromECDSAPub(pub))
	return p, nil
}

// IsZero reports whether p is the zero PublicKey.
func (p PublicKey) IsZero() bool {
	return p == PublicKey{}
}

// Bytes returns the 65-byte uncompressed encoding, or nil for the zero
// PublicKey.
func (p PublicKey) Bytes() []byte {
	if p.IsZero() {
		return nil
	}
	return append([]byte(nil), p.b[:]...)
}

// Compressed returns the 33-byte compressed encoding, or nil for the zero
// PublicKey.
func (p PublicKey) Compressed() []byte {
	if p.IsZero() {
		return nil
	}
	pub, err := crypto.UnmarshalPubkey(p.b[:])
	if err != nil {
		// Every non-zero PublicKey was built from a checked point.
		panic(fmt.Sprintf("ledger: corrupt PublicKey: %v", err))
	}
	return crypto.CompressPubkey(pub)
}

// Address returns the address of p: the last 20 bytes of Keccak-256 over the
// 64 bytes X || Y. The zero PublicKey has the zero Address.
func (p PublicKey) Address() Address {
	if p.IsZero() {
		return Address{}
	}
	return common.BytesToAddress(crypto.Keccak256(p.b[1:])[12:])
}
