package ledger

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// storeChain drives the state machine over a real badger store (in
// memory), committing each block as a node does: apply, save in one
// write, read back.
type storeChain struct {
	t         *testing.T
	m         *Machine
	s         *BadgerStore
	val, user *PrivateKey
	parent    Parent
	last      Commit
}

func newStoreChain(t *testing.T) *storeChain {
	t.Helper()
	g, m, val, user := newTestMachine(t)
	s := stMemStore(t)
	if err := s.InitGenesis(g.Hash()); err != nil {
		t.Fatal(err)
	}
	return &storeChain{t: t, m: m, s: s, val: val, user: user, parent: GenesisParent(g)}
}

// offer tries e as a proposer would; when the machine accepts it, the
// block carrying it (and what it derives) is applied, saved and read
// back, and every record must come back as it was written. It reports
// whether e was accepted.
func (c *storeChain) offer(e Entry) bool {
	c.t.Helper()
	ctx := Context{Height: c.parent.Height + 1, Time: c.parent.Time + 10}
	prop := NewOverlay(c.s)
	got, err := c.m.Try(prop, ctx, e, &Applied{})
	if cerr := c.m.Check(c.s, ctx, e); (cerr == nil) != (err == nil) {
		c.t.Fatalf("Check says %v, Try says %v", cerr, err)
	}
	if err != nil {
		return false
	}
	// Whatever fits passes gossip's state-free check too.
	if err := c.m.Authenticate(e); err != nil {
		c.t.Fatalf("Try accepts a %s that Authenticate refuses: %v", e.Kind, err)
	}
	ov := NewOverlay(c.s)
	res, err := c.m.ApplyEntries(ov, ctx, got)
	if err != nil {
		c.t.Fatalf("the block the proposer built does not apply: %v", err)
	}
	g := c.m.Genesis()
	b, err := NewBlock(c.val, g.ChainID, ctx.Height, 0, ctx.Time, c.parent.Hash, c.parent.Results, c.last, got)
	if err != nil {
		c.t.Fatal(err)
	}
	v := Vote{Type: Precommit, Height: ctx.Height, BlockHash: b.Hash()}
	if err := v.Sign(c.val, g.ChainID); err != nil {
		c.t.Fatal(err)
	}
	cm := &Commit{Height: ctx.Height, BlockHash: b.Hash(), Signatures: []CommitSig{{Validator: v.Validator, Signature: v.Signature}}}
	ops, hosts := ov.Changes()
	if err := c.s.SaveBlock(BlockWrite{Block: b, Commit: cm, Results: res.Root(), Ops: ops, Hosts: hosts}); err != nil {
		c.t.Fatalf("the machine accepted a %s that the store cannot save: %v", e.Kind, err)
	}
	for _, r := range ops {
		back, err := c.s.Operation(r.ID)
		if err != nil {
			c.t.Fatalf("read back operation %s: %v", r.ID, err)
		}
		want, err1 := json.Marshal(r)
		again, err2 := json.Marshal(back)
		if err1 != nil || err2 != nil || !bytes.Equal(want, again) {
			c.t.Fatalf("operation %s does not read back as written (%v, %v):\nwrote %s\nread  %s", r.ID, err1, err2, want, again)
		}
		if !bytes.Equal(back.Operation, r.Operation) {
			c.t.Fatalf("operation %s: file bytes changed in the store", r.ID)
		}
	}
	if hosts != nil {
		back, err := c.s.Hosts()
		if err != nil {
			c.t.Fatal(err)
		}
		for a, h := range hosts.ByValidator {
			if b := back.ByValidator[a]; b.Seq != h.Seq || len(b.Functions) != len(h.Functions) {
				c.t.Fatalf("hosts of %s do not read back as written", a.Hex())
			} else {
				for i := range h.Functions {
					if b.Functions[i] != h.Functions[i] {
						c.t.Fatalf("hosts of %s: function %q reads back as %q", a.Hex(), h.Functions[i], b.Functions[i])
					}
				}
			}
		}
	}
	c.parent = Parent{Height: ctx.Height, Hash: b.Hash(), Time: ctx.Time, Results: res.Root()}
	c.last = *cm
	return true
}

