package ledger

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/sagachain/sagachain/taskrt"
)

// Genesis is the trust anchor of a chain: its id, its validators in
// proposer order, who may submit operations, and the limits every node must
// agree on. An auditor needs nothing else to verify the chain.
type Genesis struct {
	ChainID string `json:"chain_id"`
	// Time is the genesis time in Unix milliseconds; block 1's time is later.
	Time       uint64             `json:"genesis_time"`
	Validators []GenesisValidator `json:"validators"`
	Submitters []Address          `json:"submitters"`
	// Operators may `op retry` any operation; anyone else only the
	// operations they submitted. Omitted when empty, so that a genesis
	// without operators keeps its hash.
	Operators []Address `json:"operators,omitempty"`
	Params    Params    `json:"params"`
}

// GenesisValidator is one validator of the genesis. PubKey, the
// compressed secp256k1 public key in hex, is what peers derive the
// validator's network identity from; it must match Address, and a network
// of more than one validator needs it for every validator.
type GenesisValidator struct {
	Address Address `json:"address"`
	PubKey  string  `json:"pub_key"`
	Name    string  `json:"name,omitempty"`
}

// PublicKey parses the validator's public key and checks it against its
// address.
func (v GenesisValidator) PublicKey() (PublicKey, error) {
	b, err := decodeHex(strings.TrimPrefix(v.PubKey, "0x"))
	if err != nil {
		return PublicKey{}, fmt.Errorf("pub_key: %w", err)
	}
	pk, err := ParsePublicKey(b)
	if err != nil {
		return PublicKey{}, fmt.Errorf("pub_key: %w", err)
	}
	if pk.Address() != v.Address {
		return PublicKey{}, fmt.Errorf("pub_key belongs to %s, not to %s", pk.Address().Hex(), v.Address.Hex())
	}
	return pk, nil
}

// NewGenesisValidator describes the validator holding key.
func NewGenesisValidator(key *PrivateKey, name string) GenesisValidator {
	return GenesisValidator{Address: key.Address(), PubKey: "0x" + hex.EncodeToString(key.Public().Compressed()), Name: name}
}

// Params are the limits of the chain.
type Params struct {
	MaxBlockEntries   int `json:"max_block_entries"`
	MaxBlockBytes     int `json:"max_block_bytes"`
	MaxTasks          int `json:"max_tasks"`
	MaxOperationBytes int `json:"max_operation_bytes"`
	MaxOutputBytes    int `json:"max_output_bytes"`
	// MaxClockDriftMS bounds how far ahead of a validator's clock a block's
	// time may be.
	MaxClockDriftMS uint64 `json:"max_clock_drift_ms"`

	// Work limits (README "Work limits"). The state machine refuses a
	// submission over them, so every node must agree on them: they are
	// chain params, not node settings. Zero (or absent, in a genesis that
	// predates them, whose hash they must not change) means the default.

	// MaxAttempts bounds "attempts" of a retry policy (default 100).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// MinBackoffMS is the least "backoff" of a retry of more than one
	// attempt (default 10).
	MinBackoffMS uint64 `json:"min_backoff_ms,omitempty"`
	// MaxSleepMS bounds the sleep builtin's params.ms (default 3600000).
	MaxSleepMS uint64 `json:"max_sleep_ms,omitempty"`
	// MaxOperationRuleCost bounds the sum of the worst-case CEL costs of an
	// operation's rules (default 10,000,000).
	MaxOperationRuleCost uint64 `json:"max_operation_rule_cost,omitempty"`
	// MaxBlockRuleCost is the CEL cost of rule evaluations after which a
	// block takes no more attestations (default 5,000,000).
	MaxBlockRuleCost uint64 `json:"max_block_rule_cost,omitempty"`
	// MaxBlockWriteBytes bounds what committing a block writes to the
	// store, as BlockWrites measures it (default 6 MiB; see
	// DefaultMaxBlockWriteBytes).
	MaxBlockWriteBytes uint64 `json:"max_block_write_bytes,omitempty"`
	// ExecutorLeaseMS is how long, in block time, an executor may stay
	// silent while it holds released work before that work moves to the
	// next live host of its function (default 1000; see ExecutorLease).
	ExecutorLeaseMS uint64 `json:"executor_lease_ms,omitempty"`
}

