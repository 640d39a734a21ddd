package ledger

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/ethereum/go-ethereum/rlp"
)

// ExportMagic is the first line of an export file.
const ExportMagic = "sagachain-export/1\n"

// Limits on what the reader accepts before the genesis sets the block size.
const (
	maxExportGenesis = 16 << 20
	// exportRecordSlack is room for a record's certificate, header and RLP
	// framing beyond the genesis's max_block_bytes.
	exportRecordSlack = 16 << 20
)

// Export writes the chain in s, from genesis g to the store's head, as a
// portable export file that anyone can verify offline.
//
// # Format
//
// The file is the 19 ASCII bytes "sagachain-export/1\n" followed by RLP
// items written back to back (no list encloses them):
//
//  1. genesis: a byte string, the genesis as compact JSON, exactly the bytes
//     whose Keccak-256 is the genesis hash (Genesis.Hash);
//  2. head: an unsigned integer n, the number of records that follow, so a
//     file cut short is told apart from a shorter chain;
//  3. n records, one per height h = 1, 2, …, n, each a list
//     [block, certificate, results]: block h, the certificate (commit) that
//     committed it, and results, the 32-byte root of what applying block h
//     decided. The header of block h+1 carries that root too, and a reader
//     refuses a file where the two differ; the last block's root is found
//     only here, and VerifyChain over Blocks checks every stored root,
//     that one included, against its replay.
//
// The RLP shapes (integers are RLP unsigned integers: big-endian, no
// leading zeros, 0 as the empty string; hashes are 32-byte strings,
// addresses 20-byte strings, signatures 65-byte strings r ‖ s ‖ v with v
// the recovery id 0 or 1):
//
//	block       = [header, [entry, …], lastCommit, signature]
//	header      = [chainID (string), height, round, time (Unix ms), prev,
//	               proposer, entriesRoot, resultsRoot, lastCommitHash]
//	entry       = [kind, body (string: the RLP of the kind's body)]
//	certificate = [height, round, blockHash, [[validator, signature], …]]
//
// lastCommit is a certificate too: the one that committed block h-1 (empty
// fields for h = 1). Entry kinds and bodies are those of Entry.
func Export(w io.Writer, g *Genesis, s Store) error {
	head, err := s.Head()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	genesisJSON, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("export: genesis: %w", err)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := io.WriteString(bw, ExportMagic); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := rlp.Encode(bw, genesisJSON); err != nil {
		return fmt.Errorf("export: genesis: %w", err)
	}
	if err := rlp.Encode(bw, head); err != nil {
		return fmt.Errorf("export: head: %w", err)
	}
	for h := uint64(1); h <= head; h++ {
		var rec exportRecord
		if rec.Block, err = s.Block(h); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if rec.Commit, err = s.Commit(h); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if rec.Results, err = s.ResultsRoot(h); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if err := rlp.Encode(bw, &rec); err != nil {
			return fmt.Errorf("export: height %d: %w", h, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// exportRecord is one height of an export file.
type exportRecord struct {
	Block   *Block
	Commit  *Commit
	Results Hash
}

// ExportReader reads an export file one height at a time, so a chain of
// any length is verified in constant memory.
type ExportReader struct {
	// prevResults is the stored results root of the last record read:
	// the next block's header must carry it, and Blocks' Results reports
	// it.
	prevResults Hash
	in          *countingReader
	stream      *rlp.Stream
	genesis     *Genesis
	head        uint64
	next        uint64 // height of the next record
	limit       uint64 // bytes one record may take
	err         error  // sticky: once decoding fails, the position is lost
}

// ReadExport reads the magic line, the genesis and the head of an export
// file (see Export for the format). Records follow through Next.
func ReadExport(r io.Reader) (*ExportReader, error) {
	in := &countingReader{r: bufio.NewReaderSize(r, 1<<20)}
	magic := make([]byte, len(ExportMagic))
	if _, err := io.ReadFull(in, magic); err != nil || !bytes.Equal(magic, []byte(ExportMagic)) {
		return nil, fmt.Errorf("read export: not a sagachain export file: want it to begin with %q", ExportMagic)
	}
	x := &ExportReader{in: in, stream: rlp.NewStream(in, maxExportGenesis), next: 1}
	off := in.n
	raw, err := x.stream.Bytes()
	if err != nil {
		return nil, fmt.Errorf("read export: genesis at byte offset %d: %w", off, eofUnexpected(err))
	}
	var g Genesis
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("read export: genesis at byte offset %d: %w", off, err)
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("read export: %w", err)
	}
	x.genesis = &g
	x.limit = uint64(g.Params.MaxBlockBytes) + exportRecordSlack
	off = in.n
	x.stream.Reset(in, 16)
	if x.head, err = x.stream.Uint64(); err != nil {
		return nil, fmt.Errorf("read export: head at byte offset %d: %w", off, eofUnexpected(err))
	}
	return x, nil
}

// Genesis returns the genesis the file begins with.
func (x *ExportReader) Genesis() *Genesis { return x.genesis }

// Head returns the height of the last block the file holds.
func (x *ExportReader) Head() uint64 { return x.head }

// Next returns the next height's block, the certificate that committed it
// and the root of applying it, and io.EOF after the last. A record that is
// cut short, does not decode or is not for the height it should be gives
// an error naming the height and the byte offset of the record; bytes after
// the last record are an error too. Errors are sticky.
func (x *ExportReader) Next() (*Block, *Commit, Hash, error) {
	if x.err != nil {
		return nil, nil, Hash{}, x.err
	}
	if x.next > x.head {
		switch _, err := x.in.r.Peek(1); {
		case err == nil:
			x.err = fmt.Errorf("read export: data after the last block %d at byte offset %d", x.head, x.in.n)
		case !errors.Is(err, io.EOF):
			x.err = fmt.Errorf("read export: after block %d: %w", x.head, err)
		default:
			return nil, nil, Hash{}, io.EOF
		}
		return nil, nil, Hash{}, x.err
	}
	h, off := x.next, x.in.n
	fail := func(err error) (*Block, *Commit, Hash, error) {
		x.err = fmt.Errorf("read export: height %d (record at byte offset %d): %w", h, off, err)
		return nil, nil, Hash{}, x.err
	}
	// A fresh limit per record: a corrupt length cannot make the reader
	// allocate more than one record may take.
	x.stream.Reset(x.in, x.limit)
	var rec exportRecord
	if err := x.stream.Decode(&rec); err != nil {
		if errors.Is(err, io.EOF) {
			return fail(fmt.Errorf("file ends after %d of %d blocks: %w", h-1, x.head, io.ErrUnexpectedEOF))
		}
		return fail(err)
	}
	if got := rec.Block.Header.Height; got != h {
		return fail(fmt.Errorf("record holds block %d", got))
	}
	// The root stored with block h-1 is the one block h's header carries;
	// a file where they differ has been altered, and which one is wrong is
	// for the replay to say, so name both.
	if h > 1 && rec.Block.Header.ResultsRoot != x.prevResults {
		x.err = fmt.Errorf("read export: height %d: the stored results root %s differs from the one block %d's header carries (%s)",
			h-1, x.prevResults.Hex(), h, rec.Block.Header.ResultsRoot.Hex())
		return nil, nil, Hash{}, x.err
	}
	x.prevResults = rec.Results
	x.next++
	return rec.Block, rec.Commit, rec.Results, nil
}

// Blocks returns the file's records as a ResultsSource for VerifyChain, so
// that every stored results root is checked against the replay, the head
// block's included.
func (x *ExportReader) Blocks() ResultsSource { return exportBlocks{x} }

type exportBlocks struct{ x *ExportReader }

func (e exportBlocks) Next() (*Block, *Commit, error) {
	b, c, _, err := e.x.Next()
	return b, c, err
}

func (e exportBlocks) Results() (Hash, error) { return e.x.prevResults, nil }

// eofUnexpected turns a clean end of input, where a value must follow, into
// io.ErrUnexpectedEOF.
func eofUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// countingReader counts the bytes the RLP stream consumed; it is a
// ByteReader, so the stream adds no buffering and the count is exact.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}
