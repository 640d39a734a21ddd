package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// The ports every container listens on: testnet init --hosts puts each
// validator on its own host at the base port (RPC) and the next (p2p).
const (
	containerRPCPort = 26600
	containerP2PPort = containerRPCPort + 1
	containerHome    = "/home/node"
)

// dockerBackend runs each node as a container of the image, with an address
// of its own on a private bridge network made for the testnet: --internal,
// so nothing leaves the machine, with a name and subnet of its own, so that
// runs side by side do not meet. A node's home is bind-mounted from the
// test's temporary directory, and the container runs as the test's user so
// that the test can read and remove what the node writes.
type dockerBackend struct {
	image  string
	net    string
	prefix string // the subnet's first three octets and a dot

	mu      sync.Mutex
	created []string // container names, in creation order
}

var _ Backend = (*dockerBackend)(nil)

// newDockerBackend makes the testnet's network: a /24 of 10.200.0.0 to
// 10.254.255.0 that no other network of the engine holds.
func newDockerBackend(ctx context.Context, image string) (*dockerBackend, error) {
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	d := &dockerBackend{image: image, net: dockerPrefix() + hex.EncodeToString(suffix)}
	var last error
	for range 20 {
		a, err := rand.Int(rand.Reader, big.NewInt(55))
		if err != nil {
			return nil, err
		}
		b, err := rand.Int(rand.Reader, big.NewInt(256))
		if err != nil {
			return nil, err
		}
		prefix := fmt.Sprintf("10.%d.%d.", 200+a.Int64(), b.Int64())
		_, last = docker(ctx, "network", "create", "--internal", "--driver", "bridge",
			"--subnet", prefix+"0/24", "--gateway", prefix+"1", "--label", dockerLabel, d.net)
		if last == nil {
			d.prefix = prefix
			return d, nil
		}
		if !strings.Contains(last.Error(), "overlap") {
			return nil, last
		}
	}
	return nil, fmt.Errorf("no free subnet for the testnet network: %w", last)
}

func (d *dockerBackend) Name() string { return Docker }

func (d *dockerBackend) ip(i int) string { return fmt.Sprintf("%s%d", d.prefix, 10+i) }

func (d *dockerBackend) InitFlags(n int) ([]string, error) {
	hosts := make([]string, n)
	for i := range hosts {
		p, err := d.Place(i)
		if err != nil {
			return nil, err
		}
		hosts[i] = p.Host
	}
	return []string{"--base-port", fmt.Sprint(containerRPCPort), "--hosts", strings.Join(hosts, ",")}, nil
}

// HostAddr is the network's gateway: the host's own address on the bridge.
func (d *dockerBackend) HostAddr() string { return d.prefix + "1" }

func (d *dockerBackend) Place(i int) (Placement, error) {
	if 10+i > 254 {
		return Placement{}, fmt.Errorf("node %d does not fit the /24 of the testnet network", i)
	}
	ip := d.ip(i)
	return Placement{Host: ip,
		RPCListen: fmt.Sprintf("0.0.0.0:%d", containerRPCPort), P2PListen: fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", containerP2PPort),
		RPC: fmt.Sprintf("http://%s:%d", ip, containerRPCPort), P2P: fmt.Sprintf("/ip4/%s/tcp/%d", ip, containerP2PPort)}, nil
}

func (d *dockerBackend) container(n *Node) string { return d.net + "-" + n.Name }

func (d *dockerBackend) Start(n *Node) error {
	name := d.container(n)
	d.mu.Lock()
	created := false
	for _, c := range d.created {
		created = created || c == name
	}
	if !created {
		d.created = append(d.created, name)
	}
	d.mu.Unlock()
	ctx := context.Background()
	if created {
		_, err := docker(ctx, "start", name)
		return err
	}
	_, err := docker(ctx, "run", "--detach", "--name", name, "--label", dockerLabel,
		"--network", d.net, "--ip", n.Host,
		"--user", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		"--volume", n.Home+":"+containerHome,
		d.image, "node", "--home", containerHome)
	return err
}

func (d *dockerBackend) Kill(n *Node) error {
	_, err := docker(context.Background(), "kill", d.container(n))
	return err
}

func (d *dockerBackend) Stop(n *Node) error {
	_, err := docker(context.Background(), "stop", "--time", "30", d.container(n))
	return err
}

func (d *dockerBackend) Pause(n *Node) error {
	_, err := docker(context.Background(), "pause", d.container(n))
	return err
}

func (d *dockerBackend) Resume(n *Node) error {
	_, err := docker(context.Background(), "unpause", d.container(n))
	return err
}

func (d *dockerBackend) Disconnect(n *Node) error {
	_, err := docker(context.Background(), "network", "disconnect", d.net, d.container(n))
	return err
}

func (d *dockerBackend) Connect(n *Node) error {
	_, err := docker(context.Background(), "network", "connect", "--ip", n.Host, d.net, d.container(n))
	return err
}

func (d *dockerBackend) Logs(n *Node, lines int) string {
	// docker logs replays the container's stdout and stderr on its own.
	out, err := exec.Command("docker", "logs", "--tail", fmt.Sprint(lines), d.container(n)).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(docker logs: %v)\n%s", err, out)
	}
	return string(out)
}

// Close removes the containers, then the network, even if the first fails.
func (d *dockerBackend) Close() error {
	d.mu.Lock()
	names := d.created
	d.created = nil
	d.mu.Unlock()
	ctx := context.Background()
	var errs []error
	if len(names) > 0 {
		if _, err := docker(ctx, append([]string{"rm", "--force", "--volumes"}, names...)...); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := docker(ctx, "network", "rm", d.net); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