// FuzzCommitStoresWhatTheMachineAdmits drives signed entries from allowed
// keys, with arbitrary contents, through check, apply and a real badger
// store: whatever the machine accepts must be saved and read back
// unchanged (issue #10: a YAML operation was admitted and then failed
// every node's commit). The seeds run as a normal test.
func FuzzCommitStoresWhatTheMachineAdmits(f *testing.F) {
	canon := func(yaml string) []byte { return canonicalOp(f, []byte(yaml)) }
	one := "name: one\ntasks:\n  - {id: a, run: echo, rollback: noop, outputs: [x]}\n"
	f.Add(canon(one), []byte(`{"x":1}`), "", uint8(0), "airline.reserve")
	f.Add([]byte(one), []byte(`{"x":1}`), "", uint8(0), "f")                            // YAML: the finding
	f.Add(canon(one), []byte(`{"x": 1}`), "", uint8(1), "f")                            // output with a space
	f.Add(canon(one), []byte(`{"x":1,"x":2}`), "", uint8(0), "f")                       // repeated key
	f.Add(canon(one), []byte("{\"x\":\"\xff\"}"), "", uint8(1), "f")                    // invalid UTF-8 in output
	f.Add(canon(one), []byte(nil), "boom \xfe", uint8(0), "\xff")                       // invalid UTF-8 error and function
	f.Add(canon(one), []byte(`{"x":123456789012345678901234567890}`), "", uint8(1), "") // big number
	f.Add(append(canon(one), ' '), []byte(`{"x":1}`), "", uint8(0), "f")                // trailing space
	f.Add([]byte(`{"name":"one","tasks":[{"id":"a","run":"echo","outputs":["x"]}],"zzz":1}`), []byte(`{"x":1}`), "", uint8(0), "f")
	f.Fuzz(func(t *testing.T, op, output []byte, errText string, sel uint8, fn string) {
		c := newStoreChain(t)
		sub := &Submission{Operation: op, Nonce: 1}
		if err := sub.Sign(c.user, "test-chain"); err != nil {
			t.Fatal(err)
		}
		se, err := NewEntry(KindSubmission, sub)
		if err != nil {
			t.Fatal(err)
		}
		ann := &Announcement{Functions: []string{fn}, Seq: 1}
		if err := ann.Sign(c.val, "test-chain"); err != nil {
			t.Fatal(err)
		}
		ae, _ := NewEntry(KindAnnouncement, ann)
		c.offer(ae)
		if !c.offer(se) {
			return
		}
		id := se.Hash()
		// Attest every running task (or rollback) with the fuzzed output
		// and error, alone or in a batch, until nothing more is accepted.
		for round := 0; round < 8; round++ {
			r, err := c.s.Operation(id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Saga.Status.Final() {
				return
			}
			var items []*Attestation
			for i, ts := range r.Saga.Tasks {
				if ts.Status != taskrt.TaskRunning && !ts.Undoing {
					continue
				}
				o, _, err := c.m.Compiled(r)
				if err != nil {
					t.Fatal(err)
				}
				a := &Attestation{Operation: id, Task: o.Tasks[i].ID, Rollback: ts.Undoing, Attempts: uint64(sel), Error: errText}
				if !ts.Undoing {
					a.Output = output
				}
				items = append(items, a)
			}
			if len(items) == 0 {
				return
			}
			accepted := false
			if sel%2 == 0 {
				for _, a := range items {
					if err := a.Sign(c.val, "test-chain"); err != nil {
						t.Fatal(err)
					}
					kind := KindAttestation
					if a.Rollback {
						kind = KindRollbackAttestation
					}
					e, _ := NewEntry(kind, a)
					accepted = c.offer(e) || accepted
				}
			} else {
				b := &AttestationBatch{}
				for _, a := range items {
					b.Items = append(b.Items, ItemOf(a))
				}
				if err := b.Sign(c.val, "test-chain"); err != nil {
					t.Fatal(err)
				}
				e, _ := NewEntry(KindAttestations, b)
				accepted = c.offer(e)
			}
			if !accepted {
				// What the fuzzer gave cannot be recorded; a canonical
				// success must still go through after it.
				output, errText = []byte(`{"x":1}`), ""
			}
		}
	})
}
