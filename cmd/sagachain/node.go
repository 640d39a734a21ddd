package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node"
	"github.com/sagachain/sagachain/node/web"
)

// devChainID is the chain id of the homes `dev` makes.
const devChainID = "sagachain-dev"

func (a *app) newDevCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev [--home DIR] [--rpc ADDR] [--fresh] [--no-demo]",
		Short: "Run a single-validator network on this machine",
		Long: `dev runs a one-validator chain on this machine with the builtin functions
(echo, sleep, fail, noop) and those of the home's config. The first run makes
the home (~/.sagachain/dev unless --home says otherwise) with a new validator
key and a genesis whose one submitter is your client key
(~/.sagachain/client.key, created if missing); later runs carry on with the
chain kept there. --fresh starts a new chain in the same home: it deletes the
home's data directory and writes a new genesis (same validator, your client
key among the submitters), and keeps key.hex and config.yaml.

It also runs the travel demo (see sagachain demo travel) on a free port of
127.0.0.1, with its inventory in the home's demo-travel.json, and hosts its
functions (airline.reserve, hotel.cancel, payment.charge, ...) besides those
of the config, which wins where both name a function; --no-demo leaves it
out. --fresh also resets the demo's inventory.

It prints the RPC and web UI addresses once the node is up, logs to stderr,
and stops cleanly on Ctrl-C (or SIGTERM).`,
		Example: `  sagachain dev
  sagachain dev --rpc 127.0.0.1:9000 --fresh
  sagachain submit testnet/ops/trip.yaml --wait
  sagachain submit testnet/ops/trip-travel-fails.yaml --wait`,
		Args: cobra.NoArgs,
		RunE: a.runE(a.dev),
	}
	cmd.Flags().String("home", "", "the home directory (default ~/.sagachain/dev)")
	cmd.Flags().String("rpc", "", "the RPC address to listen on, host:port (default the config's rpc.listen, 127.0.0.1:8645)")
	cmd.Flags().Bool("fresh", false, "start a new chain: delete the home's data and write a new genesis")
	cmd.Flags().Bool("no-demo", false, "do not run the travel demo or host its functions")
	return cmd
}

func (a *app) newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node --home DIR",
		Short: "Run one node from its home",
		Long: `node runs the node of an initialised home (see init): its config.yaml (or the
--config file instead), genesis.json and key. It stops cleanly on Ctrl-C (or
SIGTERM).`,
		Args: cobra.NoArgs,
		RunE: a.runE(a.node),
	}
	cmd.Flags().String("home", "", "the node's home directory (required)")
	cmd.Flags().String("rpc", "", "the RPC address to listen on, host:port (default the config's rpc.listen)")
	return cmd
}

func (a *app) dev(cmd *cobra.Command, _ []string) error {
	dir := a.flagString("home")
	if dir == "" {
		d, err := userPath("dev")
		if err != nil {
			return err
		}
		dir = d
	}
	fresh, err := a.flagBool("fresh")
	if err != nil {
		return err
	}
	noDemo, err := a.flagBool("no-demo")
	if err != nil {
		return err
	}
	listen, err := a.listenFlag()
	if err != nil {
		return err
	}
	client, created, err := ensureClientKey()
	if err != nil {
		return err
	}
	if created {
		p, _ := userPath(clientKeyFile)
		a.log.Info("made your client key", "file", p, "address", client.Address().Hex())
	}
	switch initialised, err := isHome(dir); {
	case err != nil:
		return err
	case !initialised:
		h, err := node.InitHome(dir, devChainID, client.Address())
		if err != nil {
			return inputError(err)
		}
		a.log.Info("made the dev home", "home", dir, "chain", devChainID, "validator", h.Validator.Hex())
	case fresh:
		if err := a.freshen(dir, client.Address()); err != nil {
			return err
		}
	}
	return a.runNode(cmd.Context(), "dev", dir, listen, client.Address(), !noDemo)
}

