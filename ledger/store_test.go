package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/sagachain/sagachain/taskrt"
)

// stHash is a distinct hash per label.
func stHash(label string) Hash { return crypto.Keccak256Hash([]byte(label)) }

// stBlock builds block h after prev with n timeout entries unique to h, and
// the certificate that commits it. Signatures are filler: the store does
// not check them.
func stBlock(t testing.TB, h uint64, prev *Block, prevCommit *Commit, n int) (*Block, *Commit) {
	t.Helper()
	entries := make([]Entry, n)
	for i := range entries {
		e, err := NewEntry(KindTimeout, &Timeout{Operation: stHash(fmt.Sprintf("op-%d-%d", h, i)), Task: fmt.Sprintf("task-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = e
	}
	b := &Block{
		Header: Header{ChainID: "store-test", Height: h, Round: h % 3, Time: 1_700_000_000_000 + h*1000,
			Proposer: Address{byte(h)}, EntriesRoot: EntriesRoot(entries), ResultsRoot: stHash(fmt.Sprintf("results-%d", h-1))},
		Entries: entries,
	}
	if prev != nil {
		b.Header.Prev = prev.Hash()
		b.LastCommit = *prevCommit
		b.Header.LastCommitHash = prevCommit.Hash()
	}
	b.Signature[0], b.Signature[64] = byte(h), 1
	c := &Commit{Height: h, Round: b.Header.Round, BlockHash: b.Hash(), Signatures: []CommitSig{
		{Validator: Address{1}, Signature: Signature{1, byte(h)}},
		{Validator: Address{2}, Signature: Signature{2, byte(h)}},
	}}
	return b, c
}

// stChain is n blocks with their certificates and results roots.
type stChain struct {
	blocks  []*Block
	commits []*Commit
	results []Hash
}

func newStChain(t testing.TB, n, entries int) *stChain {
	t.Helper()
	c := &stChain{}
	var prev *Block
	var prevCommit *Commit
	for h := uint64(1); h <= uint64(n); h++ {
		b, cm := stBlock(t, h, prev, prevCommit, entries)
		c.blocks = append(c.blocks, b)
		c.commits = append(c.commits, cm)
		c.results = append(c.results, stHash(fmt.Sprintf("results-%d", h)))
		prev, prevCommit = b, cm
	}
	return c
}

// save stores block h (1-based) with the given records and hosts.
func (c *stChain) save(t testing.TB, s Store, h int, ops []*OpRecord, hosts *Hosts) {
	t.Helper()
	if err := s.SaveBlock(BlockWrite{Block: c.blocks[h-1], Commit: c.commits[h-1], Results: c.results[h-1], Ops: ops, Hosts: hosts}); err != nil {
		t.Fatalf("save block %d: %v", h, err)
	}
}

// stRecord is an operation record in the given status.
func stRecord(label string, height uint64, status taskrt.OpStatus) *OpRecord {
	stage := 0
	valid := true
	return &OpRecord{
		ID: stHash(label), Submitter: Address{9}, Height: height, Time: 1_700_000_000_000 + height,
		Operation: json.RawMessage(`{"name":"` + label + `","tasks":[{"id":"a","run":"builtin.echo","validate":"output.n < 5 && x <> y"}]}`),
		Saga: taskrt.SagaState{Status: status, Stage: 0, RollbackStage: -1, Seq: 2, Tasks: []taskrt.TaskState{{
			Status: taskrt.TaskSucceeded, Attempts: 1, Validation: "passed",
			Output: map[string]any{"n": int64(3), "ratio": 1.5, "nested": map[string]any{"big": int64(1 << 60), "list": []any{int64(1), "two"}}},
		}}},
		Tasks:  []TaskRecord{{Executor: Address{1}, Deadline: 99}},
		Stages: []StageHashes{{Release: stHash(label + "/release"), ReleasePrev: stHash(label)}},
		Last:   stHash(label + "/release"),
		Events: []taskrt.Event{
			{Height: height, Seq: 1, Type: "submitted"},
			{Height: height, Seq: 2, Type: "task_attested", Stage: &stage, Task: "a", Valid: &valid},
		},
	}
}

func stMemStore(t testing.TB) *BadgerStore {
	t.Helper()
	s, err := OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreBlocksCommitsAndIndexes(t *testing.T) {
	s := stMemStore(t)
	if h, err := s.Head(); err != nil || h != 0 {
		t.Fatalf("empty store head = %d, %v; want 0", h, err)
	}
	c := newStChain(t, 3, 4)
	for h := 1; h <= 3; h++ {
		c.save(t, s, h, nil, nil)
	}
	if h, err := s.Head(); err != nil || h != 3 {
		t.Fatalf("head = %d, %v; want 3", h, err)
	}
	for i, want := range c.blocks {
		h := uint64(i + 1)
		got, err := s.Block(h)
		if err != nil {
			t.Fatal(err)
		}
		if !rlpEqual(t, got, want) || got.Hash() != want.Hash() {
			t.Errorf("block %d: got %+v, want %+v", h, got, want)
		}
		cm, err := s.Commit(h)
		if err != nil {
			t.Fatal(err)
		}
		if !rlpEqual(t, cm, c.commits[i]) {
			t.Errorf("certificate %d: got %+v, want %+v", h, cm, c.commits[i])
		}
		if r, err := s.ResultsRoot(h); err != nil || r != c.results[i] {
			t.Errorf("results root %d = %s, %v; want %s", h, r, err, c.results[i])
		}
		if bh, err := s.BlockHeight(want.Hash()); err != nil || bh != h {
			t.Errorf("height of block hash %s = %d, %v; want %d", want.Hash(), bh, err, h)
		}
		for j, e := range want.Entries {
			gh, gi, err := s.EntryLocation(e.Hash())
			if err != nil || gh != h || gi != j {
				t.Errorf("entry %d of block %d: location %d/%d, %v", j, h, gh, gi, err)
			}
		}
	}
	for name, err := range map[string]error{
		"block 4":       errOf(s.Block(4)),
		"block 0":       errOf(s.Block(0)),
		"certificate 4": errOf(s.Commit(4)),
		"results 4":     errOf(s.ResultsRoot(4)),
		"block hash":    errOf(s.BlockHeight(stHash("nope"))),
		"operation":     errOf(s.Operation(stHash("nope"))),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", name, err)
		}
	}
	if _, _, err := s.EntryLocation(stHash("nope")); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing entry: err = %v, want ErrNotFound", err)
	}
}

func errOf[T any](_ T, err error) error { return err }

// rlpEqual compares ledger values by their RLP encodings, which cover every
// field: decoding gives an empty slice where the original may have had nil,
// a difference the encoding (and so every hash and signature) ignores.
func rlpEqual(t testing.TB, a, b any) bool {
	t.Helper()
	ea, err := rlp.EncodeToBytes(a)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := rlp.EncodeToBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ea, eb)
}

func TestStoreEntryRepeatedKeepsFirstLocation(t *testing.T) {
	s := stMemStore(t)
	c := newStChain(t, 2, 2)
	dup := c.blocks[0].Entries[1]
	b2 := c.blocks[1]
	b2.Entries = append(b2.Entries, dup) // the header does not cover entries directly; the store does not check the root
	c.save(t, s, 1, nil, nil)
	c.save(t, s, 2, nil, nil)
	if h, i, err := s.EntryLocation(dup.Hash()); err != nil || h != 1 || i != 1 {
		t.Fatalf("repeated entry located at %d/%d, %v; want its first place 1/1", h, i, err)
	}
	if h, i, err := s.EntryLocation(b2.Entries[1].Hash()); err != nil || h != 2 || i != 1 {
		t.Fatalf("entry 1 of block 2 located at %d/%d, %v; want 2/1", h, i, err)
	}
}

func TestStoreSaveBlockRefusesGapsAndRepeats(t *testing.T) {
	s := stMemStore(t)
	c := newStChain(t, 3, 1)
	err := s.SaveBlock(BlockWrite{Block: c.blocks[1], Commit: c.commits[1], Results: c.results[1]})
	if !errors.Is(err, ErrNotNext) || !strings.Contains(err.Error(), "block 2") {
		t.Fatalf("block 2 on an empty store: err = %v, want ErrNotNext naming block 2", err)
	}
	if _, err := s.Block(2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused block 2 was stored: %v", err)
	}
	c.save(t, s, 1, nil, nil)
	for _, h := range []int{1, 3} {
		if err := s.SaveBlock(BlockWrite{Block: c.blocks[h-1], Commit: c.commits[h-1], Results: c.results[h-1]}); !errors.Is(err, ErrNotNext) {
			t.Errorf("block %d over head 1: err = %v, want ErrNotNext", h, err)
		}
	}
	if h, _ := s.Head(); h != 1 {
		t.Fatalf("head moved to %d after refused blocks", h)
	}
}

func TestStoreSaveBlockRefusesForeignCertificate(t *testing.T) {
	s := stMemStore(t)
	c := newStChain(t, 2, 1)
	if err := s.SaveBlock(BlockWrite{Block: c.blocks[0], Commit: c.commits[1], Results: c.results[0]}); err == nil {
		t.Fatal("block 1 saved with the certificate of block 2")
	}
	wrong := *c.commits[0]
	wrong.BlockHash = stHash("other")
	if err := s.SaveBlock(BlockWrite{Block: c.blocks[0], Commit: &wrong, Results: c.results[0]}); err == nil {
		t.Fatal("block 1 saved with a certificate for another hash")
	}
	if h, _ := s.Head(); h != 0 {
		t.Fatalf("head = %d after refused blocks, want 0", h)
	}
}

// A block whose writes fail halfway leaves nothing behind: all or nothing.
func TestStoreSaveBlockIsAtomic(t *testing.T) {
	s := stMemStore(t)
	c := newStChain(t, 1, 3)
	good := stRecord("good", 1, taskrt.OpRunning)
	err := s.SaveBlock(BlockWrite{Block: c.blocks[0], Commit: c.commits[0], Results: c.results[0], Ops: []*OpRecord{good, nil}, Hosts: &Hosts{ByValidator: map[Address]HostEntry{{1}: {Seq: 1}}}})
	if err == nil {
		t.Fatal("a nil record was accepted")
	}
	if h, _ := s.Head(); h != 0 {
		t.Fatalf("head = %d after a failed save", h)
	}
	if _, err := s.Block(1); !errors.Is(err, ErrNotFound) {
		t.Errorf("block of a failed save is stored: %v", err)
	}
	if _, _, err := s.EntryLocation(c.blocks[0].Entries[0].Hash()); !errors.Is(err, ErrNotFound) {
		t.Errorf("entry of a failed save is indexed: %v", err)
	}
	if _, err := s.Operation(good.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("record of a failed save is stored: %v", err)
	}
	if ids, _ := s.ActiveOperations(); len(ids) != 0 {
		t.Errorf("active operations after a failed save: %v", ids)
	}
	if h, _ := s.Hosts(); len(h.ByValidator) != 0 {
		t.Errorf("hosts of a failed save are stored: %v", h.ByValidator)
	}
	c.save(t, s, 1, []*OpRecord{good}, nil)
}

func TestStoreOperationRecordRoundTrip(t *testing.T) {
	s := stMemStore(t)
	c := newStChain(t, 1, 1)
	want := stRecord("trip", 1, taskrt.OpRunning)
	c.save(t, s, 1, []*OpRecord{want}, nil)
	got, err := s.Operation(want.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Outputs must keep int64 numbers: CEL rules treat 3 and 3.0 apart.
	if n := got.Saga.Tasks[0].Output["n"]; n != int64(3) {
		t.Errorf("output n = %#v (%T), want int64(3)", n, n)
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Errorf("record changed through the store:\n got %s\nwant %s", gj, wj)
	}
	if !bytes.Equal(got.Operation, want.Operation) {
		t.Errorf("operation bytes changed: %s", got.Operation)
	}
}

func TestStoreStatusIndexFollowsTransitions(t *testing.T) {
	s := stMemStore(t)
	c := newStChain(t, 4, 1)
	a := stRecord("a", 1, taskrt.OpRunning)
	b := stRecord("b", 1, taskrt.OpRunning)
	c.save(t, s, 1, []*OpRecord{a, b}, nil)

	ids := func(st taskrt.OpStatus) []Hash {
		t.Helper()
		rs, err := s.Operations(OpQuery{Status: st})
		if err != nil {
			t.Fatal(err)
		}
		var out []Hash
		for _, r := range rs {
			if r.Saga.Status != st {
				t.Errorf("listing %s returned %s in status %s", st, r.ID, r.Saga.Status)
			}
			out = append(out, r.ID)
		}
		slices.SortFunc(out, func(x, y Hash) int { return bytes.Compare(x[:], y[:]) })
		return out
	}
	active := func() []Hash {
		t.Helper()
		out, err := s.ActiveOperations()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	sorted := func(hs ...Hash) []Hash {
		slices.SortFunc(hs, func(x, y Hash) int { return bytes.Compare(x[:], y[:]) })
		return hs
	}
	check := func(step string, running, rollingBack, rolledBack, act []Hash) {
		t.Helper()
		for _, tc := range []struct {
			name      string
			got, want []Hash
		}{
			{"running", ids(taskrt.OpRunning), running},
			{"rolling_back", ids(taskrt.OpRollingBack), rollingBack},
			{"rolled_back", ids(taskrt.OpRolledBack), rolledBack},
			{"active", active(), act},
		} {
			if !slices.Equal(tc.got, tc.want) {
				t.Errorf("%s: %s = %v, want %v", step, tc.name, tc.got, tc.want)
			}
		}
	}
	check("both running", sorted(a.ID, b.ID), nil, nil, sorted(a.ID, b.ID))

	a = stRecord("a", 1, taskrt.OpRollingBack)
	c.save(t, s, 2, []*OpRecord{a}, nil)
	check("a rolling back", []Hash{b.ID}, []Hash{a.ID}, nil, sorted(a.ID, b.ID))

	a = stRecord("a", 1, taskrt.OpRolledBack)
	c.save(t, s, 3, []*OpRecord{a}, nil)
	check("a rolled back", []Hash{b.ID}, nil, []Hash{a.ID}, []Hash{b.ID})

	b = stRecord("b", 1, taskrt.OpCompleted)
	c.save(t, s, 4, []*OpRecord{b}, nil)
	check("b completed", nil, nil, []Hash{a.ID}, nil)
	if all, err := s.Operations(OpQuery{}); err != nil || len(all) != 2 {
		t.Errorf("all operations: %d records, %v; want 2", len(all), err)
	}
	got, err := s.Operation(a.ID)
	if err != nil || got.Saga.Status != taskrt.OpRolledBack {
		t.Errorf("operation a: %v, %v; want rolled_back", got, err)
	}
}

func TestStoreOperationsQuery(t *testing.T) {
	s := stMemStore(t)
	const heights = 5
	c := newStChain(t, heights, 1)
	statuses := []taskrt.OpStatus{taskrt.OpRunning, taskrt.OpCompleted, taskrt.OpRolledBack}
	var all []*OpRecord
	for h := 1; h <= heights; h++ {
		var ops []*OpRecord
		for j := 0; j < 3; j++ {
			r := stRecord(fmt.Sprintf("q-%d-%d", h, j), uint64(h), statuses[(h+j)%len(statuses)])
			ops = append(ops, r)
		}
		all = append(all, ops...)
		c.save(t, s, h, ops, nil)
	}
	// The reference order: newest first, by submitted height, then id.
	newestFirst := slices.Clone(all)
	slices.SortFunc(newestFirst, func(x, y *OpRecord) int {
		if x.Height != y.Height {
			return int(y.Height) - int(x.Height)
		}
		return bytes.Compare(y.ID[:], x.ID[:])
	})
	want := func(q OpQuery) []Hash {
		var out []Hash
		for _, r := range newestFirst {
			if (q.Status == "" || r.Saga.Status == q.Status) && (q.BeforeHeight == 0 || r.Height < q.BeforeHeight) {
				out = append(out, r.ID)
			}
		}
		if q.Limit > 0 && len(out) > q.Limit {
			out = out[:q.Limit]
		}
		return out
	}
	for _, q := range []OpQuery{
		{},
		{Limit: 4},
		{Status: taskrt.OpRunning},
		{Status: taskrt.OpCompleted, Limit: 2},
		{BeforeHeight: 3},
		{BeforeHeight: 1},
		{BeforeHeight: 100},
		{Status: taskrt.OpRolledBack, BeforeHeight: 5, Limit: 3},
		{Status: taskrt.OpRollbackFailed},
	} {
		rs, err := s.Operations(q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		got := make([]Hash, len(rs))
		for i, r := range rs {
			got[i] = r.ID
		}
		if w := want(q); !slices.Equal(got, w) {
			t.Errorf("%+v: got %v, want %v", q, got, w)
		}
	}
	if _, err := s.Operations(OpQuery{Status: "paused"}); err == nil || !strings.Contains(err.Error(), `"paused"`) {
		t.Errorf("unknown status: err = %v, want one naming it", err)
	}
}

func TestStoreHosts(t *testing.T) {
	s := stMemStore(t)
	c := newStChain(t, 2, 1)
	h, err := s.Hosts()
	if err != nil || h.ByValidator == nil || len(h.ByValidator) != 0 {
		t.Fatalf("fresh hosts = %+v, %v; want an empty table", h, err)
	}
	want := &Hosts{ByValidator: map[Address]HostEntry{
		{1}: {Seq: 2, Functions: []string{"airline.reserve", "airline.cancel"}},
		{2}: {Seq: 1, Functions: []string{"hotel.book"}},
	}}
	c.save(t, s, 1, nil, want)
	c.save(t, s, 2, nil, nil) // nil leaves them as they are
	got, err := s.Hosts()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("hosts = %+v, want %+v", got, want)
	}
}

func TestStoreLastSigned(t *testing.T) {
	s := stMemStore(t)
	if _, err := s.LastSigned(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fresh store: err = %v, want ErrNotFound", err)
	}
	for _, rec := range [][]byte{[]byte("h=5 r=0 step=prevote"), []byte("h=5 r=1 step=precommit")} {
		in := bytes.Clone(rec)
		if err := s.SaveLastSigned(in); err != nil {
			t.Fatal(err)
		}
		in[0] = 'X' // the store must have kept its own copy
		got, err := s.LastSigned()
		if err != nil || !bytes.Equal(got, rec) {
			t.Fatalf("last signed = %q, %v; want %q", got, err, rec)
		}
	}
}

func TestBadgerReopenFindsEverything(t *testing.T) {
	dir := t.TempDir()
	genesis := stHash("genesis-1")
	s, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InitGenesis(genesis); err != nil {
		t.Fatal(err)
	}
	c := newStChain(t, 4, 3)
	op := stRecord("durable", 2, taskrt.OpRollingBack)
	hosts := &Hosts{ByValidator: map[Address]HostEntry{{7}: {Seq: 3, Functions: []string{"bank.pay"}}}}
	c.save(t, s, 1, nil, nil)
	c.save(t, s, 2, []*OpRecord{op}, hosts)
	c.save(t, s, 3, nil, nil)
	if err := s.SaveLastSigned([]byte("signed 3")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.InitGenesis(genesis); err != nil {
		t.Fatalf("reopen with the same genesis: %v", err)
	}
	if h, err := s.Head(); err != nil || h != 3 {
		t.Fatalf("head after reopen = %d, %v; want 3", h, err)
	}
	for i := 0; i < 3; i++ {
		h := uint64(i + 1)
		b, err := s.Block(h)
		if err != nil || b.Hash() != c.blocks[i].Hash() {
			t.Errorf("block %d after reopen: %v", h, err)
		}
		if cm, err := s.Commit(h); err != nil || !rlpEqual(t, cm, c.commits[i]) {
			t.Errorf("certificate %d after reopen: %v", h, err)
		}
		if r, err := s.ResultsRoot(h); err != nil || r != c.results[i] {
			t.Errorf("results root %d after reopen: %s, %v", h, r, err)
		}
		if bh, err := s.BlockHeight(c.blocks[i].Hash()); err != nil || bh != h {
			t.Errorf("block hash %d after reopen: %d, %v", h, bh, err)
		}
		if eh, ei, err := s.EntryLocation(c.blocks[i].Entries[2].Hash()); err != nil || eh != h || ei != 2 {
			t.Errorf("entry 2 of block %d after reopen: %d/%d, %v", h, eh, ei, err)
		}
	}
	if got, err := s.Operation(op.ID); err != nil || !reflect.DeepEqual(got, op) {
		t.Errorf("operation after reopen: %+v, %v", got, err)
	}
	if rs, err := s.Operations(OpQuery{Status: taskrt.OpRollingBack}); err != nil || len(rs) != 1 || rs[0].ID != op.ID {
		t.Errorf("rolling_back list after reopen: %v, %v", rs, err)
	}
	if ids, err := s.ActiveOperations(); err != nil || !slices.Equal(ids, []Hash{op.ID}) {
		t.Errorf("active after reopen: %v, %v", ids, err)
	}
	if got, err := s.Hosts(); err != nil || !reflect.DeepEqual(got, hosts) {
		t.Errorf("hosts after reopen: %+v, %v", got, err)
	}
	if rec, err := s.LastSigned(); err != nil || string(rec) != "signed 3" {
		t.Errorf("last signed after reopen: %q, %v", rec, err)
	}
	if err := s.SaveBlock(BlockWrite{Block: c.blocks[2], Commit: c.commits[2], Results: c.results[2]}); !errors.Is(err, ErrNotNext) {
		t.Errorf("block 3 again after reopen: err = %v, want ErrNotNext", err)
	}
	c.save(t, s, 4, nil, nil)
}

func TestBadgerRefusesOtherGenesis(t *testing.T) {
	dir := t.TempDir()
	mine, other := stHash("genesis-mine"), stHash("genesis-other")
	s, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InitGenesis(mine); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.InitGenesis(other)
	if !errors.Is(err, ErrGenesisMismatch) {
		t.Fatalf("other genesis: err = %v, want ErrGenesisMismatch", err)
	}
	for _, h := range []Hash{mine, other} {
		if !strings.Contains(err.Error(), h.Hex()) {
			t.Errorf("error %q does not name %s", err, h.Hex())
		}
	}
	if err := s.InitGenesis(mine); err != nil {
		t.Errorf("own genesis after a refusal: %v", err)
	}
}

func TestBadgerRunGCStopsWithContext(t *testing.T) {
	s, err := OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := newStChain(t, 2, 10)
	c.save(t, s, 1, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunGC(ctx, time.Millisecond) }()
	c.save(t, s, 2, nil, nil) // writes go on while GC runs
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunGC: %v", err)
	}

	mem := stMemStore(t)
	if err := mem.RunGC(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("in-memory RunGC: %v", err)
	}
}

func TestStoreCountOperations(t *testing.T) {
	s, err := OpenInMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, _, _ := busyChain(t)
	blocks, commits := signedChain(t, c)
	replay := NewMemState()
	for h, b := range blocks {
		ov := NewOverlay(replay)
		res, err := c.m.ApplyEntries(ov, c.ctxs[h], b.Entries)
		if err != nil {
			t.Fatal(err)
		}
		ops, hosts := ov.Changes()
		if err := s.SaveBlock(BlockWrite{Block: b, Commit: commits[h], Results: res.Root(), Ops: ops, Hosts: hosts}); err != nil {
			t.Fatal(err)
		}
		replay.Commit(ops, hosts)
	}
	for st, want := range map[taskrt.OpStatus]int{taskrt.OpCompleted: 1, taskrt.OpRolledBack: 1, taskrt.OpRunning: 0} {
		if n, err := s.CountOperations(st); err != nil || n != want {
			t.Errorf("%s: %d, %v; want %d", st, n, err, want)
		}
	}
}
