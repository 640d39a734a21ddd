package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
)

func exGenesis() *Genesis {
	return &Genesis{ChainID: "store-test", Time: 1_700_000_000_000,
		Validators: []GenesisValidator{{Address: Address{1}, Name: "v0"}, {Address: Address{2}}},
		Submitters: []Address{{9}}, Params: DefaultParams()}
}

// exExport stores an n-block chain and returns it with its export file.
func exExport(t *testing.T, n int) (*stChain, []byte) {
	t.Helper()
	s := stMemStore(t)
	c := newStChain(t, n, 3)
	for h := 1; h <= n; h++ {
		c.save(t, s, h, nil, nil)
	}
	var buf bytes.Buffer
	if err := Export(&buf, exGenesis(), s); err != nil {
		t.Fatal(err)
	}
	return c, buf.Bytes()
}

// exReadAll reads every record of an export file, stopping at the first
// error.
func exReadAll(file []byte) (*ExportReader, []*Block, []*Commit, []Hash, error) {
	x, err := ReadExport(bytes.NewReader(file))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	var blocks []*Block
	var commits []*Commit
	var roots []Hash
	for {
		b, c, r, err := x.Next()
		if errors.Is(err, io.EOF) {
			return x, blocks, commits, roots, nil
		}
		if err != nil {
			return x, blocks, commits, roots, err
		}
		blocks, commits, roots = append(blocks, b), append(commits, c), append(roots, r)
	}
}

func TestExportRoundTrip(t *testing.T) {
	c, file := exExport(t, 5)
	x, blocks, commits, roots, err := exReadAll(file)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(x.Genesis(), exGenesis()) || x.Genesis().Hash() != exGenesis().Hash() {
		t.Errorf("genesis = %+v, want %+v", x.Genesis(), exGenesis())
	}
	if x.Head() != 5 {
		t.Errorf("head = %d, want 5", x.Head())
	}
	if !rlpEqual(t, blocks, c.blocks) {
		t.Errorf("blocks differ after the round trip")
	}
	if !rlpEqual(t, commits, c.commits) {
		t.Errorf("certificates differ after the round trip")
	}
	if !reflect.DeepEqual(roots, c.results) {
		t.Errorf("results roots = %v, want %v", roots, c.results)
	}
	for i, b := range blocks {
		if b.Hash() != c.blocks[i].Hash() {
			t.Errorf("block %d hash changed", i+1)
		}
	}
	if _, _, _, err := x.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("Next after the end: err = %v, want io.EOF", err)
	}
}

func TestExportEmptyChain(t *testing.T) {
	_, file := exExport(t, 0)
	x, blocks, _, _, err := exReadAll(file)
	if err != nil || x.Head() != 0 || len(blocks) != 0 {
		t.Fatalf("empty chain: head %d, %d blocks, %v", x.Head(), len(blocks), err)
	}
}

// TestExportFormatWithPlainRLP parses a file as the Export doc comment
// describes, with nothing but generic RLP splitting, as an auditor would.
func TestExportFormatWithPlainRLP(t *testing.T) {
	c, file := exExport(t, 3)
	if !bytes.HasPrefix(file, []byte("sagachain-export/1\n")) {
		t.Fatalf("file begins %q", file[:20])
	}
	rest := file[len("sagachain-export/1\n"):]
	genesisJSON, rest, err := rlp.SplitString(rest)
	if err != nil {
		t.Fatal(err)
	}
	if crypto.Keccak256Hash(genesisJSON) != exGenesis().Hash() {
		t.Errorf("Keccak-256 of the genesis bytes is not the genesis hash")
	}
	head, rest, err := rlp.SplitUint64(rest)
	if err != nil || head != 3 {
		t.Fatalf("head = %d, %v; want 3", head, err)
	}
	for h := 1; h <= 3; h++ {
		var rec []byte
		rec, rest, err = rlp.SplitList(rest)
		if err != nil {
			t.Fatalf("record %d: %v", h, err)
		}
		if n, _ := rlp.CountValues(rec); n != 3 {
			t.Fatalf("record %d has %d items, want 3", h, n)
		}
		block, tail, _ := rlp.SplitList(rec)
		hdr, _ := rlpFirst(t, block)
		if got := crypto.Keccak256Hash(hdr); got != c.blocks[h-1].Hash() {
			t.Errorf("record %d: Keccak of the header list is %s, want the block hash", h, got)
		}
		_, tail, _ = rlp.SplitList(tail) // certificate
		root, tail, err := rlp.SplitString(tail)
		if err != nil || len(tail) != 0 || !bytes.Equal(root, c.results[h-1][:]) {
			t.Errorf("record %d: results root %x, %v", h, root, err)
		}
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes after the last record", len(rest))
	}
}

