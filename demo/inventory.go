package demo

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Inventory is what is left to book: for each kind, the units left of each
// item, by the item's name.
type Inventory struct {
	// Seats are the seats left on each flight, by flight number.
	Seats map[string]int `json:"seats"`
	// Rooms are the rooms left at each hotel, by name.
	Rooms map[string]int `json:"rooms"`
	// Cars are the hire cars left of each class, by class.
	Cars map[string]int `json:"cars"`
	// Spots are the places left on each excursion, by name.
	Spots map[string]int `json:"spots"`
}

// DefaultInventory is the inventory of a new demo. The hotel Seaside has no
// rooms left, so that a trip booking it fails and rolls back.
func DefaultInventory() Inventory {
	return Inventory{
		Seats: map[string]int{"BA117": 9, "AB123": 4},
		Rooms: map[string]int{"Grand": 5, "Seaside": 0},
		Cars:  map[string]int{"Compact": 3, "SUV": 1},
		Spots: map[string]int{"Greenwich by boat": 12},
	}
}

// Clone returns a copy of inv that shares no map with it.
func (inv Inventory) Clone() Inventory {
	return Inventory{
		Seats: cloneStock(inv.Seats),
		Rooms: cloneStock(inv.Rooms),
		Cars:  cloneStock(inv.Cars),
		Spots: cloneStock(inv.Spots),
	}
}

// cloneStock copies a stock map; nil becomes empty so that a clone can
// always be written to.
func cloneStock(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return maps.Clone(m)
}

// Validate checks that every item has a name and no count is negative.
func (inv Inventory) Validate() error {
	var errs []error
	for _, k := range bookable {
		stock := k.stock(&inv)
		for _, item := range slices.Sorted(maps.Keys(stock)) {
			switch {
			case strings.TrimSpace(item) == "":
				errs = append(errs, fmt.Errorf("%s: an item has an empty name", k.units))
			case stock[item] < 0:
				errs = append(errs, fmt.Errorf("%s[%q]: want a count of 0 or more, got %d", k.units, item, stock[item]))
			}
		}
	}
	return errors.Join(errs...)
}

// Status is where a reservation stands.
type Status string

const (
	// StatusActive: the reservation holds its units (or its charge).
	StatusActive Status = "active"
	// StatusCancelled: it was cancelled (or refunded) and its units are back.
	StatusCancelled Status = "cancelled"
	// StatusVoid: a cancel came for a key that held nothing. The key is
	// kept so that a reserve arriving late under it (a request that outlived
	// its caller's timeout) is refused instead of taking units that no
	// rollback will ever give back.
	StatusVoid Status = "void"
)

// Reservation is one booking, or one charge, under its idempotency key.
type Reservation struct {
	// Key is the idempotency key of the reserve (or charge).
	Key string `json:"key"`
	// Kind is airline, hotel, car, excursion or payment.
	Kind string `json:"kind"`
	// Item is the flight, hotel, car class or excursion; empty for payment.
	Item string `json:"item,omitempty"`
	// Units are the seats, rooms, cars or tickets held.
	Units int `json:"units,omitempty"`
	// Amount and Currency are a payment's.
	Amount   int64  `json:"amount,omitempty"`
	Currency string `json:"currency,omitempty"`
	// Card is the last four digits of a payment's card.
	Card     string `json:"card,omitempty"`
	Traveler string `json:"traveler,omitempty"`
	// Confirmation is six upper-case letters and digits derived from Key,
	// so that every retry of a reserve agrees on it.
	Confirmation string `json:"confirmation,omitempty"`
	Status       Status `json:"status"`
	// Output is what the reserve answered, answered again to a retry.
	Output json.RawMessage `json:"output,omitempty"`
	// Seq orders the reservations by when they were made.
	Seq     uint64    `json:"seq"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// stateVersion is the version of the inventory file's format.
const stateVersion = 1

// state is everything the demo keeps, as its file holds it.
type state struct {
	Version   int       `json:"version"`
	Inventory Inventory `json:"inventory"`
	// Reservations are keyed by the idempotency key of their reserve.
	Reservations map[string]Reservation `json:"reservations"`
	// Seq is the Seq of the latest reservation.
	Seq uint64 `json:"seq"`
}

// newState is the state of a demo that has booked nothing yet.
func newState(inv Inventory) state {
	return state{Version: stateVersion, Inventory: inv.Clone(), Reservations: map[string]Reservation{}}
}

// clone returns a copy of s that shares no map with it, for a change that
// must leave s as it was if it cannot be saved.
func (s state) clone() state {
	c := s
	c.Inventory = s.Inventory.Clone()
	c.Reservations = maps.Clone(s.Reservations)
	if c.Reservations == nil {
		c.Reservations = map[string]Reservation{}
	}
	return c
}

// sorted returns the reservations in the order they were made.
func (s state) sorted() []Reservation {
	rs := make([]Reservation, 0, len(s.Reservations))
	rs = slices.AppendSeq(rs, maps.Values(s.Reservations))
	slices.SortFunc(rs, func(a, b Reservation) int { return cmp.Compare(a.Seq, b.Seq) })
	return rs
}

// loadState reads the inventory file at path; ok is false when there is
// none.
func loadState(path string) (s state, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return state{}, false, nil
	}
	if err != nil {
		return state{}, false, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return state{}, false, fmt.Errorf("%s: %w", path, err)
	}
	if s.Version != stateVersion {
		return state{}, false, fmt.Errorf("%s: version %d, want %d", path, s.Version, stateVersion)
	}
	if err := s.Inventory.Validate(); err != nil {
		return state{}, false, fmt.Errorf("%s: inventory: %w", path, err)
	}
	s = s.clone()
	for key, r := range s.Reservations {
		if r.Key != key {
			return state{}, false, fmt.Errorf("%s: reservation under key %q says its key is %q", path, key, r.Key)
		}
		// The file indents the answers it keeps; a retry gets them as
		// they were first sent.
		if len(r.Output) > 0 {
			var buf bytes.Buffer
			if err := json.Compact(&buf, r.Output); err != nil {
				return state{}, false, fmt.Errorf("%s: reservation %q: output: %w", path, key, err)
			}
			r.Output = buf.Bytes()
			s.Reservations[key] = r
		}
	}
	return s, true, nil
}

// save writes s to path so that a crash leaves either the old file or the
// new one, never a mix: a temporary file in the same directory is written
// and synced, then renamed over path, and the directory is synced so that
// the rename itself survives.
func (s state) save(path string) (err error) {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(append(data, '\n')); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
