package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node"
	"github.com/sagachain/sagachain/node/rpc"
	"github.com/sagachain/sagachain/taskrt"
)

func (a *app) newSubmitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "submit FILE [--rpc URL] [--input k=v]... [--wait] [--json] [--key FILE]",
		Short: "Submit an operation to a node, and with --wait follow it to its end",
		Long: `submit checks an operation file (- reads stdin), signs it with your client key
(~/.sagachain/client.key, or --key FILE) and sends it to a node, which checks
it again (its functions must be hosted, your key must be a genesis submitter)
and returns once a block records it. It prints the operation id; with --wait
it follows the operation live, stage by stage, to its end.

A slow commit is not a failure: when the node does not confirm the commit in
time (it answers after 30s) or its answer is lost, submit says so on stderr
with the operation id and keeps waiting for the commit, sending the same
signed bytes again when the node has lost them, which is a no-op when it has
not. Ctrl-C stops the waiting, not the operation: sagachain op get ID then
tells whether it committed. Submitting the file again instead makes a new
operation.

Exit codes: 0 submitted (with --wait: completed), 2 refused (bad file, unknown
function, key not allowed: nothing was recorded), 3 rolled back, 4
rollback_failed, 1 anything else.`,
		Example: `  sagachain submit testnet/ops/trip.yaml --wait
  sagachain submit testnet/ops/trip.yaml --input traveler="Grace Hopper" --json
  SAGACHAIN_RPC=http://10.0.0.5:8645 sagachain submit ops/book.yaml`,
		Args: oneFile,
		RunE: a.runE(a.submit),
	}
	addRPCFlag(cmd)
	addInputFlag(cmd)
	cmd.Flags().Bool("wait", false, "follow the operation to its end; the exit code says how it ended")
	cmd.Flags().Bool("json", false, `print {"id": ...}, or with --wait only the final operation (what op get --json prints)`)
	cmd.Flags().String("key", "", "the key to sign with (default ~/.sagachain/client.key)")
	cmd.Flags().Duration("answer-timeout", node.SubmitTimeout+10*time.Second, "how long to wait for the node's answer before following the commit by other means")
	// For tests, which make the answer late without waiting for it.
	_ = cmd.Flags().MarkHidden("answer-timeout")
	return cmd
}

func (a *app) submit(cmd *cobra.Command, args []string) error {
	asJSON, err := a.flagBool("json")
	if err != nil {
		return err
	}
	wait, err := a.flagBool("wait")
	if err != nil {
		return err
	}
	inputs, err := a.inputs()
	if err != nil {
		return err
	}
	plan, _, err := a.loadOperation(args[0], inputs)
	if err != nil {
		return err
	}
	key, err := a.clientKey()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, head, err := a.dialHead(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	e, err := submission(plan.Op, key, head.ChainID)
	if err != nil {
		return err
	}
	answerWait, err := time.ParseDuration(a.flagString("answer-timeout"))
	if err != nil || answerWait <= 0 {
		return usageError(fmt.Errorf("%s: want a positive duration such as 40s, got %q", a.flagSource("answer-timeout"), a.flagString("answer-timeout")))
	}
	sent := time.Now()
	res, err := a.sendSubmission(ctx, c, e, args[0], answerWait)
	if err != nil {
		return err
	}
	id := res.ID.Hex()
	if !wait {
		if asJSON {
			return a.printJSON(map[string]string{"id": id})
		}
		_, err := fmt.Fprintln(a.stdout, id)
		return err
	}
	v, err := a.follow(ctx, c, *res.ID, sent, asJSON)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped following operation %s; it carries on: sagachain op get %s", id, id)
		}
		return err
	}
	if asJSON {
		if err := a.printJSON(v); err != nil {
			return err
		}
	}
	return finalStatus(v, asJSON)
}

