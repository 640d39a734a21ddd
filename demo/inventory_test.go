package demo

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestBookingsSurviveAReopen(t *testing.T) {
	tr, srv, path := startTravel(t, DefaultInventory())
	call(t, srv, "/airline/reserve", "op1:flight", reserveFlight("BA117", "Ada"))
	call(t, srv, "/hotel/reserve", "op1:hotel", map[string]any{"params": map[string]any{"hotel": "Grand"}})
	call(t, srv, "/hotel/cancel", "op1:hotel:rollback", nil)
	call(t, srv, "/car/cancel", "op1:car:rollback", nil)
	inv, rs := tr.Inventory(), tr.Reservations()
	srv.Close()

	// The seed of a reopen is ignored: the file holds the inventory.
	reopened, err := NewTravel(path, Inventory{Seats: map[string]int{"ZZ1": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got := reopened.Inventory(); !reflect.DeepEqual(got, inv) {
		t.Errorf("inventory after reopening %+v, want %+v", got, inv)
	}
	got := reopened.Reservations()
	if len(got) != len(rs) {
		t.Fatalf("reservations after reopening %+v, want %+v", got, rs)
	}
	for i := range rs {
		if got[i].Key != rs[i].Key || got[i].Status != rs[i].Status || got[i].Confirmation != rs[i].Confirmation ||
			got[i].Seq != rs[i].Seq || string(got[i].Output) != string(rs[i].Output) || !got[i].Updated.Equal(rs[i].Updated) {
			t.Errorf("reservation %d after reopening %+v, want %+v", i, got[i], rs[i])
		}
	}

	// What the reopened demo knows still counts: a retry answers as the
	// first time, without a second seat.
	srv2 := newServer(t, reopened)
	seats := reopened.Inventory().Seats["BA117"]
	code, out := call(t, srv2, "/airline/reserve", "op1:flight", reserveFlight("BA117", "Ada"))
	if code != http.StatusOK || out["flight"].(map[string]any)["confirmation"] != rs[0].Confirmation || reopened.Inventory().Seats["BA117"] != seats {
		t.Errorf("a retry after reopening: %d %v, seats %d; want the first confirmation %s and seats %d", code, out, reopened.Inventory().Seats["BA117"], rs[0].Confirmation, seats)
	}
	// A cancel after reopening gives the seat back, once.
	call(t, srv2, "/airline/cancel", "op1:flight:rollback", nil)
	call(t, srv2, "/airline/cancel", "op1:flight:rollback", nil)
	if left := reopened.Inventory().Seats["BA117"]; left != DefaultInventory().Seats["BA117"] {
		t.Errorf("seats on BA117 after the cancel: %d, want %d", left, DefaultInventory().Seats["BA117"])
	}

	// Only the inventory file is in its directory: no temporary file is
	// left behind by the atomic writes.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(path) {
		t.Errorf("directory of the inventory holds %v, want %s alone", entries, filepath.Base(path))
	}
}

func TestNewTravelWritesTheSeedAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "travel.json")
	if _, err := NewTravel(path, DefaultInventory()); err != nil {
		t.Fatal(err)
	}
	st, ok, err := loadState(path)
	if err != nil || !ok {
		t.Fatalf("loadState after NewTravel: ok %v, %v", ok, err)
	}
	if !reflect.DeepEqual(st.Inventory, DefaultInventory()) || len(st.Reservations) != 0 {
		t.Errorf("file holds %+v, want the seed and no reservations", st)
	}
	if DefaultInventory().Rooms["Seaside"] != 0 {
		t.Error("the default inventory must have a sold-out hotel for the failing trip")
	}
}

func TestNewTravelRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path string
		seed       Inventory
		want       string
	}{
		{"no path", "", DefaultInventory(), "no inventory file"},
		{"negative count", filepath.Join(dir, "a.json"), Inventory{Rooms: map[string]int{"Grand": -1}}, `rooms["Grand"]: want a count of 0 or more, got -1`},
		{"empty item", filepath.Join(dir, "b.json"), Inventory{Spots: map[string]int{" ": 1}}, "spots: an item has an empty name"},
		{"not JSON", write("c.json", "{"), DefaultInventory(), "c.json"},
		{"other version", write("d.json", `{"version": 9}`), DefaultInventory(), "version 9, want 1"},
		{"bad count in file", write("e.json", `{"version": 1, "inventory": {"seats": {"BA117": -2}}}`), DefaultInventory(), `seats["BA117"]`},
		{"key mismatch", write("f.json", `{"version": 1, "inventory": {}, "reservations": {"a": {"key": "b"}}}`), DefaultInventory(), `key "a" says its key is "b"`},
		{"directory missing", filepath.Join(dir, "absent", "g.json"), DefaultInventory(), "absent"},
	} {
		_, err := NewTravel(tc.path, tc.seed)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewTravel error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}

// A change that cannot be saved is not made: the caller gets a 500, which
// it retries, and the inventory is as before.
func TestUnsavedChangeIsNotMade(t *testing.T) {
	tr, srv, path := startTravel(t, DefaultInventory())
	initial := tr.Inventory()
	// A directory where the file was: the rename over it fails, for root
	// too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	code, out := call(t, srv, "/airline/reserve", "op1:flight", reserveFlight("BA117", "Ada"))
	if code != http.StatusInternalServerError || !strings.Contains(out["error"].(string), "saving the inventory") {
		t.Errorf("reserve with an unwritable file: %d %v, want 500", code, out)
	}
	if got := tr.Inventory(); !reflect.DeepEqual(got, initial) || len(tr.Reservations()) != 0 {
		t.Errorf("an unsaved reserve changed the state: %+v %+v", got, tr.Reservations())
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("a failed save left %v behind", entries)
	}

	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, srv, "/airline/reserve", "op1:flight", reserveFlight("BA117", "Ada")); code != http.StatusOK || tr.Inventory().Seats["BA117"] != initial.Seats["BA117"]-1 {
		t.Errorf("the retry once the file can be written: %d, seats %d", code, tr.Inventory().Seats["BA117"])
	}
	if st, ok, err := loadState(path); err != nil || !ok || st.Inventory.Seats["BA117"] != initial.Seats["BA117"]-1 {
		t.Errorf("the file after the retry: ok %v, %v, seats %d", ok, err, st.Inventory.Seats["BA117"])
	}
}
