package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node"
	"github.com/sagachain/sagachain/node/rpc"
)

func (a *app) newVerifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify (--home DIR | --file FILE | --rpc URL) [--genesis FILE] [--json]",
		Short: "Check a whole chain from its genesis alone: the auditor's check",
		Long: `verify checks a chain against a genesis (SPEC §3): the hash links, every
block's proposer and signature, every commit certificate, the entries roots,
every submission's and attestation's signature and authorisation, and, by
replaying the state machine, every derived record and results root. It prints
what it checked, or the first bad block, entry and reason (exit code 5).

The genesis is the trust anchor: --genesis FILE, else the home's genesis.json
(--home), else the genesis embedded in the export file (--file; said so on
stderr). Over --rpc, bring your own with --genesis, or accept the node's with
--trust-node-genesis. A running node holds its store: verify it with --rpc.`,
		Example: `  sagachain verify --file chain.export --genesis genesis.json
  sagachain verify --home ~/.sagachain/dev
  sagachain verify --rpc http://127.0.0.1:8645 --genesis genesis.json --json`,
		Args: cobra.NoArgs,
		RunE: a.runE(a.verify),
	}
	cmd.Flags().String("home", "", "verify a stopped node's chain from its home")
	cmd.Flags().String("file", "", "verify an export file (see export)")
	cmd.Flags().String("rpc", "", "verify the chain of the node at this RPC URL")
	cmd.Flags().String("genesis", "", "the genesis to verify against")
	cmd.Flags().Bool("trust-node-genesis", false, "with --rpc and no --genesis: verify against the node's own genesis")
	cmd.Flags().Bool("json", false, `print the report, or {"ok": false, "fault": {...}}`)
	return cmd
}

// verifyJSON is what verify --json prints.
type verifyJSON struct {
	OK bool `json:"ok"`
	*ledger.VerifyReport
	Fault *ledger.Fault `json:"fault,omitempty"`
}

func (a *app) verify(cmd *cobra.Command, _ []string) error {
	asJSON, err := a.flagBool("json")
	if err != nil {
		return err
	}
	trustNode, err := a.flagBool("trust-node-genesis")
	if err != nil {
		return err
	}
	src, where, err := a.ledgerSource("home", "file", "rpc")
	if err != nil {
		return err
	}
	var mine *ledger.Genesis
	if p := a.flagString("genesis"); p != "" {
		if mine, err = ledger.LoadGenesis(p); err != nil {
			return inputErrorf("--genesis: %w", err)
		}
	}
	fault := func(f *ledger.Fault) error {
		if asJSON {
			if err := a.printJSON(verifyJSON{Fault: f}); err != nil {
				return err
			}
		}
		err := fmt.Errorf("verify: %w", f)
		if f.Height == 0 {
			// Found before the first block: the file or the genesis.
			err = fmt.Errorf("verify: %s", f.Reason)
		}
		return &exitError{code: exitFault, err: err, quiet: asJSON}
	}
	// anchor checks a genesis found with the chain against the one given.
	anchor := func(theirs *ledger.Genesis, whose string) error {
		if mine != nil && mine.Hash() != theirs.Hash() {
			return fault(&ledger.Fault{Entry: -1, Reason: fmt.Sprintf("the genesis of %s (hash %s) is not the one given with --genesis (hash %s)",
				whose, theirs.Hash().Hex(), mine.Hash().Hex())})
		}
		return nil
	}

	var g *ledger.Genesis
	var blocks ledger.BlockSource
	switch src {
	case "home":
		hg, st, err := openHomeStore(where)
		var damaged *ledger.StoreFault
		if errors.As(err, &damaged) {
			return fault(&ledger.Fault{Entry: -1, Reason: damaged.Error(), Err: err})
		}
		if err != nil {
			return err
		}
		defer st.Close()
		// A store that lost blocks its node committed is a fault even
		// when what is left of it verifies.
		var behind *node.StoreBehindError
		if err := node.CheckHighWater(where, st); errors.As(err, &behind) {
			return fault(&ledger.Fault{Height: behind.Mark.Height, Entry: -1, Reason: behind.Error(), Err: err})
		} else if err != nil {
			return err
		}
		g = hg
		if mine != nil {
			g = mine
		}
		blocks = ledger.StoreSource(st)
	case "file":
		f, err := os.Open(where)
		if err != nil {
			return inputErrorf("--file: %w", err)
		}
		defer f.Close()
		x, err := ledger.ReadExport(f)
		if err != nil {
			return fault(&ledger.Fault{Entry: -1, Reason: err.Error(), Err: err})
		}
		if err := anchor(x.Genesis(), where); err != nil {
			return err
		}
		g = x.Genesis()
		if mine == nil {
			fmt.Fprintln(a.stderr, "verify: using the genesis embedded in the file; pass --genesis to check against your own")
		}
		blocks = x.Blocks()
	case "rpc":
		if mine == nil && !trustNode {
			return usageError(errors.New("--rpc needs --genesis FILE, the genesis you trust (or --trust-node-genesis to take the node's word for it)"))
		}
		ctx := cmd.Context()
		c, err := rpc.Dial(ctx, where)
		if err != nil {
			return inputErrorf("%s: %w", a.flagSource("rpc"), err)
		}
		defer c.Close()
		theirs, err := c.Genesis(ctx)
		if err != nil {
			return a.nodeError(c, "", err)
		}
		if err := anchor(theirs, "the node at "+where); err != nil {
			return err
		}
		g = theirs
		blocks = c.BlockSource(ctx)
	}

	rep, err := ledger.VerifyChain(g, blocks)
	var f *ledger.Fault
	if errors.As(err, &f) {
		return fault(f)
	}
	if err != nil {
		return err
	}
	if asJSON {
		return a.printJSON(verifyJSON{OK: true, VerifyReport: rep})
	}
	var counts []string
	for _, s := range slices.Sorted(maps.Keys(rep.Statuses)) {
		counts = append(counts, fmt.Sprintf("%d %s", rep.Statuses[s], s))
	}
	fmt.Fprintf(a.stdout, "verified %s, %s, %s\n", plural(int(rep.Blocks), "block"), plural(int(rep.Signatures), "signature"), plural(int(rep.Operations), "operation"))
	fmt.Fprintf(a.stdout, "head %d %s, chain %s (genesis %s)\n", rep.Head, rep.HeadHash.Hex(), g.ChainID, g.Hash().Hex())
	if len(counts) > 0 {
		fmt.Fprintf(a.stdout, "operations: %s\n", strings.Join(counts, ", "))
	}
	return nil
}
