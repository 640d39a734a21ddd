package p2p

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// gossipNode is a host with a recorder per topic for its handler and for its
// validator.
type gossipNode struct {
	*Host
	got, judged map[Topic]*recorder
}

// newGossipNode starts a host whose validators judge by prefix (see
// recorder.validator) if strict, and accept everything otherwise.
func newGossipNode(t *testing.T, cfg Config, strict bool) *gossipNode {
	t.Helper()
	n := &gossipNode{got: map[Topic]*recorder{}, judged: map[Topic]*recorder{}}
	cfg.Validators = map[Topic]Validator{}
	for _, tp := range topics {
		n.got[tp], n.judged[tp] = new(recorder), new(recorder)
		cfg.Validators[tp] = n.judged[tp].validator
		if !strict {
			judged := n.judged[tp]
			cfg.Validators[tp] = func(from peer.ID, data []byte) Verdict {
				judged.handle(from, data)
				return Accept
			}
		}
	}
	n.Host = startHost(t, cfg)
	for _, tp := range topics {
		if err := n.Subscribe(tp, n.got[tp].handle); err != nil {
			t.Fatalf("Subscribe(%s): %v", tp, err)
		}
	}
	return n
}

// newLine starts hosts a - b - c, where a and c know only b, so everything
// between a and c passes through b.
func newLine(t *testing.T) (a, b, c *gossipNode) {
	t.Helper()
	keyA, idA := testKey(t, "a")
	keyB, idB := testKey(t, "b")
	keyC, idC := testKey(t, "c")
	b = newGossipNode(t, testConfig(keyB, idA, idC), true)
	cfgA := testConfig(keyA, idB)
	cfgA.Peers = b.Addrs()
	a = newGossipNode(t, cfgA, false)
	cfgC := testConfig(keyC, idB)
	cfgC.Peers = b.Addrs()
	c = newGossipNode(t, cfgC, false)
	eventually(t, "a and c to connect to b", func() bool {
		return connected(a.Host, idB) && connected(c.Host, idB) && len(b.Peers()) == 2
	})
	return a, b, c
}

// warmUp waits until a message from a reaches c through b: a publishes to
// b directly, and b forwards to c once c is in b's mesh for topic.
func warmUp(t *testing.T, a, b, c *gossipNode, topic Topic) {
	t.Helper()
	eventually(t, fmt.Sprintf("the %s mesh to form", topic), func() bool {
		return slices.Contains(a.TopicPeers(topic), b.ID()) &&
			slices.Contains(b.MeshPeers(topic), c.ID())
	})
}

func TestGossipThreeHostsBothTopics(t *testing.T) {
	a, b, c := newLine(t)
	for _, topic := range topics {
		t.Run(topic.String(), func(t *testing.T) {
			warmUp(t, a, b, c, topic)

			good := "good " + topic.String()
			if err := a.Publish(topic, []byte(good)); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			b.got[topic].await(t, "b", good)
			c.got[topic].await(t, "c", good)
			// from is the peer that passed the message on, not its author.
			if got := b.got[topic].senders(good); !slices.Equal(got, []peer.ID{a.ID()}) {
				t.Errorf("b got %q from %v, want once from a %s", good, got, a.ID())
			}
			if got := c.got[topic].senders(good); !slices.Equal(got, []peer.ID{b.ID()}) {
				t.Errorf("c got %q from %v, want once from b %s", good, got, b.ID())
			}
			// The publisher's validator judged its own message; its handler
			// did not get it back.
			if a.judged[topic].count(good) != 1 {
				t.Errorf("a's validator saw its own %q %d times, want 1", good, a.judged[topic].count(good))
			}
			if a.got[topic].count(good) != 0 {
				t.Errorf("a's handler got its own %q", good)
			}

			// b rejects "bad" and ignores "ign"; a and c accept everything,
			// so if b passed either on, c would deliver it.
			bad, ign := "bad "+topic.String(), "ign "+topic.String()
			for _, m := range []string{bad, ign} {
				if err := a.Publish(topic, []byte(m)); err != nil {
					t.Fatalf("Publish(%q): %v", m, err)
				}
				b.judged[topic].await(t, "b's validator", m)
			}
			after := "after " + topic.String()
			if err := a.Publish(topic, []byte(after)); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			c.got[topic].await(t, "c", after)
			b.got[topic].await(t, "b", after)
			for _, m := range []string{bad, ign} {
				if n := b.got[topic].count(m); n != 0 {
					t.Errorf("b's handler got %q, which its validator refused", m)
				}
				if n := c.judged[topic].count(m); n != 0 {
					t.Errorf("c saw %q, which b refused and must not forward", m)
				}
			}

			// A host's own validator guards what it publishes.
			err := b.Publish(topic, []byte("bad from b"))
			if !errors.Is(err, ErrRejected) {
				t.Errorf("b.Publish(bad) = %v, want ErrRejected", err)
			}
			err = b.Publish(topic, []byte("ign from b"))
			if !errors.Is(err, ErrIgnored) {
				t.Errorf("b.Publish(ign) = %v, want ErrIgnored", err)
			}
		})
	}
}

