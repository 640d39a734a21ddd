package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/sagachain/sagachain/taskrt"
)

// Store is a node's durable ledger: the committed blocks with their
// certificates and results roots, the indexes that find them, and the
// operation state the next block applies to. The genesis itself lives in
// genesis.json; the store only remembers its hash (InitGenesis) so that it is
// never used with another chain.
type Store interface {
	StateReader

	// InitGenesis binds an empty store to the chain whose genesis hash is
	// hash, and checks a used one against it: a store made for another
	// genesis is refused with ErrGenesisMismatch.
	InitGenesis(hash Hash) error

	// Head returns the height of the newest block, 0 when the store holds
	// only the genesis.
	Head() (uint64, error)
	// Block returns the block at height h, or ErrNotFound.
	Block(h uint64) (*Block, error)
	// BlockHeight returns the height of the block with the given hash, or
	// ErrNotFound.
	BlockHeight(hash Hash) (uint64, error)
	// Commit returns the certificate that committed block h, or ErrNotFound.
	Commit(h uint64) (*Commit, error)
	// ResultsRoot returns the root of what applying block h decided (the
	// header of block h+1 carries it), or ErrNotFound.
	ResultsRoot(h uint64) (Hash, error)
	// EntryLocation returns the height of the block that first carried the
	// entry with the given hash and the entry's index in it, or ErrNotFound.
	EntryLocation(hash Hash) (height uint64, index int, err error)
	// Operations lists operation records, newest first, as q asks.
	Operations(q OpQuery) ([]*OpRecord, error)

	// SaveBlock durably records a block with what goes with it (see
	// BlockWrite), all or nothing, in one synced write. It refuses a block
	// whose height is not Head()+1 with ErrNotNext.
	SaveBlock(w BlockWrite) error

	// LastSigned returns the record SaveLastSigned last saved, or
	// ErrNotFound when there is none. The consensus package defines its
	// contents.
	LastSigned() ([]byte, error)
	// SaveLastSigned durably replaces the last-signed record; it returns
	// only once the record is on disk, so the caller may then sign.
	SaveLastSigned(rec []byte) error

	// Close releases the store.
	Close() error
}

// OpQuery selects operation records for listing.
type OpQuery struct {
	// Status keeps only operations in this status; empty keeps all.
	Status taskrt.OpStatus
	// Limit is the most records returned; 0 or less means no limit.
	Limit int
	// BeforeHeight keeps only operations submitted below this height; 0
	// starts from the newest.
	BeforeHeight uint64
}

// Store errors a caller may branch on.
var (
	// ErrNotNext reports a block that does not extend the head by one.
	ErrNotNext = errors.New("block height is not head+1")
	// ErrGenesisMismatch reports a store made for another chain.
	ErrGenesisMismatch = errors.New("store belongs to another genesis")
)

// Key layout. Every key starts with a one-byte prefix naming what it holds.
// Heights are 8-byte big-endian, so that byte order is height order and the
// iterators below walk heights in order.
//
//	"g"                                   genesis hash (32 bytes)
//	"h"                                   head height (8 bytes); absent means 0
//	"H"                                   function announcements, Hosts as JSON
//	"v"                                   the last-signed record (opaque)
//	"b" height                            block, RLP
//	"c" height                            certificate that committed the block, RLP
//	"r" height                            results root of applying the block (32 bytes)
//	"k" block hash                        height (8 bytes)
//	"e" entry hash                        height (8 bytes) ‖ index in the block (4 bytes, big-endian)
//	"e" evidence key                      the same, of the evidence entry (see EvidenceKey)
//	"o" id                                legacy: a whole OpRecord as JSON, from a version
//	                                      before parts; read as it is, and rewritten in
//	                                      parts before the record next changes
//	"o" id 0x01                           head, RLP: submitter, height, time, operation
//	                                      JSON; written once, when the operation is created
//	"o" id 0x02                           summary, RLP: height, saga status, stage, failing,
//	                                      rollback stage, seq, Last, task and stage counts;
//	                                      rewritten when one of them changes
//	"o" id 0x03 task index (4 bytes)      the task's TaskState but its output, and its
//	                                      TaskRecord, RLP; written when one of them changed
//	"o" id 0x04 stage index (4 bytes)     the stage's StageHashes, RLP; written when changed
//	"o" id 0x05 event index (8 bytes)     one event, RLP; appended, never rewritten
//	"o" id 0x06 task index (4 bytes)      the task's output, JSON; written when it changed,
//	                                      absent for none
//	"n" submitted height ‖ operation id   empty: every operation, by submission
//	"s" status 0x00 submitted height ‖ id empty: operations by status
//	"a" operation id                      empty: operations not in a final status
//
// An operation's keys all start with "o" id, so Operation assembles the
// record in one prefix iteration, in key order (the legacy key first:
// when it is there, it is the record). records.go has the encodings and
// how a block decides which parts it writes (measureRecord).
//
// Statuses are short ASCII words, so the 0x00 after one ends it and no
// status's keys run into another's.
const (
	prefixBlock      = 'b'
	prefixCommit     = 'c'
	prefixResults    = 'r'
	prefixBlockHash  = 'k'
	prefixEntry      = 'e'
	prefixOp         = 'o'
	prefixOpByHeight = 'n'
	prefixOpStatus   = 's'
	prefixActive     = 'a'
)

