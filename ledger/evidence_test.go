package ledger

import (
	"errors"
	"testing"
)

func evidenceEntry(t *testing.T, key *PrivateKey, round uint64, a, b Hash) Entry {
	t.Helper()
	va := Vote{Type: Prevote, Height: 3, Round: round, BlockHash: a}
	vb := Vote{Type: Prevote, Height: 3, Round: round, BlockHash: b}
	for _, v := range []*Vote{&va, &vb} {
		if err := v.Sign(key, "test-chain"); err != nil {
			t.Fatal(err)
		}
	}
	e, err := NewEntry(KindEvidence, &Evidence{A: va, B: vb})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEvidenceIsRecordedOnce: on a2a74ac the same offence could be
// recorded again in later blocks (issue #10), as the same entry, with its
// votes swapped, or with another conflicting vote. Each is refused over a
// real store, and within one block; another round is another offence.
func TestEvidenceIsRecordedOnce(t *testing.T) {
	c := newStoreChain(t)
	x, y, z := Hash{1}, Hash{2}, Hash{3}
	first := evidenceEntry(t, c.val, 0, x, y)
	if !c.offer(first) {
		t.Fatal("first evidence refused")
	}
	ctx := Context{Height: c.parent.Height + 1, Time: c.parent.Time + 10}
	for name, e := range map[string]Entry{
		"the same entry": first,
		"votes swapped":  evidenceEntry(t, c.val, 0, y, x),
		"another pair":   evidenceEntry(t, c.val, 0, x, z),
	} {
		if err := c.m.Check(c.s, ctx, e); !errors.Is(err, ErrDuplicate) {
			t.Errorf("%s: got %v, want ErrDuplicate", name, err)
		}
	}
	other := evidenceEntry(t, c.val, 1, x, y)
	if _, err := c.m.ApplyEntries(NewOverlay(c.s), ctx, []Entry{other, evidenceEntry(t, c.val, 1, z, y)}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("one offence twice in one block: got %v, want ErrDuplicate", err)
	}
	if !c.offer(other) {
		t.Fatal("evidence of another round refused")
	}
}
