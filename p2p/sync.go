package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// The block-sync protocol. A client opens a stream, writes one request frame
// and closes its side; the server answers with a status frame and, on
// success, the records, then closes the stream.
//
//	request  = frame(from || to)             each a big-endian uint64, from <= to
//	response = frame(0x00 || uvarint(n)) n*frame(record)
//	         | frame(0x01 || message)        the server failed; message is UTF-8
//	frame    = uvarint(len(payload)) || payload
//
// A server sends at most SyncMaxRecords records and SyncMaxBytes of record
// bytes, and never more than to-from+1 records; the records are those of
// heights from, from+1, ... in order, and fewer than asked means the server
// has no more or hit a cap. A record larger than SyncMaxBytes cannot be served.

// Block-sync errors a caller may branch on, returned wrapped.
var (
	// ErrBadResponse reports a peer that broke the sync protocol: bad framing,
	// an oversized or truncated frame, more records than asked for, or bytes
	// after the last record.
	ErrBadResponse = errors.New("malformed block-sync response")
	// ErrNoRecords reports a peer that has none of the records asked for.
	ErrNoRecords = errors.New("peer has no records in the range")
	// ErrRemote reports a peer that answered with an error of its own.
	ErrRemote = errors.New("peer failed to serve the range")
)

const (
	statusOK    byte = 0x00
	statusError byte = 0x01

	// requestLen is the size of a request payload: from and to.
	requestLen = 16
	// maxRemoteMessage bounds the error text a server sends and a client
	// accepts.
	maxRemoteMessage = 256
	// maxConcurrentSyncServes bounds the requests a host serves at once, so
	// one peer catching up cannot tie up the node's store.
	maxConcurrentSyncServes = 4
	// streamDeadlineSlack puts a client stream's deadline after its
	// context's, so that a timeout is reported as the context's error.
	streamDeadlineSlack = time.Second
)

// errFrame marks a framing violation, as opposed to a transport error.
var errFrame = errors.New("bad framing")

// SyncProtocol returns the block-sync protocol id of chainID, for example
// /sagachain/sagachain-dev/sync/1.
func SyncProtocol(chainID string) protocol.ID {
	return protocol.ID("/sagachain/" + chainID + "/sync/1")
}

// RangeReader returns the encoded records (a block and its certificate) of
// heights from through to, in order from from; it may return fewer, stopping
// at the last it has, and returns none beyond to. It is called concurrently.
type RangeReader func(from, to uint64) ([][]byte, error)

// ServeSync makes the host answer block-sync requests from read. A later
// call replaces read; nil stops serving, and peers then get a
// protocol-not-supported error.
func (h *Host) ServeSync(read RangeReader) {
	proto := SyncProtocol(h.cfg.ChainID)
	if read == nil {
		h.host.RemoveStreamHandler(proto)
		return
	}
	h.host.SetStreamHandler(proto, func(s network.Stream) {
		if err := h.serveSync(s, read); err != nil {
			s.Reset()
			h.cfg.Logger.Debug("p2p: block-sync request failed", "peer", s.Conn().RemotePeer(), "err", err)
			return
		}
		s.Close()
	})
}