// isHome reports whether dir holds a genesis.json.
func isHome(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, node.GenesisFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// freshen starts a new chain in an initialised home: it deletes the data
// directory and the travel demo's inventory, and rewrites the genesis with a
// new time and client among the submitters. The key and config stay.
func (a *app) freshen(dir string, client ledger.Address) error {
	g, err := ledger.LoadGenesis(filepath.Join(dir, node.GenesisFile))
	if err != nil {
		return inputError(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, node.DataDir)); err != nil {
		return fmt.Errorf("--fresh: %w", err)
	}
	// The demo's reservations belong to the operations of the old chain.
	if err := os.Remove(filepath.Join(dir, devDemoFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--fresh: %w", err)
	}
	g.Time = uint64(time.Now().UnixMilli())
	if !slices.Contains(g.Submitters, client) {
		g.Submitters = append(g.Submitters, client)
	}
	if err := g.Save(filepath.Join(dir, node.GenesisFile)); err != nil {
		return fmt.Errorf("--fresh: %w", err)
	}
	a.log.Info("fresh chain: deleted the data and wrote a new genesis", "home", dir)
	return nil
}

func (a *app) node(cmd *cobra.Command, _ []string) error {
	dir, err := a.homeFlag()
	if err != nil {
		return err
	}
	listen, err := a.listenFlag()
	if err != nil {
		return err
	}
	return a.runNode(cmd.Context(), "node", dir, listen, ledger.Address{}, false)
}

// listenFlag resolves --rpc of dev and node: the address to listen on, or
// empty for the config's.
func (a *app) listenFlag() (string, error) {
	listen := a.flagString("rpc")
	if listen == "" {
		return "", nil
	}
	addr, err := listenAddr(listen)
	if err != nil {
		return "", usageError(fmt.Errorf("%s: %w", a.flagSource("rpc"), err))
	}
	return addr, nil
}

// runNode runs the node of home dir until SIGINT or SIGTERM, listening for
// RPC on listen unless it is empty. what names the command in the banner;
// client, when set, is checked against the genesis submitters so that a
// user is told before a submission fails. withDemo runs the travel demo
// beside the node and hosts its functions (see startDevDemo).
func (a *app) runNode(ctx context.Context, what, dir, listen string, client ledger.Address, withDemo bool) error {
	opts, err := node.LoadHome(dir, a.configPath, flagNames(a.cmd.Root())...)
	if err != nil {
		return inputError(err)
	}
	path := a.configPath
	if path == "" {
		path = filepath.Join(dir, node.ConfigFile)
	}
	if err := a.useConfig(opts.Config, path); err != nil {
		return err
	}
	if listen != "" {
		opts.Config.RPC.Listen = listen
	}
	opts.Log = a.log
	opts.UI = web.Handler()
	if client != (ledger.Address{}) && !opts.Genesis.AllowedSubmitter(client) {
		a.log.Warn("your client key may not submit to this chain: it is not among the genesis submitters; `sagachain dev --fresh` starts a new chain that lists it",
			"client", client.Hex(), "genesis", filepath.Join(dir, node.GenesisFile))
	}
	var demoURL string
	if withDemo {
		u, stopDemo, err := a.startDevDemo(dir, &opts.Config)
		if err != nil {
			return err
		}
		// Deferred before the node runs, so it stops after the node: a
		// stopping node may still be rolling back through it.
		defer stopDemo()
		demoURL = u
	}
	limitMemory()
	n, err := node.New(opts)
	if err != nil {
		if inUse(err) {
			return fmt.Errorf("home %s is in use by another sagachain process (its store is locked); stop that one first", dir)
		}
		return err
	}

	// The banner gives the height the node starts from, read before it
	// runs: a new dev chain commits its first block (the demo's function
	// announcement) within milliseconds of starting.
	head, err := n.Store().Head()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-done:
		return err
	}
	base := "http://" + n.RPCAddr()
	fmt.Fprintf(a.stdout, "sagachain %s: chain %s, validator %s, height %d\nRPC: %s\nWeb UI: %s/\n",
		what, opts.Genesis.ChainID, opts.Key.Address().Hex(), head, base, base)
	if demoURL != "" {
		fmt.Fprintf(a.stdout, "Travel demo: %s/\n", demoURL)
	}
	if what == "dev" {
		fmt.Fprintf(a.stdout, "try: sagachain submit testnet/ops/trip.yaml --wait")
		if base != rpcDefaultURL() {
			fmt.Fprintf(a.stdout, " --rpc %s", base)
		}
		fmt.Fprintln(a.stdout)
	}

	select {
	case <-ctx.Done():
		// From now on a signal kills the process, as it would any other.
		stop()
		a.log.Info("stopping; interrupt again to quit at once")
		err = <-done
	case err = <-done:
	}
	if err != nil {
		return err
	}
	a.log.Info("stopped", "home", dir)
	return nil
}

// listenAddr turns --rpc into a host:port to listen on; it also takes the
// URL a client would use (http://127.0.0.1:8645), so that one
// SAGACHAIN_RPC serves the node and its clients.
func listenAddr(s string) (string, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "", fmt.Errorf("want host:port or http://host:port, got %q", s)
		}
		return u.Host, nil
	}
	return s, nil
}

// inUse reports a store another process holds.
func inUse(err error) bool {
	return errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "Another process is using this Badger database")
}