var (
	keyGenesis    = []byte("g")
	keyHead       = []byte("h")
	keyHosts      = []byte("H")
	keyLastSigned = []byte("v")
)

func heightKey(prefix byte, h uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], h)
	return k
}

func hashKey(prefix byte, h Hash) []byte {
	return append([]byte{prefix}, h[:]...)
}

func statusPrefix(s taskrt.OpStatus) []byte {
	k := append([]byte{prefixOpStatus}, s...)
	return append(k, 0)
}

// heightIDKey is prefix ‖ height ‖ id, the shape of the listing indexes.
func heightIDKey(prefix []byte, h uint64, id Hash) []byte {
	k := make([]byte, 0, len(prefix)+8+len(id))
	k = append(k, prefix...)
	k = binary.BigEndian.AppendUint64(k, h)
	return append(k, id[:]...)
}

func encodeHeight(h uint64) []byte { return binary.BigEndian.AppendUint64(nil, h) }

func decodeHeight(what string, v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%s: stored height has %d bytes, want 8", what, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// BadgerStore is the Store kept in a badger database.
//
// Durability: the database is opened with SyncWrites, and the store never
// calls DB.Sync. Badger then syncs inside every transaction commit, in its
// single writer goroutine, before the transaction becomes visible to
// readers: one sync point per SaveBlock and per SaveLastSigned. That sync
// is two msync(MS_SYNC) calls, the memtable's write-ahead log and the
// current value-log file; DB.Sync would make the same two calls, so neither
// choice gets it down to one (strace of BenchmarkSaveBlock: 2 msync per
// block, no fsync). SyncWrites is chosen because with DB.Sync after the
// commit, readers could see a block before it is durable, and a memtable
// switch between the commit and the Sync (value-log GC writes concurrently)
// would leave the commit in a log that the Sync does not cover. Caveat:
// badger logs, rather than returns, a failed value-log sync; only values of
// 1 MiB (badger's ValueThreshold) and more live in the value log, and the
// error of the write-ahead-log sync, which covers everything smaller, is
// returned.
//
// Writes are serialized by a mutex: there is one writer (the node's commit
// path and its consensus), and serializing lets the store skip badger's
// conflict detection.
type BadgerStore struct {
	db *badger.DB
	mu sync.Mutex // serializes writes
	// written counts the bytes of keys and values SaveBlock committed,
	// badger's logical writes (growth tests measure records by it).
	written atomic.Uint64
}

var _ Store = (*BadgerStore)(nil)

// The store's badger options that bound one transaction, so the block
// write budget can rely on them (see CheckWriteBudget): badger writes at
// most 15% of the memtable size in one transaction (9.6 MiB here) and at
// most that over 96 keys, and counts a value of the value threshold or
// more as a pointer to its value log. They are badger's defaults, set
// here so that a change of badger's defaults cannot shrink them.
const (
	storeMemTableSize   = 64 << 20
	storeValueThreshold = 1 << 20
)

// The store's share of a node's memory budget (README, "Memory"): badger
// holds up to storeNumMemtables memtables of storeMemTableSize in the Go
// heap, and a block cache of storeBlockCacheSize for its compressed
// tables. Badger's defaults (5 memtables, a 256 MiB cache) came to 576 MiB
// before any work; one memtable takes writes while the other is flushed,
// which a node's write rate (one transaction per block) never outruns.
const (
	storeNumMemtables   = 2
	storeBlockCacheSize = 64 << 20
)

// OpenBadger opens, or creates, the store in dir. A directory whose files
// badger would not open safely (see checkStoreDir: a lost MANIFEST, a
// table cut short or with a bad checksum) is refused with a *StoreFault
// before badger touches it, so nothing in it is deleted; a panic of
// badger's own open is returned as a *StoreFault too.
//
// Table checksums are verified at every open, by checkStoreDir with
// badger's options.OnTableRead mode, rather than by badger itself: badger
// verifies in goroutines of its own, where a corrupt table crashes the
// process, and it skips, with a log line, a table whose checksum fails
// in one way, which would lose its data silently. Badger's own
// ChecksumVerificationMode is left at NoVerification so that tables are
// not read twice.
func OpenBadger(dir string) (*BadgerStore, error) {
	opts := badger.DefaultOptions(dir).
		WithMemTableSize(storeMemTableSize).
		WithValueThreshold(storeValueThreshold).
		WithNumMemtables(storeNumMemtables).
		WithBlockCacheSize(storeBlockCacheSize).
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithChecksumVerificationMode(options.NoVerification).
		WithLogger(badgerLogger{slog.Default().With("component", "badger")})
	if err := checkStoreDir(dir, opts); err != nil {
		return nil, err
	}
	db, err := openRecovering(opts)
	if err != nil {
		return nil, err
	}
	return &BadgerStore{db: db}, nil
}

// openRecovering is badger.Open with a panic of its goroutine returned as a
// *StoreFault: a damaged write-ahead or value log can make it panic.
func openRecovering(opts badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, &StoreFault{Dir: opts.Dir, Reason: fmt.Sprintf("opening it failed: %s", firstLine(fmt.Sprint(r)))}
		}
	}()
	db, err = badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
	}
	return db, nil
}

