package node

import (
	"context"

	"github.com/sagachain/sagachain/ledger"
)

// BlockRecord is a committed block with the certificate that committed it,
// as block sync serves them.
type BlockRecord struct {
	Block  *ledger.Block
	Commit *ledger.Commit
}

// Network is what a node needs of its peers: gossip for entries and
// consensus messages, block sync, and who is connected. A one-validator
// node has none.
type Network interface {
	// FetchBlocks asks peer for the committed blocks from..to; a peer
	// that has none of them gives none and no error.
	FetchBlocks(ctx context.Context, peer string, from, to uint64) ([]BlockRecord, error)
	// Peers returns the validators connected now.
	Peers() []ledger.Address
	// PeerIDs returns the peers connected now, as FetchBlocks names them.
	PeerIDs() []string
}
