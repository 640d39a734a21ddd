package taskrt

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchOperation returns n tasks in a random DAG where each task depends on
// up to 3 earlier ones, through a label or `after`, listed in a random file
// order so the planner cannot rely on it.
func benchOperation(n int) *Operation {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	tasks := make([]Task, n)
	for v := range tasks {
		tasks[v] = Task{ID: fmt.Sprintf("t%d", v), Run: "echo", Outputs: []string{fmt.Sprintf("l%d", v)}}
		if v == 0 {
			continue
		}
		picked := map[int]bool{}
		for range 3 {
			u := rng.IntN(v)
			if picked[u] {
				continue
			}
			picked[u] = true
			if rng.IntN(4) == 0 {
				tasks[v].After = append(tasks[v].After, tasks[u].ID)
			} else {
				tasks[v].Inputs = append(tasks[v].Inputs, tasks[u].Outputs[0])
			}
		}
	}
	rng.Shuffle(n, func(i, j int) { tasks[i], tasks[j] = tasks[j], tasks[i] })
	return &Operation{Name: "bench", Tasks: tasks}
}

func benchmarkPlan(b *testing.B, n int) {
	op := benchOperation(n)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewPlan(op); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlan10k(b *testing.B)  { benchmarkPlan(b, 10_000) }
func BenchmarkPlan100k(b *testing.B) { benchmarkPlan(b, 100_000) }

func benchmarkCheck(b *testing.B, n int) {
	op := benchOperation(n)
	l := DefaultLimits()
	l.MaxTasks = n
	b.ReportAllocs()
	for b.Loop() {
		if err := op.Check(l); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheck10k(b *testing.B)  { benchmarkCheck(b, 10_000) }
func BenchmarkCheck100k(b *testing.B) { benchmarkCheck(b, 100_000) }

// BenchmarkLoad10k measures the whole path of a submission: a file of the
// largest allowed task count, as JSON, through Load.
func BenchmarkLoad10k(b *testing.B) {
	data, err := json.Marshal(benchOperation(10_000))
	if err != nil {
		b.Fatal(err)
	}
	l := DefaultLimits()
	l.MaxFileBytes = len(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(data, nil, l); err != nil {
			b.Fatal(err)
		}
	}
}