// DefaultExecutorLeaseMS is the default of params.executor_lease_ms. An
// executor that holds work renews its lease with every attestation and,
// while a run goes on, with a heartbeat a quarter of the lease apart, so
// a second leaves room for three lost or late heartbeats and a busy
// block; and a task whose executor dies moves within about a second, the
// budget issue 11 sets for failover.
const DefaultExecutorLeaseMS = 1000

// ExecutorLease returns params.executor_lease_ms, or its default.
func (p Params) ExecutorLease() uint64 {
	if p.ExecutorLeaseMS == 0 {
		return DefaultExecutorLeaseMS
	}
	return p.ExecutorLeaseMS
}

// DefaultMaxBlockWriteBytes is the default of params.max_block_write_bytes:
// 6 MiB, well under the 9.6 MiB badger writes in one transaction with the
// store's 64 MiB memtable (15% of it), leaving room for what the budget
// does not count (the certificate and the consensus record; see
// WriteReserve).
const DefaultMaxBlockWriteBytes = 6 << 20

// BlockWriteBytes returns params.max_block_write_bytes, or its default.
func (p Params) BlockWriteBytes() uint64 {
	if p.MaxBlockWriteBytes == 0 {
		return DefaultMaxBlockWriteBytes
	}
	return p.MaxBlockWriteBytes
}

// DefaultMaxBlockRuleCost is the default of params.max_block_rule_cost:
// five rules at taskrt.RuleCostLimit, about 0.75 s of evaluation on the
// development machine, within the 1 s a round waits for a proposal; real
// rules cost a few units each, so 5,000 attestations (a block's entry
// limit) never come near it.
const DefaultMaxBlockRuleCost = 5 * taskrt.RuleCostLimit

// BlockRuleCost returns params.max_block_rule_cost, or its default.
func (p Params) BlockRuleCost() uint64 {
	if p.MaxBlockRuleCost == 0 {
		return DefaultMaxBlockRuleCost
	}
	return p.MaxBlockRuleCost
}

// maxBlockWriteBytes bounds params.max_block_write_bytes far above what
// any store writes in one transaction, so that sums of it never overflow;
// a node refuses at startup a budget its store cannot write (see
// BadgerStore.CheckWriteBudget).
const maxBlockWriteBytes = 1 << 40

// maxLimitMS bounds the millisecond params, so that they convert to a
// time.Duration without overflow (about 106 days).
const maxLimitMS = 1 << 33

// TaskLimits returns the limits an operation must keep on this chain.
func (p Params) TaskLimits() taskrt.Limits {
	return taskrt.Limits{MaxTasks: p.MaxTasks, MaxFileBytes: p.MaxOperationBytes, MaxOutputBytes: p.MaxOutputBytes,
		MaxAttempts: p.MaxAttempts, MinBackoff: time.Duration(min(p.MinBackoffMS, maxLimitMS)) * time.Millisecond,
		MaxSleep: time.Duration(min(p.MaxSleepMS, maxLimitMS)) * time.Millisecond, MaxRuleCost: p.MaxOperationRuleCost}
}

// DefaultParams are the limits of DESIGN §4.
func DefaultParams() Params {
	return Params{MaxBlockEntries: 5000, MaxBlockBytes: 4 << 20, MaxTasks: 10000,
		MaxOperationBytes: 1 << 20, MaxOutputBytes: 64 << 10, MaxClockDriftMS: 10_000,
		MaxAttempts: taskrt.DefaultMaxAttempts, MinBackoffMS: uint64(taskrt.DefaultMinBackoff.Milliseconds()),
		MaxSleepMS: uint64(taskrt.DefaultMaxSleep.Milliseconds()), MaxOperationRuleCost: taskrt.DefaultMaxRuleCost,
		MaxBlockRuleCost: DefaultMaxBlockRuleCost, MaxBlockWriteBytes: DefaultMaxBlockWriteBytes,
		ExecutorLeaseMS: DefaultExecutorLeaseMS}
}

var chainIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)

