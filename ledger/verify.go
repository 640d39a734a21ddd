package ledger

import (
	"errors"
	"fmt"
	"io"

	"github.com/sagachain/sagachain/taskrt"
)

// BlockSource yields a chain's blocks from height 1 up, each with the
// certificate that committed it. Next returns io.EOF after the last.
type BlockSource interface {
	Next() (*Block, *Commit, error)
}

// ResultsSource is a BlockSource that also holds the results root its
// source stored for each block: an export file, or a store. VerifyChain
// checks each against its replay, the head's included, which no later
// header carries.
type ResultsSource interface {
	BlockSource
	// Results returns the results root stored for the block Next
	// returned last.
	Results() (Hash, error)
}

// VerifyReport counts what Verify checked.
type VerifyReport struct {
	Blocks     uint64 `json:"blocks"`
	Signatures uint64 `json:"signatures"`
	Operations uint64 `json:"operations"`
	Entries    uint64 `json:"entries"`
	// Head and HeadHash are the last verified block.
	Head     uint64 `json:"head"`
	HeadHash Hash   `json:"head_hash"`
	// Statuses counts operations by final or current status.
	Statuses map[taskrt.OpStatus]uint64 `json:"statuses"`
}

// Fault is the first thing Verify found wrong: the block, the entry (-1
// when the fault is in the block itself) and why.
type Fault struct {
	Height uint64 `json:"height"`
	Entry  int    `json:"entry"`
	Reason string `json:"reason"`
	Err    error  `json:"-"`
}

func (f *Fault) Error() string {
	if f.Entry >= 0 {
		return fmt.Sprintf("block %d, entry %d: %s", f.Height, f.Entry, f.Reason)
	}
	return fmt.Sprintf("block %d: %s", f.Height, f.Reason)
}

func (f *Fault) Unwrap() error { return f.Err }

// ErrResultsRoot reports a stored results root that replaying its block
// does not give.
var ErrResultsRoot = errors.New("stored results root differs from the replay")

// StoreSource is the ResultsSource of a store's chain, up to the head it
// had when first read.
func StoreSource(s Store) ResultsSource { return &storeSource{s: s} }

type storeSource struct {
	s          Store
	next, head uint64
	started    bool
}

func (s *storeSource) Next() (*Block, *Commit, error) {
	if !s.started {
		h, err := s.s.Head()
		if err != nil {
			return nil, nil, err
		}
		s.head, s.next, s.started = h, 1, true
	}
	if s.next > s.head {
		return nil, nil, io.EOF
	}
	b, err := s.s.Block(s.next)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.s.Commit(s.next)
	if err != nil {
		return nil, nil, err
	}
	s.next++
	return b, c, nil
}

func (s *storeSource) Results() (Hash, error) { return s.s.ResultsRoot(s.next - 1) }

// VerifyChain checks a whole chain against its genesis alone (SPEC §3): the hash
// links, each block's proposer and signature, each certificate, the entries
// roots, every signature and authorisation in the entries, and, by
// replaying the state machine from genesis, every derived record and every
// results root: those the next headers carry and, when src is a
// ResultsSource, those the source stored, the head's included. It returns
// a *Fault for the first fault found.
// The certificate a block carries for its parent and the one stored with
// the parent may hold different signer sets; both must be valid.
func VerifyChain(g *Genesis, src BlockSource) (*VerifyReport, error) {
	m, err := NewMachine(g)
	if err != nil {
		return nil, err
	}
	vals := m.Validators()
	st := NewMemState()
	rep := &VerifyReport{Statuses: map[taskrt.OpStatus]uint64{}}
	parent := GenesisParent(g)
	for h := uint64(1); ; h++ {
		b, c, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, &Fault{Height: h, Entry: -1, Reason: fmt.Sprintf("cannot read: %v", err), Err: err}
		}
		fault := func(format string, args ...any) error {
			return &Fault{Height: h, Entry: -1, Reason: fmt.Sprintf(format, args...)}
		}
		hd := &b.Header
		if err := m.CheckHeader(parent, b); err != nil {
			return rep, &Fault{Height: h, Entry: -1, Reason: err.Error(), Err: err}
		}
		rep.Signatures += 1 + uint64(len(b.LastCommit.Signatures))
		if c == nil {
			return rep, fault("no commit certificate")
		}
		if err := VerifyCommit(g.ChainID, vals, h, b.Hash(), c); err != nil {
			return rep, &Fault{Height: h, Entry: -1, Reason: "commit certificate: " + err.Error(), Err: err}
		}
		ov := NewOverlay(st)
		res, err := m.ApplyEntries(ov, Context{Height: h, Time: hd.Time}, b.Entries)
		if err != nil {
			var ee *EntryError
			if errors.As(err, &ee) {
				return rep, &Fault{Height: h, Entry: ee.Index, Reason: ee.Err.Error(), Err: err}
			}
			return rep, &Fault{Height: h, Entry: -1, Reason: err.Error(), Err: err}
		}
		// Checked after the replay, so that a damaged entry is named by the
		// replay rather than only noticed by the root.
		if err := CheckEntriesRoot(b); err != nil {
			return rep, &Fault{Height: h, Entry: -1, Reason: err.Error(), Err: err}
		}
		for _, e := range b.Entries {
			rep.Entries++
			switch e.Kind {
			case KindSubmission:
				rep.Operations++
				rep.Signatures++
			case KindAttestation, KindRollbackAttestation, KindAttestations, KindRetry, KindAnnouncement, KindHeartbeat:
				rep.Signatures++
			case KindEvidence:
				rep.Signatures += 2
			}
		}
		if rs, ok := src.(ResultsSource); ok {
			stored, err := rs.Results()
			if err != nil {
				return rep, &Fault{Height: h, Entry: -1, Reason: fmt.Sprintf("cannot read the stored results root: %v", err), Err: err}
			}
			if got := res.Root(); stored != got {
				return rep, &Fault{Height: h, Entry: -1, Reason: fmt.Sprintf("the results root stored for block %d is %s, but replaying the block gives %s", h, stored.Hex(), got.Hex()), Err: ErrResultsRoot}
			}
		}
		st.CommitOverlay(ov)
		parent = Parent{Height: h, Hash: b.Hash(), Time: hd.Time, Results: res.Root()}
		rep.Blocks, rep.Head, rep.HeadHash = h, h, parent.Hash
	}
	for _, r := range st.Ops {
		rep.Statuses[r.Saga.Status]++
	}
	return rep, nil
}