// serveSync answers one request. Errors in the request or in read are sent
// to the peer; only transport errors are returned.
func (h *Host) serveSync(s network.Stream, read RangeReader) error {
	if err := s.SetDeadline(time.Now().Add(h.cfg.SyncTimeout)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	req, err := readFrame(bufio.NewReaderSize(s, 64), requestLen)
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	w := bufio.NewWriter(s)
	if len(req) != requestLen {
		return writeRemoteError(w, fmt.Sprintf("request of %d bytes, want %d", len(req), requestLen))
	}
	from, to := binary.BigEndian.Uint64(req[:8]), binary.BigEndian.Uint64(req[8:])
	if from > to {
		return writeRemoteError(w, fmt.Sprintf("range %d-%d is empty", from, to))
	}
	select {
	case h.syncSlots <- struct{}{}:
		defer func() { <-h.syncSlots }()
	default:
		return writeRemoteError(w, "busy serving other peers")
	}
	to = clampRange(from, to, h.cfg.SyncMaxRecords)
	recs, err := read(from, to)
	if err != nil {
		return writeRemoteError(w, fmt.Sprintf("read %d-%d: %v", from, to, err))
	}
	limit := min(uint64(h.cfg.SyncMaxRecords), to-from+1)
	n, total := 0, 0
	for _, r := range recs {
		if uint64(n) == limit || total+len(r) > h.cfg.SyncMaxBytes {
			break
		}
		total += len(r)
		n++
	}
	if n == 0 && len(recs) > 0 {
		return writeRemoteError(w, fmt.Sprintf("record %d is %d bytes, over the limit of %d", from, len(recs[0]), h.cfg.SyncMaxBytes))
	}
	status := binary.AppendUvarint([]byte{statusOK}, uint64(n))
	if err := writeFrame(w, status); err != nil {
		return err
	}
	for _, r := range recs[:n] {
		if err := writeFrame(w, r); err != nil {
			return err
		}
	}
	return w.Flush()
}

// writeRemoteError sends an error status with msg, cut to maxRemoteMessage
// bytes of valid UTF-8.
func writeRemoteError(w *bufio.Writer, msg string) error {
	if len(msg) > maxRemoteMessage {
		msg = msg[:maxRemoteMessage]
	}
	msg = strings.ToValidUTF8(msg, "")
	if err := writeFrame(w, append([]byte{statusError}, msg...)); err != nil {
		return err
	}
	return w.Flush()
}

// FetchRange asks peer p for the records of heights from through to and
// returns them in order, starting at from. It returns fewer when the peer has
// no more or a response cap is reached; the caller asks again from where the
// answer stopped. It fails with an error wrapping ErrNoRecords if the peer
// has none, ErrRemote if the peer reports an error, ErrBadResponse if the
// peer breaks the protocol, and the context's error if ctx ends or
// Config.SyncTimeout passes first.
func (h *Host) FetchRange(ctx context.Context, p peer.ID, from, to uint64) ([][]byte, error) {
	if from > to {
		return nil, fmt.Errorf("p2p: fetch %d-%d from %s: empty range", from, to, p)
	}
	if h.isClosed() {
		return nil, fmt.Errorf("p2p: fetch %d-%d from %s: %w", from, to, p, ErrClosed)
	}
	to = clampRange(from, to, h.cfg.SyncMaxRecords)
	recs, err := h.fetch(ctx, p, from, to)
	if err != nil {
		return nil, fmt.Errorf("p2p: fetch %d-%d from %s: %w", from, to, p, err)
	}
	return recs, nil
}

func (h *Host) fetch(ctx context.Context, p peer.ID, from, to uint64) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.SyncTimeout)
	defer cancel()
	s, err := h.host.NewStream(ctx, p, SyncProtocol(h.cfg.ChainID))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("open stream: %w", err)
	}
	// The end of ctx resets the stream, which unblocks any read or write and
	// lets the caller see ctx's error. The stream's own deadline, a little
	// later, is a backstop that does not depend on that.
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		if err := s.SetDeadline(deadline.Add(streamDeadlineSlack)); err != nil {
			s.Reset()
			return nil, fmt.Errorf("set deadline: %w", err)
		}
	}
	recs, err := exchange(s, from, to, h.cfg.SyncMaxBytes)
	if err != nil {
		s.Reset()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	s.Close()
	return recs, nil
}

