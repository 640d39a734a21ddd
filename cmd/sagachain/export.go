package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node"
	"github.com/sagachain/sagachain/node/rpc"
)

func (a *app) newExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export (--home DIR | --rpc URL) --out FILE",
		Short: "Write the whole chain to a portable file that anyone can verify offline",
		Long: `export writes the chain, from its genesis to its head, to FILE: the genesis,
then every block with the certificate that committed it (the format is
documented in the ledger package, ledger.Export). sagachain verify --file FILE
checks it offline.

--home reads a stopped node's store; a running node holds its store, so export
from it with --rpc URL instead. The file appears complete or not at all.`,
		Example: `  sagachain export --home ~/.sagachain/dev --out chain.export
  sagachain export --rpc http://127.0.0.1:8645 --out chain.export`,
		Args: cobra.NoArgs,
		RunE: a.runE(a.export),
	}
	cmd.Flags().String("home", "", "export a stopped node's chain from its home")
	cmd.Flags().String("rpc", "", "export the chain of the node at this RPC URL")
	cmd.Flags().String("out", "", "the file to write (required)")
	return cmd
}

// ledgerSource says where export and verify read a chain from: exactly one
// of the flags names, given on the command line or else through the
// environment or config file.
func (a *app) ledgerSource(names ...string) (name, value string, err error) {
	pick := func(given func(string) bool) (int, error) {
		var found []string
		for _, n := range names {
			if given(n) {
				found = append(found, n)
			}
		}
		switch len(found) {
		case 0:
			return 0, nil
		case 1:
			name, value = found[0], a.flagString(found[0])
			return 1, nil
		}
		return len(found), usageError(fmt.Errorf("%s and %s: choose one source", a.flagSource(found[0]), a.flagSource(found[1])))
	}
	// The command line first: SAGACHAIN_RPC set for the client commands
	// must not clash with a --home given here.
	if n, err := pick(func(n string) bool { return a.cmd.Flags().Changed(n) }); n > 0 || err != nil {
		return name, value, err
	}
	if n, err := pick(func(n string) bool { return a.flagString(n) != "" }); n > 0 || err != nil {
		return name, value, err
	}
	flags := make([]string, len(names))
	for i, n := range names {
		flags[i] = "--" + n
	}
	return "", "", usageError(fmt.Errorf("say where the chain is: one of %s", joinOr(flags)))
}

// joinOr joins words as "a, b or c".
func joinOr(words []string) string {
	if len(words) < 2 {
		return fmt.Sprint(words)
	}
	s := words[0]
	for _, w := range words[1 : len(words)-1] {
		s += ", " + w
	}
	return s + " or " + words[len(words)-1]
}

func (a *app) export(cmd *cobra.Command, _ []string) error {
	src, where, err := a.ledgerSource("home", "rpc")
	if err != nil {
		return err
	}
	out := a.flagString("out")
	if out == "" {
		return usageError(errors.New("--out FILE is required"))
	}
	var blocks uint64
	write := func(w io.Writer) error {
		if src == "home" {
			g, st, err := openHomeStore(where)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.InitGenesis(g.Hash()); err != nil {
				return fmt.Errorf("home %s: its store does not belong to its genesis.json: %w", where, err)
			}
			if blocks, err = st.Head(); err != nil {
				return err
			}
			return ledger.Export(w, g, st)
		}
		ctx := cmd.Context()
		c, err := rpc.Dial(ctx, where)
		if err != nil {
			return inputErrorf("%s: %w", a.flagSource("rpc"), err)
		}
		defer c.Close()
		g, err := c.Genesis(ctx)
		if err != nil {
			return a.nodeError(c, "", err)
		}
		blocks, err = exportRPC(ctx, w, g, c)
		if err != nil {
			return a.nodeError(c, "", err)
		}
		return nil
	}
	if err := writeAtomically(out, write); err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "exported %s to %s\n", plural(int(blocks), "block"), out)
	return err
}

// openHomeStore opens the store of a stopped node's home with its genesis.
func openHomeStore(dir string) (*ledger.Genesis, *ledger.BadgerStore, error) {
	g, err := ledger.LoadGenesis(filepath.Join(dir, node.GenesisFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, inputErrorf("home %s: %w: it has no %s", dir, node.ErrNotInitialised, node.GenesisFile)
	}
	if err != nil {
		return nil, nil, inputError(err)
	}
	data := filepath.Join(dir, node.DataDir)
	if _, err := os.Stat(data); err != nil {
		return nil, nil, inputErrorf("home %s has no chain data (%s): its node has never run", dir, data)
	}
	st, err := ledger.OpenBadger(data)
	if err != nil {
		if inUse(err) {
			return nil, nil, fmt.Errorf("the node of home %s is running and holds its store; stop it, or use --rpc with its RPC URL", dir)
		}
		return nil, nil, err
	}
	return g, st, nil
}

// exportRPC writes the chain of the node c to w in the export format of
// ledger.Export, reading it a page of blocks at a time. ledger.Export reads
// from a Store; this writes the same items from the node's blocks: the
// magic line, the genesis JSON, the head, and one [block, certificate,
// results] record per height. verify --file reads either.
func exportRPC(ctx context.Context, w io.Writer, g *ledger.Genesis, c *rpc.Client) (uint64, error) {
	src := c.BlockSource(ctx)
	head, err := src.Head()
	if err != nil {
		return 0, err
	}
	genesisJSON, err := json.Marshal(g)
	if err != nil {
		return 0, err
	}
	if _, err := io.WriteString(w, ledger.ExportMagic); err != nil {
		return 0, err
	}
	if err := rlp.Encode(w, genesisJSON); err != nil {
		return 0, err
	}
	if err := rlp.Encode(w, head); err != nil {
		return 0, err
	}
	for h := uint64(1); h <= head; h++ {
		b, cert, err := src.Next()
		if err != nil {
			return h - 1, err
		}
		rec := exportRecord{Block: b, Commit: cert, Results: src.Results()}
		if err := rlp.Encode(w, &rec); err != nil {
			return h - 1, fmt.Errorf("height %d: %w", h, err)
		}
	}
	return head, nil
}

// exportRecord is one height of an export file (see ledger.Export).
type exportRecord struct {
	Block   *ledger.Block
	Commit  *ledger.Commit
	Results ledger.Hash
}

// writeAtomically writes a file through write: to a temporary file in the
// same directory, synced and then renamed into place, so that the file
// appears complete or not at all.
func writeAtomically(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return inputErrorf("--out: %w", err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(bw); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
