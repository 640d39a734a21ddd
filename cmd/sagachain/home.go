package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node"
	"github.com/sagachain/sagachain/p2p"
)

// defaultInitChainID is the chain id of `init` without --chain-id: not the
// dev chain's, so that what the client key signs for one is never valid on
// the other.
const defaultInitChainID = "sagachain-local"

func (a *app) newInitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init --home DIR [--chain-id ID]",
		Short: "Make a validator home: key, genesis with this one validator, config",
		Long: `init makes DIR the home of a new one-validator chain: a validator key
(key.hex, mode 0600), a genesis.json naming that validator and your client key
(~/.sagachain/client.key, created if missing) as the one submitter, and a
config.yaml. It refuses a directory that is a home already.

Run the node with: sagachain node --home DIR`,
		Example: `  sagachain init --home ./mynode --chain-id acme-test`,
		Args:    cobra.NoArgs,
		RunE:    a.runE(a.init),
	}
	cmd.Flags().String("home", "", "the home directory to make (required)")
	cmd.Flags().String("chain-id", defaultInitChainID, "the chain id: 1-64 letters, digits, '.', '_' or '-'")
	return cmd
}

// homeFlag resolves --home, which a command needs.
func (a *app) homeFlag() (string, error) {
	dir := a.flagString("home")
	if dir == "" {
		return "", usageError(errors.New("--home DIR is required"))
	}
	return dir, nil
}

func (a *app) init(*cobra.Command, []string) error {
	dir, err := a.homeFlag()
	if err != nil {
		return err
	}
	client, _, err := ensureClientKey()
	if err != nil {
		return err
	}
	h, err := node.InitHome(dir, a.flagString("chain-id"), client.Address())
	if err != nil {
		return inputError(err)
	}
	keyPath, _ := userPath(clientKeyFile)
	_, err = fmt.Fprintf(a.stdout, `initialised %s for chain %s
  validator  %s  (%s)
  submitter  %s  (%s)
run it: sagachain node --home %s
`, dir, h.Genesis.ChainID, h.Validator.Hex(), filepath.Join(dir, node.KeyFile), client.Address().Hex(), keyPath, dir)
	return err
}

func (a *app) newKeysCmd() *cobra.Command {
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Make or show a home's validator key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError(errors.New("keys needs a subcommand: new or show"))
		},
	}
	newCmd := &cobra.Command{
		Use:   "new --home DIR",
		Short: "Create the home's validator key if it has none",
		Long: `keys new creates the validator key of a home (its config's key_file, key.hex
by default) with mode 0600, and prints its address. It never replaces a key.`,
		Args: cobra.NoArgs,
		RunE: a.runE(a.keysNew),
	}
	show := &cobra.Command{
		Use:   "show --home DIR",
		Short: "Print the address of the home's validator key",
		Args:  cobra.NoArgs,
		RunE:  a.runE(a.keysShow),
	}
	for _, c := range []*cobra.Command{newCmd, show} {
		c.Flags().String("home", "", "the node's home directory (required)")
		c.Flags().Bool("json", false, `print {"address": ..., "file": ...}`)
	}
	keys.AddCommand(newCmd, show)
	return keys
}

// keyPath is the validator key file of the home dir: key_file of its
// config (or of --config), relative to dir.
func (a *app) keyPath(dir string) (string, error) {
	path := a.configPath
	if path == "" {
		path = filepath.Join(dir, node.ConfigFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			path = ""
		}
	}
	cfg, err := config.Load(path, flagNames(a.cmd.Root())...)
	if err != nil {
		return "", inputError(err)
	}
	if filepath.IsAbs(cfg.KeyFile) {
		return cfg.KeyFile, nil
	}
	return filepath.Join(dir, cfg.KeyFile), nil
}

func (a *app) keysNew(*cobra.Command, []string) error {
	dir, err := a.homeFlag()
	if err != nil {
		return err
	}
	path, err := a.keyPath(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	k, err := ledger.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := k.SaveKey(path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return inputErrorf("%s exists: refusing to replace a key (keys show --home %s prints its address)", path, dir)
		}
		return err
	}
	return a.printKey(k, path)
}

func (a *app) keysShow(*cobra.Command, []string) error {
	dir, err := a.homeFlag()
	if err != nil {
		return err
	}
	path, err := a.keyPath(dir)
	if err != nil {
		return err
	}
	k, err := ledger.LoadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return inputErrorf("%s has no key at %s: make one with sagachain keys new --home %s", dir, path, dir)
	}
	if err != nil {
		return inputError(err)
	}
	return a.printKey(k, path)
}

func (a *app) printKey(k *ledger.PrivateKey, path string) error {
	asJSON, err := a.flagBool("json")
	if err != nil {
		return err
	}
	id, err := p2p.PeerID(k.Bytes())
	if err != nil {
		return err
	}
	pub := "0x" + hex.EncodeToString(k.Public().Compressed())
	if asJSON {
		return a.printJSON(map[string]string{"address": k.Address().Hex(), "pub_key": pub, "peer_id": id.String(), "file": path})
	}
	_, err = fmt.Fprintln(a.stdout, k.Address().Hex()) // alone, for scripts; --json has the rest
	return err
}

// printJSON prints v as indented JSON on stdout, with the characters a
// terminal acts on that encoding/json leaves raw escaped too (see
// escapeJSON): the strings decode to exactly what was recorded.
func (a *app) printJSON(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := a.stdout.Write(escapeJSON(buf.Bytes()))
	return err
}
