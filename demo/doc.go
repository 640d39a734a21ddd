// Package demo is a stand-in for the partners a travel booking calls: an
// airline, a hotel, a car hire, an excursion operator and a payment service,
// served as the http functions of SPEC §1 over one persistent inventory.
//
// [Travel] serves POST /<kind>/reserve and /<kind>/cancel for the kinds
// airline, hotel, car and excursion, and POST /payment/charge and
// /payment/refund. A reserve takes a unit of an item (a seat on a flight, a
// room at a hotel, ...) and answers the task's output label with a
// confirmation; a cancel gives it back. Both are idempotent by the request's
// Idempotency-Key, as the saga needs: a retried reserve returns the first
// answer without taking a second unit, and a cancel of a key that holds
// nothing (never reserved, or already cancelled) succeeds with nothing to
// undo. A sold-out item is answered 409, which the caller treats as a
// permanent failure, so the saga rolls back. GET / is a page showing the
// inventory and the reservations, and GET /inventory.json the same as JSON.
//
// Every change is written to a JSON file (temporary file, fsync, rename)
// before it is answered, so a restart keeps what was booked.
//
// demo imports no other package of this module.
package demo