// exchange sends the request for from..to on s and reads the response,
// accepting at most to-from+1 records and maxBytes of them.
func exchange(s network.Stream, from, to uint64, maxBytes int) ([][]byte, error) {
	w := bufio.NewWriter(s)
	var req [requestLen]byte
	binary.BigEndian.PutUint64(req[:8], from)
	binary.BigEndian.PutUint64(req[8:], to)
	if err := writeFrame(w, req[:]); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}

	r := bufio.NewReader(s)
	status, err := readFrame(r, 1+maxRemoteMessage)
	switch {
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: the peer closed the stream without a response", ErrBadResponse)
	case errors.Is(err, errFrame):
		return nil, fmt.Errorf("%w: status: %w", ErrBadResponse, err)
	case err != nil:
		return nil, fmt.Errorf("read status: %w", err)
	}
	count, err := parseStatus(status)
	if err != nil {
		return nil, err
	}
	if want := to - from + 1; count > want {
		return nil, fmt.Errorf("%w: the peer announces %d records, %d were asked for", ErrBadResponse, count, want)
	}
	recs := make([][]byte, 0, count)
	budget := maxBytes
	for i := range count {
		rec, err := readFrame(r, budget)
		switch {
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("%w: the stream ends after %d of %d records", ErrBadResponse, i, count)
		case errors.Is(err, errFrame):
			return nil, fmt.Errorf("%w: record %d of %d: %w", ErrBadResponse, i+1, count, err)
		case err != nil:
			return nil, fmt.Errorf("read record %d of %d: %w", i+1, count, err)
		}
		budget -= len(rec)
		recs = append(recs, rec)
	}
	switch _, err := r.ReadByte(); {
	case err == nil:
		return nil, fmt.Errorf("%w: bytes after the last of %d records", ErrBadResponse, count)
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("read end of response: %w", err)
	}
	return recs, nil
}

// parseStatus returns the record count of an OK status, or the error a
// status reports.
func parseStatus(status []byte) (uint64, error) {
	if len(status) == 0 {
		return 0, fmt.Errorf("%w: empty status", ErrBadResponse)
	}
	switch status[0] {
	case statusOK:
		count, n := binary.Uvarint(status[1:])
		if n <= 0 || n != len(status)-1 {
			return 0, fmt.Errorf("%w: bad record count in status", ErrBadResponse)
		}
		if count == 0 {
			return 0, ErrNoRecords
		}
		return count, nil
	case statusError:
		return 0, fmt.Errorf("%w: %q", ErrRemote, status[1:])
	}
	return 0, fmt.Errorf("%w: unknown status %#x", ErrBadResponse, status[0])
}

// clampRange lowers to so that from..to holds at most max heights.
func clampRange(from, to uint64, max int) uint64 {
	if to-from >= uint64(max) {
		return from + uint64(max) - 1
	}
	return to
}

// writeFrame writes data with its uvarint length prefix.
func writeFrame(w *bufio.Writer, data []byte) error {
	var n [binary.MaxVarintLen64]byte
	if _, err := w.Write(n[:binary.PutUvarint(n[:], uint64(len(data)))]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// readFrame reads one frame of at most limit bytes. It returns io.EOF if the
// stream ends before the frame begins, an error wrapping errFrame if the
// frame is malformed, oversized or cut short, and transport errors as they
// are.
func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
	var prefix [binary.MaxVarintLen64]byte
	i := 0
	for {
		b, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			if i == 0 {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("%w: the stream ends inside a length prefix", errFrame)
		}
		if err != nil {
			return nil, err
		}
		if i == len(prefix) {
			return nil, fmt.Errorf("%w: length prefix longer than %d bytes", errFrame, len(prefix))
		}
		prefix[i] = b
		i++
		if b < 0x80 {
			break
		}
	}
	n, k := binary.Uvarint(prefix[:i])
	if k <= 0 {
		return nil, fmt.Errorf("%w: length prefix overflows 64 bits", errFrame)
	}
	if n > uint64(max(limit, 0)) {
		return nil, fmt.Errorf("%w: frame of %d bytes, over the limit of %d", errFrame, n, limit)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: the stream ends inside a %d-byte frame", errFrame, n)
		}
		return nil, err
	}
	return data, nil
}
