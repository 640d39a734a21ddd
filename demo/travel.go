package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// rollbackSuffix ends the idempotency key of a task's rollback (SPEC §1):
// the cancel of the reserve made under key K comes with K + rollbackSuffix.
const rollbackSuffix = ":rollback"

// Bounds on what a request may ask.
const (
	maxRequestBytes = 1 << 20
	maxKeyBytes     = 512
	// maxUnits bounds the seats, rooms, cars or tickets of one reservation.
	maxUnits = 20
)

// kind is one partner: what its functions are called, which params name what
// it books, and where its stock is.
type kind struct {
	// name is the first segment of the paths and of the function names.
	name string
	// reserve and cancel are the second segments: reserve and cancel, or
	// charge and refund.
	reserve, cancel string
	// noun is the params key naming the item booked, and the output label
	// unless params.output names another.
	noun string
	// count is the params key of the number of units, 1 when absent.
	count string
	// units names the units in the inventory and in messages (plural), unit
	// one of them.
	units, unit string
	// place says where a unit is, for messages: "on flight %s".
	place string
	// stock is the kind's part of an inventory; nil for payment, which
	// books no units.
	stock func(*Inventory) map[string]int
}

// bookable are the kinds that hold units of an inventory.
var bookable = []*kind{
	{name: "airline", reserve: "reserve", cancel: "cancel", noun: "flight", count: "seats", units: "seats", unit: "seat",
		place: "on flight %s", stock: func(inv *Inventory) map[string]int { return inv.Seats }},
	{name: "hotel", reserve: "reserve", cancel: "cancel", noun: "hotel", count: "rooms", units: "rooms", unit: "room",
		place: "at %s", stock: func(inv *Inventory) map[string]int { return inv.Rooms }},
	{name: "car", reserve: "reserve", cancel: "cancel", noun: "car", count: "cars", units: "cars", unit: "car",
		place: "in class %s", stock: func(inv *Inventory) map[string]int { return inv.Cars }},
	{name: "excursion", reserve: "reserve", cancel: "cancel", noun: "excursion", count: "tickets", units: "spots", unit: "spot",
		place: "on %s", stock: func(inv *Inventory) map[string]int { return inv.Spots }},
}

// payment charges a card and refunds it.
var payment = &kind{name: "payment", reserve: "charge", cancel: "refund", noun: "payment"}

// Endpoint is one function the demo serves.
type Endpoint struct {
	// Function is its name in a node's config: airline.reserve.
	Function string
	// Path is where it is served: /airline/reserve.
	Path string
}

// Endpoints lists the functions [Travel] serves, sorted by name.
func Endpoints() []Endpoint {
	var eps []Endpoint
	for _, k := range append(slices.Clone(bookable), payment) {
		for _, action := range []string{k.reserve, k.cancel} {
			eps = append(eps, Endpoint{Function: k.name + "." + action, Path: "/" + k.name + "/" + action})
		}
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return strings.Compare(a.Function, b.Function) })
	return eps
}

// Travel serves the demo's functions over its inventory. It is safe for
// concurrent use; requests are served one at a time, each saved before it
// is answered.
type Travel struct {
	path string
	now  func() time.Time

	mu sync.Mutex
	st state
}

// NewTravel opens the demo whose inventory file is path: what the file
// holds, or seed and no reservations when there is no file yet (the file is
// then written at once, so that a bad path fails here rather than at the
// first booking).
func NewTravel(path string, seed Inventory) (*Travel, error) {
	if path == "" {
		return nil, errors.New("travel demo: no inventory file given")
	}
	st, ok, err := loadState(path)
	if err != nil {
		return nil, fmt.Errorf("travel demo: %w", err)
	}
	if !ok {
		if err := seed.Validate(); err != nil {
			return nil, fmt.Errorf("travel demo: inventory: %w", err)
		}
		st = newState(seed)
		if err := st.save(path); err != nil {
			return nil, fmt.Errorf("travel demo: %w", err)
		}
	}
	return &Travel{path: path, now: time.Now, st: st}, nil
}

// Inventory returns a copy of what is left to book.
func (t *Travel) Inventory() Inventory {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st.Inventory.Clone()
}

// Reservations returns every reservation, void ones included, in the order
// they were made.
func (t *Travel) Reservations() []Reservation {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st.sorted()
}

// Handler serves the functions of [Endpoints] (POST), the inventory page at
// GET / and the inventory as JSON at GET /inventory.json.
func (t *Travel) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, k := range append(slices.Clone(bookable), payment) {
		reserve := t.reserveUnits
		if k == payment {
			reserve = t.charge
		}
		mux.Handle("POST /"+k.name+"/"+k.reserve, t.function(k, reserve))
		mux.Handle("POST /"+k.name+"/"+k.cancel, t.function(k, t.undo))
	}
	mux.HandleFunc("GET /{$}", t.servePage)
	mux.HandleFunc("GET /inventory.json", t.serveJSON)
	return mux
}

