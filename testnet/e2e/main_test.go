package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// env is the backend, binary and image TestMain prepared for the tests.
var env Env

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// The end-to-end tests start real nodes; -short skips them, and
		// the build they need.
		os.Exit(m.Run())
	}
	os.Exit(prepareAndRun(m))
}

func prepareAndRun(m *testing.M) int {
	backend, err := ChooseBackend()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "sagachain-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	env = Env{Backend: backend, Binary: filepath.Join(dir, "sagachain")}
	ctx := context.Background()
	start := time.Now()
	if err := BuildBinary(ctx, "../../cmd/sagachain", env.Binary, backend == Docker); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: %s backend (%s=docker|process forces one); built sagachain in %s\n",
		backend, BackendEnv, time.Since(start).Round(100*time.Millisecond))
	if backend == Docker {
		removed, err := RemoveOrphans(ctx)
		if len(removed) > 0 {
			fmt.Fprintf(os.Stderr, "e2e: removed what killed runs left behind: %v\n", removed)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		env.Image = ImageTag()
		if err := BuildImage(ctx, env.Binary, "../docker/Dockerfile", env.Image); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() {
			if err := RemoveImage(ctx, env.Image); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
	}
	return m.Run()
}

// skipShort skips an end-to-end test under -short.
func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a testnet of real nodes; skipped with -short")
	}
}
