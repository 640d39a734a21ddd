package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
	"golang.org/x/sync/errgroup"
)

// StoreFault reports a store directory that is not opened because a file
// of it is missing, cut short or corrupt. Opening it anyway would let
// badger start over what is there (a lost MANIFEST makes it start an empty
// store and delete the tables the MANIFEST no longer lists), or crash the
// process in one of its goroutines.
type StoreFault struct {
	// Dir is the store's directory.
	Dir string
	// File is the damaged or missing file, when the fault is one file's.
	File string
	// Reason says what is wrong, in words.
	Reason string
}

func (f *StoreFault) Error() string {
	return fmt.Sprintf("store %s is damaged: %s", f.Dir, f.Reason)
}

// The names of badger's files in a store directory.
const (
	manifestName  = badger.ManifestFilename
	tableSuffix   = ".sst"
	valueLogExt   = ".vlog"
	walSuffix     = ".mem"
	minTableBytes = 4 + 4 // checksum length and index length
)

// checkStoreDir looks at a store directory before badger opens it, since
// badger acts on what it finds: with no MANIFEST it makes a new, empty one
// and deletes every table file as unlisted; a table cut short or with a
// flipped bit makes a goroutine of its open panic or call log.Fatal, which
// no caller can recover. checkStoreDir refuses, with a *StoreFault, a
// directory with table, value-log or write-ahead-log files but no MANIFEST,
// a MANIFEST that does not parse, a table it lists that is missing, and a
// table that does not open with its checksums verified. A directory that
// does not exist, or holds no badger file, is a new store and fine.
func checkStoreDir(dir string, opts badger.Options) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open store %s: %w", dir, err)
	}
	var (
		tables      = make(map[uint64]string)
		others      []string // value-log and write-ahead-log files
		hasManifest bool
	)
	for _, e := range ents {
		name := e.Name()
		switch {
		case name == manifestName:
			hasManifest = true
		case strings.HasSuffix(name, tableSuffix):
			if id, ok := table.ParseFileID(name); ok {
				tables[id] = filepath.Join(dir, name)
			}
		case strings.HasSuffix(name, valueLogExt), strings.HasSuffix(name, walSuffix):
			others = append(others, name)
		}
	}
	if !hasManifest {
		if len(tables) == 0 && len(others) == 0 {
			return nil // a new store
		}
		return &StoreFault{Dir: dir, File: filepath.Join(dir, manifestName), Reason: fmt.Sprintf(
			"its MANIFEST is missing while %d table and %d log files are there, so the store cannot tell which of them hold its data (opening it would start an empty store and delete the tables)",
			len(tables), len(others))}
	}
	mf, err := readManifest(filepath.Join(dir, manifestName), opts)
	if err != nil {
		return &StoreFault{Dir: dir, File: filepath.Join(dir, manifestName), Reason: fmt.Sprintf("its MANIFEST cannot be read (%v)", err)}
	}
	if len(mf.Tables) == 0 && len(tables) > 0 {
		return &StoreFault{Dir: dir, File: filepath.Join(dir, manifestName), Reason: fmt.Sprintf(
			"its MANIFEST lists no table while %d table files are there (opening it would delete them)", len(tables))}
	}
	ids := make([]uint64, 0, len(mf.Tables))
	for id := range mf.Tables {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if _, ok := tables[id]; !ok {
			p := table.NewFilename(id, dir)
			return &StoreFault{Dir: dir, File: p, Reason: fmt.Sprintf("table file %s, which its MANIFEST lists, is missing", filepath.Base(p))}
		}
	}
	// Tables are checked on every core at once: verifying the checksums
	// reads every byte of every table.
	faults := make([]error, len(ids))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, id := range ids {
		g.Go(func() error {
			if err := checkTable(tables[id], mf.Tables[id].Compression, opts.BlockSize); err != nil {
				faults[i] = &StoreFault{Dir: dir, File: tables[id], Reason: fmt.Sprintf("table file %s is corrupt or cut short (%v)", filepath.Base(tables[id]), err)}
			}
			return nil
		})
	}
	_ = g.Wait()
	for _, err := range faults {
		if err != nil {
			return err // the lowest-numbered table's
		}
	}
	return nil
}

// readManifest parses a MANIFEST without changing it (badger truncates a
// torn tail when it opens one for writing).
func readManifest(path string, opts badger.Options) (badger.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return badger.Manifest{}, err
	}
	defer f.Close()
	m, _, err := badger.ReplayManifestFile(f, opts.ExternalMagicVersion, opts)
	return m, err
}

// checkTable opens a table file as badger would, with every block's
// checksum verified, in this goroutine so that a panic is caught. First it
// checks the footer's lengths itself: badger reads them with y.Check, which
// calls log.Fatal on a file cut short.
func checkTable(path string, compression options.CompressionType, blockSize int) (err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	size := fi.Size()
	if size < minTableBytes {
		return fmt.Errorf("%d bytes", size)
	}
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer func() {
		// OpenTable closes the file on some of its errors and not on
		// others; a closed one must not be unmapped twice.
		if _, serr := mf.Fd.Stat(); !errors.Is(serr, os.ErrClosed) {
			if cerr := mf.Close(-1); err == nil && cerr != nil {
				err = cerr
			}
		}
	}()
	if err := checkTableFooter(mf.Data); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading it failed: %s", firstLine(fmt.Sprint(r)))
		}
	}()
	_, err = table.OpenTable(mf, table.Options{ReadOnly: true, ChkMode: options.OnTableRead, Compression: compression, BlockSize: blockSize})
	return err
}

// checkTableFooter checks that the lengths at a table's end (checksum
// length, then checksum, index length, index, read backwards) lie inside
// the file.
func checkTableFooter(data []byte) error {
	pos := len(data) - 4
	chkLen := int64(binary.BigEndian.Uint32(data[pos:]))
	if chkLen > int64(pos-4) {
		return fmt.Errorf("its footer gives a checksum of %d bytes in a file of %d", chkLen, len(data))
	}
	pos -= int(chkLen) + 4
	indexLen := int64(binary.BigEndian.Uint32(data[pos:]))
	if indexLen == 0 || indexLen > int64(pos) {
		return fmt.Errorf("its footer gives an index of %d bytes in a file of %d", indexLen, len(data))
	}
	return nil
}

// firstLine is s up to its first line break: a recovered badger panic
// carries a multi-line dump.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