// OpenInMemory opens an empty store held only in memory, for tests and
// one-shot tools; nothing survives Close.
func OpenInMemory() (*BadgerStore, error) {
	// Without compression the tables need no block cache; allocating
	// badger's default 256 MiB cache costs ten times the rest of Open.
	opts := badger.DefaultOptions("").
		WithMemTableSize(storeMemTableSize).
		WithValueThreshold(storeValueThreshold).
		WithInMemory(true).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithDetectConflicts(false).
		WithLogger(badgerLogger{slog.Default().With("component", "badger")})
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open in-memory store: %w", err)
	}
	return &BadgerStore{db: db}, nil
}

// CheckWriteBudget refuses a genesis whose block write budget
// (params.max_block_write_bytes), with what a block writes beside it
// (WriteReserve), is more than this store writes in one transaction: each
// of its blocks could fail to commit, on every node alike. Badger's limit
// is 15% of the memtable size in bytes (MaxBatchSize; 10,066,329 with the
// store's 64 MiB) and MaxBatchSize/96 keys; each key the budget counts
// costs at least writeOverhead bytes of it, so the byte bound implies the
// count bound, which is checked too.
func (s *BadgerStore) CheckWriteBudget(g *Genesis) error {
	budget, reserve := g.Params.BlockWriteBytes(), WriteReserve(len(g.Validators))
	size, count := s.db.MaxBatchSize(), s.db.MaxBatchCount()
	if capacity := uint64(max(size-1, 0)); budget+reserve > capacity {
		return fmt.Errorf("genesis params.max_block_write_bytes %d: with the %d bytes a block of %d validators writes beside it, over the %d bytes the store writes in one transaction (15%% of its %d-byte memtable); at most %d",
			budget, reserve, len(g.Validators), capacity, storeMemTableSize, capacity-min(reserve, capacity))
	}
	if keys := (budget + reserve) / writeOverhead; keys >= uint64(count) {
		return fmt.Errorf("genesis params.max_block_write_bytes %d: up to %d keys in one transaction, the store writes %d", budget, keys, count)
	}
	return nil
}

// Close closes the database.
func (s *BadgerStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// RunGC reclaims value-log space every interval until ctx is done, and then
// returns nil. Each round calls RunValueLogGC(0.5) until it finds nothing
// more to rewrite. An in-memory store has no value log: RunGC returns nil at
// its first round. Any other GC error ends the loop and is returned. Cancel
// ctx and wait for RunGC to return before Close.
func (s *BadgerStore) RunGC(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("value log GC: interval %s is not positive", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for ctx.Err() == nil {
			err := s.db.RunValueLogGC(0.5)
			if err == nil {
				continue // a file was rewritten; there may be more
			}
			if errors.Is(err, badger.ErrGCInMemoryMode) {
				return nil
			}
			if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
				break
			}
			return fmt.Errorf("value log GC: %w", err)
		}
	}
}