// rlpFirst returns the complete encoding of the first item of b and what
// follows it.
func rlpFirst(t *testing.T, b []byte) (item, rest []byte) {
	t.Helper()
	_, _, rest, err := rlp.Split(b)
	if err != nil {
		t.Fatal(err)
	}
	return b[:len(b)-len(rest)], rest
}

func TestExportTruncatedNamesWhere(t *testing.T) {
	c, file := exExport(t, 5)
	genesisJSON, _ := json.Marshal(exGenesis())
	genesisItem, _ := rlp.EncodeToBytes(genesisJSON)
	headItem, _ := rlp.EncodeToBytes(uint64(5))
	// offset[h] is where the record of height h begins.
	offset := map[int]int{1: len(ExportMagic) + len(genesisItem) + len(headItem)}
	for h := 1; h <= 5; h++ {
		rec, _ := rlp.EncodeToBytes(&exportRecord{Block: c.blocks[h-1], Commit: c.commits[h-1], Results: c.results[h-1]})
		offset[h+1] = offset[h] + len(rec)
	}
	if offset[6] != len(file) {
		t.Fatalf("records end at %d, file has %d bytes", offset[6], len(file))
	}
	for _, tc := range []struct {
		name   string
		cut    int
		blocks int // read before the error
		want   []string
	}{
		{"in the magic", 5, 0, []string{"not a sagachain export"}},
		{"in the genesis", len(ExportMagic) + 10, 0, []string{"genesis at byte offset 19", "unexpected EOF"}},
		{"before the head", offset[1] - len(headItem), 0, []string{fmt.Sprintf("head at byte offset %d", offset[1]-len(headItem)), "unexpected EOF"}},
		{"inside record 3", offset[3] + 40, 2, []string{"height 3", fmt.Sprintf("byte offset %d", offset[3]), "unexpected EOF"}},
		{"between records 3 and 4", offset[4], 3, []string{"height 4", fmt.Sprintf("byte offset %d", offset[4]), "ends after 3 of 5 blocks"}},
		{"inside record 5", offset[6] - 1, 4, []string{"height 5", fmt.Sprintf("byte offset %d", offset[5])}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, blocks, _, _, err := exReadAll(file[:tc.cut])
			if err == nil {
				t.Fatal("a truncated file read without error")
			}
			if len(blocks) != tc.blocks {
				t.Errorf("read %d blocks before the error, want %d", len(blocks), tc.blocks)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestExportRefusesMisplacedAndTrailingData(t *testing.T) {
	c, file := exExport(t, 2)
	genesisJSON, _ := json.Marshal(exGenesis())
	var swapped bytes.Buffer
	swapped.WriteString(ExportMagic)
	for _, v := range []any{genesisJSON, uint64(2),
		&exportRecord{Block: c.blocks[1], Commit: c.commits[1], Results: c.results[1]},
		&exportRecord{Block: c.blocks[0], Commit: c.commits[0], Results: c.results[0]}} {
		if err := rlp.Encode(&swapped, v); err != nil {
			t.Fatal(err)
		}
	}
	_, _, _, _, err := exReadAll(swapped.Bytes())
	if err == nil || !strings.Contains(err.Error(), "height 1") || !strings.Contains(err.Error(), "holds block 2") {
		t.Errorf("records out of order: err = %v", err)
	}

	_, blocks, _, _, err := exReadAll(append(bytes.Clone(file), 0x80))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("byte offset %d", len(file))) || len(blocks) != 2 {
		t.Errorf("trailing byte: %d blocks, err = %v", len(blocks), err)
	}

	bad := bytes.Clone(file)
	copy(bad, "sagachain-export/2\n")
	if _, err := ReadExport(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "sagachain-export/1") {
		t.Errorf("version 2 file: err = %v", err)
	}
}
