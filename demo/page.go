package demo

import (
	"bytes"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// pageRefresh is how often the inventory page reloads itself, in seconds,
// so that a rollback can be watched as it happens.
const pageRefresh = 2

// pageSecurityPolicy allows the page nothing but its own inline style: it
// has no script, and shows names that travellers and operation files chose.
const pageSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// pageTemplate is the inventory page. html/template escapes every value by
// its context, so an item or traveller named <script> shows as text.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>sagachain travel demo</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { text-align: left; padding: .25em .9em .25em 0; border-bottom: 1px solid #ddd; vertical-align: top; }
td.n { text-align: right; }
.soldout { color: #b00020; font-weight: 600; }
.active { color: #0a7d32; font-weight: 600; }
.cancelled { color: #8a5a00; font-weight: 600; }
.void, .muted { color: #888; }
code { font-size: .92em; }
.stocks { display: flex; gap: 2.5em; flex-wrap: wrap; }
</style>
</head>
<body>
<h1>sagachain travel demo</h1>
<p class="muted">The airline, hotel, car hire, excursion and payment functions of this demo, as a saga sees them. Reloads every {{.Refresh}}s; as of {{.Now}}.</p>
<div class="stocks">
{{- range .Stocks}}
<section>
<h2>{{.Title}}</h2>
<table>
<tr><th>{{.Noun}}</th><th>{{.Units}} left</th><th>booked</th></tr>
{{- range .Rows}}
<tr><td>{{.Item}}</td><td class="n{{if eq .Left 0}} soldout{{end}}">{{if eq .Left 0}}sold out{{else}}{{.Left}}{{end}}</td><td class="n">{{.Booked}}</td></tr>
{{- else}}
<tr><td colspan="3" class="muted">none</td></tr>
{{- end}}
</table>
</section>
{{- end}}
</div>
<h2>Reservations ({{.Active}} active, {{.Cancelled}} cancelled)</h2>
<table>
<tr><th>#</th><th>status</th><th>confirmation</th><th>kind</th><th>booking</th><th>traveller</th><th>idempotency key</th><th>updated (UTC)</th></tr>
{{- range .Reservations}}
<tr><td class="n">{{.Seq}}</td><td class="{{.Status}}">{{.Status}}</td><td><code>{{.Confirmation}}</code></td><td>{{.Kind}}</td><td>{{.What}}</td><td>{{.Traveler}}</td><td><code title="{{.Key}}">{{.ShortKey}}</code></td><td>{{.Updated}}</td></tr>
{{- else}}
<tr><td colspan="8" class="muted">nothing booked yet: submit testnet/ops/trip-travel.yaml</td></tr>
{{- end}}
</table>
<p class="muted">A void row is a cancel that found nothing to undo under its key (the booking failed, or never arrived); a booking arriving under that key later is refused. The same data as JSON: <a href="inventory.json">inventory.json</a>.</p>
</body>
</html>
`))

// pageData is what the page shows.
type pageData struct {
	Refresh           int
	Now               string
	Stocks            []stockView
	Reservations      []reservationView
	Active, Cancelled int
}

// stockView is one kind's part of the inventory.
type stockView struct {
	Title, Noun, Units string
	Rows               []stockRow
}

type stockRow struct {
	Item   string
	Left   int
	Booked int
}

type reservationView struct {
	Seq                      uint64
	Status                   Status
	Confirmation, Kind, What string
	Traveler, Key, ShortKey  string
	Updated                  string
}

// titles are the page's headings of the kinds.
var titles = map[string]string{"airline": "Flights", "hotel": "Hotels", "car": "Hire cars", "excursion": "Excursions"}

func (t *Travel) servePage(w http.ResponseWriter, _ *http.Request) {
	t.mu.Lock()
	data := t.st.page(t.now().UTC())
	t.mu.Unlock()
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// page is what the page shows of s: each kind's items, with the units its
// active reservations hold, and the reservations newest first.
func (s state) page(now time.Time) pageData {
	d := pageData{Refresh: pageRefresh, Now: now.Format("15:04:05")}
	booked := make(map[string]map[string]int)
	for _, r := range s.Reservations {
		if r.Status != StatusActive {
			continue
		}
		if booked[r.Kind] == nil {
			booked[r.Kind] = make(map[string]int)
		}
		booked[r.Kind][r.Item] += r.Units
	}
	for _, k := range bookable {
		stock := k.stock(&s.Inventory)
		v := stockView{Title: titles[k.name], Noun: k.noun, Units: k.units}
		for _, item := range slices.Sorted(maps.Keys(stock)) {
			v.Rows = append(v.Rows, stockRow{Item: item, Left: stock[item], Booked: booked[k.name][item]})
		}
		d.Stocks = append(d.Stocks, v)
	}
	rs := s.sorted()
	slices.Reverse(rs)
	for _, r := range rs {
		switch r.Status {
		case StatusActive:
			d.Active++
		case StatusCancelled:
			d.Cancelled++
		}
		what := r.what()
		switch {
		case r.Status == StatusVoid && r.Item != "":
			what = "nothing booked (" + r.Item + ")"
		case r.Status == StatusVoid:
			what = "nothing booked"
		case r.Card != "":
			what += " on card …" + r.Card
		}
		d.Reservations = append(d.Reservations, reservationView{
			Seq: r.Seq, Status: r.Status, Confirmation: r.Confirmation, Kind: r.Kind, What: what,
			Traveler: r.Traveler, Key: r.Key, ShortKey: shortKey(r.Key), Updated: r.Updated.UTC().Format("15:04:05"),
		})
	}
	return d
}

// shortKey shortens the operation id at the head of an idempotency key
// (0x and 64 hex digits, then :task) to its ends: 0x3fa2…9c1d:flight.
func shortKey(key string) string {
	const idLen = 66
	if len(key) > idLen && strings.HasPrefix(key, "0x") && key[idLen] == ':' {
		return key[:6] + "…" + key[idLen-4:]
	}
	return key
}
