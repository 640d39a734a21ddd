package node

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestSlotFileKeepsTheNewestIntactSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	s := newSlotFile(path)
	if got, err := s.Load(); err != nil || got != nil {
		t.Fatalf("empty: %q, %v", got, err)
	}
	for i := range 5 {
		if err := s.Save(bytes.Repeat([]byte{byte('a' + i)}, 10-i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	reopen := func() *slotFile {
		t.Helper()
		r := newSlotFile(path)
		t.Cleanup(func() { r.Close() })
		return r
	}
	if got, err := reopen().Load(); err != nil || string(got) != "eeeeee" {
		t.Fatalf("after five saves: %q, %v", got, err)
	}

	// A crash tears the newest save (save 5 went to slot 1): the one
	// before comes back.
	newest := path + ".1"
	data, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(newest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := reopen()
	if got, err := r.Load(); err != nil || string(got) != "ddddddd" {
		t.Fatalf("after tearing the newest: %q, %v", got, err)
	}
	// The next save goes over the torn file, not over the intact one.
	if err := r.Save([]byte("f")); err != nil {
		t.Fatal(err)
	}
	if got, err := reopen().Load(); err != nil || string(got) != "f" {
		t.Fatalf("after saving again: %q, %v", got, err)
	}
	if _, blob, ok := parseSlot(mustRead(t, path+".0")); !ok || string(blob) != "ddddddd" {
		t.Fatalf("the intact older save was overwritten: %q", blob)
	}

	// A file cut short by a crash is no save at all.
	for _, n := range []int{0, 3, slotHeader + 1} {
		if err := os.WriteFile(path+".1", mustRead(t, path+".1")[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := reopen().Load(); err != nil || string(got) != "ddddddd" {
			t.Fatalf("slot 1 cut to %d bytes: %q, %v", n, got, err)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func BenchmarkSlotFileSave(b *testing.B) {
	s := newSlotFile(filepath.Join(b.TempDir(), "state"))
	defer s.Close()
	blob := bytes.Repeat([]byte{1}, 300)
	for i := 0; b.Loop(); i++ {
		blob[0] = byte(i)
		if err := s.Save(blob); err != nil {
			b.Fatal(fmt.Errorf("save %d: %w", i, err))
		}
	}
}
