package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node"
)

func (a *app) newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import --home DIR --file FILE",
		Short: "Rebuild a node's store from an export: restore a backup",
		Long: `import rebuilds the chain data of the home DIR from FILE, an export made by
sagachain export, so that an export is a backup. The home must hold the
genesis.json of the exported chain, and the key and config.yaml to run it
with (copy them from the old home, or make it with sagachain init and
replace its genesis.json), and no chain data: import refuses a home whose
data directory holds anything, and never deletes or merges data.

It first checks the whole file against the home's genesis.json, as
sagachain verify --file FILE --genesis DIR/genesis.json does (every
signature, certificate and results root, by replaying the chain), then
commits its blocks through the node's own commit path, as a node catching
up from its peers does. A file of another chain, or one that fails any
check, is refused with exit code 5 and the home is left as it was.
Afterwards sagachain node --home DIR (or dev --home DIR) starts at the
export's head; a validator of a network catches up from its peers past it.`,
		Example: `  sagachain import --home ~/.sagachain/restored --file chain.export`,
		Args:    cobra.NoArgs,
		RunE:    a.runE(a.importChain),
	}
	cmd.Flags().String("home", "", "the home to restore into (required)")
	cmd.Flags().String("file", "", "the export file to restore (required)")
	return cmd
}

func (a *app) importChain(cmd *cobra.Command, _ []string) error {
	dir, err := a.homeFlag()
	if err != nil {
		return err
	}
	file := a.flagString("file")
	if file == "" {
		return usageError(errors.New("--file FILE is required"))
	}
	opts, err := node.LoadHome(dir, a.configPath, flagNames(a.cmd.Root())...)
	if err != nil {
		return inputError(err)
	}
	opts.Log = a.log
	// Ctrl-C stops the import between blocks and removes what it wrote.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := node.Import(ctx, opts, file)
	var f *ledger.Fault
	switch {
	case errors.As(err, &f):
		msg := fmt.Errorf("import: %s refused, nothing written: %w", file, f)
		if f.Height == 0 {
			msg = fmt.Errorf("import: %s refused, nothing written: %s", file, f.Reason)
		}
		return &exitError{code: exitFault, err: msg}
	case errors.Is(err, node.ErrHomeHasStore):
		return inputError(err)
	case err != nil:
		if inUse(err) {
			return fmt.Errorf("home %s is in use by another sagachain process; stop it first", dir)
		}
		return err
	}
	fmt.Fprintf(a.stdout, "imported %s, %s, %s into %s\n", plural(int(rep.Blocks), "block"),
		plural(int(rep.Verify.Signatures), "signature"), plural(int(rep.Verify.Operations), "operation"), dir)
	_, err = fmt.Fprintf(a.stdout, "head %d %s, chain %s (genesis %s)\n", rep.Head, rep.HeadHash.Hex(), opts.Genesis.ChainID, opts.Genesis.Hash().Hex())
	return err
}