// InitGenesis implements Store.
func (s *BadgerStore) InitGenesis(hash Hash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Update(func(txn *badger.Txn) error {
		v, err := getCopy(txn, keyGenesis)
		switch {
		case errors.Is(err, ErrNotFound):
			return txn.Set(keyGenesis, hash[:])
		case err != nil:
			return fmt.Errorf("genesis hash: %w", err)
		}
		if stored := common.BytesToHash(v); stored != hash {
			return fmt.Errorf("store was made for genesis %s, not %s: %w", stored.Hex(), hash.Hex(), ErrGenesisMismatch)
		}
		return nil
	})
}

// Head implements Store.
func (s *BadgerStore) Head() (uint64, error) {
	var h uint64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		h, err = readHead(txn)
		return err
	})
	return h, err
}

func readHead(txn *badger.Txn) (uint64, error) {
	v, err := getCopy(txn, keyHead)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	return decodeHeight("head", v)
}

// Block implements Store.
func (s *BadgerStore) Block(h uint64) (*Block, error) {
	v, err := s.get(heightKey(prefixBlock, h))
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", h, err)
	}
	b := new(Block)
	if err := rlp.DecodeBytes(v, b); err != nil {
		return nil, fmt.Errorf("block %d: decode: %w", h, err)
	}
	return b, nil
}

// BlockHeight implements Store.
func (s *BadgerStore) BlockHeight(hash Hash) (uint64, error) {
	v, err := s.get(hashKey(prefixBlockHash, hash))
	if err != nil {
		return 0, fmt.Errorf("block %s: %w", hash.Hex(), err)
	}
	return decodeHeight("block "+hash.Hex(), v)
}

// Commit implements Store.
func (s *BadgerStore) Commit(h uint64) (*Commit, error) {
	v, err := s.get(heightKey(prefixCommit, h))
	if err != nil {
		return nil, fmt.Errorf("certificate of block %d: %w", h, err)
	}
	c := new(Commit)
	if err := rlp.DecodeBytes(v, c); err != nil {
		return nil, fmt.Errorf("certificate of block %d: decode: %w", h, err)
	}
	return c, nil
}

// ResultsRoot implements Store.
func (s *BadgerStore) ResultsRoot(h uint64) (Hash, error) {
	v, err := s.get(heightKey(prefixResults, h))
	if err != nil {
		return Hash{}, fmt.Errorf("results root of block %d: %w", h, err)
	}
	if len(v) != common.HashLength {
		return Hash{}, fmt.Errorf("results root of block %d: stored %d bytes, want %d", h, len(v), common.HashLength)
	}
	return common.BytesToHash(v), nil
}

// EntryLocation implements Store.
func (s *BadgerStore) EntryLocation(hash Hash) (uint64, int, error) {
	v, err := s.get(hashKey(prefixEntry, hash))
	if err != nil {
		return 0, 0, fmt.Errorf("entry %s: %w", hash.Hex(), err)
	}
	if len(v) != 12 {
		return 0, 0, fmt.Errorf("entry %s: stored location has %d bytes, want 12", hash.Hex(), len(v))
	}
	return binary.BigEndian.Uint64(v[:8]), int(binary.BigEndian.Uint32(v[8:])), nil
}

// Recorded implements StateReader from the entry index, which holds every
// committed entry's hash (and the keys of recorded evidence).
func (s *BadgerStore) Recorded(key Hash) (bool, error) {
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(hashKey(prefixEntry, key))
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("entry index %s: %w", key.Hex(), err)
	}
	return found, nil
}

// Operation implements StateReader.
func (s *BadgerStore) Operation(id Hash) (*OpRecord, error) {
	var r *OpRecord
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		r, err = readOp(txn, id)
		return err
	})
	return r, err
}

// ActiveOperations implements StateReader.
func (s *BadgerStore) ActiveOperations() ([]Hash, error) {
	var out []Hash
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixActive}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 1+common.HashLength {
				return fmt.Errorf("active operations: malformed key %x", k)
			}
			out = append(out, common.BytesToHash(k[1:]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("active operations: %w", err)
	}
	return out, nil
}

// CountOperations counts the operations in status st from the status
// index, reading keys only.
func (s *BadgerStore) CountOperations(st taskrt.OpStatus) (int, error) {
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: statusPrefix(st)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count %s operations: %w", st, err)
	}
	return n, nil
}