// sendSubmission sends a submission and returns once a block holds it.
// The node answers sc_submit once it has committed the entry, or after
// node.SubmitTimeout with an error although the entry stays queued and may
// commit later; an answer can also be lost on the way. Neither is a
// failure, and submitting the file again would make a second operation:
// so, after answerWait or any failure other than a refusal, it says so on
// stderr with the id, and waits for the commit through the operation's
// status subscription, sending the same signed bytes again whenever the
// node knows nothing of them (a no-op for a node that does: the id is the
// entry's hash). It fails for a refusal (nothing recorded), a node it
// cannot reach, or an interrupt, saying how to follow the operation.
func (a *app) sendSubmission(ctx context.Context, c *rpc.Client, e ledger.Entry, path string, answerWait time.Duration) (rpc.SubmitResult, error) {
	id := e.Hash()
	committed := rpc.SubmitResult{Hash: id, Kind: e.Kind.String(), ID: &id}
	callCtx, cancel := context.WithTimeout(ctx, answerWait)
	res, err := c.Submit(callCtx, e)
	cancel()
	if err == nil {
		return res, nil
	}
	refused := func(err error) bool {
		return errors.Is(err, rpc.ErrInvalidInput) || errors.Is(err, rpc.ErrNotFound) || errors.Is(err, rpc.ErrMempoolFull)
	}
	if refused(err) || ctx.Err() != nil {
		return res, a.nodeError(c, path, err)
	}
	fmt.Fprintf(a.stderr, "submit: operation %s was sent, and the node has not confirmed its commit yet (%v); waiting for it. "+
		"Ctrl-C stops the waiting, not the operation: then `sagachain op get %s` tells whether it committed. "+
		"Do not submit the file again: that makes a new operation.\n", id.Hex(), err, id.Hex())
	stopped := func(err error) error {
		return fmt.Errorf("stopped waiting for operation %s to commit (%v); it may yet: sagachain op get %s", id.Hex(), err, id.Hex())
	}
	unreachable := 0
	for {
		if ctx.Err() != nil {
			return res, stopped(ctx.Err())
		}
		status := make(chan rpc.OperationStatus, 1)
		sub, err := c.SubscribeOperationStatus(ctx, id, status)
		if err == nil {
			unreachable = 0
			select {
			case <-status:
				sub.Unsubscribe()
				return committed, nil
			case <-time.After(answerWait):
				// Still pending: look again, in case the node dropped it.
				sub.Unsubscribe()
				continue
			case err := <-sub.Err():
				sub.Unsubscribe()
				if err == nil {
					err = errors.New("the node ended the subscription")
				}
				fmt.Fprintf(a.stderr, "submit: following operation %s: %v; looking again\n", id.Hex(), err)
				continue
			case <-ctx.Done():
				sub.Unsubscribe()
				return res, stopped(ctx.Err())
			}
		}
		if errors.Is(err, rpc.ErrNotFound) {
			// Neither committed nor queued: the node lost it (a restart
			// empties its mempool). The same bytes again, with the node's
			// own wait: it answers once they commit.
			res, err = c.Submit(ctx, e)
			switch {
			case err == nil:
				return res, nil
			case refused(err):
				return res, a.nodeError(c, path, err)
			}
		}
		if ctx.Err() != nil {
			return res, stopped(ctx.Err())
		}
		var re *rpc.Error
		if !errors.As(err, &re) {
			// Not an answer of the node: a few tries before giving up.
			if unreachable++; unreachable >= 5 {
				return res, fmt.Errorf("operation %s was sent, but the node at %s cannot be reached to tell whether it committed (%v): once it is back, sagachain op get %s --rpc %s",
					id.Hex(), c.URL(), err, id.Hex(), c.URL())
			}
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
	}
}

// submission signs an operation as a submission entry. The nonce makes
// every submission of one file a distinct operation.
func submission(op *taskrt.Operation, key *ledger.PrivateKey, chainID string) (ledger.Entry, error) {
	raw, err := json.Marshal(op)
	if err != nil {
		return ledger.Entry{}, fmt.Errorf("encode the operation: %w", err)
	}
	s := &ledger.Submission{Operation: raw, Nonce: mathrand.Uint64()}
	if err := s.Sign(key, chainID); err != nil {
		return ledger.Entry{}, err
	}
	return ledger.NewEntry(ledger.KindSubmission, s)
}

// follow subscribes to an operation submitted at sent and, unless quiet,
// prints each event the node records as it arrives; it returns the final
// view.
func (a *app) follow(ctx context.Context, c *rpc.Client, id ledger.Hash, sent time.Time, quiet bool) (taskrt.OperationView, error) {
	views := make(chan taskrt.OperationView, 16)
	sub, err := c.SubscribeOperation(ctx, id, views)
	if err != nil {
		return taskrt.OperationView{}, a.nodeError(c, "", err)
	}
	defer sub.Unsubscribe()
	var (
		live    *renderer
		printed int
		last    taskrt.OperationView
	)
	show := func(v taskrt.OperationView) error {
		last = v
		if quiet {
			return nil
		}
		if live == nil {
			live = newRenderer(a.stdout, v.ID, viewTasks(v), useColor(a.stdout), true)
			live.start = sent
		}
		st := newViewState(v)
		for _, e := range v.Events[min(printed, len(v.Events)):] {
			live.event(e, st)
		}
		printed = max(printed, len(v.Events))
		return live.err
	}
	for {
		select {
		case v := <-views:
			if err := show(v); err != nil {
				return last, err
			}
		case err, ok := <-sub.Err():
			// The subscription ends after the final view, which views
			// already holds.
			for drained := false; !drained; {
				select {
				case v := <-views:
					if err := show(v); err != nil {
						return last, err
					}
				default:
					drained = true
				}
			}
			if ok && err != nil {
				return last, a.nodeError(c, "", err)
			}
			if !last.Status.Final() {
				return last, fmt.Errorf("the node ended the subscription to operation %s before it finished (status %q)", id.Hex(), last.Status)
			}
			return last, nil
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
}

// finalStatus ends submit --wait: with --json the view, and the exit code
// of its status; a failure names its cause on stderr.
func finalStatus(v taskrt.OperationView, asJSON bool) error {
	code := statusExitCode(v.Status)
	if code == exitOK {
		return nil
	}
	msg := fmt.Sprintf("operation %s %s", v.Name, v.Status)
	if causes := failures(v); len(causes) > 0 {
		msg += ": " + strings.Join(causes, "; ")
	}
	return &exitError{code: code, err: errors.New(msg), quiet: !asJSON}
}
