package rpc

import (
	"encoding/json"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/sagachain/sagachain/taskrt"
)

// Error codes of the sc API. Server-defined codes stay inside JSON-RPC's
// range for implementation errors (-32000 to -32099) and clear of the codes
// go-ethereum's rpc package gives its own errors (-32001 to -32003).
const (
	// CodeInvalidInput is JSON-RPC's "invalid params": the caller's input
	// is wrong, and nothing was recorded.
	CodeInvalidInput = -32602
	// CodeInternal is a failure of the node itself.
	CodeInternal = -32000
	// CodeMempoolFull says a valid entry could not be queued now; the
	// caller may retry later.
	CodeMempoolFull = -32005
	// CodeNotFound says the node holds no such operation or block.
	CodeNotFound = -32010
)

// Error is an sc API error: a JSON-RPC error code and a message naming the
// problem. The server returns it from its methods, and the client returns
// the errors it receives as *Error, so both sides match them the same way:
// errors.Is(err, ErrNotFound) holds for every *Error with CodeNotFound.
type Error struct {
	Code    int
	Message string
	// err is the cause on the server side, kept for errors.Is and
	// errors.As; it does not cross the wire.
	err error
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// ErrorCode returns the JSON-RPC error code, which go-ethereum's rpc server
// puts on the wire.
func (e *Error) ErrorCode() int { return e.Code }

// Unwrap returns the cause, if the error was made from one.
func (e *Error) Unwrap() error { return e.err }

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels to match errors with errors.Is; each matches any *Error of its
// code. A Backend returns errors wrapping them to choose the code its
// refusals are reported with.
var (
	// ErrInvalidInput matches errors with CodeInvalidInput.
	ErrInvalidInput = &Error{Code: CodeInvalidInput, Message: "invalid input"}
	// ErrNotFound matches errors with CodeNotFound.
	ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}
	// ErrMempoolFull matches errors with CodeMempoolFull.
	ErrMempoolFull = &Error{Code: CodeMempoolFull, Message: "mempool is full"}
)

// InvalidInput marks err as the caller's fault (CodeInvalidInput), keeping
// its message and its chain for errors.Is and errors.As. A Backend's Submit
// uses it for entries that do not fit the committed state.
func InvalidInput(err error) error {
	return &Error{Code: CodeInvalidInput, Message: err.Error(), err: err}
}

// SubmitResult is what sc_submit returns for a queued entry.
type SubmitResult struct {
	// Hash is the entry's hash.
	Hash common.Hash `json:"hash"`
	// Kind is the entry's kind, as BlockInfo names it.
	Kind string `json:"kind"`
	// ID is the operation the entry concerns: for a submission its own
	// hash, which becomes the operation's id; for a retry or an
	// attestation the operation it names; nil for the other kinds.
	ID *common.Hash `json:"id,omitempty"`
}

// OpsQuery selects operations for sc_operations. The zero value lists the
// newest DefaultOpsLimit operations of any status.
type OpsQuery struct {
	// Status keeps only operations in this status; empty keeps all.
	Status string `json:"status,omitempty"`
	// Limit is the most operations returned: 0 means DefaultOpsLimit, and
	// more than MaxOpsLimit is refused.
	Limit int `json:"limit,omitempty"`
	// Before keeps only operations submitted below this height, to page
	// back from the last one received; 0 starts from the newest.
	Before uint64 `json:"before,omitempty"`
}

// Limits of sc_operations and sc_blocks.
const (
	// DefaultOpsLimit is the number of operations listed when the query
	// sets no limit.
	DefaultOpsLimit = 50
	// MaxOpsLimit is the most operations one sc_operations call lists.
	MaxOpsLimit = 1000
	// MaxBlocksPerCall is the most blocks one sc_blocks call returns.
	MaxBlocksPerCall = 500
	// maxBlocksBytes bounds the RLP one sc_blocks call returns (at least
	// one block is always returned), so that a page of full blocks stays
	// below the WebSocket message limit.
	maxBlocksBytes = 8 << 20
)

// HeadInfo describes the newest committed block.
type HeadInfo struct {
	// Height is 0 while the chain holds only the genesis.
	Height uint64 `json:"height"`
	// Hash is the head block's hash, the genesis hash at height 0.
	Hash common.Hash `json:"hash"`
	// Time is the head block's time in Unix milliseconds, the genesis
	// time at height 0.
	Time       uint64 `json:"time"`
	ChainID    string `json:"chain_id"`
	Validators int    `json:"validators"`
	// Mempool is the number of entries this node has queued.
	Mempool int `json:"mempool"`
}

// OperationStatus is an operation's status as the operationStatus
// subscription sends it.
type OperationStatus struct {
	ID     common.Hash     `json:"id"`
	Status taskrt.OpStatus `json:"status"`
	// Height is the height of the block that last changed the operation.
	Height uint64 `json:"height"`
}

// BlockSummary is one committed block as the newBlocks subscription sends
// it.
type BlockSummary struct {
	Height   uint64         `json:"height"`
	Hash     common.Hash    `json:"hash"`
	Time     uint64         `json:"time"`
	Proposer common.Address `json:"proposer"`
	Entries  int            `json:"entries"`
	// Operations are the ids of the operations the block changed, sorted.
	Operations []common.Hash `json:"operations"`
}

