package ledger

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/rlp"
)

// The block write budget (params.max_block_write_bytes). Committing a block
// is one badger transaction (SaveBlock), and badger refuses a transaction
// over 15% of its memtable size, or with too many keys: a block that would
// need more could never be stored, and every node would halt at its
// height. So the state machine measures what a block makes the store
// write, deterministically, from the encodings the store uses, and a block
// over the budget is invalid unless it carries a single entry (so one
// entry always fits and nothing starves).
//
// What is measured (BlockWrites): for every operation record the block
// changed, the parts of it the store writes (see measureRecord and the key
// layout in store.go): its head when the block created it; its summary,
// with six index writes, when the summary changed; each task whose state
// or assignment changed; each stage whose hashes changed; each event the
// block appended. A part is charged its key, its value and writeOverhead;
// a record the block only read costs nothing, since nothing of it is
// written. What changed is decided by comparing the record as the block
// leaves it with the record as the block found it in the committed state
// (field by field, outputs by identity: see taskDiffers), so the charge is
// a function of the block and the state it applies to, the same on every
// node whatever it caches, and it is exactly what SaveBlock writes of the
// record (BlockWrite.Encoded). The function announcements are charged
// when the block read them; and every entry, its body with its RLP
// framing in the block and its entry-index write; plus a fixed part for
// the header, signature and the head, hash and results keys. The
// certificate and the consensus record written with the block are not
// known while the block is built; WriteReserve bounds them, and the store
// refuses at startup a budget that, with the reserve, it could not write.
const (
	// writeOverhead is what each key written is charged besides its key and
	// value: more than the 12 bytes badger adds to its size (metas and
	// version) and than the 96 bytes of a skiplist node, by which badger
	// bounds the count of keys in a transaction (MaxBatchCount is
	// MaxBatchSize / 96), so that a block within the byte budget is also
	// within the count.
	writeOverhead = 100
	// indexKeyBound bounds the keys of a record's index writes (writeRecord):
	// "n" height id, "s" status 0x00 height id, "a" id, and the deletes
	// of the old ones.
	indexKeyBound = 64
	// recordWrites are the index keys writeRecord writes or deletes beside the summary.
	recordWrites = 5
	// entryFraming bounds an entry's RLP framing in the block: list and
	// body headers and the kind.
	entryFraming = 16
	// entryIndexWrite is one "e" key (33 bytes) with its location (12).
	entryIndexWrite = 33 + 12 + writeOverhead
	// blockWriteBase is the fixed part of a block's writes: the header
	// with its RLP framing (at most 64 bytes of chain id, 7 hashes or
	// addresses, 3 numbers), the signature, and the "b", "k", "r" and "h"
	// keys with their values.
	blockWriteBase = 512 + 66 + (9 + writeOverhead) + (33 + 8 + writeOverhead) + (9 + 32 + writeOverhead) + (1 + 8 + writeOverhead)
)

// ErrBlockFull refuses an entry because adding it would put the block's
// store writes over params.max_block_write_bytes: it fits a later block,
// so a proposer leaves it waiting, while a block that carries it is
// invalid. A block that holds nothing yet takes any one entry.
var ErrBlockFull = errors.New("the block's store write budget is spent")

// ErrBatchTooBig refuses an attestation batch whose store writes alone are
// over params.max_block_write_bytes and that attests more than one
// operation. A single entry over the budget is taken by an empty block,
// but a batch changes the record of every operation its items attest, so
// one batch could make a block no store can write; it is signed as one
// and cannot be taken in parts, so it is invalid and never fits: an
// executor splits its batches to stay within the budget (see
// RecordWriteCost). A batch of one operation's tasks changes one record,
// as any single entry does, and is taken alone however much it writes.
var ErrBatchTooBig = errors.New("the attestation batch writes more than a block may")

// RecordWriteCost estimates what the attestations of one stage of r
// cost a block beside their outputs, as the write budget counts it: what
// an executor adds up, once per operation its batch attests (and adds
// each output to), to keep the batch within max_block_write_bytes. Those
// attestations change their tasks, the summary and events, and may
// release the next stage or the rollback of one (a stage part, every one
// of its tasks' assignments, an event per task): so it is the summary,
// two stage parts, and, for the biggest stage, two task parts (without
// outputs) and two events per task. It reads only the plan's shape and
// encodes nothing. A record whose operation does not compile costs the
// whole budget.
func (m *Machine) RecordWriteCost(r *OpRecord) uint64 {
	_, plan, err := m.Compiled(r)
	if err != nil {
		return m.genesis.Params.BlockWriteBytes()
	}
	widest := 0
	for _, st := range plan.Stages {
		widest = max(widest, len(st))
	}
	const (
		summaryBound = 128 // 9 RLP fields: numbers, a status, a hash
		stageBound   = 4*33 + 3
		taskBound    = 2*21 + 8*8 + 64 // addresses, numbers, statuses and framing
		eventBound   = 192             // type, task id, stage, a short reason
	)
	n := partCost(headKeyLen, summaryBound) + recordWrites*(indexKeyBound+writeOverhead) + 2*partCost(taskKeyLen, stageBound)
	return n + uint64(widest)*2*(partCost(taskKeyLen, taskBound)+partCost(eventKeyLen, eventBound))
}

// multiBatch reports whether e is an attestation batch of more than one
// item.
func multiBatch(e Entry) bool {
	if e.Kind != KindAttestations {
		return false
	}
	var b AttestationBatch
	return rlp.DecodeBytes(e.Body, &b) == nil && len(b.Items) > 1
}

// hostsWriteCost is what writing the announcements costs the block.
func hostsWriteCost(h *Hosts) (uint64, error) {
	v, err := json.Marshal(h)
	if err != nil {
		return 0, fmt.Errorf("announcements cannot be stored: %w", err)
	}
	return uint64(len(v)) + 1 + writeOverhead, nil
}

// entryWriteCost is what an entry costs the block: its place in the
// block's encoding and its index writes (evidence is indexed twice).
func entryWriteCost(e Entry) uint64 {
	n := uint64(len(e.Body)) + entryFraming + entryIndexWrite
	if e.Kind == KindEvidence {
		n += entryIndexWrite
	}
	return n
}

// WriteReserve bounds what SaveBlock writes beside what BlockWrites
// measures, on a chain of n validators: the certificate carried in the
// block and the one stored under "c" (n signatures each), and the
// consensus record. Badger counts a value of storeValueThreshold or more
// as a 12-byte pointer into its value log, so no value counts more than
// storeValueThreshold; the consensus record, which may hold a whole block,
// is charged that.
func WriteReserve(n int) uint64 {
	cert := uint64(64 + n*(21+66+4))
	return cert + (9 + cert + writeOverhead) + (1 + storeValueThreshold + writeOverhead)
}

// BlockWrites measures what committing a block whose entries were applied
// to st writes to the store, as the write budget counts it: what the block
// changed of st's records (see measureRecord), the announcements, and
// entries. st keeps the changed parts, encoded, for the store (see
// Overlay.Encoded).
func BlockWrites(st *Overlay, entries []Entry) (uint64, error) {
	n := uint64(blockWriteBase)
	for id, r := range st.ops {
		w, err := st.measureOp(id, r)
		if err != nil {
			return 0, err
		}
		st.keepEncoded(id, w)
		n += w.cost
	}
	if st.hosts != nil {
		c, err := hostsWriteCost(st.hosts)
		if err != nil {
			return 0, err
		}
		n += c
	}
	for _, e := range entries {
		n += entryWriteCost(e)
	}
	return n, nil
}
