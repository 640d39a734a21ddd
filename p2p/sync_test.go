package p2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// fakeStore serves records for heights 1 through head; each record is its
// height's text padded to size bytes.
type fakeStore struct {
	head uint64
	size int
	err  error
}

func (s fakeStore) record(h uint64) []byte {
	r := fmt.Appendf(nil, "record-%d", h)
	if len(r) < s.size {
		r = append(r, bytes.Repeat([]byte{'.'}, s.size-len(r))...)
	}
	return r
}

func (s fakeStore) read(from, to uint64) ([][]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	var out [][]byte
	for h := max(from, 1); h <= min(to, s.head); h++ {
		out = append(out, s.record(h))
	}
	return out, nil
}

// syncPair starts a server, which serves store, and a client connected to it.
func syncPair(t *testing.T, serverCfg, clientCfg func(*Config), store RangeReader) (server, client *Host) {
	t.Helper()
	keyS, idS := testKey(t, "server")
	keyC, idC := testKey(t, "client")
	cfgS := testConfig(keyS, idC)
	if serverCfg != nil {
		serverCfg(&cfgS)
	}
	server = startHost(t, cfgS)
	if store != nil {
		server.ServeSync(store)
	}
	cfgC := testConfig(keyC, idS)
	cfgC.Peers = server.Addrs()
	if clientCfg != nil {
		clientCfg(&cfgC)
	}
	client = startHost(t, cfgC)
	eventually(t, "the client to connect", func() bool { return connected(client, idS) })
	return server, client
}

func TestFetchRange(t *testing.T) {
	store := fakeStore{head: 1000}
	server, client := syncPair(t,
		func(c *Config) { c.SyncMaxRecords = 16 },
		nil,
		store.read)
	ctx := context.Background()
	heights := func(from, to uint64) [][]byte {
		out, _ := store.read(from, to)
		return out
	}
	cases := []struct {
		name     string
		from, to uint64
		want     [][]byte
	}{
		{"range", 5, 9, heights(5, 9)},
		{"one", 7, 7, heights(7, 7)},
		{"server's record cap", 1, 1000, heights(1, 16)},
		{"past the head", 995, 2000, heights(995, 1000)},
		{"huge range", 990, ^uint64(0), heights(990, 1000)},
	}
	for _, tc := range cases {
		got, err := client.FetchRange(ctx, server.ID(), tc.from, tc.to)
		if err != nil {
			t.Errorf("%s: FetchRange(%d, %d): %v", tc.name, tc.from, tc.to, err)
			continue
		}
		if !slices.EqualFunc(got, tc.want, bytes.Equal) {
			t.Errorf("%s: FetchRange(%d, %d) = %d records %q..., want %d records", tc.name, tc.from, tc.to, len(got), got[0], len(tc.want))
		}
	}
	if _, err := client.FetchRange(ctx, server.ID(), 1001, 1100); !errors.Is(err, ErrNoRecords) {
		t.Errorf("FetchRange beyond the head = %v, want ErrNoRecords", err)
	}
	if _, err := client.FetchRange(ctx, server.ID(), 9, 5); err == nil {
		t.Error("FetchRange(9, 5) succeeded, want an error for an empty range")
	}
}

func TestFetchRangeClientCap(t *testing.T) {
	store := fakeStore{head: 100}
	server, client := syncPair(t, nil, func(c *Config) { c.SyncMaxRecords = 8 }, store.read)
	got, err := client.FetchRange(context.Background(), server.ID(), 1, 100)
	if err != nil {
		t.Fatalf("FetchRange: %v", err)
	}
	if want, _ := store.read(1, 8); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("FetchRange(1, 100) with a cap of 8 gave %d records, want heights 1-8", len(got))
	}
}

func TestFetchRangeByteCap(t *testing.T) {
	store := fakeStore{head: 100, size: 1000}
	server, client := syncPair(t, func(c *Config) { c.SyncMaxBytes = 4500 }, nil, store.read)
	got, err := client.FetchRange(context.Background(), server.ID(), 10, 100)
	if err != nil {
		t.Fatalf("FetchRange: %v", err)
	}
	if want, _ := store.read(10, 13); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("FetchRange(10, 100) with 4500 bytes a response gave %d records, want the 4 of heights 10-13", len(got))
	}
}

func TestFetchRangeServerErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("store error", func(t *testing.T) {
		store := fakeStore{err: errors.New("disk on fire")}
		server, client := syncPair(t, nil, nil, store.read)
		_, err := client.FetchRange(ctx, server.ID(), 1, 5)
		if !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("FetchRange = %v, want ErrRemote with the store's error", err)
		}
	})
	t.Run("record over the byte cap", func(t *testing.T) {
		store := fakeStore{head: 10, size: 5000}
		server, client := syncPair(t, func(c *Config) { c.SyncMaxBytes = 4096 }, nil, store.read)
		_, err := client.FetchRange(ctx, server.ID(), 1, 5)
		if !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "over the limit") {
			t.Errorf("FetchRange = %v, want ErrRemote naming the limit", err)
		}
	})
	t.Run("not serving", func(t *testing.T) {
		server, client := syncPair(t, nil, nil, nil)
		if _, err := client.FetchRange(ctx, server.ID(), 1, 5); err == nil {
			t.Error("FetchRange from a host that serves no sync succeeded")
		}
	})
}

// frame encodes one frame of the sync protocol.
func frame(payload []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(payload))), payload...)
}

