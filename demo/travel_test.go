package demo

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// startTravel serves a demo over seed, with its file in a fresh directory.
func startTravel(t *testing.T, seed Inventory) (*Travel, *httptest.Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "travel.json")
	tr, err := NewTravel(path, seed)
	if err != nil {
		t.Fatal(err)
	}
	return tr, newServer(t, tr), path
}

// newServer serves tr until the test ends.
func newServer(t *testing.T, tr *Travel) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(tr.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// call POSTs a function request as taskrt does: the body, and its key in
// the Idempotency-Key header. It returns the status and the decoded body.
func call(t *testing.T, srv *httptest.Server, path, key string, body map[string]any) (int, map[string]any) {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	body["idempotency_key"] = key
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("POST %s: Content-Type %q, want application/json", path, ct)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("POST %s: %d with a body that is not a JSON object: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// reserveFlight is a reserve of one seat on flight for traveler.
func reserveFlight(flight, traveler string) map[string]any {
	return map[string]any{"params": map[string]any{"flight": flight}, "inputs": map[string]any{"traveler": traveler}}
}

var confirmationRule = regexp.MustCompile(`^[A-Z0-9]{6}$`)

func TestReserveTakesAUnitAndAnswersTheOutputLabel(t *testing.T) {
	tr, srv, _ := startTravel(t, DefaultInventory())
	before := tr.Inventory()

	code, out := call(t, srv, "/hotel/reserve", "op1:hotel", map[string]any{
		"params": map[string]any{"hotel": "Grand", "nights": 2}, "inputs": map[string]any{"traveler": "Ada Lovelace"}})
	if code != http.StatusOK {
		t.Fatalf("hotel.reserve: %d %v", code, out)
	}
	hotel, ok := out["hotel"].(map[string]any)
	if !ok || len(out) != 1 {
		t.Fatalf("hotel.reserve answered %v, want the output label hotel alone", out)
	}
	conf, _ := hotel["confirmation"].(string)
	if !confirmationRule.MatchString(conf) || hotel["hotel"] != "Grand" || hotel["nights"] != 2.0 || hotel["rooms"] != 1.0 || hotel["traveler"] != "Ada Lovelace" {
		t.Errorf("hotel output %v: want a confirmation of 6 of [A-Z0-9], the hotel, nights, rooms and traveller", hotel)
	}
	after := tr.Inventory()
	if after.Rooms["Grand"] != before.Rooms["Grand"]-1 {
		t.Errorf("rooms at Grand: %d after a reserve, want %d", after.Rooms["Grand"], before.Rooms["Grand"]-1)
	}
	after.Rooms["Grand"]++
	if !reflect.DeepEqual(after, before) {
		t.Errorf("a hotel reserve changed more than one room at Grand: %+v, was %+v", after, before)
	}

	// Several units, and another label.
	code, out = call(t, srv, "/airline/reserve", "op1:outbound", map[string]any{"params": map[string]any{"flight": "AB123", "seats": 3, "output": "outbound"}})
	if code != http.StatusOK || out["outbound"] == nil || tr.Inventory().Seats["AB123"] != before.Seats["AB123"]-3 {
		t.Errorf("3 seats under label outbound: %d %v, seats left %d", code, out, tr.Inventory().Seats["AB123"])
	}
	if got := out["outbound"].(map[string]any); got["output"] != nil || got["seats"] != 3.0 {
		t.Errorf("outbound output %v: want seats 3 and no output key", got)
	}
}

func TestReserveTwiceUnderOneKeyTakesOneUnit(t *testing.T) {
	tr, srv, _ := startTravel(t, DefaultInventory())
	seats := tr.Inventory().Seats["BA117"]
	_, first := call(t, srv, "/airline/reserve", "op1:flight", reserveFlight("BA117", "Ada"))
	code, again := call(t, srv, "/airline/reserve", "op1:flight", reserveFlight("BA117", "Ada"))
	if code != http.StatusOK || !reflect.DeepEqual(first, again) {
		t.Errorf("a retried reserve answered %d %v, want 200 and the first answer %v", code, again, first)
	}
	if left := tr.Inventory().Seats["BA117"]; left != seats-1 {
		t.Errorf("seats left on BA117 after one reserve and its retry: %d, want %d", left, seats-1)
	}
	if n := len(tr.Reservations()); n != 1 {
		t.Errorf("%d reservations, want 1", n)
	}

	// Another key is another booking, with another confirmation.
	_, other := call(t, srv, "/airline/reserve", "op2:flight", reserveFlight("BA117", "Grace"))
	if c1, c2 := first["flight"].(map[string]any)["confirmation"], other["flight"].(map[string]any)["confirmation"]; c1 == c2 {
		t.Errorf("two keys got the same confirmation %v", c1)
	}
	if left := tr.Inventory().Seats["BA117"]; left != seats-2 {
		t.Errorf("seats left on BA117 after two bookings: %d, want %d", left, seats-2)
	}
}

// Retries arrive in parallel when a caller times out and tries again while
// the first request is still being served.
func TestConcurrentRetriesTakeOneUnit(t *testing.T) {
	tr, srv, _ := startTravel(t, DefaultInventory())
	var wg sync.WaitGroup
	answers := make([]map[string]any, 8)
	for i := range answers {
		wg.Go(func() {
			_, answers[i] = call(t, srv, "/car/reserve", "op1:car", map[string]any{"params": map[string]any{"car": "SUV"}})
		})
	}
	wg.Wait()
	for _, a := range answers[1:] {
		if !reflect.DeepEqual(a, answers[0]) {
			t.Errorf("parallel retries answered %v and %v", answers[0], a)
		}
	}
	if left := tr.Inventory().Cars["SUV"]; left != 0 {
		t.Errorf("SUVs left after 8 parallel retries of one booking: %d, want 0", left)
	}
}

func TestKeyReusedForAnotherBookingIsRefused(t *testing.T) {
	tr, srv, _ := startTravel(t, DefaultInventory())
	call(t, srv, "/airline/reserve", "op1:flight", reserveFlight("BA117", "Ada"))
	before := tr.Inventory()
	for _, tc := range []struct {
		path string
		body map[string]any
		want string
	}{
		{"/airline/reserve", reserveFlight("AB123", "Ada"), "booked 1 seat on flight BA117, not 1 seat on flight AB123"},
		{"/hotel/reserve", map[string]any{"params": map[string]any{"hotel": "Grand"}}, "is booked with airline, not hotel"},
		{"/hotel/cancel", nil, "is booked with airline, not hotel"},
	} {
		code, out := call(t, srv, tc.path, "op1:flight", tc.body)
		if code != http.StatusUnprocessableEntity || !strings.Contains(out["error"].(string), tc.want) {
			t.Errorf("%s under the flight's key: %d %v, want 422 saying %q", tc.path, code, out, tc.want)
		}
	}
	if after := tr.Inventory(); !reflect.DeepEqual(after, before) {
		t.Errorf("refused requests changed the inventory: %+v, was %+v", after, before)
	}
}

func TestCancelGivesTheUnitBack(t *testing.T) {
	tr, srv, _ := startTravel(t, DefaultInventory())
	initial := tr.Inventory()
	_, out := call(t, srv, "/excursion/reserve", "op1:excursion", map[string]any{"params": map[string]any{"excursion": "Greenwich by boat", "tickets": 2}})
	conf := out["excursion"].(map[string]any)["confirmation"]
	if left := tr.Inventory().Spots["Greenwich by boat"]; left != initial.Spots["Greenwich by boat"]-2 {
		t.Fatalf("spots left after booking 2: %d", left)
	}

	// The saga's rollback: the same key with its suffix, the outcome and
	// the recorded output.
	code, undone := call(t, srv, "/excursion/cancel", "op1:excursion:rollback", map[string]any{"outcome": "succeeded", "output": out})
	if code != http.StatusOK || undone["undone"] != true || undone["confirmation"] != conf {
		t.Errorf("excursion.cancel: %d %v, want undone with confirmation %v", code, undone, conf)
	}
	if got := tr.Inventory(); !reflect.DeepEqual(got, initial) {
		t.Errorf("inventory after reserve and cancel %+v, want the initial %+v", got, initial)
	}
	rs := tr.Reservations()
	if len(rs) != 1 || rs[0].Status != StatusCancelled || rs[0].Confirmation != conf {
		t.Errorf("reservations %+v, want the one cancelled", rs)
	}

	// A second cancel has nothing to undo and gives nothing back twice.
	code, again := call(t, srv, "/excursion/cancel", "op1:excursion:rollback", nil)
	if code != http.StatusOK || again["undone"] != false || !strings.Contains(again["reason"].(string), "nothing to undo") {
		t.Errorf("a second cancel: %d %v, want 200 with nothing to undo", code, again)
	}
	if got := tr.Inventory(); !reflect.DeepEqual(got, initial) {
		t.Errorf("inventory after two cancels %+v, want the initial %+v", got, initial)
	}

	// The key is spent: a late reserve under it takes nothing.
	code, late := call(t, srv, "/excursion/reserve", "op1:excursion", map[string]any{"params": map[string]any{"excursion": "Greenwich by boat", "tickets": 2}})
	if code != http.StatusConflict || !strings.Contains(late["error"].(string), "was cancelled") {
		t.Errorf("a reserve under a cancelled key: %d %v, want 409", code, late)
	}
	if got := tr.Inventory(); !reflect.DeepEqual(got, initial) {
		t.Errorf("inventory after a late reserve %+v, want the initial %+v", got, initial)
	}
}

func TestCancelOfAnUnknownKeyIsASuccess(t *testing.T) {
	tr, srv, _ := startTravel(t, DefaultInventory())
	initial := tr.Inventory()
	code, out := call(t, srv, "/hotel/cancel", "op1:hotel:rollback", map[string]any{"outcome": "failed", "params": map[string]any{"hotel": "Seaside"}})
	if code != http.StatusOK || out["undone"] != false || !strings.Contains(out["reason"].(string), "nothing to undo") {
		t.Errorf("cancel of a key that booked nothing: %d %v, want 200 with nothing to undo", code, out)
	}
	if got := tr.Inventory(); !reflect.DeepEqual(got, initial) {
		t.Errorf("inventory %+v, want the initial %+v", got, initial)
	}
	rs := tr.Reservations()
	if len(rs) != 1 || rs[0].Status != StatusVoid || rs[0].Key != "op1:hotel" || rs[0].Item != "Seaside" {
		t.Fatalf("reservations %+v, want op1:hotel void", rs)
	}
	// A reserve that arrives after its own rollback (it outlived the
	// caller's timeout) must not take a room nobody will give back.
	code, out = call(t, srv, "/hotel/reserve", "op1:hotel", map[string]any{"params": map[string]any{"hotel": "Grand"}})
	if code != http.StatusConflict || tr.Inventory().Rooms["Grand"] != initial.Rooms["Grand"] {
		t.Errorf("a reserve after its cancel: %d %v, rooms at Grand %d; want 409 and no room taken", code, out, tr.Inventory().Rooms["Grand"])
	}
}

func TestSoldOutIs409(t *testing.T) {
	tr, srv, _ := startTravel(t, DefaultInventory())
	initial := tr.Inventory()
	code, out := call(t, srv, "/hotel/reserve", "op1:hotel", map[string]any{"params": map[string]any{"hotel": "Seaside", "nights": 2}})
	if code != http.StatusConflict || out["error"] != "no rooms left at Seaside" {
		t.Errorf("hotel.reserve at Seaside: %d %v, want 409 no rooms left at Seaside", code, out)
	}
	code, out = call(t, srv, "/airline/reserve", "op2:flight", map[string]any{"params": map[string]any{"flight": "AB123", "seats": 5}})
	if code != http.StatusConflict || out["error"] != "only 4 seats left on flight AB123, want 5" {
		t.Errorf("5 seats on AB123: %d %v, want 409 only 4 seats left", code, out)
	}
	if got := tr.Inventory(); !reflect.DeepEqual(got, initial) {
		t.Errorf("refused bookings changed the inventory: %+v", got)
	}
	if rs := tr.Reservations(); len(rs) != 0 {
		t.Errorf("refused bookings were recorded: %+v", rs)
	}
	// The last unit goes, then the next is refused.
	if code, out := call(t, srv, "/car/reserve", "op3:car", map[string]any{"params": map[string]any{"car": "SUV"}}); code != http.StatusOK {
		t.Fatalf("the last SUV: %d %v", code, out)
	}
	if code, out := call(t, srv, "/car/reserve", "op4:car", map[string]any{"params": map[string]any{"car": "SUV"}}); code != http.StatusConflict || out["error"] != "no cars left in class SUV" {
		t.Errorf("an SUV after the last: %d %v, want 409", code, out)
	}
}

func TestChargeAndRefund(t *testing.T) {
	tr, srv, _ := startTravel(t, DefaultInventory())
	body := map[string]any{"params": map[string]any{"amount": 1840, "currency": "EUR"}, "inputs": map[string]any{"card": "4111 1111 1111 1234"}}
	code, out := call(t, srv, "/payment/charge", "op1:payment", body)
	p, _ := out["payment"].(map[string]any)
	if code != http.StatusOK || p == nil || !confirmationRule.MatchString(p["confirmation"].(string)) || p["amount"] != 1840.0 || p["card"] != "…1234" {
		t.Fatalf("payment.charge: %d %v", code, out)
	}
	if strings.Contains(mustJSON(t, tr.Reservations()), "4111") {
		t.Errorf("the card number is kept beyond its last four digits: %s", mustJSON(t, tr.Reservations()))
	}
	code, out = call(t, srv, "/payment/refund", "op1:payment:rollback", nil)
	if code != http.StatusOK || out["undone"] != true {
		t.Errorf("payment.refund: %d %v", code, out)
	}
	if rs := tr.Reservations(); len(rs) != 1 || rs[0].Status != StatusCancelled || rs[0].Amount != 1840 {
		t.Errorf("reservations %+v, want the charge refunded", rs)
	}
}

func TestBadRequestsAre4xxNamingWhatIsWrong(t *testing.T) {
	tr, srv, _ := startTravel(t, DefaultInventory())
	initial := tr.Inventory()
	for _, tc := range []struct {
		name, path, key string
		body            map[string]any
		code            int
		want            string
	}{
		{"no key", "/airline/reserve", "", reserveFlight("BA117", "Ada"), 400, "no idempotency key"},
		{"no item", "/airline/reserve", "k", map[string]any{"params": map[string]any{}}, 400, "params.flight is missing"},
		{"item not a string", "/hotel/reserve", "k", map[string]any{"params": map[string]any{"hotel": 7}}, 400, "params.hotel"},
		{"unknown item", "/airline/reserve", "k", reserveFlight("XY999", "Ada"), 404, `unknown flight "XY999"`},
		{"zero units", "/car/reserve", "k", map[string]any{"params": map[string]any{"car": "SUV", "cars": 0}}, 400, "params.cars: want a whole number from 1 to 20"},
		{"fractional units", "/excursion/reserve", "k", map[string]any{"params": map[string]any{"excursion": "Greenwich by boat", "tickets": 1.5}}, 400, "params.tickets"},
		{"no amount", "/payment/charge", "k", map[string]any{"inputs": map[string]any{"card": "4111111111111111"}}, 400, "params.amount is missing"},
		{"bad currency", "/payment/charge", "k", map[string]any{"params": map[string]any{"amount": 5, "currency": "euro"}, "inputs": map[string]any{"card": "4111111111111111"}}, 400, "params.currency"},
		{"no card", "/payment/charge", "k", map[string]any{"params": map[string]any{"amount": 5}}, 400, "inputs.card is missing"},
		{"bad label", "/airline/reserve", "k", map[string]any{"params": map[string]any{"flight": "BA117", "output": 3}}, 400, "params.output"},
	} {
		code, out := call(t, srv, tc.path, tc.key, tc.body)
		if code != tc.code || !strings.Contains(out["error"].(string), tc.want) {
			t.Errorf("%s: %d %v, want %d naming %q", tc.name, code, out, tc.code, tc.want)
		}
	}

	// Header and body disagree.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/airline/reserve", strings.NewReader(`{"idempotency_key":"a","params":{"flight":"BA117"}}`))
	req.Header.Set("Idempotency-Key", "b")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("keys that differ: %s, want 400", resp.Status)
	}
	// Not JSON, and not POST.
	resp, err = srv.Client().Post(srv.URL+"/airline/reserve", "application/json", strings.NewReader("{"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a body that is not JSON: %s, want 400", resp.Status)
	}
	resp, err = srv.Client().Get(srv.URL + "/airline/reserve")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET of a function: %s, want 405", resp.Status)
	}
	if got := tr.Inventory(); !reflect.DeepEqual(got, initial) || len(tr.Reservations()) != 0 {
		t.Errorf("bad requests changed the inventory %+v or booked %+v", got, tr.Reservations())
	}
}

func TestEndpointsAreServed(t *testing.T) {
	_, srv, _ := startTravel(t, DefaultInventory())
	eps := Endpoints()
	if len(eps) != 10 {
		t.Fatalf("%d endpoints, want reserve and cancel of 4 kinds and charge and refund", len(eps))
	}
	for i, ep := range eps {
		if i > 0 && eps[i-1].Function >= ep.Function {
			t.Errorf("endpoints not sorted: %s before %s", eps[i-1].Function, ep.Function)
		}
		if want := "/" + strings.Replace(ep.Function, ".", "/", 1); ep.Path != want {
			t.Errorf("%s is served at %s, want %s", ep.Function, ep.Path, want)
		}
		// Every path is a function: a request without params is a 4xx
		// from the function, or a cancel with nothing to undo.
		code, out := call(t, srv, ep.Path, "probe:"+ep.Function, nil)
		if code == http.StatusNotFound || code == http.StatusMethodNotAllowed || (code == http.StatusOK && out["undone"] != false) {
			t.Errorf("POST %s: %d %v", ep.Path, code, out)
		}
	}
}

func TestConfirmationIsStableAndWellFormed(t *testing.T) {
	seen := make(map[string]bool)
	for i := range 1000 {
		key := "0xabc:task" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		c := confirmation("airline", key)
		if !confirmationRule.MatchString(c) || c != confirmation("airline", key) {
			t.Fatalf("confirmation(%q) = %q, want 6 of [A-Z0-9], the same each time", key, c)
		}
		seen[c] = true
	}
	if len(seen) < 999 {
		t.Errorf("1000 keys gave %d confirmations", len(seen))
	}
	if confirmation("airline", "k") == confirmation("hotel", "k") {
		t.Error("two kinds give one key the same confirmation")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
