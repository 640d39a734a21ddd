package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// A validator of a network whose store was rewound behind what it
// committed (as a torn WAL leaves it) fetches the lost blocks from its
// peers before it takes part in consensus again, and signs nothing that
// conflicts with what it signed before: no validator records evidence.
func TestRewoundValidatorCatchesUpWithoutDoubleSigning(t *testing.T) {
	opts, user := networkOptions(t, 4, nil, nil)
	home := t.TempDir() // node 3's; the others keep their ledgers in memory
	opts[3].InMemory, opts[3].Home = false, home
	start := func(i int) *testNode {
		t.Helper()
		n, err := New(opts[i])
		if err != nil {
			t.Fatal(err)
		}
		tn := newTestNode(t, n, user)
		tn.launch()
		return tn
	}
	var nodes []*testNode
	for i := range 4 {
		nodes = append(nodes, start(i))
	}
	for _, tn := range nodes {
		tn.ready(t)
	}
	run := func(name string) {
		t.Helper()
		id := nodes[0].submitText(t, "name: "+name+"\ntasks:\n  - {id: a, run: echo}\n  - {id: b, run: echo}\n")
		if r := nodes[0].wait(t, id); r.Saga.Status != taskrt.OpCompleted {
			t.Fatalf("%s: %s, want completed", name, r.Saga.Status)
		}
	}
	waitHead := func(tn *testNode, want uint64) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if h, err := tn.store.Head(); err == nil && h >= want {
				return
			}
			if time.Now().After(deadline) {
				h, _ := tn.store.Head()
				t.Fatalf("validator at height %d, want %d", h, want)
			}
		}
	}
	run("before")
	h0, _ := nodes[0].store.Head()
	waitHead(nodes[3], h0)
	// The rewound store: badger's files as they are now.
	data := filepath.Join(home, DataDir)
	rewound := t.TempDir()
	copyDir(t, data, rewound, func(n string) bool { return !isMarkFile(n) && n != "LOCK" })
	rewoundHead, _ := nodes[3].store.Head()
	for i := range 3 {
		run(fmt.Sprintf("after%d", i))
	}
	h1, _ := nodes[0].store.Head()
	waitHead(nodes[3], h1)
	committed := mustBlock(t, nodes[3], h1).Hash()
	nodes[3].stop()

	// Node 3's store goes back to the copy; its high-water mark and
	// consensus state stay.
	ents, err := os.ReadDir(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !isMarkFile(e.Name()) {
			if err := os.Remove(filepath.Join(data, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyDir(t, rewound, data, func(string) bool { return true })
	st, err := ledger.OpenBadger(data)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := st.Head(); h >= h1 {
		t.Fatalf("the rewound store is at height %d, not behind %d", h, h1)
	}
	if err := CheckHighWater(home, st); err == nil || !strings.Contains(err.Error(), "lost from it") {
		t.Fatalf("the rewound store against its mark: %v", err)
	}
	st.Close()
	t.Logf("store rewound from height %d to %d", h1, rewoundHead)

	nodes[3] = start(3)
	nodes[3].ready(t)
	if h, _ := nodes[3].store.Head(); h < h1 {
		t.Fatalf("the restarted validator serves at height %d, before %d it committed", h, h1)
	}
	if got := mustBlock(t, nodes[3], h1).Hash(); got != committed {
		t.Fatalf("block %d is %s after the catch-up, was %s", h1, got.TerminalString(), committed.TerminalString())
	}
	// It takes part again: the chain goes on with it.
	run("again")
	h2, _ := nodes[0].store.Head()
	waitHead(nodes[3], h2)
	for _, tn := range nodes {
		head, err := tn.store.Head()
		if err != nil {
			t.Fatal(err)
		}
		for h := uint64(1); h <= head; h++ {
			for _, e := range mustBlock(t, tn, h).Entries {
				if e.Kind == ledger.KindEvidence {
					t.Fatalf("block %d records evidence of double signing", h)
				}
			}
		}
		if tn.mempool.Len() > 0 {
			for _, q := range tn.mempool.All() {
				if q.Entry.Kind == ledger.KindEvidence {
					t.Fatal("a mempool holds evidence of double signing")
				}
			}
		}
	}
}
