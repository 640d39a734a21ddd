package ledger

import (
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
)

// Hash is a Keccak-256 hash.
type Hash = common.Hash

// Kind says what an entry holds. The numbers are part of the encoding.
type Kind uint8

// Entry kinds. Kinds marked derived are computed by the state machine from
// the entries before them; a block that carries one it would not derive is
// invalid.
const (
	KindSubmission          Kind = 1  // signed by an allowed submitter
	KindStageRelease        Kind = 2  // derived
	KindAttestation         Kind = 3  // signed by the task's executor
	KindTimeout             Kind = 4  // proposed when block time passes a deadline
	KindRollbackRelease     Kind = 5  // derived
	KindRollbackAttestation Kind = 6  // signed by the rollback's executor
	KindRetry               Kind = 7  // signed by an allowed submitter
	KindAnnouncement        Kind = 8  // signed by a validator
	KindEvidence            Kind = 9  // two conflicting signed votes
	KindAttestations        Kind = 10 // several attestations under their executor's one signature
	KindHeartbeat           Kind = 11 // signed by an executor: it is alive
	KindFailover            Kind = 12 // proposed when an executor's lease on a task expires
)

var kindNames = map[Kind]string{
	KindSubmission: "submission", KindStageRelease: "stage_release", KindAttestation: "attestation",
	KindTimeout: "timeout", KindRollbackRelease: "rollback_release", KindRollbackAttestation: "rollback_attestation",
	KindRetry: "retry", KindAnnouncement: "announcement", KindEvidence: "evidence", KindAttestations: "attestations",
	KindHeartbeat: "heartbeat", KindFailover: "failover",
}

// String names the kind as the JSON API does.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Derived reports whether entries of kind k are computed by the state
// machine rather than submitted.
func (k Kind) Derived() bool { return k == KindStageRelease || k == KindRollbackRelease }

// Entry is one item of a block: its kind and the RLP encoding of the
// matching body type (Submission, StageRecord, Attestation, Timeout, Retry,
// Announcement, Evidence). Its hash is Keccak-256 of RLP([kind, body]).
type Entry struct {
	Kind Kind
	Body []byte
}

// ErrUnknownKind reports an entry whose kind this version does not know.
var ErrUnknownKind = errors.New("unknown entry kind")

// NewEntry encodes body as an entry of kind k.
func NewEntry(k Kind, body any) (Entry, error) {
	b, err := rlp.EncodeToBytes(body)
	if err != nil {
		return Entry{}, fmt.Errorf("encode %s: %w", k, err)
	}
	return Entry{Kind: k, Body: b}, nil
}

// Hash returns the entry's hash, which is also an operation's id when the
// entry is its submission.
func (e Entry) Hash() Hash {
	// Keccak-256 of rlp([kind, body]), encoded straight into the hasher:
	// entries are hashed several times on their way into a block, and
	// encoding by reflection into a new slice cost a quarter of each hash.
	h := crypto.NewKeccakState()
	w := rlp.NewEncoderBuffer(h)
	l := w.List()
	w.WriteUint64(uint64(e.Kind))
	w.WriteBytes(e.Body)
	w.ListEnd(l)
	_ = w.Flush() // a hash's Write never fails
	var out Hash
	_, _ = h.Read(out[:])
	return out
}

// EntryHashes returns the hashes of entries, in order.
func EntryHashes(entries []Entry) []Hash {
	out := make([]Hash, len(entries))
	for i, e := range entries {
		out[i] = e.Hash()
	}
	return out
}

