package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/node"
)

func (a *app) newTestnetCmd() *cobra.Command {
	tn := &cobra.Command{
		Use:   "testnet",
		Short: "Make the homes of a local multi-validator network",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError(errors.New("testnet needs a subcommand: init"))
		},
	}
	init := &cobra.Command{
		Use:   "init --validators N --dir DIR [--base-port P] [--json]",
		Short: "Make N validator homes DIR/node0 … with a shared genesis and each other as peers",
		Long: `testnet init makes N validator homes that share one genesis (all N
validators, your client key as the submitter) and know each other as static
peers. Validator i serves RPC on 127.0.0.1:P+2i and p2p on P+2i+1; with
--hosts (one address per validator, for containers) every validator listens
on all interfaces at P and P+1 and dials the others' addresses.

Start them with scripts/testnet.sh up, or each with sagachain node --home DIR/nodeI.`,
		Example: `  sagachain testnet init --validators 4 --dir ./.testnet --json`,
		Args:    cobra.NoArgs,
		RunE:    a.runE(a.testnetInit),
	}
	init.Flags().Int("validators", 4, "how many validators")
	init.Flags().String("dir", "", "the directory for the homes (required)")
	init.Flags().Int("base-port", 26600, "the first port")
	init.Flags().String("chain-id", "sagachain-testnet", "the chain id")
	init.Flags().String("hosts", "", "comma-separated addresses of the validators' own hosts (containers)")
	init.Flags().Bool("json", false, `print {"nodes": [{"home", "rpc", "p2p", "address"}]}`)
	tn.AddCommand(init)
	return tn
}

func (a *app) testnetInit(*cobra.Command, []string) error {
	dir := a.flagString("dir")
	if dir == "" {
		return usageError(errors.New("--dir DIR is required"))
	}
	n, err := a.flagInt("validators")
	if err != nil {
		return err
	}
	base, err := a.flagInt("base-port")
	if err != nil {
		return err
	}
	asJSON, err := a.flagBool("json")
	if err != nil {
		return err
	}
	layout := node.TestnetLayout{BasePort: base}
	if h := a.flagString("hosts"); h != "" {
		layout.Hosts = strings.Split(h, ",")
	}
	client, _, err := ensureClientKey()
	if err != nil {
		return err
	}
	nodes, err := node.InitTestnet(dir, n, a.flagString("chain-id"), client.Address(), layout)
	if err != nil {
		return inputError(err)
	}
	if asJSON {
		return a.printJSON(map[string]any{"nodes": nodes})
	}
	for _, tn := range nodes {
		if _, err := fmt.Fprintf(a.stdout, "%s  validator %s  rpc %s  p2p %s\n", tn.Home, tn.Address, tn.RPC, tn.P2P); err != nil {
			return err
		}
	}
	return nil
}