func okStatus(n uint64) []byte {
	return frame(binary.AppendUvarint([]byte{statusOK}, n))
}

func concat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

func TestFetchRangeMalformedResponses(t *testing.T) {
	rec := frame([]byte("record"))
	cases := []struct {
		name  string
		reply []byte
		want  error
	}{
		{"nothing", nil, ErrBadResponse},
		{"endless length prefix", bytes.Repeat([]byte{0xff}, 11), ErrBadResponse},
		{"length prefix cut short", []byte{0x80}, ErrBadResponse},
		{"text", []byte("hello"), ErrBadResponse},
		{"empty status", frame(nil), ErrBadResponse},
		{"unknown status", frame([]byte{0x07}), ErrBadResponse},
		{"count with trailing bytes", frame([]byte{statusOK, 1, 0}), ErrBadResponse},
		{"fewer records than announced", concat(okStatus(3), rec), ErrBadResponse},
		{"more records than asked", concat(okStatus(6), rec, rec, rec, rec, rec, rec), ErrBadResponse},
		{"record over the client's byte cap", concat(okStatus(1), binary.AppendUvarint(nil, 1<<20)), ErrBadResponse},
		{"bytes after the records", concat(okStatus(1), rec, []byte{0}), ErrBadResponse},
		{"status too long", frame(bytes.Repeat([]byte{statusError}, 1000)), ErrBadResponse},
		{"error status", frame(append([]byte{statusError}, "no thanks"...)), ErrRemote},
		{"zero records", okStatus(0), ErrNoRecords},
	}
	server, client := syncPair(t, nil, func(c *Config) { c.SyncMaxBytes = 1024 }, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Replace the server with one that reads the request and answers
			// with tc.reply.
			server.host.SetStreamHandler(SyncProtocol(testChain), func(s network.Stream) {
				defer s.Close()
				io.Copy(io.Discard, s)
				s.Write(tc.reply)
			})
			_, err := client.FetchRange(context.Background(), server.ID(), 1, 5)
			if !errors.Is(err, tc.want) {
				t.Errorf("FetchRange = %v, want %v", err, tc.want)
			}
		})
	}
	// A well-formed reply through the same path, so the cases above fail for
	// what they break and not for the way they are sent.
	server.host.SetStreamHandler(SyncProtocol(testChain), func(s network.Stream) {
		defer s.Close()
		io.Copy(io.Discard, s)
		s.Write(concat(okStatus(2), rec, rec))
	})
	got, err := client.FetchRange(context.Background(), server.ID(), 1, 5)
	if err != nil || len(got) != 2 || string(got[1]) != "record" {
		t.Errorf("FetchRange of a well-formed reply = %q, %v; want two records", got, err)
	}
}

// serveSilently makes server read sync requests and never answer them.
func serveSilently(t *testing.T, server *Host) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	server.host.SetStreamHandler(SyncProtocol(testChain), func(s network.Stream) {
		defer s.Reset()
		io.Copy(io.Discard, s)
		<-release
	})
}

func TestFetchRangeSilentPeer(t *testing.T) {
	server, client := syncPair(t, nil, nil, nil)
	serveSilently(t, server)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := client.FetchRange(ctx, server.ID(), 1, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("FetchRange from a silent peer = %v, want context.DeadlineExceeded", err)
	}
}

func TestFetchRangeSyncTimeout(t *testing.T) {
	server, client := syncPair(t, nil, func(c *Config) { c.SyncTimeout = 300 * time.Millisecond }, nil)
	serveSilently(t, server)
	// No deadline on the context: Config.SyncTimeout bounds the exchange.
	if _, err := client.FetchRange(context.Background(), server.ID(), 1, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("FetchRange from a silent peer = %v, want context.DeadlineExceeded", err)
	}
}

func TestReadFrameLimits(t *testing.T) {
	read := func(b []byte, limit int) ([]byte, error) {
		return readFrame(bufio.NewReader(bytes.NewReader(b)), limit)
	}
	if got, err := read(frame([]byte("abc")), 3); err != nil || string(got) != "abc" {
		t.Errorf("readFrame(abc, 3) = %q, %v", got, err)
	}
	if _, err := read(frame([]byte("abcd")), 3); !errors.Is(err, errFrame) {
		t.Errorf("readFrame(abcd, 3) = %v, want errFrame", err)
	}
	if _, err := read(nil, 3); err != io.EOF {
		t.Errorf("readFrame(empty) = %v, want io.EOF", err)
	}
	// The largest 10-byte prefix overflows 64 bits.
	if _, err := read(append(bytes.Repeat([]byte{0xff}, 9), 0x7f), 3); !errors.Is(err, errFrame) {
		t.Errorf("readFrame(overflowing prefix) = %v, want errFrame", err)
	}
}

func TestClampRange(t *testing.T) {
	cases := []struct {
		from, to uint64
		max      int
		want     uint64
	}{
		{1, 5, 10, 5},
		{1, 10, 10, 10},
		{1, 11, 10, 10},
		{5, 5, 1, 5},
		{^uint64(0) - 3, ^uint64(0), 256, ^uint64(0)},
		{0, ^uint64(0), 256, 255},
	}
	for _, tc := range cases {
		if got := clampRange(tc.from, tc.to, tc.max); got != tc.want {
			t.Errorf("clampRange(%d, %d, %d) = %d, want %d", tc.from, tc.to, tc.max, got, tc.want)
		}
	}
}