// Decode decodes the entry's body into the value its kind calls for and
// returns it as a pointer (*Submission, *StageRecord, …).
func (e Entry) Decode() (any, error) {
	var v any
	switch e.Kind {
	case KindSubmission:
		v = new(Submission)
	case KindStageRelease, KindRollbackRelease:
		v = new(StageRecord)
	case KindAttestation, KindRollbackAttestation:
		v = new(Attestation)
	case KindAttestations:
		v = new(AttestationBatch)
	case KindTimeout:
		v = new(Timeout)
	case KindRetry:
		v = new(Retry)
	case KindAnnouncement:
		v = new(Announcement)
	case KindEvidence:
		v = new(Evidence)
	case KindHeartbeat:
		v = new(Heartbeat)
	case KindFailover:
		v = new(Failover)
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownKind, uint8(e.Kind))
	}
	if err := rlp.DecodeBytes(e.Body, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", e.Kind, err)
	}
	return v, nil
}

// Submission asks the network to run an operation. Operation is the
// operation file as canonical JSON (inputs already applied), so every node
// plans exactly what the submitter signed.
type Submission struct {
	Operation []byte
	// Nonce makes two submissions of the same file distinct operations.
	Nonce     uint64
	Submitter Address
	Signature Signature
}

// SigningPayload is the RLP of everything but the signature.
func (s *Submission) SigningPayload() []byte {
	return mustRLP([]any{s.Operation, s.Nonce, s.Submitter})
}

// Sign signs the submission with key, which becomes its submitter.
func (s *Submission) Sign(key *PrivateKey, chainID string) error {
	return seal(key, DomainSubmission, chainID, "submission", &s.Submitter, s.SigningPayload, &s.Signature)
}

// Verify checks that the submission is signed by its submitter.
func (s *Submission) Verify(chainID string) error {
	if err := Verify(DomainSubmission, chainID, s.SigningPayload(), s.Signature, s.Submitter); err != nil {
		return fmt.Errorf("submission: %w", err)
	}
	return nil
}

// TaskRef is one task of a stage record: what runs, what undoes it, the rule
// its output must pass, who executes it and by when.
type TaskRef struct {
	ID       string
	Run      string
	Rollback string
	Rule     string
	RuleHash Hash
	Executor Address
	// Deadline is the block time (Unix milliseconds) after which the task,
	// all attempts included, is timed out; 0 for none.
	Deadline uint64
}

// StageRecord releases one stage of an operation, forward (KindStageRelease)
// or its rollbacks (KindRollbackRelease). Prev is the hash of the
// operation's previous record entry, the submission's for the first, so an
// operation's records form their own hash-linked chain.
type StageRecord struct {
	Operation Hash
	Stage     uint64
	Prev      Hash
	Tasks     []TaskRef
}

// Attestation is an executor's signed statement of what running a task (or
// its rollback, as KindRollbackAttestation) gave: the output as canonical
// JSON, or the error. The rule verdict is not part of it: every node
// computes that from Output.
type Attestation struct {
	Operation Hash
	Task      string
	Rollback  bool
	Attempts  uint64
	Output    []byte
	Error     string
	// Permanent says the error cannot succeed by retrying (for rollbacks).
	Permanent bool
	Executor  Address
	Signature Signature
	// Assignment is the number of moves (TaskRecord.Moves, or
	// RollbackMoves) of the assignment the executor ran: an attestation
	// for an assignment that has moved on is refused, even when the work
	// came back to the same executor. Optional, so that the encoding of an
	// attestation of work that never moved is what it always was.
	Assignment uint64 `rlp:"optional"`
}

// SigningPayload is the RLP of everything but the signature.
func (a *Attestation) SigningPayload() []byte {
	if a.Assignment != 0 {
		return mustRLP([]any{a.Operation, a.Task, a.Rollback, a.Attempts, a.Output, a.Error, a.Permanent, a.Executor, a.Assignment})
	}
	return mustRLP([]any{a.Operation, a.Task, a.Rollback, a.Attempts, a.Output, a.Error, a.Permanent, a.Executor})
}

// Sign signs the attestation with key, which becomes its executor.
func (a *Attestation) Sign(key *PrivateKey, chainID string) error {
	return seal(key, DomainAttestation, chainID, "attestation", &a.Executor, a.SigningPayload, &a.Signature)
}

