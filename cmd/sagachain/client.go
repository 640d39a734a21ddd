package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
)

// rpcFlagUsage documents --rpc on the commands that talk to a node.
const rpcFlagUsage = "the node's RPC URL (default $SAGACHAIN_RPC, else " + rpc.DefaultURL + ")"

// addRPCFlag adds --rpc URL to a command that talks to a node.
func addRPCFlag(cmd *cobra.Command) {
	cmd.Flags().String("rpc", "", rpcFlagUsage)
}

// rpcDefaultURL is the URL of a node when neither --rpc nor SAGACHAIN_RPC
// nor the config file names one.
func rpcDefaultURL() string { return rpc.DefaultURL }

// rpcURL resolves --rpc: the command line, else SAGACHAIN_RPC, else the
// default. (A config file's rpc key is the node's rpc.listen setting, not
// this flag.)
func (a *app) rpcURL() string {
	if u, ok := a.flags.Get("rpc").(string); ok && u != "" {
		return u
	}
	return rpcDefaultURL()
}

// dial connects to the node --rpc names.
func (a *app) dial(ctx context.Context) (*rpc.Client, error) {
	c, err := rpc.Dial(ctx, a.rpcURL())
	if err != nil {
		return nil, inputErrorf("%s: %w", a.flagSource("rpc"), err)
	}
	return c, nil
}

// dialHead connects to the node and asks for its head, which every command
// that writes or reports the chain starts from. The caller closes the
// client.
func (a *app) dialHead(ctx context.Context) (*rpc.Client, rpc.HeadInfo, error) {
	c, err := a.dial(ctx)
	if err != nil {
		return nil, rpc.HeadInfo{}, err
	}
	head, err := c.Head(ctx)
	if err != nil {
		err = a.nodeError(c, "", err)
		c.Close()
		return nil, rpc.HeadInfo{}, err
	}
	return c, head, nil
}

// nodeError explains an error of a call to the node about what (an
// operation file, an id; empty for none): the node's refusal of bad input
// (exit 2, nothing recorded) as it said it; a node that cannot be reached
// with a hint; a busy node as a failure to retry later.
func (a *app) nodeError(c *rpc.Client, what string, err error) error {
	if what != "" {
		what += ": "
	}
	var re *rpc.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpc.ErrInvalidInput):
		return inputErrorf("%sthe node refused it: %w", what, err)
	case errors.Is(err, rpc.ErrNotFound):
		return inputErrorf("%s%w", what, err)
	case errors.Is(err, rpc.ErrMempoolFull):
		return fmt.Errorf("%sthe node is too busy to queue it now (nothing was recorded); retry later: %w", what, err)
	case errors.As(err, &re):
		return fmt.Errorf("%sthe node at %s failed: %w", what, c.URL(), err)
	case errors.Is(err, context.Canceled):
		return err
	}
	return fmt.Errorf("%scannot reach a node at %s (is `sagachain dev` running? --rpc names another): %w", what, c.URL(), err)
}

var hashPattern = regexp.MustCompile(`^0x[0-9a-fA-F]{64}$`)

// parseOpID parses an operation id: 0x and 64 hex digits.
func parseOpID(s string) (ledger.Hash, error) {
	if !hashPattern.MatchString(s) {
		return ledger.Hash{}, usageError(fmt.Errorf("operation id %q: want 0x and 64 hex digits", s))
	}
	var h ledger.Hash
	if err := h.UnmarshalText([]byte(s)); err != nil {
		return ledger.Hash{}, usageError(fmt.Errorf("operation id %q: %w", s, err))
	}
	return h, nil
}
