package demo

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// get fetches path and returns the response and its body.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestPageShowsInventoryAndReservations(t *testing.T) {
	_, srv, _ := startTravel(t, DefaultInventory())
	_, out := call(t, srv, "/airline/reserve", "0x"+strings.Repeat("ab", 32)+":flight", reserveFlight("BA117", "Ada Lovelace"))
	conf := out["flight"].(map[string]any)["confirmation"].(string)
	call(t, srv, "/car/reserve", "op1:car", map[string]any{"params": map[string]any{"car": "SUV"}})
	call(t, srv, "/car/cancel", "op1:car:rollback", nil)

	resp, page := get(t, srv.URL+"/")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("GET /: Content-Security-Policy %q, want default-src 'none'", resp.Header.Get("Content-Security-Policy"))
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="2">`,
		"<td>BA117</td><td class=\"n\">8</td><td class=\"n\">1</td>", // 9 seats, 1 booked
		"<td>Seaside</td><td class=\"n soldout\">sold out</td>",
		"<td>SUV</td><td class=\"n\">1</td><td class=\"n\">0</td>", // booked and given back
		"Reservations (1 active, 1 cancelled)",
		`<td class="active">active</td><td><code>` + conf + `</code></td><td>airline</td><td>1 seat on flight BA117</td><td>Ada Lovelace</td>`,
		`<td class="cancelled">cancelled</td>`,
		"0xabab…abab:flight",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	// Newest first: the car (cancelled) above the flight.
	if strings.Index(page, "1 car in class SUV") > strings.Index(page, "1 seat on flight BA117") {
		t.Errorf("reservations are not newest first:\n%s", page)
	}

	resp, _ = get(t, srv.URL+"/nothing")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing: %s, want 404", resp.Status)
	}
}

func TestPageEscapesNames(t *testing.T) {
	const evil = `<script>alert("x")</script>`
	_, srv, _ := startTravel(t, Inventory{Rooms: map[string]int{evil: 2, `"><img src=x onerror=alert(1)>`: 1}})
	call(t, srv, "/hotel/reserve", `k"><b>`, map[string]any{"params": map[string]any{"hotel": evil}, "inputs": map[string]any{"traveler": "<i>Ada</i> & co"}})
	_, page := get(t, srv.URL+"/")
	for _, bad := range []string{"<script", "<img", "<i>", "<b>"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q unescaped:\n%s", bad, page)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "&lt;i&gt;Ada&lt;/i&gt; &amp; co", "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks the escaped %q:\n%s", want, page)
		}
	}
}

func TestInventoryJSON(t *testing.T) {
	tr, srv, _ := startTravel(t, DefaultInventory())
	call(t, srv, "/airline/reserve", "op1:flight", reserveFlight("BA117", "Ada"))
	resp, body := get(t, srv.URL+"/inventory.json")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /inventory.json: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	want := mustJSON(t, struct {
		Inventory    Inventory     `json:"inventory"`
		Reservations []Reservation `json:"reservations"`
	}{tr.Inventory(), tr.Reservations()})
	if got := strings.Join(strings.Fields(body), ""); got != strings.Join(strings.Fields(want), "") {
		t.Errorf("inventory.json = %s, want %s", body, want)
	}
}
