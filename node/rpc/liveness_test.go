package rpc

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sagachain/sagachain/ledger"
)

// An executor that signs nothing while it holds a task loses it to a
// failover entry: chain block shows the failover and the others'
// heartbeats decoded, and sc_validators marks the silent one down at the
// failover's height, and the others not.
func TestBlockDecodesFailoversAndHeartbeatsAndValidatorsShowDown(t *testing.T) {
	keys := []*ledger.PrivateKey{testKey(t, 1), testKey(t, 3), testKey(t, 4)}
	user := testKey(t, 2)
	g := &ledger.Genesis{ChainID: testChainID, Time: 1_000_000, Submitters: []ledger.Address{user.Address()}, Params: ledger.DefaultParams()}
	for i, k := range keys {
		g.Validators = append(g.Validators, ledger.GenesisValidator{Address: k.Address(), Name: []string{"a", "b", "c"}[i]})
	}
	b := newBackendFor(t, g, keys[0], user)
	c := dial(t, serve(t, b))
	ctx := context.Background()

	sub := b.submission(user, "name: one\ntasks:\n  - {id: a, run: echo, outputs: [x]}\n", 1)
	b.commit(sub)
	silent := b.record(sub.Hash()).Tasks[0].Executor
	b.advance = 600
	var moved *ledger.Block
	for n := 0; n < 5 && moved == nil; n++ {
		p := b.parent()
		var beats []ledger.Entry
		for _, k := range keys {
			if k.Address() == silent {
				continue
			}
			hb := &ledger.Heartbeat{Time: p.Time}
			if err := hb.Sign(k, testChainID); err != nil {
				t.Fatal(err)
			}
			e, err := ledger.NewEntry(ledger.KindHeartbeat, hb)
			if err != nil {
				t.Fatal(err)
			}
			beats = append(beats, e)
		}
		blk := b.commit(beats...)
		if b.record(sub.Hash()).Tasks[0].Moves > 0 {
			moved = blk
		}
	}
	if moved == nil {
		t.Fatalf("task a never moved from its silent executor %s", silent.Hex())
	}
	h := moved.Header.Height

	info, err := c.Block(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	var failovers, heartbeats int
	for _, e := range info.Entries {
		switch e.Kind {
		case "failover":
			failovers++
			if e.Operation == nil || *e.Operation != sub.Hash() || e.Task != "a" || e.Rollback || e.From == nil || *e.From != silent {
				t.Errorf("failover entry %+v, want task a of %s from %s", e, sub.Hash().Hex(), silent.Hex())
			}
		case "heartbeat":
			heartbeats++
			if e.Executor == nil || *e.Executor == silent || e.Time == 0 || e.Time >= moved.Header.Time {
				t.Errorf("heartbeat entry %+v: want another executor's, from before block time %d", e, moved.Header.Time)
			}
		}
		if e.DecodeError != "" {
			t.Errorf("entry %d (%s) does not decode: %s", e.Index, e.Kind, e.DecodeError)
		}
	}
	if failovers != 1 || heartbeats != 2 {
		t.Errorf("block %d shows %d failovers and %d heartbeats, want 1 and 2", h, failovers, heartbeats)
	}

	vals, err := c.Validators(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vals {
		want := v.Address == silent
		if v.Down != want || (want && v.DownHeight != h) || (!want && v.DownHeight != 0) {
			t.Errorf("validator %s: down %v at %d; want down %v (at %d for the silent one)", v.Name, v.Down, v.DownHeight, want, h)
		}
	}
	// The raw JSON uses the documented names.
	var raw []map[string]any
	if err := c.c.CallContext(ctx, &raw, "sc_validators"); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(raw, func(m map[string]any) bool { return strings.EqualFold(m["address"].(string), silent.Hex()) })
	if i < 0 || raw[i]["down"] != true || raw[i]["down_height"] != float64(h) {
		t.Errorf("sc_validators JSON %v: want the silent one with down true, down_height %d", raw, h)
	}
}
