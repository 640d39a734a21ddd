package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/sagachain/sagachain/ledger"
)

// HighWaterFile is the base name of the high-water mark's two slot files
// in a node's data directory (highwater.0 and highwater.1): the height and
// hash of the last block the node committed, written after the block's
// own synced write and before any client is told of it, so a torn store
// that lost blocks cannot take the mark with it.
const HighWaterFile = "highwater"

// highWaterBlob is a mark's size: height (8 bytes, big-endian), then the
// block's hash.
const highWaterBlob = 8 + 32

// highWater is the last block a node committed.
type highWater struct {
	Height uint64
	Hash   ledger.Hash
}

func (m highWater) encode() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, highWaterBlob), m.Height)
	return append(b, m.Hash[:]...)
}

func decodeHighWater(b []byte) (highWater, error) {
	if len(b) != highWaterBlob {
		return highWater{}, fmt.Errorf("high-water mark of %d bytes, want %d", len(b), highWaterBlob)
	}
	var m highWater
	m.Height = binary.BigEndian.Uint64(b)
	copy(m.Hash[:], b[8:])
	return m, nil
}

func highWaterPath(home string) string { return filepath.Join(home, DataDir, HighWaterFile) }

// loadHighWater reads a home's mark; ok is false when it has none (a home
// from before marks, or one whose store was never written).
func loadHighWater(s *slotFile) (m highWater, ok bool, err error) {
	b, err := s.Load()
	if err != nil || b == nil {
		return highWater{}, false, err
	}
	m, err = decodeHighWater(b)
	if err != nil {
		return highWater{}, false, fmt.Errorf("%s: %w", s.path, err)
	}
	return m, true, nil
}

// StoreBehindError reports a store that ends before the last block its
// node committed, or holds another block at that height: blocks the node
// acknowledged were lost from it.
type StoreBehindError struct {
	// Data is the store's directory.
	Data string
	// Head is the store's head.
	Head uint64
	// Mark is the last block the node committed.
	Mark highWater
	// Other is the hash of the store's block at the mark's height when it
	// has one that differs.
	Other *ledger.Hash
}

func (e *StoreBehindError) Error() string {
	if e.Other != nil {
		return fmt.Sprintf("the store in %s holds block %s at height %d, but this node committed block %s there",
			e.Data, e.Other.TerminalString(), e.Mark.Height, e.Mark.Hash.TerminalString())
	}
	lost := fmt.Sprintf("heights %d–%d were", e.Head+1, e.Mark.Height)
	if e.Head+1 == e.Mark.Height {
		lost = fmt.Sprintf("height %d was", e.Mark.Height)
	}
	return fmt.Sprintf("the store in %s ends at height %d but this node committed up to height %d (block %s): %s lost from it, probably by a torn write",
		e.Data, e.Head, e.Mark.Height, e.Mark.Hash.TerminalString(), lost)
}

// checkHighWater compares a store with a mark: a *StoreBehindError when
// the store lost blocks the mark records.
func checkHighWater(st ledger.Store, data string, m highWater) error {
	head, err := st.Head()
	if err != nil {
		return err
	}
	if head < m.Height {
		return &StoreBehindError{Data: data, Head: head, Mark: m}
	}
	if m.Height == 0 {
		return nil
	}
	b, err := st.Block(m.Height)
	if err != nil {
		return fmt.Errorf("store %s: block %d: %w", data, m.Height, err)
	}
	if h := b.Hash(); h != m.Hash {
		return &StoreBehindError{Data: data, Head: head, Mark: m, Other: &h}
	}
	return nil
}

// CheckHighWater checks the store of a stopped node's home against the
// home's high-water mark: a *StoreBehindError when the store lost blocks
// the node committed; nil when they agree or the home has no mark.
func CheckHighWater(home string, st ledger.Store) error {
	s := newSlotFile(highWaterPath(home))
	defer s.Close()
	m, ok, err := loadHighWater(s)
	if err != nil || !ok {
		return err
	}
	return checkHighWater(st, filepath.Join(home, DataDir), m)
}

// errLoneBehind is how a lone node refuses a store behind its mark: no
// peer can serve what it lost.
func errLoneBehind(err error) error {
	var behind *StoreBehindError
	if !errors.As(err, &behind) {
		return err
	}
	return fmt.Errorf("%w; a lone node has no peer to fetch them from, so it does not start: restore the chain from an export with `sagachain import --home NEWDIR --file BACKUP.export` into a fresh home and run the node from there", err)
}
