package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sagachain/sagachain/ledger"
)

// ErrHomeHasStore reports an import into a home whose node already has
// chain data: an import never replaces or merges with data it did not
// write.
var ErrHomeHasStore = errors.New("the home already has chain data")

// ImportReport says what Import wrote.
type ImportReport struct {
	// Blocks is the number of blocks imported; Head and HeadHash are the
	// last of them, where the node starts.
	Blocks   uint64
	Head     uint64
	HeadHash ledger.Hash
	// Verify is what the check of the whole file before the import found.
	Verify *ledger.VerifyReport
}

// Import rebuilds the store of the home opts describes (as LoadHome returns
// it) from the export file at path (see ledger.Export), so that an export
// is a backup.
//
// It first checks the whole file against opts.Genesis exactly as
// `sagachain verify --file` does (ledger.VerifyChain: every signature,
// certificate, entries root and results root, by replaying the chain); a
// file of another genesis, or one that fails any check, gives a
// *ledger.Fault. Only then does it write: it opens a node with New on a
// staging directory inside the home and commits the file's blocks one by
// one through the node's own commit path (commitBlock, as catching up from
// a peer does, checking each certificate and block again and the stored
// results root against the node's), so that whatever the node records
// with a commit is recorded for imported blocks too. Once every block is
// in, the staging directory's contents move into the home. On any failure
// the staging directory is removed and the home is as it was.
//
// A home that already has chain data (a data directory that is not empty)
// is refused with ErrHomeHasStore: nothing is deleted or merged. Ending
// ctx stops the import between blocks, with the home as it was.
func Import(ctx context.Context, opts Options, path string) (*ImportReport, error) {
	if opts.InMemory {
		return nil, errors.New("import: an in-memory node has no home to import into")
	}
	if err := checkNoStore(opts.Home); err != nil {
		return nil, err
	}
	rep, err := verifyExport(opts.Genesis, path)
	if err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(opts.Home, ".import-")
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	// Removed on success too: by then everything in it has moved out.
	defer os.RemoveAll(stage)
	staged := opts
	staged.Home = stage
	out, err := replayExport(ctx, staged, path)
	if err != nil {
		return nil, err
	}
	out.Verify = rep
	if err := moveInto(stage, opts.Home); err != nil {
		return nil, err
	}
	return out, nil
}

// checkNoStore refuses a home whose data directory exists and holds
// anything.
func checkNoStore(home string) error {
	data := filepath.Join(home, DataDir)
	ents, err := os.ReadDir(data)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("import: %w", err)
	case len(ents) > 0:
		return fmt.Errorf("import into %s: %w (%s holds %s): import into a new home that holds this chain's %s, key and %s, or move %s away first",
			home, ErrHomeHasStore, data, ents[0].Name(), GenesisFile, ConfigFile, data)
	}
	return nil
}

// openExport opens the export at path for reading; the caller closes the
// file once done with the reader, which streams from it. A file that does
// not parse is a *ledger.Fault, as verify --file reports it.
func openExport(path string) (*os.File, *ledger.ExportReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	x, err := ledger.ReadExport(f)
	if err != nil {
		f.Close()
		return nil, nil, &ledger.Fault{Entry: -1, Reason: err.Error(), Err: err}
	}
	return f, x, nil
}

// verifyExport checks the export at path against g as verify --file does.
func verifyExport(g *ledger.Genesis, path string) (*ledger.VerifyReport, error) {
	f, x, err := openExport(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if theirs := x.Genesis(); theirs.Hash() != g.Hash() {
		return nil, &ledger.Fault{Entry: -1, Reason: fmt.Sprintf("%s is an export of chain %q (genesis %s), not of this home's chain %q (genesis %s)",
			path, theirs.ChainID, theirs.Hash().Hex(), g.ChainID, g.Hash().Hex())}
	}
	return ledger.VerifyChain(g, x.Blocks())
}

// replayExport commits the blocks of the export at path to a new node of
// opts.Home through the node's commit path. A block that does not check
// out gives a *ledger.Fault: the file changed since it was verified.
func replayExport(ctx context.Context, opts Options, path string) (*ImportReport, error) {
	f, x, err := openExport(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := New(opts)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	closed := false
	closeNode := func() error {
		if closed {
			return nil
		}
		closed = true
		var errs []error
		if c, ok := n.signState.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
		errs = append(errs, n.store.Close())
		return errors.Join(errs...)
	}
	defer closeNode()
	out := &ImportReport{}
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("import stopped after %d blocks, nothing written: %w", out.Head, err)
		}
		b, c, results, err := x.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		h := out.Head + 1
		if err != nil {
			return nil, &ledger.Fault{Height: h, Entry: -1, Reason: err.Error(), Err: err}
		}
		fault := func(err error) error { return &ledger.Fault{Height: h, Entry: -1, Reason: err.Error(), Err: err} }
		// The checks catching up makes of a block from a peer.
		if err := n.machine.VerifyCommit(h, b.Hash(), c); err != nil {
			return nil, fault(fmt.Errorf("commit certificate: %w", err))
		}
		if err := n.app.ValidateBlock(b); err != nil {
			return nil, fault(err)
		}
		if _, err := n.commitBlock(b, c, nil, false); err != nil {
			return nil, fmt.Errorf("import: block %d: %w", h, err)
		}
		got, err := n.store.ResultsRoot(h)
		if err != nil {
			return nil, fmt.Errorf("import: block %d: %w", h, err)
		}
		if got != results {
			return nil, &ledger.Fault{Height: h, Entry: -1, Err: ledger.ErrResultsRoot,
				Reason: fmt.Sprintf("the results root stored for block %d is %s, but replaying the block gives %s", h, results.Hex(), got.Hex())}
		}
		out.Blocks, out.Head, out.HeadHash = h, h, b.Hash()
	}
	if err := closeNode(); err != nil {
		return nil, fmt.Errorf("import: close the store: %w", err)
	}
	return out, nil
}

// moveInto moves every entry of dir into home. It checks first that none
// of them exists in home, so that it either refuses before moving anything
// or, short of a crash, moves them all; an empty data directory in home
// (which checkNoStore allowed) is replaced.
func moveInto(dir, home string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	for _, e := range ents {
		target := filepath.Join(home, e.Name())
		if _, err := os.Lstat(target); err == nil {
			if e.Name() == DataDir {
				continue // empty, as checkNoStore found it
			}
			return fmt.Errorf("import: %s exists already; the home was left as it was", target)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("import: %w", err)
		}
	}
	for _, e := range ents {
		if e.Name() == DataDir {
			// Only an empty directory goes: one a node filled meanwhile
			// stays, and the import fails.
			if err := os.Remove(filepath.Join(home, DataDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("import: %w", err)
			}
		}
		if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(home, e.Name())); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	if err := syncDir(home); err != nil {
		return fmt.Errorf("import: sync %s: %w", home, err)
	}
	return nil
}
