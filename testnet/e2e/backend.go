package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Backend runs the nodes of one testnet and perturbs them. Every method
// acts on one node and returns once the action is done; a backend that
// cannot do something returns an error matching errors.ErrUnsupported.
type Backend interface {
	// Name is "docker" or "process".
	Name() string
	// InitFlags are the flags of `sagachain testnet init` that place n
	// validators on this backend.
	InitFlags(n int) ([]string, error)
	// HostAddr is the address at which the nodes reach the test process.
	HostAddr() string
	// Place says where node i, beyond the validators testnet init placed,
	// listens and is reached.
	Place(i int) (Placement, error)
	// Start starts the node for the first time or again, on its home.
	Start(n *Node) error
	// Kill ends the node at once, without letting it clean up.
	Kill(n *Node) error
	// Stop asks the node to stop and waits until it has.
	Stop(n *Node) error
	Pause(n *Node) error
	Resume(n *Node) error
	Disconnect(n *Node) error
	Connect(n *Node) error
	// Logs returns the last lines the node wrote.
	Logs(n *Node, lines int) string
	// Close stops every node and removes whatever the backend made.
	Close() error
}

// Placement is where one node listens and how the others reach it.
type Placement struct {
	// Host is the node's own address: its container's, or 127.0.0.1.
	Host string
	// RPCListen and P2PListen are its config's rpc.listen and p2p.listen.
	RPCListen, P2PListen string
	// RPC is the URL of its RPC; P2P its multiaddr without the peer id.
	RPC, P2P string
}

// Backend names.
const (
	Docker  = "docker"
	Process = "process"
)

// BackendEnv is the environment variable that forces a backend: docker or
// process.
const BackendEnv = "SAGACHAIN_E2E_BACKEND"

// ChooseBackend returns the backend BackendEnv names, else docker when a
// Docker engine answers `docker info`, else process.
func ChooseBackend() (string, error) {
	switch b := os.Getenv(BackendEnv); b {
	case Docker, Process:
		return b, nil
	case "":
	default:
		return "", fmt.Errorf("%s=%q: want %s or %s", BackendEnv, b, Docker, Process)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if exec.CommandContext(ctx, "docker", "info").Run() == nil {
		return Docker, nil
	}
	return Process, nil
}

// Env is what a run needs besides its Testnet: the backend and the
// sagachain binary (and, for docker, the image holding it).
type Env struct {
	Backend string
	// Binary is the sagachain binary: run by the process backend, and by
	// the runner for `testnet init`.
	Binary string
	// Image is the docker image whose entrypoint is that binary.
	Image string
}

// BuildBinary builds the sagachain command in pkg into out, statically
// (CGO_ENABLED=0) when static is set, as an image from scratch needs. It
// never builds with -race: the nodes need not be race-built, and the build
// is faster without.
func BuildBinary(ctx context.Context, pkg, out string, static bool) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Env = os.Environ()
	if static {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// BuildImage builds the image tag from dockerfile with binary beside it as
// "sagachain". Nothing is pulled: the image is FROM scratch.
func BuildImage(ctx context.Context, binary, dockerfile, tag string) error {
	dir, err := os.MkdirTemp("", "sagachain-e2e-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Link(binary, dir+"/sagachain"); err != nil {
		if err := copyFile(binary, dir+"/sagachain"); err != nil {
			return err
		}
	}
	if err := copyFile(dockerfile, dir+"/Dockerfile"); err != nil {
		return err
	}
	_, err = docker(ctx, "build", "-q", "--label", dockerLabel, "-t", tag, dir)
	return err
}

// RemoveImage removes an image BuildImage made.
func RemoveImage(ctx context.Context, tag string) error {
	_, err := docker(ctx, "rmi", "-f", tag)
	return err
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// dockerLabel marks everything the runner makes, so that what a killed
// test run leaves behind can be found: docker ps -a --filter label=sagachain.e2e
const dockerLabel = "sagachain.e2e"

// dockerPrefix starts the names of the networks, containers and image tags
// this process makes: sagachain-e2e-<host>-<pid>-. A later run can then tell
// the leftovers of a run that was killed before its cleanup from what a run
// still going on uses.
func dockerPrefix() string {
	return fmt.Sprintf("sagachain-e2e-%s-%d-", hostTag(), os.Getpid())
}

// hostTag names this machine in eight hex digits.
func hostTag() string {
	h, _ := os.Hostname()
	sum := sha256.Sum256([]byte(h))
	return hex.EncodeToString(sum[:4])
}

// ImageTag returns a tag for BuildImage, unique to this process.
func ImageTag() string {
	suffix := make([]byte, 4)
	rand.Read(suffix)
	return "sagachain-e2e:" + strings.TrimPrefix(dockerPrefix(), "sagachain-e2e-") + hex.EncodeToString(suffix)
}

// RemoveOrphans removes the containers, networks and images that runs of
// this machine left behind when they were killed before their cleanup:
// those named for a process that no longer runs. It returns what it
// removed.
func RemoveOrphans(ctx context.Context) ([]string, error) {
	host := hostTag()
	orphan := func(name string) bool {
		// name is sagachain-e2e-<host>-<pid>-…, or, for an image,
		// sagachain-e2e:<host>-<pid>-….
		parts := strings.SplitN(strings.NewReplacer(":", "-").Replace(name), "-", 5)
		if len(parts) < 5 || parts[0] != "sagachain" || parts[1] != "e2e" || parts[2] != host {
			return false
		}
		pid, err := strconv.Atoi(parts[3])
		return err == nil && !processAlive(pid)
	}
	var removed []string
	var errs []error
	for _, kind := range []struct{ list, remove []string }{
		{[]string{"ps", "--all", "--filter", "label=" + dockerLabel, "--format", "{{.Names}}"}, []string{"rm", "--force", "--volumes"}},
		{[]string{"network", "ls", "--filter", "label=" + dockerLabel, "--format", "{{.Name}}"}, []string{"network", "rm"}},
		{[]string{"images", "--filter", "label=" + dockerLabel, "--format", "{{.Repository}}:{{.Tag}}"}, []string{"rmi", "--force"}},
	} {
		out, err := docker(ctx, kind.list...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var names []string
		for _, name := range strings.Fields(out) {
			if orphan(name) {
				names = append(names, name)
			}
		}
		if len(names) == 0 {
			continue
		}
		if _, err := docker(ctx, append(kind.remove, names...)...); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, names...)
	}
	return removed, errors.Join(errs...)
}

// processAlive reports whether a process of that id runs on this machine.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// docker runs a docker command and returns its trimmed stdout; its error
// quotes the command and its stderr.
func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// errUnsupported is what a backend returns for what it cannot do.
func errUnsupported(backend, what string) error {
	return fmt.Errorf("the %s backend cannot %s: %w", backend, what, errors.ErrUnsupported)
}
