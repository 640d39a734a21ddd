package p2p

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkGossipLatency measures the time from Publish on one host to the
// handler call on another, one message at a time, over a direct connection
// and through a relaying host.
func BenchmarkGossipLatency(b *testing.B) {
	for _, bc := range []struct {
		name string
		hops int
		size int
	}{
		{"direct/256B", 1, 256},
		{"direct/64KiB", 1, 64 << 10},
		{"two-hops/256B", 2, 256},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hosts := benchLine(b, bc.hops+1)
			first, last := hosts[0], hosts[len(hosts)-1]
			got := make(chan []byte, 1)
			if err := last.Subscribe(TopicConsensus, func(_ peer.ID, data []byte) { got <- data }); err != nil {
				b.Fatal(err)
			}
			data := make([]byte, bc.size)
			seq := uint64(0)
			send := func() {
				seq++
				binary.BigEndian.PutUint64(data, seq)
				if err := first.Publish(TopicConsensus, data); err != nil {
					b.Fatal(err)
				}
			}
			// Until every mesh has formed a message may take the slow gossip
			// path or none; wait for one to arrive.
			eventually(b, "a message to cross the line", func() bool {
				send()
				select {
				case <-got:
					return true
				default:
					return false
				}
			})
			for len(got) > 0 {
				<-got
			}
			b.SetBytes(int64(bc.size))
			b.ResetTimer()
			for range b.N {
				send()
				for {
					m := <-got
					if binary.BigEndian.Uint64(m) == seq {
						break
					}
				}
			}
		})
	}
}

// benchLine starts n hosts, each connected to the next.
func benchLine(b *testing.B, n int) []*Host {
	keys := make([][]byte, n)
	ids := make([]peer.ID, n)
	for i := range n {
		keys[i], ids[i] = testKey(b, string(rune('a'+i)))
	}
	hosts := make([]*Host, n)
	for i := n - 1; i >= 0; i-- {
		var allowed []peer.ID
		if i > 0 {
			allowed = append(allowed, ids[i-1])
		}
		if i < n-1 {
			allowed = append(allowed, ids[i+1])
		}
		cfg := testConfig(keys[i], allowed...)
		if i < n-1 {
			cfg.Peers = hosts[i+1].Addrs()
		}
		hosts[i] = startHost(b, cfg)
	}
	for i := range n - 1 {
		eventually(b, "the line to connect", func() bool { return slices.Contains(hosts[i].Peers(), ids[i+1]) })
	}
	return hosts
}

// BenchmarkFetchRange measures one block-sync exchange of 256 records of
// 1 KiB each.
func BenchmarkFetchRange(b *testing.B) {
	keyS, idS := testKey(b, "server")
	keyC, idC := testKey(b, "client")
	server := startHost(b, testConfig(keyS, idC))
	store := fakeStore{head: 1 << 20, size: 1 << 10}
	server.ServeSync(store.read)
	cfgC := testConfig(keyC, idS)
	cfgC.Peers = server.Addrs()
	client := startHost(b, cfgC)
	eventually(b, "the client to connect", func() bool { return connected(client, idS) })
	b.SetBytes(256 << 10)
	b.ResetTimer()
	for i := range b.N {
		from := uint64(i%1000)*256 + 1
		recs, err := client.FetchRange(context.Background(), idS, from, from+255)
		if err != nil || len(recs) != 256 {
			b.Fatalf("FetchRange: %d records, %v", len(recs), err)
		}
	}
}