// BlockInfo is one block as sc_block returns it: its header, its entries
// decoded, the certificate that committed it and the one it carries for its
// parent.
type BlockInfo struct {
	Height         uint64         `json:"height"`
	Hash           common.Hash    `json:"hash"`
	ChainID        string         `json:"chain_id"`
	Round          uint64         `json:"round"`
	Time           uint64         `json:"time"`
	Prev           common.Hash    `json:"prev"`
	Proposer       common.Address `json:"proposer"`
	ProposerName   string         `json:"proposer_name,omitempty"`
	EntriesRoot    common.Hash    `json:"entries_root"`
	ResultsRoot    common.Hash    `json:"results_root"`
	LastCommitHash common.Hash    `json:"last_commit_hash"`
	Signature      hexutil.Bytes  `json:"signature"`
	Entries        []EntryInfo    `json:"entries"`
	// Commit is the certificate that committed this block.
	Commit CommitInfo `json:"commit"`
	// LastCommit is the certificate of the parent that this block carries;
	// block 1 carries an empty one.
	LastCommit CommitInfo `json:"last_commit"`
}

// CommitInfo is a commit certificate: who signed the block at which round.
type CommitInfo struct {
	Height    uint64           `json:"height"`
	Round     uint64           `json:"round"`
	BlockHash common.Hash      `json:"block_hash"`
	Signers   []common.Address `json:"signers"`
}

// EntryInfo is one entry of a block, decoded. Only the fields of its kind
// are set.
type EntryInfo struct {
	Index int         `json:"index"`
	Kind  string      `json:"kind"`
	Hash  common.Hash `json:"hash"`
	// Operation is the operation the entry concerns; a submission's is its
	// own hash.
	Operation *common.Hash `json:"operation,omitempty"`
	// Name is a submission's operation name.
	Name      string          `json:"name,omitempty"`
	Nonce     uint64          `json:"nonce,omitempty"`
	Submitter *common.Address `json:"submitter,omitempty"`
	// Stage, Prev and Tasks are a stage or rollback release's.
	Stage *uint64       `json:"stage,omitempty"`
	Prev  *common.Hash  `json:"prev,omitempty"`
	Tasks []TaskRefInfo `json:"tasks,omitempty"`
	Task  string        `json:"task,omitempty"`
	// Rollback marks an attestation, timeout or failover of a rollback.
	Rollback bool `json:"rollback,omitempty"`
	// Executor is an attestation's or a heartbeat's signer.
	Executor *common.Address `json:"executor,omitempty"`
	// Time is a heartbeat's: its executor's clock when it signed (Unix ms).
	Time uint64 `json:"time,omitempty"`
	// From is a failover's: the executor whose lease expired.
	From     *common.Address `json:"from,omitempty"`
	Attempts uint64          `json:"attempts,omitempty"`
	// Output is an attestation's output. The state machine judges any
	// output that is not a JSON object failed; one that is not JSON at all
	// is shown as a string of its bytes in hex.
	Output    json.RawMessage `json:"output,omitempty"`
	Error     string          `json:"error,omitempty"`
	Permanent bool            `json:"permanent,omitempty"`
	// Validator, Functions and Seq are an announcement's.
	Validator *common.Address `json:"validator,omitempty"`
	Functions []string        `json:"functions,omitempty"`
	Seq       uint64          `json:"seq,omitempty"`
	Evidence  *EvidenceInfo   `json:"evidence,omitempty"`
	// DecodeError says why the body does not decode; a committed block
	// never holds such an entry, but the API shows one rather than fail.
	DecodeError string `json:"decode_error,omitempty"`
}

// TaskRefInfo is one task of a stage or rollback release.
type TaskRefInfo struct {
	ID       string         `json:"id"`
	Run      string         `json:"run"`
	Rollback string         `json:"rollback,omitempty"`
	Rule     string         `json:"rule,omitempty"`
	Executor common.Address `json:"executor"`
	// Deadline is the block time (Unix ms) after which the task is timed
	// out; 0 for none.
	Deadline uint64 `json:"deadline,omitempty"`
}

// EvidenceInfo names the validator two conflicting votes convict.
type EvidenceInfo struct {
	Validator   common.Address `json:"validator"`
	Type        string         `json:"type"`
	Height      uint64         `json:"height"`
	Round       uint64         `json:"round"`
	BlockHashes [2]common.Hash `json:"block_hashes"`
}

// ValidatorInfo is one genesis validator as this node sees it.
type ValidatorInfo struct {
	Address common.Address `json:"address"`
	Name    string         `json:"name,omitempty"`
	// Online is true for this node and the validators connected to it.
	Online bool `json:"online"`
	// Self is true for this node's own validator.
	Self bool `json:"self"`
	// Down is true when the chain marks the validator down as an executor:
	// a lease of its expired at block DownHeight and no block has carried
	// an entry it signed since. Unlike Online it is the same on every node.
	Down       bool   `json:"down"`
	DownHeight uint64 `json:"down_height,omitempty"`
}

// PlanResult is an operation's stages, as `sagachain plan --json` prints
// them.
type PlanResult struct {
	Name   string     `json:"name"`
	Stages [][]string `json:"stages"`
}

// RawBlock is one committed block in its ledger encoding, with what an
// export file keeps next to it.
type RawBlock struct {
	Height uint64 `json:"height"`
	// Block is the block's RLP.
	Block hexutil.Bytes `json:"block"`
	// Commit is the RLP of the certificate that committed the block.
	Commit hexutil.Bytes `json:"commit"`
	// Results is the root of what applying the block decided; the next
	// header carries it, but the head block's is only found here.
	Results common.Hash `json:"results"`
}