// Hosts implements StateReader.
func (s *BadgerStore) Hosts() (*Hosts, error) {
	v, err := s.get(keyHosts)
	if errors.Is(err, ErrNotFound) {
		return &Hosts{ByValidator: map[Address]HostEntry{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hosts: %w", err)
	}
	h := new(Hosts)
	if err := json.Unmarshal(v, h); err != nil {
		return nil, fmt.Errorf("hosts: decode: %w", err)
	}
	if h.ByValidator == nil {
		h.ByValidator = map[Address]HostEntry{}
	}
	return h, nil
}

var opStatuses = []taskrt.OpStatus{taskrt.OpRunning, taskrt.OpCompleted, taskrt.OpRollingBack, taskrt.OpRolledBack, taskrt.OpRollbackFailed}

// Operations implements Store. Records come newest first: by submitted
// height, descending, and within one height by id, descending.
func (s *BadgerStore) Operations(q OpQuery) ([]*OpRecord, error) {
	prefix := []byte{prefixOpByHeight}
	if q.Status != "" {
		known := false
		for _, st := range opStatuses {
			known = known || st == q.Status
		}
		if !known {
			return nil, fmt.Errorf("list operations: unknown status %q (want one of %s)", q.Status, joinStatuses())
		}
		prefix = statusPrefix(q.Status)
	}
	// Reverse iteration starts at the greatest key at or below the seek
	// key: below every key of height BeforeHeight, or above every key.
	var seek []byte
	if q.BeforeHeight > 0 {
		seek = binary.BigEndian.AppendUint64(bytes.Clone(prefix), q.BeforeHeight)
	} else {
		seek = append(bytes.Clone(prefix), bytes.Repeat([]byte{0xff}, 8+common.HashLength+1)...)
	}
	var out []*OpRecord
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
		defer it.Close()
		for it.Seek(seek); it.Valid(); it.Next() {
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
			k := it.Item().Key()
			if len(k) != len(prefix)+8+common.HashLength {
				return fmt.Errorf("malformed index key %x", k)
			}
			r, err := readOp(txn, common.BytesToHash(k[len(prefix)+8:]))
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list operations: %w", err)
	}
	return out, nil
}

func joinStatuses() string {
	names := make([]string, len(opStatuses))
	for i, st := range opStatuses {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

// BlockWrite is everything SaveBlock writes at once.
type BlockWrite struct {
	// Block and Commit are the block and the certificate that committed it.
	Block  *Block
	Commit *Commit
	// Results is the results root of applying the block.
	Results Hash
	// Ops are the operation records the block changed.
	Ops []*OpRecord
	// Hosts, when non-nil, are the function announcements after the block.
	Hosts *Hosts
	// LastSigned, when non-nil, replaces the last-signed record in the same
	// write, so a validator that commits and moves on syncs once.
	LastSigned []byte
	// EntryHashes, when non-nil, are the hashes of the block's entries in
	// order, as EntryHashes gives them, for a caller that has them already.
	EntryHashes []Hash
	// Encoded, when non-nil, holds what the block changed of Ops, by id,
	// as the block write budget measured it (Overlay.Encoded): only those
	// parts are written. A record missing from it is written whole, in
	// parts (every part of it, which the budget did not measure).
	Encoded map[Hash]*RecordWrite
}

// SaveBlock implements Store: everything goes into one badger transaction,
// which the commit syncs (see BadgerStore).
func (s *BadgerStore) SaveBlock(w BlockWrite) error {
	b, c, results, ops, hosts := w.Block, w.Commit, w.Results, w.Ops, w.Hosts
	if b == nil || c == nil {
		return errors.New("save block: block and certificate are required")
	}
	h := b.Header.Height
	hash := b.Hash()
	if c.Height != h || c.BlockHash != hash {
		return fmt.Errorf("save block %d: certificate is for block %s at height %d, want %s", h, c.BlockHash.Hex(), c.Height, hash.Hex())
	}
	blockRLP, err := rlp.EncodeToBytes(b)
	if err != nil {
		return fmt.Errorf("save block %d: encode: %w", h, err)
	}
	commitRLP, err := rlp.EncodeToBytes(c)
	if err != nil {
		return fmt.Errorf("save block %d: encode certificate: %w", h, err)
	}
	var hostsJSON []byte
	if hosts != nil {
		if hostsJSON, err = json.Marshal(hosts); err != nil {
			return fmt.Errorf("save block %d: encode hosts: %w", h, err)
		}
	}

	writes := make([]*RecordWrite, len(ops))
	ids := make([]Hash, 0, len(ops))
	for i, r := range ops {
		if r == nil {
			return fmt.Errorf("save block %d: nil operation record", h)
		}
		if writes[i] = w.Encoded[r.ID]; writes[i] == nil {
			if writes[i], err = fullWrite(r); err != nil {
				return fmt.Errorf("save block %d: %w", h, err)
			}
		}
		ids = append(ids, r.ID)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// A record a block changes is in parts before the block writes the
	// parts it changed (and a record written whole leaves no legacy key
	// behind to shadow it).
	if err := s.migrateLegacy(ids); err != nil {
		return fmt.Errorf("save block %d: %w", h, err)
	}
	var written uint64
	err = s.db.Update(func(txn *badger.Txn) error {
		head, err := readHead(txn)
		if err != nil {
			return err
		}
		if h != head+1 {
			return fmt.Errorf("head is %d: %w", head, ErrNotNext)
		}
		set := func(k, v []byte) error {
			written += uint64(len(k) + len(v))
			return txn.Set(k, v)
		}
		sets := []struct{ k, v []byte }{
			{heightKey(prefixBlock, h), blockRLP},
			{heightKey(prefixCommit, h), commitRLP},
			{heightKey(prefixResults, h), bytes.Clone(results[:])},
			{hashKey(prefixBlockHash, hash), encodeHeight(h)},
			{keyHead, encodeHeight(h)},
		}
		for _, kv := range sets {
			if err := set(kv.k, kv.v); err != nil {
				return err
			}
		}
		hashes := w.EntryHashes
		if hashes == nil {
			hashes = EntryHashes(b.Entries)
		}
		if len(hashes) != len(b.Entries) {
			return fmt.Errorf("%d entry hashes for %d entries", len(hashes), len(b.Entries))
		}
		for i, eh := range hashes {
			if err := indexEntry(txn, set, eh, h, i); err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
		}
		keys, at := evidenceKeys(b.Entries)
		for j, k := range keys {
			if err := indexEntry(txn, set, k, h, at[j]); err != nil {
				return fmt.Errorf("entry %d: evidence key: %w", at[j], err)
			}
		}
		for i, r := range ops {
			if err := writeRecord(txn, set, r, writes[i]); err != nil {
				return err
			}
		}
		if hostsJSON != nil {
			if err := set(keyHosts, hostsJSON); err != nil {
				return fmt.Errorf("hosts: %w", err)
			}
		}
		if w.LastSigned != nil {
			if err := set(keyLastSigned, bytes.Clone(w.LastSigned)); err != nil {
				return fmt.Errorf("last-signed record: %w", err)
			}
		}
		return nil
	})
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("save block %d: the block and its %d operation records exceed one badger transaction: %w", h, len(ops), err)
	}
	if err != nil {
		return fmt.Errorf("save block %d: %w", h, err)
	}
	s.written.Add(written)
	return nil
}

// indexEntry records where an entry is. An entry seen before (a timeout
// repeated after a retry has the same hash) keeps its first location.
func indexEntry(txn *badger.Txn, set func(k, v []byte) error, hash Hash, h uint64, i int) error {
	k := hashKey(prefixEntry, hash)
	_, err := txn.Get(k)
	if err == nil {
		return nil
	}
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	v := make([]byte, 12)
	binary.BigEndian.PutUint64(v, h)
	binary.BigEndian.PutUint32(v[8:], uint32(i))
	return set(k, v)
}

// LastSigned implements Store.
func (s *BadgerStore) LastSigned() ([]byte, error) {
	v, err := s.get(keyLastSigned)
	if err != nil {
		return nil, fmt.Errorf("last-signed record: %w", err)
	}
	return v, nil
}

// SaveLastSigned implements Store; the commit syncs (see BadgerStore).
func (s *BadgerStore) SaveLastSigned(rec []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(keyLastSigned, bytes.Clone(rec))
	}); err != nil {
		return fmt.Errorf("save last-signed record: %w", err)
	}
	return nil
}

// get reads one value in its own transaction.
func (s *BadgerStore) get(k []byte) ([]byte, error) {
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		v, err = getCopy(txn, k)
		return err
	})
	return v, err
}

// getCopy reads a value that outlives txn, mapping a missing key to
// ErrNotFound.
func getCopy(txn *badger.Txn, k []byte) ([]byte, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// badgerLogger passes badger's errors and warnings to slog and drops its
// chatter.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, args ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (b badgerLogger) Warningf(f string, args ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
