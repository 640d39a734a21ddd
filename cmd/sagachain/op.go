package main

import (
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

func (a *app) newOpCmd() *cobra.Command {
	op := &cobra.Command{
		Use:   "op",
		Short: "Show, list and retry operations",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError(errors.New("op needs a subcommand: get, list or retry"))
		},
	}
	get := &cobra.Command{
		Use:   "get ID [--json]",
		Short: "Show one operation: its stages, tasks, outputs, verdicts and history",
		Args:  oneID,
		RunE:  a.runE(a.opGet),
	}
	get.Flags().Bool("json", false, "print the operation as JSON (SPEC §2)")
	list := &cobra.Command{
		Use:   "list [--status S] [--limit N] [--json]",
		Short: "List operations, newest first",
		Args:  cobra.NoArgs,
		RunE:  a.runE(a.opList),
	}
	list.Flags().String("status", "", "only operations in this status: running, completed, rolling_back, rolled_back or rollback_failed")
	list.Flags().Int("limit", rpc.DefaultOpsLimit, fmt.Sprintf("list at most this many (at most %d)", rpc.MaxOpsLimit))
	list.Flags().Bool("json", false, "print the operations as a JSON array of what op get --json prints")
	retry := &cobra.Command{
		Use:   "retry ID [--key FILE]",
		Short: "Run the remaining rollbacks of a rollback_failed operation again",
		Long: `retry asks the network to run again the rollbacks that failed, and those of
the stages below, of an operation that is rollback_failed. It is signed with
your client key (or --key FILE), which must be a genesis submitter.`,
		Args: oneID,
		RunE: a.runE(a.opRetry),
	}
	retry.Flags().String("key", "", "the key to sign with (default ~/.sagachain/client.key)")
	for _, c := range []*cobra.Command{get, list, retry} {
		addRPCFlag(c)
	}
	op.AddCommand(get, list, retry)
	return op
}

// oneID accepts exactly one argument, an operation id.
func oneID(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError(fmt.Errorf("%s takes one operation id, got %d arguments", cmd.Name(), len(args)))
	}
	return nil
}

func (a *app) opGet(cmd *cobra.Command, args []string) error {
	asJSON, err := a.flagBool("json")
	if err != nil {
		return err
	}
	id, err := parseOpID(args[0])
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	v, err := c.Operation(ctx, id)
	if err != nil {
		return a.nodeError(c, "op get", err)
	}
	if asJSON {
		return a.printJSON(v)
	}
	var b strings.Builder
	writeOperation(&b, *v)
	_, err = fmt.Fprint(a.stdout, printableText(b.String()))
	return err
}

