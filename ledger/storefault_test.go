package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// filledStore writes n keys of 1 KiB into a new store in dir, and closes
// it: closing flushes the memtable into a table file.
func filledStore(t *testing.T, dir string, n int) {
	t.Helper()
	s, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	val := bytes.Repeat([]byte("v"), 1024)
	for i := 0; i < n; i += 500 {
		err := s.db.Update(func(txn *badger.Txn) error {
			for j := i; j < min(i+500, n); j++ {
				if err := txn.Set(fmt.Appendf(nil, "key-%08d", j), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func storeFiles(t *testing.T, dir, suffix string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// A store whose files were damaged is refused with a StoreFault naming
// the fault, never with a panic, and nothing in it is deleted.
func TestOpenBadgerRefusesADamagedStore(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string) string // returns the file the fault must name
		reason string
	}{
		{"missing MANIFEST", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "MANIFEST")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "its MANIFEST is missing while"},
		{"empty MANIFEST", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "MANIFEST")
			if err := os.Truncate(p, 0); err != nil {
				t.Fatal(err)
			}
			return p
		}, "its MANIFEST cannot be read"},
		{"missing table", func(t *testing.T, dir string) string {
			p := storeFiles(t, dir, ".sst")[0]
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "which its MANIFEST lists, is missing"},
		{"truncated table", func(t *testing.T, dir string) string {
			p := storeFiles(t, dir, ".sst")[0]
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is corrupt or cut short"},
		{"table cut to a few bytes", func(t *testing.T, dir string) string {
			p := storeFiles(t, dir, ".sst")[0]
			if err := os.Truncate(p, 5); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is corrupt or cut short"},
		{"flipped bit in a block", func(t *testing.T, dir string) string {
			p := storeFiles(t, dir, ".sst")[0]
			flipByte(t, p, 1000)
			return p
		}, "is corrupt or cut short"},
		{"flipped bit in the index", func(t *testing.T, dir string) string {
			p := storeFiles(t, dir, ".sst")[0]
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			flipByte(t, p, fi.Size()-200)
			return p
		}, "is corrupt or cut short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			filledStore(t, dir, 3000)
			if len(storeFiles(t, dir, ".sst")) == 0 {
				t.Fatal("closing the store wrote no table file")
			}
			file := tc.damage(t, dir)
			before := listDir(t, dir)
			s, err := OpenBadger(dir)
			if err == nil {
				s.Close()
				t.Fatal("a damaged store opened")
			}
			var f *StoreFault
			if !errors.As(err, &f) {
				t.Fatalf("error %v (%T), want a StoreFault", err, err)
			}
			if f.File != file || !strings.Contains(err.Error(), tc.reason) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("fault %q naming %s, want one line with %q naming %s", err, f.File, tc.reason, file)
			}
			if after := listDir(t, dir); !slices.Equal(before, after) {
				t.Fatalf("opening changed the directory:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// An intact store opens with its checksums verified and keeps its data.
func TestOpenBadgerOpensAnIntactStore(t *testing.T) {
	dir := t.TempDir()
	filledStore(t, dir, 3000)
	s, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.get([]byte("key-00002999")); err != nil || len(v) != 1024 {
		t.Fatalf("last key: %d bytes, %v", len(v), err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// listDir lists a directory's files with their sizes.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s:%d", e.Name(), fi.Size()))
	}
	return out
}
