package e2e

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/node/rpc"
)

// Bounds of what a perturbation waits for.
const (
	// progressWait bounds how long the running validators may take to
	// commit a block while one is out.
	progressWait = time.Minute
	// recoverWait bounds how long they may take to commit after a halt,
	// once a quorum runs again. That has taken from 20s to 56s on a
	// 2-core machine, most of it with every validator linked to the
	// others: the consensus is slow to pick up again, not the network.
	recoverWait = 2 * time.Minute
	// stillWait bounds how long the survivors of a halt may take to agree
	// on the block they stand at; still is how long their heads must stay
	// put before the halt's watch starts, so that votes sent before the
	// kill have landed.
	stillWait = 20 * time.Second
	still     = time.Second
)

// Apply performs one step on the validators and returns what it observed.
// An error matching errors.ErrUnsupported means the backend cannot perform
// it.
func (n *Network) Apply(step Step) (string, error) {
	var nodes []*Node
	for _, i := range step.Nodes {
		if i < 0 || i >= len(n.Validators) {
			return "", fmt.Errorf("step %q: no validator %d", step.Name, i)
		}
		nodes = append(nodes, n.Validators[i])
	}
	if len(nodes) == 0 || (step.Perturbation != Halt && len(nodes) != 1) {
		return "", fmt.Errorf("step %q: %s of %d validators", step.Name, step.Perturbation, len(nodes))
	}
	b := n.Backend
	switch step.Perturbation {
	case Kill:
		// A block a node has committed is on its disk: it comes back with
		// at least the head it had when it was killed.
		var had uint64
		return n.outage(nodes[0], step.Down, "killed", func(nd *Node) error {
			heads, errs := Heads([]*Node{nd})
			if errs[0] != nil {
				return errs[0]
			}
			had = heads[0].Height
			return b.Kill(nd)
		}, func(nd *Node) error {
			if err := b.Start(nd); err != nil {
				return err
			}
			if err := n.WaitReady(nd); err != nil {
				return err
			}
			heads, errs := Heads([]*Node{nd})
			if errs[0] == nil && heads[0].Height < had {
				return fmt.Errorf("%s came back at height %d, below the %d it had committed before the kill", nd.Name, heads[0].Height, had)
			}
			return errs[0]
		})
	case Pause:
		return n.outage(nodes[0], step.Down, "paused", b.Pause, b.Resume)
	case Disconnect:
		return n.outage(nodes[0], step.Down, "disconnected", b.Disconnect, func(nd *Node) error {
			if err := b.Connect(nd); err != nil {
				return err
			}
			return n.WaitReady(nd)
		})
	case Restart:
		return n.restart(nodes[0])
	case Halt:
		return n.halt(nodes, step.Down)
	}
	return "", fmt.Errorf("step %q: unknown perturbation %d", step.Name, int(step.Perturbation))
}

// others returns the validators that are not among nodes.
func (n *Network) others(nodes ...*Node) []*Node {
	var out []*Node
	for _, v := range n.Validators {
		if !slices.Contains(nodes, v) {
			out = append(out, v)
		}
	}
	return out
}

// Outage is one validator a step took out (killed, paused or
// disconnected) and brought back.
type Outage struct {
	Node *Node
	// What is "killed", "paused" or "disconnected".
	What string
	// Down is when the step began to take the node out; Up when the node
	// was back (restarted and answering, resumed, reconnected). A fault's
	// effects are looked for from Down on, so Down errs early.
	Down, Up time.Time
}

// outage takes one validator out with down, checks that the others commit
// at least one block meanwhile (one of four out still leaves a quorum),
// keeps it out for at least d, brings it back with up, and records it in
// n.Outages.
func (n *Network) outage(nd *Node, d time.Duration, what string, down, up func(*Node) error) (string, error) {
	rest := n.others(nd)
	o := Outage{Node: nd, What: what, Down: time.Now()}
	if err := down(nd); err != nil {
		return "", err
	}
	start := time.Now()
	heads, _ := Heads(rest)
	before := maxHeight(heads)
	reached, err := waitProgress(rest, before)
	if err != nil {
		return "", fmt.Errorf("while %s was %s: %w", nd.Name, what, err)
	}
	took := time.Since(start)
	time.Sleep(d - took)
	if err := up(nd); err != nil {
		return "", err
	}
	o.Up = time.Now()
	n.Outages = append(n.Outages, o)
	return fmt.Sprintf("%s %s at height %d for %s; the other %d committed on to height %d meanwhile (first block after %s)",
		nd.Name, what, before, max(d, took).Round(100*time.Millisecond), len(rest), reached, took.Round(100*time.Millisecond)), nil
}

// restart stops one validator gracefully and starts it again.
func (n *Network) restart(nd *Node) (string, error) {
	heads, _ := Heads([]*Node{nd})
	if err := n.Backend.Stop(nd); err != nil {
		return "", err
	}
	if err := n.Backend.Start(nd); err != nil {
		return "", err
	}
	if err := n.WaitReady(nd); err != nil {
		return "", err
	}
	after, errs := Heads([]*Node{nd})
	if errs[0] != nil {
		return "", errs[0]
	}
	if after[0].Height < heads[0].Height {
		return "", fmt.Errorf("%s came back at height %d, below the %d it had committed before the restart", nd.Name, after[0].Height, heads[0].Height)
	}
	return fmt.Sprintf("%s stopped at height %d and started again at height %d", nd.Name, heads[0].Height, after[0].Height), nil
}

