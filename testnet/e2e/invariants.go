package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// Bounds of Check's waits.
const (
	// finalWait is longer than the operations' own timeouts (a minute for
	// the trips), after which the ledger ends them itself.
	finalWait  = 90 * time.Second
	headWait   = 30 * time.Second
	verifyWait = 2 * time.Minute
)

// Settled is the state Check found the network in.
type Settled struct {
	Height uint64
	Hash   ledger.Hash
	// Statuses counts the acknowledged operations by final status.
	Statuses map[taskrt.OpStatus]int
	// Verified is what verifying the first node's chain counted.
	Verified *ledger.VerifyReport
}

// String says what Check found, in one line.
func (s Settled) String() string {
	var st []string
	for _, k := range slices.Sorted(maps.Keys(s.Statuses)) {
		st = append(st, fmt.Sprintf("%d %s", s.Statuses[k], k))
	}
	return fmt.Sprintf("head %d %s; operations: %s; verified %d blocks, %d signatures, %d operations", s.Height, short(s.Hash),
		strings.Join(st, ", "), s.Verified.Blocks, s.Verified.Signatures, s.Verified.Operations)
}

func short(h ledger.Hash) string { return h.Hex()[:10] }

// Check waits, each wait bounded, until the nodes have settled, and checks
// the invariants against every one of them:
//   - every acknowledged operation is final on every node, with the same
//     status everywhere, and one its Load.Outcomes allow;
//   - every node reports the same head height and hash;
//   - ledger.VerifyChain passes on every node's chain, read over RPC,
//     against the genesis the test holds, and each chain holds that head.
//
// Nodes committing while Check runs are fine, but the heads settle only
// once nothing is submitted: pause the load first.
func (n *Network) Check(nodes []*Node, acked []Acked) (Settled, error) {
	s := Settled{Statuses: map[taskrt.OpStatus]int{}}
	statuses, err := n.waitFinal(nodes, acked)
	if err != nil {
		return s, err
	}
	for _, a := range acked {
		st := statuses[a.ID]
		if allowed, ok := n.Testnet.Load.Outcomes[a.Name]; ok && !slices.Contains(allowed, st) {
			return s, fmt.Errorf("operation %q %s ended %s, which it never should (want one of %v)", a.Name, a.ID.Hex(), st, allowed)
		}
		s.Statuses[st]++
	}
	if s.Height, s.Hash, err = waitSameHead(nodes); err != nil {
		return s, err
	}
	for i, nd := range nodes {
		rep, err := n.verify(nd, s.Height, s.Hash)
		if err != nil {
			return s, err
		}
		if i == 0 {
			s.Verified = rep
		}
	}
	return s, nil
}

// waitFinal waits until every acknowledged operation is final on every
// node and returns their statuses, the same on every node.
func (n *Network) waitFinal(nodes []*Node, acked []Acked) (map[ledger.Hash]taskrt.OpStatus, error) {
	deadline := time.Now().Add(finalWait)
	for {
		var missing []string
		for _, nd := range nodes {
			fin := n.finals[nd.Name]
			if fin == nil {
				fin = map[ledger.Hash]taskrt.OpStatus{}
				n.finals[nd.Name] = fin
			}
			for _, a := range acked {
				if _, ok := fin[a.ID]; ok {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				v, err := nd.client.Operation(ctx, a.ID)
				cancel()
				switch {
				case err != nil:
					missing = append(missing, fmt.Sprintf("%s: %q %s: %v", nd.Name, a.Name, a.ID.Hex(), err))
				case v.Status.Final():
					fin[a.ID] = v.Status
				default:
					missing = append(missing, fmt.Sprintf("%s: %q %s is %s", nd.Name, a.Name, a.ID.Hex(), v.Status))
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("after %s, %d acknowledged operations are not final on every node: %s", finalWait, len(missing),
				strings.Join(missing[:min(5, len(missing))], "; "))
		}
		time.Sleep(250 * time.Millisecond)
	}
	out := map[ledger.Hash]taskrt.OpStatus{}
	for _, a := range acked {
		for _, nd := range nodes {
			st := n.finals[nd.Name][a.ID]
			if first, ok := out[a.ID]; ok && first != st {
				return nil, fmt.Errorf("operation %q %s ended %s on %s but %s on %s", a.Name, a.ID.Hex(), first, nodes[0].Name, st, nd.Name)
			}
			out[a.ID] = st
		}
	}
	return out, nil
}

// waitSameHead waits until every node reports the same head height and
// hash, and returns it.
func waitSameHead(nodes []*Node) (uint64, ledger.Hash, error) {
	var seen []string
	for deadline := time.Now().Add(headWait); ; time.Sleep(100 * time.Millisecond) {
		heads, errs := Heads(nodes)
		same := true
		seen = seen[:0]
		for i := range nodes {
			if errs[i] != nil {
				same = false
				seen = append(seen, fmt.Sprintf("%s: %v", nodes[i].Name, errs[i]))
				continue
			}
			same = same && heads[i].Height == heads[0].Height && heads[i].Hash == heads[0].Hash
			seen = append(seen, fmt.Sprintf("%s: %d %s", nodes[i].Name, heads[i].Height, short(heads[i].Hash)))
		}
		if same {
			return heads[0].Height, heads[0].Hash, nil
		}
		if time.Now().After(deadline) {
			return 0, ledger.Hash{}, fmt.Errorf("the nodes did not reach one head within %s: %s", headWait, strings.Join(seen, ", "))
		}
	}
}

// verify runs ledger.VerifyChain on the node's chain over RPC, against the
// test's genesis, and checks that the chain holds block hash at height.
func (n *Network) verify(nd *Node, height uint64, hash ledger.Hash) (*ledger.VerifyReport, error) {
	ctx, cancel := context.WithTimeout(context.Background(), verifyWait)
	defer cancel()
	rep, err := ledger.VerifyChain(n.Genesis, nd.client.BlockSource(ctx))
	if err != nil {
		return nil, fmt.Errorf("%s: verify: %w", nd.Name, err)
	}
	if rep.Head < height {
		return nil, fmt.Errorf("%s: verified up to block %d, below the head %d it reported", nd.Name, rep.Head, height)
	}
	at := rep.HeadHash
	if rep.Head != height {
		if at, err = BlockHash(nd, height); err != nil {
			return nil, err
		}
	}
	if at != hash {
		return nil, fmt.Errorf("%s: block %d is %s, not %s: a fork", nd.Name, height, at.Hex(), hash.Hex())
	}
	return rep, nil
}
