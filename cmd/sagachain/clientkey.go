package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sagachain/sagachain/ledger"
)

// The client key signs what this user submits (operations, retries). It
// lives in the user's ~/.sagachain, apart from any node's home: a genesis
// lists its address among the submitters.
const (
	userDir       = ".sagachain"
	clientKeyFile = "client.key"
)

// userPath is a path under ~/.sagachain.
func userPath(elem ...string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding ~/%s: %w", userDir, err)
	}
	return filepath.Join(append([]string{home, userDir}, elem...)...), nil
}

// ensureClientKey loads the client key, creating ~/.sagachain/client.key
// (mode 0600) first when there is none. It reports whether it created it.
func ensureClientKey() (*ledger.PrivateKey, bool, error) {
	path, err := userPath(clientKeyFile)
	if err != nil {
		return nil, false, err
	}
	if k, err := ledger.LoadKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("client key: %w", err)
	}
	k, err := ledger.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("client key: %w", err)
	}
	if err := k.SaveKey(path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another sagachain made it in the meantime: use theirs.
			k, err := ledger.LoadKey(path)
			return k, false, err
		}
		return nil, false, fmt.Errorf("client key: %w", err)
	}
	return k, true, nil
}

// clientKey loads the key that signs submissions: --key FILE, else
// ~/.sagachain/client.key. A missing key is an input error that says how
// to get one.
func (a *app) clientKey() (*ledger.PrivateKey, error) {
	path := a.flagString("key")
	if path == "" {
		p, err := userPath(clientKeyFile)
		if err != nil {
			return nil, err
		}
		path = p
		k, err := ledger.LoadKey(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, inputErrorf("no client key at %s: `sagachain dev` or `sagachain init` creates one (and lists it in the genesis), or pass --key FILE", path)
		}
		if err != nil {
			return nil, inputError(err)
		}
		return k, nil
	}
	k, err := ledger.LoadKey(path)
	if err != nil {
		return nil, inputErrorf("%s: %w", a.flagSource("key"), err)
	}
	return k, nil
}
