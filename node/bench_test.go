package node

import (
	"sync"
	"testing"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
)

const benchOp = `
name: bench
tasks:
  - {id: a, run: echo, rollback: noop, outputs: [x]}
  - {id: b, run: echo, rollback: noop, outputs: [y]}
  - {id: c, run: echo, rollback: noop, inputs: [x], outputs: [z]}
  - {id: d, run: echo, rollback: noop, inputs: [y], outputs: [w]}
  - {id: e, run: echo, rollback: noop, inputs: [z, w], outputs: [v]}
`

// BenchmarkNodeOperations measures operations per second through a real
// one-validator node on disk: submit, blocks, execution, attestations.
func BenchmarkNodeOperations(b *testing.B) {
	tn := startNode(b, b.TempDir())
	runConcurrently(b, []*testNode{tn}, 64)
	head, _ := tn.store.Head()
	b.ReportMetric(float64(head), "blocks")
}

// runConcurrently submits b.N operations, at most conc at once, spread over
// nodes, and reports operations per second until all are final on the
// first node. It follows completions through the commit feed, as an RPC
// subscriber would, rather than by polling the store.
func runConcurrently(b *testing.B, nodes []*testNode, conc int) {
	entries := benchSubmissions(b, nodes[0], b.N)
	events := make(chan rpc.CommitEvent, 1024)
	sub := nodes[0].SubscribeCommits(events)
	defer sub.Unsubscribe()
	b.ResetTimer()
	start := time.Now()
	sem := make(chan struct{}, conc)
	pending := make(map[ledger.Hash]bool, len(entries))
	var mu sync.Mutex
	go func() {
		for i, e := range entries {
			sem <- struct{}{}
			mu.Lock()
			pending[e.Hash()] = true
			mu.Unlock()
			go func() {
				for nodes[i%len(nodes)].Submit(e) != nil {
					time.Sleep(time.Millisecond)
				}
			}()
		}
	}()
	for done := 0; done < len(entries); {
		ev := <-events
		mu.Lock()
		for _, r := range ev.Ops {
			if r.Saga.Status.Final() && pending[r.ID] {
				delete(pending, r.ID)
				done++
				<-sem
			}
		}
		mu.Unlock()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkNodeOperationLatency runs one operation at a time: ns/op is the
// latency from submission to final status.
func BenchmarkNodeOperationLatency(b *testing.B) {
	tn := startNode(b, b.TempDir())
	entries := benchSubmissions(b, tn, b.N)
	events := make(chan rpc.CommitEvent, 1024)
	sub := tn.SubscribeCommits(events)
	defer sub.Unsubscribe()
	b.ResetTimer()
	for _, e := range entries {
		go tn.Submit(e)
	wait:
		for ev := range events {
			for _, r := range ev.Ops {
				if r.ID == e.Hash() && r.Saga.Status.Final() {
					break wait
				}
			}
		}
	}
}

// benchSubmissions signs n distinct submissions of benchOp.
func benchSubmissions(b *testing.B, tn *testNode, n int) []ledger.Entry {
	raw := canonicalOp(b, []byte(benchOp))
	entries := make([]ledger.Entry, n)
	for i := range entries {
		s := &ledger.Submission{Operation: raw, Nonce: uint64(i)}
		if err := s.Sign(tn.user, tn.Genesis().ChainID); err != nil {
			b.Fatal(err)
		}
		entries[i], _ = ledger.NewEntry(ledger.KindSubmission, s)
	}
	return entries
}

// BenchmarkNetworkOperations measures operations per second through four
// validators in one process, each with its own ledger, talking over libp2p
// on 127.0.0.1.
func BenchmarkNetworkOperations(b *testing.B) {
	runConcurrently(b, startTestnet(b, 4), 64)
}