// Validate checks the genesis, naming the field at fault.
func (g *Genesis) Validate() error {
	if !chainIDPattern.MatchString(g.ChainID) {
		return fmt.Errorf("genesis chain_id %q: want 1-64 letters, digits, '.', '_' or '-'", g.ChainID)
	}
	if len(g.Validators) == 0 {
		return errors.New("genesis validators: at least one is required")
	}
	if _, err := g.ValidatorSet(); err != nil {
		return fmt.Errorf("genesis validators: %w", err)
	}
	for i, v := range g.Validators {
		if v.PubKey == "" {
			continue // a lone validator needs no network identity
		}
		if _, err := v.PublicKey(); err != nil {
			return fmt.Errorf("genesis validators[%d] (%s): %w", i, v.Address.Hex(), err)
		}
	}
	seen := map[Address]bool{}
	for i, s := range g.Submitters {
		if seen[s] {
			return fmt.Errorf("genesis submitters[%d]: %s listed twice", i, s)
		}
		seen[s] = true
	}
	seen = map[Address]bool{}
	for i, o := range g.Operators {
		if o == (Address{}) {
			return fmt.Errorf("genesis operators[%d]: the zero address", i)
		}
		if seen[o] {
			return fmt.Errorf("genesis operators[%d]: %s listed twice", i, o)
		}
		seen[o] = true
	}
	p := g.Params
	for _, f := range []struct {
		name string
		v    int
	}{{"max_block_entries", p.MaxBlockEntries}, {"max_block_bytes", p.MaxBlockBytes}, {"max_tasks", p.MaxTasks},
		{"max_operation_bytes", p.MaxOperationBytes}, {"max_output_bytes", p.MaxOutputBytes}} {
		if f.v <= 0 {
			return fmt.Errorf("genesis params.%s: must be positive, got %d", f.name, f.v)
		}
	}
	if p.MaxAttempts < 0 {
		return fmt.Errorf("genesis params.max_attempts: must not be negative (0 for the default of %d), got %d", taskrt.DefaultMaxAttempts, p.MaxAttempts)
	}
	if p.MaxBlockWriteBytes > maxBlockWriteBytes {
		return fmt.Errorf("genesis params.max_block_write_bytes: at most %d, got %d", uint64(maxBlockWriteBytes), p.MaxBlockWriteBytes)
	}
	for _, f := range []struct {
		name string
		v    uint64
	}{{"min_backoff_ms", p.MinBackoffMS}, {"max_sleep_ms", p.MaxSleepMS}, {"executor_lease_ms", p.ExecutorLeaseMS}} {
		if f.v > maxLimitMS {
			return fmt.Errorf("genesis params.%s: at most %d, got %d", f.name, uint64(maxLimitMS), f.v)
		}
	}
	return nil
}

// ValidatorSet returns the genesis validators as a set.
func (g *Genesis) ValidatorSet() (*ValidatorSet, error) {
	addrs := make([]Address, len(g.Validators))
	for i, v := range g.Validators {
		addrs[i] = v.Address
	}
	return NewValidatorSet(addrs)
}

// AllowedSubmitter reports whether a may submit operations.
func (g *Genesis) AllowedSubmitter(a Address) bool {
	for _, s := range g.Submitters {
		if s == a {
			return true
		}
	}
	return false
}

// Operator reports whether genesis names a as an operator, who may retry
// any operation.
func (g *Genesis) Operator(a Address) bool {
	for _, o := range g.Operators {
		if o == a {
			return true
		}
	}
	return false
}

// MayRetry reports whether signer may retry an operation that submitter
// submitted: its submitter may, and so may an operator.
func (g *Genesis) MayRetry(signer, submitter Address) bool {
	return signer == submitter || g.Operator(signer)
}

// Hash is Keccak-256 of the genesis file's canonical JSON; block 1 points
// back to it.
func (g *Genesis) Hash() Hash {
	b, err := json.Marshal(g)
	if err != nil {
		panic(err) // plain data
	}
	return crypto.Keccak256Hash(b)
}

// LoadGenesis reads and validates a genesis file.
func LoadGenesis(path string) (*Genesis, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	var g Genesis
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("genesis %s: %w", path, err)
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &g, nil
}

// Save writes the genesis as indented JSON.
func (g *Genesis) Save(path string) error {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