// Verify checks that the attestation is signed by its executor.
func (a *Attestation) Verify(chainID string) error {
	if err := Verify(DomainAttestation, chainID, a.SigningPayload(), a.Signature, a.Executor); err != nil {
		return fmt.Errorf("attestation of task %q: %w", a.Task, err)
	}
	return nil
}

// AttestationBatch is one executor's attestations of several tasks or
// rollbacks under one signature (KindAttestations). An executor attests
// together what one block released to it, and checking a signature costs
// every validator more than applying the attestation it covers. Each item
// is applied as the Attestation it stands for; an item that no longer fits
// when its block is applied (its task finished, timed out or moved to
// another executor first) is skipped and changes nothing, so one late item
// does not cost the others their place. A batch of which no item fits is
// invalid.
type AttestationBatch struct {
	Items     []AttestationItem
	Executor  Address
	Signature Signature
}

// AttestationItem is one attestation of a batch: an Attestation without
// its signer, which the batch names once.
type AttestationItem struct {
	Operation Hash
	Task      string
	Rollback  bool
	Attempts  uint64
	Output    []byte
	Error     string
	Permanent bool
	// Assignment is Attestation.Assignment.
	Assignment uint64 `rlp:"optional"`
}

// ItemOf returns the unsigned item of an attestation.
func ItemOf(a *Attestation) AttestationItem {
	return AttestationItem{Operation: a.Operation, Task: a.Task, Rollback: a.Rollback, Attempts: a.Attempts,
		Output: a.Output, Error: a.Error, Permanent: a.Permanent, Assignment: a.Assignment}
}

// Attestation returns item i as the attestation it stands for, made by the
// batch's executor; it carries no signature of its own.
func (b *AttestationBatch) Attestation(i int) *Attestation {
	it := b.Items[i]
	return &Attestation{Operation: it.Operation, Task: it.Task, Rollback: it.Rollback, Attempts: it.Attempts,
		Output: it.Output, Error: it.Error, Permanent: it.Permanent, Executor: b.Executor, Assignment: it.Assignment}
}

// SigningPayload is the RLP of everything but the signature.
func (b *AttestationBatch) SigningPayload() []byte { return mustRLP([]any{b.Items, b.Executor}) }

// Sign signs the batch with key, which becomes its executor.
func (b *AttestationBatch) Sign(key *PrivateKey, chainID string) error {
	return seal(key, DomainAttestations, chainID, "attestations", &b.Executor, b.SigningPayload, &b.Signature)
}

// Verify checks that the batch has items and is signed by its executor.
func (b *AttestationBatch) Verify(chainID string) error {
	if len(b.Items) == 0 {
		return errors.New("attestations: the batch is empty")
	}
	if err := Verify(DomainAttestations, chainID, b.SigningPayload(), b.Signature, b.Executor); err != nil {
		return fmt.Errorf("attestations of %d tasks: %w", len(b.Items), err)
	}
	return nil
}

// Timeout records that block time passed a task's deadline (or its
// rollback's) before its attestation arrived. Operation-wide timeouts name
// no task.
type Timeout struct {
	Operation Hash
	Task      string
	Rollback  bool
}

// Failover records that the lease of executor From on a task (or its
// rollback) expired: From signed nothing that a block carried for
// params.executor_lease_ms of block time while it held the work, or the
// chain marks it down already. Applying it marks From down and moves the
// work to the next live host of the function, which the state machine
// derives, so a failover names only what it judges. When no other host is
// live the work stays, waiting for From or its own timeout. Proposers make
// failovers from the state, as they make timeouts.
type Failover struct {
	Operation Hash
	Task      string
	Rollback  bool
	From      Address
}

// DomainHeartbeat is the signing domain of heartbeats.
const DomainHeartbeat Domain = "sagachain/heartbeat/v1"

