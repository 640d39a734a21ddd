package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
)

func (a *app) newChainCmd() *cobra.Command {
	chain := &cobra.Command{
		Use:   "chain",
		Short: "Show the ledger: its head, or one block",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError(errors.New("chain needs a subcommand: head or block"))
		},
	}
	head := &cobra.Command{
		Use:   "head [--json]",
		Short: "Show the newest committed block",
		Args:  cobra.NoArgs,
		RunE:  a.runE(a.chainHead),
	}
	block := &cobra.Command{
		Use:   "block N [--json]",
		Short: "Show the block at height N: header, entries, certificates",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(fmt.Errorf("block takes one height, got %d arguments", len(args)))
			}
			return nil
		},
		RunE: a.runE(a.chainBlock),
	}
	for _, c := range []*cobra.Command{head, block} {
		addRPCFlag(c)
		c.Flags().Bool("json", false, "print JSON")
	}
	chain.AddCommand(head, block)
	return chain
}

func (a *app) chainHead(cmd *cobra.Command, _ []string) error {
	asJSON, err := a.flagBool("json")
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c, h, err := a.dialHead(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if asJSON {
		return a.printJSON(h)
	}
	_, err = fmt.Fprintf(a.stdout, "height      %d\nhash        %s\ntime        %s\nchain       %s\nvalidators  %d\nmempool     %d\n",
		h.Height, h.Hash.Hex(), msTime(h.Time), h.ChainID, h.Validators, h.Mempool)
	return err
}

func (a *app) chainBlock(cmd *cobra.Command, args []string) error {
	asJSON, err := a.flagBool("json")
	if err != nil {
		return err
	}
	height, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || height == 0 {
		return usageError(fmt.Errorf("block height %q: want a whole number from 1", args[0]))
	}
	ctx := cmd.Context()
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	b, err := c.Block(ctx, height)
	if err != nil {
		return a.nodeError(c, "", err)
	}
	if asJSON {
		return a.printJSON(b)
	}
	var s strings.Builder
	writeBlock(&s, b)
	_, err = fmt.Fprint(a.stdout, printableText(s.String()))
	return err
}

// writeBlock writes a block for a person: the header, one line per entry,
// and who signed it.
func writeBlock(s *strings.Builder, b *rpc.BlockInfo) {
	proposer := b.Proposer.Hex()
	if b.ProposerName != "" {
		proposer += " (" + printable(b.ProposerName) + ")"
	}
	fmt.Fprintf(s, "block %d  %s\n", b.Height, b.Hash.Hex())
	fmt.Fprintf(s, "time      %s  round %d\n", msTime(b.Time), b.Round)
	fmt.Fprintf(s, "prev      %s\n", b.Prev.Hex())
	fmt.Fprintf(s, "proposer  %s\n", proposer)
	fmt.Fprintf(s, "entries   %d  (root %s)\n", len(b.Entries), shortID(b.EntriesRoot.Hex()))
	for _, e := range b.Entries {
		fmt.Fprintf(s, "  %3d  %-20s", e.Index, printable(e.Kind))
		if e.Operation != nil {
			fmt.Fprintf(s, " op %s", shortID(e.Operation.Hex()))
		}
		switch {
		case e.Name != "":
			fmt.Fprintf(s, " %s", printable(e.Name))
		case e.Stage != nil:
			ids := make([]string, len(e.Tasks))
			for i, t := range e.Tasks {
				ids[i] = t.ID
			}
			fmt.Fprintf(s, " stage %d: %s", *e.Stage, printable(strings.Join(ids, ", ")))
		case e.Task != "":
			fmt.Fprintf(s, " task %s", printable(e.Task))
			if e.From != nil {
				fmt.Fprintf(s, ", from %s", e.From.Hex())
			}
			if e.Attempts > 0 {
				fmt.Fprintf(s, ", %s", plural(int(e.Attempts), "attempt"))
			}
			if e.Error != "" {
				fmt.Fprintf(s, ": %s", printable(e.Error))
			}
		case e.Functions != nil:
			fmt.Fprintf(s, " functions %s", printable(strings.Join(e.Functions, ", ")))
		case e.Kind == ledger.KindHeartbeat.String() && e.Executor != nil:
			fmt.Fprintf(s, " from %s, signed at %s", e.Executor.Hex(), msTime(e.Time))
		}
		if e.DecodeError != "" {
			fmt.Fprintf(s, " (cannot decode: %s)", printable(e.DecodeError))
		}
		s.WriteString("\n")
	}
	fmt.Fprintf(s, "commit    round %d, %s\n", b.Commit.Round, plural(len(b.Commit.Signers), "signature"))
}

// msTime formats a block time (Unix milliseconds) in UTC.
func msTime(ms uint64) string {
	return time.UnixMilli(int64(ms)).UTC().Format("2006-01-02T15:04:05.000Z")
}
