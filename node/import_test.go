package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// Import rebuilds a store that holds what the exported one held, writes
// nothing for a file whose head results root was flipped (only the replay
// finds that one), and refuses a home with chain data.
func TestImportRebuildsTheStoreOrWritesNothing(t *testing.T) {
	tn := startNode(t, "")
	ok := tn.submit(t, "../testnet/ops/trip.yaml")
	bad := tn.submit(t, "../testnet/ops/trip-hotel-fails.yaml")
	tn.wait(t, ok)
	tn.wait(t, bad)
	var buf bytes.Buffer
	if err := ledger.Export(&buf, tn.Genesis(), tn.store); err != nil {
		t.Fatal(err)
	}
	// The head the file holds: a heartbeat may commit a block meanwhile.
	x, err := ledger.ReadExport(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	head := x.Head()
	orig := make(map[ledger.Hash]*ledger.OpRecord)
	for _, id := range []ledger.Hash{ok, bad} {
		if orig[id], err = tn.store.Operation(id); err != nil {
			t.Fatal(err)
		}
	}
	tn.stop()
	exported := buf.Bytes()
	dir := t.TempDir()
	file := filepath.Join(dir, "chain.export")
	if err := os.WriteFile(file, exported, 0o644); err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(exported)
	flipped[len(flipped)-1] ^= 1
	badFile := filepath.Join(dir, "flipped.export")
	if err := os.WriteFile(badFile, flipped, 0o644); err != nil {
		t.Fatal(err)
	}

	g, cfg, val, _ := oneValidator(t)
	opts := Options{Home: t.TempDir(), Config: cfg, Genesis: g, Key: val, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	_, err = Import(context.Background(), opts, badFile)
	var f *ledger.Fault
	if !errors.As(err, &f) || !errors.Is(err, ledger.ErrResultsRoot) || f.Height != head {
		t.Fatalf("import of a file with the head's results root flipped: %v, want a results root fault at block %d", err, head)
	}
	if ents, _ := os.ReadDir(opts.Home); len(ents) != 0 {
		t.Fatalf("a refused import left %v in the home", ents)
	}

	rep, err := Import(context.Background(), opts, file)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Head != head || rep.Blocks != head || rep.Verify.Operations != 2 {
		t.Errorf("imported %+v, want %d blocks and 2 operations", rep, head)
	}
	if ents, _ := os.ReadDir(opts.Home); len(ents) != 1 || ents[0].Name() != DataDir {
		t.Errorf("home after import holds %v, want the data directory alone", ents)
	}
	if _, err := Import(context.Background(), opts, file); !errors.Is(err, ErrHomeHasStore) {
		t.Errorf("import into a home with data: %v, want ErrHomeHasStore", err)
	}

	st, err := ledger.OpenBadger(filepath.Join(opts.Home, DataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for id, want := range map[ledger.Hash]taskrt.OpStatus{ok: taskrt.OpCompleted, bad: taskrt.OpRolledBack} {
		r, err := st.Operation(id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Saga.Status != want || len(r.Events) != len(orig[id].Events) {
			t.Errorf("imported %s: %s with %d events, want %s with %d", id.Hex(), r.Saga.Status, len(r.Events), want, len(orig[id].Events))
		}
	}
	if _, err := ledger.VerifyChain(g, ledger.StoreSource(st)); err != nil {
		t.Errorf("the imported store does not verify: %v", err)
	}
}
