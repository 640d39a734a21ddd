package main

import (
	"os"
	"runtime/debug"
)

// defaultMemoryLimit is the Go runtime's soft memory limit for a node
// process when GOMEMLIMIT does not set one (README, "Memory"). A node's
// live heap is the store's memtables and block cache (ledger,
// storeNumMemtables and storeBlockCacheSize: 192 MiB), the cache of
// records of operations not yet final (node, maxCachedBytes: at most 256
// MiB) and the blocks in flight. With the runtime's default, the heap was
// let grow to twice that before a collection; the limit makes the
// collector work harder as the heap nears it instead, so that a node that
// runs for 100,000 operations stays within it.
const defaultMemoryLimit = 1 << 30

// limitMemory sets the soft memory limit unless the environment chose one.
func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