// halt kills the given validators, leaving no quorum: the others must
// agree on one head and stay there for d, although entries wait. Then the
// first killed validator comes back and the network must commit again;
// then the rest come back.
func (n *Network) halt(killed []*Node, d time.Duration) (string, error) {
	rest := n.others(killed...)
	if q := 2*len(n.Validators)/3 + 1; len(rest) >= q {
		return "", fmt.Errorf("halt: %d validators keep running, a quorum of %d", len(rest), q)
	}
	for _, nd := range killed {
		if err := n.Backend.Kill(nd); err != nil {
			return "", err
		}
	}
	height, hash, err := waitStill(rest)
	if err != nil {
		return "", fmt.Errorf("after the kill: %w", err)
	}
	waiting := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		heads, errs := Heads(rest)
		for i, h := range heads {
			if errs[i] != nil {
				return "", errs[i]
			}
			if h.Height != height || h.Hash != hash {
				return "", fmt.Errorf("%s moved from block %d %s to %d %s with only %d of %d validators running",
					rest[i].Name, height, short(hash), h.Height, short(h.Hash), len(rest), len(n.Validators))
			}
			waiting = max(waiting, h.Mempool)
		}
	}
	if waiting == 0 {
		return "", fmt.Errorf("no entry waited on %s during the halt, so standing still proves nothing", names(rest))
	}
	back := killed[0]
	if err := n.Backend.Start(back); err != nil {
		return "", err
	}
	if err := n.WaitReady(back); err != nil {
		return "", err
	}
	alive := append(slices.Clip(rest), back)
	start := time.Now()
	// How long the validators take to see each other again tells a slow
	// network from slow consensus when the first block is late.
	linked := "not within the wait"
	reached, err := waitProgressWhile(alive, height, recoverWait, func() {
		if linked[0] == 'n' && n.linked(alive) {
			linked = "after " + time.Since(start).Round(100*time.Millisecond).String()
		}
	})
	if err != nil {
		return "", fmt.Errorf("after %s came back (all linked %s): %w", back.Name, linked, err)
	}
	took := time.Since(start)
	round := "?"
	if b, err := blockInfo(back, height+1); err == nil {
		round = fmt.Sprint(b.Round)
	}
	for _, nd := range killed[1:] {
		if err := n.Backend.Start(nd); err != nil {
			return "", err
		}
		if err := n.WaitReady(nd); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s killed; %s stood at block %d %s for %s with up to %d entries waiting; "+
		"%s back: the %d running validators all linked %s and committed on to height %d (the first block after %s, in round %s); %s back",
		names(killed), names(rest), height, short(hash), d, waiting,
		back.Name, len(alive), linked, reached, took.Round(100*time.Millisecond), round, names(killed[1:])), nil
}

func names(nodes []*Node) string {
	var s []string
	for _, nd := range nodes {
		s = append(s, nd.Name)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func maxHeight(heads []rpc.HeadInfo) uint64 {
	var h uint64
	for _, x := range heads {
		h = max(h, x.Height)
	}
	return h
}

// waitProgress waits until every node is above height and returns the
// lowest of their heights then.
func waitProgress(nodes []*Node, height uint64) (uint64, error) {
	return waitProgressWhile(nodes, height, progressWait, func() {})
}

// waitProgressWhile is waitProgress for at most limit, calling each, to
// look around, before every look at the heads.
func waitProgressWhile(nodes []*Node, height uint64, limit time.Duration, each func()) (uint64, error) {
	var last []string
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		each()
		heads, errs := Heads(nodes)
		low, ok := uint64(0), true
		last = last[:0]
		for i, h := range heads {
			if errs[i] != nil {
				ok = false
				last = append(last, fmt.Sprintf("%s: %v", nodes[i].Name, errs[i]))
				continue
			}
			if i == 0 || h.Height < low {
				low = h.Height
			}
			last = append(last, fmt.Sprintf("%s: %d (%d waiting)", nodes[i].Name, h.Height, h.Mempool))
		}
		if ok && low > height {
			return low, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no block above %d on every one of %s within %s: %s", height, names(nodes), limit, strings.Join(last, ", "))
		}
	}
}

// waitStill waits until the nodes report one head and keep it for still,
// and returns it.
func waitStill(nodes []*Node) (uint64, ledger.Hash, error) {
	var (
		height uint64
		hash   ledger.Hash
		since  time.Time
		seen   string
	)
	for deadline := time.Now().Add(stillWait); ; time.Sleep(100 * time.Millisecond) {
		heads, errs := Heads(nodes)
		same := errs[0] == nil
		var s []string
		for i, h := range heads {
			if errs[i] != nil {
				same = false
				s = append(s, fmt.Sprintf("%s: %v", nodes[i].Name, errs[i]))
				continue
			}
			same = same && h.Height == heads[0].Height && h.Hash == heads[0].Hash
			s = append(s, fmt.Sprintf("%s: %d %s", nodes[i].Name, h.Height, short(h.Hash)))
		}
		seen = strings.Join(s, ", ")
		switch {
		case !same:
			since = time.Time{}
		case since.IsZero() || heads[0].Height != height || heads[0].Hash != hash:
			height, hash, since = heads[0].Height, heads[0].Hash, time.Now()
		case time.Since(since) >= still:
			return height, hash, nil
		}
		if time.Now().After(deadline) {
			return 0, ledger.Hash{}, fmt.Errorf("%s did not settle on one head within %s: %s", names(nodes), stillWait, seen)
		}
	}
}

// linked reports whether each of the nodes sees every one of them online.
func (n *Network) linked(nodes []*Node) bool {
	for _, nd := range nodes {
		if n.onlineValidators(nd) < len(nodes) {
			return false
		}
	}
	return true
}