func TestGossipDeduplicatesIdenticalBytes(t *testing.T) {
	a, b, c := newLine(t)
	warmUp(t, a, b, c, TopicEntries)
	for range 2 {
		if err := a.Publish(TopicEntries, []byte("twice")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	c.got[TopicEntries].await(t, "c", "twice")
	// The same bytes from another publisher are the same message too.
	if err := c.Publish(TopicEntries, []byte("twice")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := a.Publish(TopicEntries, []byte("sentinel")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	c.got[TopicEntries].await(t, "c", "sentinel")
	b.got[TopicEntries].await(t, "b", "sentinel")
	for name, n := range map[string]*gossipNode{"b": b, "c": c} {
		if got := n.got[TopicEntries].count("twice"); got != 1 {
			t.Errorf("%s got the repeated message %d times, want 1", name, got)
		}
		if got := n.judged[TopicEntries].count("twice"); got != 1 {
			t.Errorf("%s validated the repeated message %d times, want 1", name, got)
		}
	}
	// The same bytes on the other topic are another message.
	warmUp(t, a, b, c, TopicConsensus)
	if err := a.Publish(TopicConsensus, []byte("twice")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	c.got[TopicConsensus].await(t, "c", "twice")
}

func TestGossipRejectionsLowerScore(t *testing.T) {
	keyA, idA := testKey(t, "a")
	keyB, idB := testKey(t, "b")
	a := newGossipNode(t, testConfig(keyA, idB), true)
	cfgB := testConfig(keyB, idA)
	cfgB.Peers = a.Addrs()
	// b's own validators accept everything, so it sends what a rejects.
	b := startHost(t, cfgB)
	eventually(t, "a and b to see each other on the consensus topic", func() bool {
		return slices.Contains(a.TopicPeers(TopicConsensus), idB) && slices.Contains(b.TopicPeers(TopicConsensus), idA)
	})
	for i := range 3 {
		if err := b.Publish(TopicConsensus, fmt.Appendf(nil, "bad-%d", i)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		a.judged[TopicConsensus].await(t, "a's validator", fmt.Sprintf("bad-%d", i))
	}
	eventually(t, "a's score of b to go negative", func() bool {
		s, ok := a.Scores()[idB]
		return ok && s < 0
	})
	if a.got[TopicConsensus].hasPrefix("bad-") {
		t.Error("a's handler got a message its validator rejected")
	}
}

func TestPublishAndSubscribeErrors(t *testing.T) {
	key, _ := testKey(t, "a")
	cfg := testConfig(key)
	cfg.MaxMessageSize = 100
	h := startHost(t, cfg)

	if err := h.Publish(TopicEntries, make([]byte, 101)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Publish(101 bytes) = %v, want ErrTooLarge", err)
	}
	if err := h.Publish(TopicEntries, make([]byte, 100)); err != nil {
		t.Errorf("Publish(100 bytes) with no peers = %v, want nil", err)
	}
	if err := h.Publish(Topic(7), []byte("x")); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("Publish(Topic(7)) = %v, want ErrUnknownTopic", err)
	}
	noop := func(peer.ID, []byte) {}
	if err := h.Subscribe(TopicEntries, noop); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := h.Subscribe(TopicEntries, noop); !errors.Is(err, ErrSubscribed) {
		t.Errorf("second Subscribe = %v, want ErrSubscribed", err)
	}
	if err := h.Subscribe(Topic(0), noop); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("Subscribe(Topic(0)) = %v, want ErrUnknownTopic", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.Publish(TopicEntries, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := h.Subscribe(TopicConsensus, noop); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
}

func TestTopicNames(t *testing.T) {
	if got, want := TopicEntries.Name("c1"), "/sagachain/c1/entries/1"; got != want {
		t.Errorf("TopicEntries.Name = %q, want %q", got, want)
	}
	if got, want := TopicConsensus.Name("c1"), "/sagachain/c1/consensus/1"; got != want {
		t.Errorf("TopicConsensus.Name = %q, want %q", got, want)
	}
	if got, want := string(SyncProtocol("c1")), "/sagachain/c1/sync/1"; got != want {
		t.Errorf("SyncProtocol = %q, want %q", got, want)
	}
}

func TestMessageIDCoversTopicAndData(t *testing.T) {
	msg := func(topic, data string) *pb.Message { return &pb.Message{Topic: &topic, Data: []byte(data)} }
	same1, same2 := messageID(msg("t", "data")), messageID(msg("t", "data"))
	if same1 != same2 {
		t.Error("equal messages have different ids")
	}
	others := []*pb.Message{msg("t", "datb"), msg("u", "data"), msg("td", "ata"), msg("", "tdata")}
	for _, m := range others {
		if messageID(m) == same1 {
			t.Errorf("topic %q data %q has the id of topic \"t\" data \"data\"", m.GetTopic(), m.GetData())
		}
	}
	if len(same1) != 32 {
		t.Errorf("id is %d bytes, want a 32-byte SHA-256", len(same1))
	}
}

func TestMeshPeersFollowConnections(t *testing.T) {
	keyA, idA := testKey(t, "a")
	keyB, idB := testKey(t, "b")
	a := startHost(t, testConfig(keyA, idB))
	cfgB := testConfig(keyB, idA)
	cfgB.Peers = a.Addrs()
	b := startHost(t, cfgB)
	for _, topic := range topics {
		eventually(t, "a and b to join each other's "+topic.String()+" mesh", func() bool {
			return slices.Equal(a.MeshPeers(topic), []peer.ID{idB}) && slices.Equal(b.MeshPeers(topic), []peer.ID{idA})
		})
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	eventually(t, "b to leave a's meshes", func() bool {
		return len(a.MeshPeers(TopicEntries)) == 0 && len(a.MeshPeers(TopicConsensus)) == 0
	})
	if got := a.MeshPeers(Topic(0)); got != nil {
		t.Errorf("MeshPeers(Topic(0)) = %v, want nil", got)
	}
}

// With FullMesh a host keeps no mesh, so it relays nothing, yet a message
// still reaches a peer that its publisher is not connected to, by gossip's
// IHAVE/IWANT.
func TestFullMeshKeepsNoMeshAndStillDelivers(t *testing.T) {
	keyA, idA := testKey(t, "a")
	keyB, idB := testKey(t, "b")
	keyC, idC := testKey(t, "c")
	cfgB := testConfig(keyB, idA, idC)
	cfgB.FullMesh = true
	b := newGossipNode(t, cfgB, false)
	cfgA := testConfig(keyA, idB)
	cfgA.Peers, cfgA.FullMesh = b.Addrs(), true
	a := newGossipNode(t, cfgA, false)
	cfgC := testConfig(keyC, idB)
	cfgC.Peers, cfgC.FullMesh = b.Addrs(), true
	c := newGossipNode(t, cfgC, false)
	for _, topic := range topics {
		eventually(t, "a and c to see b on "+topic.String(), func() bool {
			return slices.Contains(a.TopicPeers(topic), idB) && slices.Contains(c.TopicPeers(topic), idB) &&
				len(b.TopicPeers(topic)) == 2
		})
	}
	for _, topic := range topics {
		m := "around " + topic.String()
		if err := a.Publish(topic, []byte(m)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		b.got[topic].await(t, "b", m)
		c.got[topic].await(t, "c", m)
		if got := c.got[topic].senders(m); !slices.Equal(got, []peer.ID{idB}) {
			t.Errorf("c got %q from %v, want once from b", m, got)
		}
	}
	// Heartbeats have run (the IHAVE that reached c came from one), and
	// none grafted a peer.
	for _, n := range []*gossipNode{a, b, c} {
		for _, topic := range topics {
			if got := n.MeshPeers(topic); len(got) != 0 {
				t.Errorf("%s mesh of %s = %v, want empty", topic, n.ID(), got)
			}
		}
	}
}