// writeOperation writes an operation for a person: what it is, each stage
// with each task (functions, executor and where it moved from, attempts,
// rule and verdict, output, error), then its history. Every recorded string goes through printable,
// since anyone who can submit, or whose function is called, wrote it.
func writeOperation(b *strings.Builder, v taskrt.OperationView) {
	fmt.Fprintf(b, "%s %s\n", printable(v.Name), printable(v.ID))
	fmt.Fprintf(b, "status     %s\n", printable(string(v.Status)))
	if v.Submitter != "" {
		fmt.Fprintf(b, "submitter  %s\n", printable(v.Submitter))
	}
	fmt.Fprintf(b, "submitted  block %d\n", v.SubmittedHeight)
	idW := 0
	for _, s := range v.Stages {
		for _, t := range s.Tasks {
			idW = max(idW, len(t.ID))
		}
	}
	for _, s := range v.Stages {
		fmt.Fprintf(b, "stage %d  %s", s.Index, printable(s.Status))
		if s.Hash != "" {
			fmt.Fprintf(b, "  record %s (prev %s)", printable(shortID(s.Hash)), printable(shortID(s.Prev)))
		}
		b.WriteString("\n")
		for _, t := range s.Tasks {
			fmt.Fprintf(b, "  %-*s  %s  run %s, rollback %s", idW, printable(t.ID), printable(string(t.Status)), printable(t.Run), printable(rollbackName(t.Rollback)))
			if t.Attempts > 0 {
				fmt.Fprintf(b, ", %s", plural(t.Attempts, "attempt"))
			}
			b.WriteString("\n")
			pad := strings.Repeat(" ", idW+4)
			if t.Executor != "" {
				fmt.Fprintf(b, "%sexecutor  %s\n", pad, printable(t.Executor))
			}
			writeMoves(b, pad, "moved", t.Executors)
			if t.RollbackExecutor != "" {
				fmt.Fprintf(b, "%sundo by   %s\n", pad, printable(t.RollbackExecutor))
			}
			writeMoves(b, pad, "undo move", t.RollbackExecutors)
			if t.Rule != "" {
				verdict := t.Validation
				if verdict == "" {
					verdict = "not yet checked"
				}
				fmt.Fprintf(b, "%srule      %s  (%s)\n", pad, printable(t.Rule), printable(string(verdict)))
			}
			if t.Output != nil {
				out, err := json.Marshal(t.Output)
				if err != nil {
					out = []byte(fmt.Sprint(t.Output))
				}
				fmt.Fprintf(b, "%soutput    %s\n", pad, printable(string(out)))
			}
			if t.Error != "" {
				fmt.Fprintf(b, "%serror     %s\n", pad, printable(t.Error))
			}
			if t.RollbackAttempts > 0 {
				fmt.Fprintf(b, "%srollback  %s", pad, plural(t.RollbackAttempts, "attempt"))
				if t.RollbackError != "" {
					fmt.Fprintf(b, ": %s", printable(t.RollbackError))
				}
				b.WriteString("\n")
			}
		}
	}
	b.WriteString("events\n")
	for _, e := range v.Events {
		fmt.Fprintf(b, "  block %-6d %3d  %s", e.Height, e.Seq, printable(string(e.Type)))
		if e.Stage != nil {
			fmt.Fprintf(b, " stage %d", *e.Stage)
		}
		if e.Task != "" {
			fmt.Fprintf(b, " %s", printable(e.Task))
		}
		if e.Valid != nil {
			if *e.Valid {
				b.WriteString(" valid")
			} else {
				b.WriteString(" invalid")
			}
		}
		if e.Status != "" {
			fmt.Fprintf(b, " %s", printable(e.Status))
		}
		if e.From != "" || e.To != "" {
			fmt.Fprintf(b, " %s → %s", printable(e.From), printable(e.To))
		}
		if e.Reason != "" {
			fmt.Fprintf(b, ": %s", printable(e.Reason))
		}
		b.WriteString("\n")
	}
}

func (a *app) opList(cmd *cobra.Command, _ []string) error {
	asJSON, err := a.flagBool("json")
	if err != nil {
		return err
	}
	limit, err := a.flagInt("limit")
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ops, err := c.Operations(ctx, rpc.OpsQuery{Status: a.flagString("status"), Limit: limit})
	if err != nil {
		return a.nodeError(c, "", err)
	}
	if asJSON {
		return a.printJSON(ops)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tBLOCK\tSTAGES\tTASKS")
	for _, v := range ops {
		tasks := 0
		for _, s := range v.Stages {
			tasks += len(s.Tasks)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", printable(v.ID), printable(v.Name), printable(string(v.Status)), v.SubmittedHeight, len(v.Stages), tasks)
	}
	return tw.Flush()
}

func (a *app) opRetry(cmd *cobra.Command, args []string) error {
	id, err := parseOpID(args[0])
	if err != nil {
		return err
	}
	key, err := a.clientKey()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c, head, err := a.dialHead(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	r := &ledger.Retry{Operation: id, Nonce: mathrand.Uint64()}
	if err := r.Sign(key, head.ChainID); err != nil {
		return err
	}
	e, err := ledger.NewEntry(ledger.KindRetry, r)
	if err != nil {
		return err
	}
	if _, err := c.Submit(ctx, e); err != nil {
		return a.nodeError(c, "op retry "+id.Hex(), err)
	}
	_, err = fmt.Fprintf(a.stdout, "retry of %s recorded: its remaining rollbacks run again; follow it with sagachain op get %s\n", id.Hex(), id.Hex())
	return err
}

// writeMoves writes the moves of an executor history (the steps after the
// first assignment), one line each: the block, from whom to whom, why.
func writeMoves(b *strings.Builder, pad, label string, history []taskrt.Assignment) {
	for k := 1; k < len(history); k++ {
		from, to := history[k-1], history[k]
		fmt.Fprintf(b, "%s%-9s at block %d: %s → %s", pad, label, to.Height, printable(from.Executor), printable(to.Executor))
		if to.Reason != "" {
			fmt.Fprintf(b, " (%s)", printable(to.Reason))
		}
		b.WriteString("\n")
	}
}