// request is the part of a function request (SPEC §1) the demo reads.
type request struct {
	// key is the idempotency key readRequest settled on.
	key     string
	BodyKey string         `json:"idempotency_key"`
	Inputs  map[string]any `json:"inputs"`
	Params  map[string]any `json:"params"`
}

// reply is the status and JSON body of an answer.
type reply struct {
	code int
	body any
}

// fail is an error reply: {"error": "..."}.
func fail(code int, format string, args ...any) reply {
	return reply{code: code, body: map[string]string{"error": fmt.Sprintf(format, args...)}}
}

// badRequest is a reply for a request that retrying cannot fix.
func badRequest(err error) reply { return fail(http.StatusBadRequest, "%v", err) }

// function adapts a function of the demo to HTTP: it reads the request,
// calls do and writes its reply as JSON.
func (t *Travel) function(k *kind, do func(*kind, request) reply) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := readRequest(w, r)
		var rep reply
		if err != nil {
			rep = badRequest(err)
		} else {
			rep = do(k, req)
		}
		writeJSON(w, rep)
	})
}

// readRequest decodes a function request and settles its idempotency key:
// the Idempotency-Key header, else the body's, which must agree when both
// are given.
func readRequest(w http.ResponseWriter, r *http.Request) (request, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	// Numbers stay exact: a count must be a whole number, and params are
	// echoed back as they came.
	dec.UseNumber()
	var req request
	if err := dec.Decode(&req); err != nil {
		return request{}, fmt.Errorf("request body: want a JSON object: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return request{}, errors.New("request body: data after the JSON object")
	}
	header := r.Header.Get("Idempotency-Key")
	switch {
	case header != "" && req.BodyKey != "" && header != req.BodyKey:
		return request{}, fmt.Errorf("the Idempotency-Key header %q and the body's idempotency_key %q differ", header, req.BodyKey)
	case header != "":
		req.key = header
	default:
		req.key = req.BodyKey
	}
	switch {
	case req.key == "":
		return request{}, errors.New("no idempotency key: set the Idempotency-Key header")
	case len(req.key) > maxKeyBytes:
		return request{}, fmt.Errorf("idempotency key is %d bytes, over the limit of %d", len(req.key), maxKeyBytes)
	}
	return req, nil
}

// writeJSON writes a reply. A body already encoded (a reserve's first
// answer, replayed) is written as it is.
func writeJSON(w http.ResponseWriter, rep reply) {
	var data []byte
	if raw, ok := rep.body.(json.RawMessage); ok {
		data = raw
	} else {
		var err error
		if data, err = json.Marshal(rep.body); err != nil {
			rep.code, data = http.StatusInternalServerError, []byte(`{"error":"encoding the reply failed"}`)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(rep.code)
	// No newline after the JSON: a caller quotes a failure's body in its
	// error, which a saga keeps on its ledger.
	_, _ = w.Write(data)
}

// change applies f to a copy of the state. When f reports a change, the
// copy is saved and becomes the state; when saving fails the state stays
// as it was and the caller gets a 500, which it retries.
func (t *Travel) change(f func(s *state, now time.Time) (reply, bool)) reply {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.st.clone()
	rep, changed := f(&s, t.now().UTC())
	if !changed {
		return rep
	}
	if err := s.save(t.path); err != nil {
		return fail(http.StatusInternalServerError, "saving the inventory: %v", err)
	}
	t.st = s
	return rep
}

// reserveUnits takes units of an item: params[k.noun] names the item and
// params[k.count] the number of units (1 when absent).
func (t *Travel) reserveUnits(k *kind, req request) reply {
	item, err := nameParam(req.Params, k.noun)
	if err != nil {
		return badRequest(err)
	}
	units := 1
	if _, ok := req.Params[k.count]; ok {
		if units, err = countParam(req.Params, k.count); err != nil {
			return badRequest(err)
		}
	}
	label, err := outputLabel(req.Params, k.noun)
	if err != nil {
		return badRequest(err)
	}
	res := Reservation{Key: req.key, Kind: k.name, Item: item, Units: units, Traveler: traveler(req.Inputs)}
	detail := echo(req.Params)
	detail[k.count] = units
	if res.Traveler != "" {
		detail["traveler"] = res.Traveler
	}
	return t.book(k, res, label, detail)
}

// charge records a payment of params.amount (a positive whole number) in
// params.currency (EUR when absent) on the card of inputs.card, of which it
// keeps the last four digits only.
func (t *Travel) charge(k *kind, req request) reply {
	amount, err := amountParam(req.Params)
	if err != nil {
		return badRequest(err)
	}
	currency := "EUR"
	if v, ok := req.Params["currency"]; ok {
		c, _ := v.(string)
		if !isCurrency(c) {
			return badRequest(fmt.Errorf("params.currency: want a three-letter code such as EUR, got %v", v))
		}
		currency = c
	}
	card, err := lastFour(req.Inputs)
	if err != nil {
		return badRequest(err)
	}
	label, err := outputLabel(req.Params, k.noun)
	if err != nil {
		return badRequest(err)
	}
	res := Reservation{Key: req.key, Kind: k.name, Amount: amount, Currency: currency, Card: card, Traveler: traveler(req.Inputs)}
	detail := echo(req.Params)
	detail["amount"], detail["currency"], detail["card"] = amount, currency, "…"+card
	return t.book(k, res, label, detail)
}

// book records res under its key and answers {label: detail} with its
// confirmation added. A key that holds a reservation already is answered
// as the first time, without booking again, when it asks for the same
// thing.
func (t *Travel) book(k *kind, res Reservation, label string, detail map[string]any) reply {
	return t.change(func(s *state, now time.Time) (reply, bool) {
		if prev, ok := s.Reservations[res.Key]; ok {
			return replay(prev, res), false
		}
		if k.stock != nil {
			stock := k.stock(&s.Inventory)
			left, ok := stock[res.Item]
			switch {
			case !ok:
				return fail(http.StatusNotFound, "unknown %s %q", k.noun, res.Item), false
			case left == 0:
				return fail(http.StatusConflict, "no %s left "+k.place, k.units, res.Item), false
			case left < res.Units:
				return fail(http.StatusConflict, "only %d %s left "+k.place+", want %d", left, plural(left, k.unit, k.units), res.Item, res.Units), false
			}
			stock[res.Item] = left - res.Units
		}
		res.Confirmation = confirmation(k.name, res.Key)
		detail["confirmation"] = res.Confirmation
		out, err := json.Marshal(map[string]any{label: detail})
		if err != nil {
			return fail(http.StatusBadRequest, "params: %v", err), false
		}
		s.Seq++
		res.Status, res.Output, res.Seq, res.Created, res.Updated = StatusActive, out, s.Seq, now, now
		s.Reservations[res.Key] = res
		return reply{code: http.StatusOK, body: json.RawMessage(out)}, true
	})
}

// replay answers a reserve whose key holds prev already.
func replay(prev, res Reservation) reply {
	switch {
	case prev.Kind != res.Kind:
		return fail(http.StatusUnprocessableEntity, "idempotency key %q is booked with %s, not %s", res.Key, prev.Kind, res.Kind)
	case prev.Status == StatusVoid:
		return fail(http.StatusConflict, "idempotency key %q was cancelled before anything was booked under it", res.Key)
	case prev.Status == StatusCancelled:
		return fail(http.StatusConflict, "booking %s under idempotency key %q was cancelled", prev.Confirmation, res.Key)
	case prev.Item != res.Item || prev.Units != res.Units || prev.Amount != res.Amount || prev.Currency != res.Currency:
		return fail(http.StatusUnprocessableEntity, "idempotency key %q booked %s, not %s", res.Key, prev.what(), res.what())
	}
	return reply{code: http.StatusOK, body: prev.Output}
}

// undo cancels (or refunds) the reservation made under the request's key
// without its rollback suffix, giving its units back. A key that holds
// nothing to undo is a success, as a rollback must be: one never reserved
// is remembered as void (see [StatusVoid]).
func (t *Travel) undo(k *kind, req request) reply {
	key := strings.TrimSuffix(req.key, rollbackSuffix)
	return t.change(func(s *state, now time.Time) (reply, bool) {
		prev, ok := s.Reservations[key]
		switch {
		case !ok:
			item, _ := req.Params[k.noun].(string)
			s.Seq++
			s.Reservations[key] = Reservation{Key: key, Kind: k.name, Item: item, Traveler: traveler(req.Inputs),
				Status: StatusVoid, Seq: s.Seq, Created: now, Updated: now}
			return reply{code: http.StatusOK, body: map[string]any{
				"undone": false, "reason": fmt.Sprintf("nothing to undo: nothing was booked under idempotency key %q", key)}}, true
		case prev.Kind != k.name:
			return fail(http.StatusUnprocessableEntity, "idempotency key %q is booked with %s, not %s", key, prev.Kind, k.name), false
		case prev.Status != StatusActive:
			return reply{code: http.StatusOK, body: map[string]any{
				"undone": false, "confirmation": prev.Confirmation,
				"reason": fmt.Sprintf("nothing to undo: idempotency key %q is %s already", key, prev.Status)}}, false
		}
		if k.stock != nil {
			k.stock(&s.Inventory)[prev.Item] += prev.Units
		}
		prev.Status, prev.Updated = StatusCancelled, now
		s.Reservations[key] = prev
		return reply{code: http.StatusOK, body: map[string]any{"undone": true, "confirmation": prev.Confirmation}}, true
	})
}

// what says what a reservation books, for messages and the page.
func (r Reservation) what() string {
	if r.Kind == payment.name {
		return fmt.Sprintf("%d %s", r.Amount, r.Currency)
	}
	for _, k := range bookable {
		if k.name == r.Kind {
			return fmt.Sprintf("%d %s "+k.place, r.Units, plural(r.Units, k.unit, k.units), r.Item)
		}
	}
	return r.Item
}

// confirmation derives a booking's confirmation code from its kind and
// idempotency key: six characters of [A-Z0-9], the same on every retry.
func confirmation(kind, key string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	sum := sha256.Sum256([]byte("sagachain/demo/" + kind + "\x00" + key))
	n := binary.BigEndian.Uint64(sum[:8])
	var b [6]byte
	for i := range b {
		b[i] = alphabet[n%uint64(len(alphabet))]
		n /= uint64(len(alphabet))
	}
	return string(b[:])
}

// nameParam is params[key], which must be a non-empty string.
func nameParam(params map[string]any, key string) (string, error) {
	v, ok := params[key]
	if !ok {
		return "", fmt.Errorf("params.%s is missing: name the %s to book", key, key)
	}
	s, ok := v.(string)
	if !ok || strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("params.%s: want the %s's name, got %v", key, key, v)
	}
	return s, nil
}

// countParam is params[key], which must be a whole number from 1 to
// maxUnits.
func countParam(params map[string]any, key string) (int, error) {
	num, _ := params[key].(json.Number)
	n, err := num.Int64()
	if err != nil || n < 1 || n > maxUnits {
		return 0, fmt.Errorf("params.%s: want a whole number from 1 to %d, got %v", key, maxUnits, params[key])
	}
	return int(n), nil
}

// amountParam is params.amount, which must be a positive whole number.
func amountParam(params map[string]any) (int64, error) {
	v, ok := params["amount"]
	if !ok {
		return 0, errors.New("params.amount is missing: say how much to charge")
	}
	num, _ := v.(json.Number)
	n, err := num.Int64()
	if err != nil || n < 1 {
		return 0, fmt.Errorf("params.amount: want a positive whole number, got %v", v)
	}
	return n, nil
}

// outputLabel is the label the answer goes under: params.output, else the
// kind's noun.
func outputLabel(params map[string]any, noun string) (string, error) {
	v, ok := params["output"]
	if !ok {
		return noun, nil
	}
	s, _ := v.(string)
	if s == "" {
		return "", fmt.Errorf("params.output: want the output label, a string, got %v", v)
	}
	return s, nil
}

// echo copies the params into an answer, less the output label.
func echo(params map[string]any) map[string]any {
	out := maps.Clone(params)
	if out == nil {
		out = map[string]any{}
	}
	delete(out, "output")
	return out
}

// traveler is inputs.traveler when it is a string.
func traveler(inputs map[string]any) string {
	s, _ := inputs["traveler"].(string)
	return s
}

// lastFour is the last four digits of inputs.card, given as a string or a
// number. The rest of the number is never kept or echoed.
func lastFour(inputs map[string]any) (string, error) {
	var digits string
	switch v := inputs["card"].(type) {
	case nil:
		return "", errors.New("inputs.card is missing: the payment needs the card as an input")
	case string:
		digits = strings.Map(func(r rune) rune {
			if r == ' ' || r == '-' {
				return -1
			}
			return r
		}, v)
	case json.Number:
		digits = v.String()
	default:
		return "", errors.New("inputs.card: want a card number")
	}
	if len(digits) < 4 || strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		return "", errors.New("inputs.card: want a card number of digits")
	}
	return digits[len(digits)-4:], nil
}

// isCurrency reports an ISO 4217 style code: three letters A to Z.
func isCurrency(s string) bool {
	return len(s) == 3 && !strings.ContainsFunc(s, func(r rune) bool { return r < 'A' || r > 'Z' })
}

// plural is one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// serveJSON answers the inventory and the reservations, in the order they
// were made.
func (t *Travel) serveJSON(w http.ResponseWriter, _ *http.Request) {
	t.mu.Lock()
	body := struct {
		Inventory    Inventory     `json:"inventory"`
		Reservations []Reservation `json:"reservations"`
	}{t.st.Inventory.Clone(), t.st.sorted()}
	t.mu.Unlock()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(body); err != nil {
		writeJSON(w, fail(http.StatusInternalServerError, "encoding the inventory: %v", err))
		return
	}
	writeJSON(w, reply{code: http.StatusOK, body: json.RawMessage(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))})
}