// Heartbeat is an executor's signed word that it is alive. An executor
// sends one while a run of its goes on longer than a fraction of the
// lease (an attestation renews the lease as well), and when it finds the
// chain marks it down. Time is the executor's clock when it signed (Unix
// milliseconds): a block takes a heartbeat only if it was signed within
// the lease before the block's time (and not further after it than
// params.max_clock_drift_ms), so a heartbeat held back cannot vouch for an
// executor long gone; and Time makes each heartbeat a distinct entry. The
// head's block time would not do: a chain with nothing else to carry
// makes no blocks, and a heartbeat must keep a long run's lease then too.
type Heartbeat struct {
	Executor  Address
	Time      uint64
	Signature Signature
}

// SigningPayload is the RLP of everything but the signature.
func (h *Heartbeat) SigningPayload() []byte { return mustRLP([]any{h.Executor, h.Time}) }

// Sign signs the heartbeat with key, which becomes its executor.
func (h *Heartbeat) Sign(key *PrivateKey, chainID string) error {
	return seal(key, DomainHeartbeat, chainID, "heartbeat", &h.Executor, h.SigningPayload, &h.Signature)
}

// Verify checks that the heartbeat is signed by its executor.
func (h *Heartbeat) Verify(chainID string) error {
	if err := Verify(DomainHeartbeat, chainID, h.SigningPayload(), h.Signature, h.Executor); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// DomainRetry is the signing domain of retries, kept apart from submissions
// so that neither signature can stand for the other.
const DomainRetry Domain = "sagachain/retry/v1"

// Retry asks for the remaining rollbacks of a rollback_failed operation to
// run again.
type Retry struct {
	Operation Hash
	Nonce     uint64
	Submitter Address
	Signature Signature
}

// SigningPayload is the RLP of everything but the signature.
func (r *Retry) SigningPayload() []byte {
	return mustRLP([]any{r.Operation, r.Nonce, r.Submitter})
}

// Sign signs the retry with key.
func (r *Retry) Sign(key *PrivateKey, chainID string) error {
	return seal(key, DomainRetry, chainID, "retry", &r.Submitter, r.SigningPayload, &r.Signature)
}

// Verify checks that the retry is signed by its submitter.
func (r *Retry) Verify(chainID string) error {
	if err := Verify(DomainRetry, chainID, r.SigningPayload(), r.Signature, r.Submitter); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	return nil
}

// Announcement declares the functions a validator hosts, besides the
// builtins every node hosts. A later announcement replaces an earlier one.
type Announcement struct {
	Validator Address
	Functions []string
	// Seq orders a validator's announcements.
	Seq       uint64
	Signature Signature
}

// SigningPayload is the RLP of everything but the signature.
func (a *Announcement) SigningPayload() []byte {
	return mustRLP([]any{a.Validator, a.Functions, a.Seq})
}

// Sign signs the announcement with key, which becomes its validator.
func (a *Announcement) Sign(key *PrivateKey, chainID string) error {
	return seal(key, DomainAnnouncement, chainID, "announcement", &a.Validator, a.SigningPayload, &a.Signature)
}

// Verify checks that the announcement is signed by its validator.
func (a *Announcement) Verify(chainID string) error {
	if err := Verify(DomainAnnouncement, chainID, a.SigningPayload(), a.Signature, a.Validator); err != nil {
		return fmt.Errorf("announcement: %w", err)
	}
	return nil
}

// Evidence holds two conflicting votes signed by one validator for the
// same height, round and type.
type Evidence struct {
	A, B Vote
}

// seal makes key the signer of a signed body and signs its payload, which
// covers the signer: what every body's Sign does.
func seal(key *PrivateKey, d Domain, chainID, what string, signer *Address, payload func() []byte, sig *Signature) error {
	*signer = key.Address()
	s, err := key.Sign(d, chainID, payload())
	if err != nil {
		return fmt.Errorf("sign %s: %w", what, err)
	}
	*sig = s
	return nil
}

func mustRLP(v any) []byte {
	b, err := rlp.EncodeToBytes(v)
	if err != nil {
		panic(fmt.Sprintf("rlp: %v", err)) // only fixed, encodable types reach here
	}
	return b
}
