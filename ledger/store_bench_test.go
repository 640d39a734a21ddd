package ledger

import (
	"fmt"
	"testing"

	"github.com/sagachain/sagachain/taskrt"
)

// BenchmarkSaveBlock measures SaveBlock for a block of 100 entries that
// changes 20 operation records (each moving between the running and
// rolling_back lists). On disk every save is synced, so "disk" minus
// "memory" is the cost of the per-block sync on this machine.
func BenchmarkSaveBlock(b *testing.B) {
	open := map[string]func(b *testing.B) *BadgerStore{
		"disk": func(b *testing.B) *BadgerStore {
			s, err := OpenBadger(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"memory": func(b *testing.B) *BadgerStore {
			s, err := OpenInMemory()
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	for _, name := range []string{"disk", "memory"} {
		b.Run(name, func(b *testing.B) {
			s := open[name](b)
			defer s.Close()
			c := newStChain(b, b.N, 100)
			ops := make([]*OpRecord, 20)
			for i := range ops {
				ops[i] = stRecord(fmt.Sprintf("bench-%d", i), 1, taskrt.OpRunning)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				status := taskrt.OpRunning
				if i%2 == 1 {
					status = taskrt.OpRollingBack
				}
				for _, r := range ops {
					r.Saga.Status = status
				}
				if err := s.SaveBlock(BlockWrite{Block: c.blocks[i], Commit: c.commits[i], Results: c.results[i], Ops: ops}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
