package node

import (
	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/node/rpc"
)

// rpcLimits carries the rpc.* limits of the configuration to the endpoint.
func rpcLimits(c config.RPCConfig) rpc.Limits {
	return rpc.Limits{
		BatchRequestLimit:     c.BatchRequestLimit,
		BatchResponseMaxBytes: c.BatchResponseMaxBytes,
		MaxResponseBytes:      c.MaxResponseBytes,
		WSOrigins:             c.WSOrigins,
		CORSDomains:           c.CORSDomains,
	}
}
