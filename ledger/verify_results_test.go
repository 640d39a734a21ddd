package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/ethereum/go-ethereum/rlp"
)

// rootedChain commits a few real blocks to a badger store and returns it
// with its export file.
func rootedChain(t *testing.T) (*storeChain, []byte) {
	t.Helper()
	c := newStoreChain(t)
	for n := uint64(1); n <= 3; n++ {
		sub := &Submission{Operation: []byte(`{"name":"one","tasks":[{"id":"a","run":"echo","outputs":["x"]}]}`), Nonce: n}
		if err := sub.Sign(c.user, "test-chain"); err != nil {
			t.Fatal(err)
		}
		e, _ := NewEntry(KindSubmission, sub)
		if !c.offer(e) {
			t.Fatal("submission refused")
		}
	}
	var buf bytes.Buffer
	if err := Export(&buf, c.m.Genesis(), c.s); err != nil {
		t.Fatal(err)
	}
	return c, buf.Bytes()
}

// withRoot rewrites an export file with the stored results root of block
// h flipped in its last byte.
func withRoot(t *testing.T, file []byte, g *Genesis, h uint64) []byte {
	t.Helper()
	x, err := ReadExport(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(g)
	var out bytes.Buffer
	out.WriteString(ExportMagic)
	_ = rlp.Encode(&out, gj)
	_ = rlp.Encode(&out, x.Head())
	for {
		b, c, r, err := x.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Header.Height == h {
			r[31] ^= 1
		}
		if err := rlp.Encode(&out, &exportRecord{Block: b, Commit: c, Results: r}); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// TestVerifyChecksEveryStoredResultsRoot: on a2a74ac a flipped results
// root of the head block in an export (or of any block, as the file's
// roots were never read) verified (issue #10). Now the fault names the
// block, over an export and over a store.
func TestVerifyChecksEveryStoredResultsRoot(t *testing.T) {
	c, file := rootedChain(t)
	g := c.m.Genesis()
	x, err := ReadExport(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyChain(g, x.Blocks()); err != nil {
		t.Fatalf("the honest export: %v", err)
	}
	head := x.Head()
	for _, h := range []uint64{head, 1} {
		x, err := ReadExport(bytes.NewReader(withRoot(t, file, g, h)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = VerifyChain(g, x.Blocks())
		var f *Fault
		if !errors.As(err, &f) || !strings.Contains(f.Error(), fmt.Sprintf("block %d", h)) || !strings.Contains(f.Error(), "results root") {
			t.Errorf("root of block %d flipped: got %v, want a fault naming block %d's results root", h, err, h)
		}
	}
	// A plain BlockSource over the file, as a caller that reads only the
	// blocks has: the reader still refuses a stored root that the next
	// header contradicts.
	x, _ = ReadExport(bytes.NewReader(withRoot(t, file, g, 1)))
	for {
		_, _, _, err := x.Next()
		if errors.Is(err, io.EOF) {
			t.Fatal("a stored root that block 2's header contradicts was read without complaint")
		}
		if err != nil {
			if !strings.Contains(err.Error(), "height 1") {
				t.Errorf("reader error %v, want it to name height 1", err)
			}
			break
		}
	}
	// Over the store: its head root is only in the store.
	if _, err := VerifyChain(g, StoreSource(c.s)); err != nil {
		t.Fatalf("the honest store: %v", err)
	}
	bad := c.parent.Results
	bad[0] ^= 1
	if err := c.s.db.Update(func(txn *badger.Txn) error { return txn.Set(heightKey(prefixResults, head), bad[:]) }); err != nil {
		t.Fatal(err)
	}
	_, err = VerifyChain(g, StoreSource(c.s))
	var f *Fault
	if !errors.As(err, &f) || f.Height != head || !errors.Is(err, ErrResultsRoot) {
		t.Fatalf("store with the head's root flipped: got %v, want ErrResultsRoot at block %d", err, head)
	}
}
