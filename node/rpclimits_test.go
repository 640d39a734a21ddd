package node

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/sagachain/sagachain/config"
)

// The rpc limits of the configuration reach the node's endpoint (issue #10).
func TestNodeAppliesItsRPCLimits(t *testing.T) {
	tn := startNodeWith(t, "", func(c *config.Config) {
		c.RPC.BatchRequestLimit = 2
		c.RPC.WSOrigins = []string{"http://ops.example"}
	})
	url := "http://" + tn.RPCAddr()
	resp, err := http.Post(url, "application/json", strings.NewReader(
		`[{"jsonrpc":"2.0","id":1,"method":"sc_head"},{"jsonrpc":"2.0","id":2,"method":"sc_head"},{"jsonrpc":"2.0","id":3,"method":"sc_head"}]`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "batch too large") {
		t.Errorf("a batch of 3 with rpc.batch_request_limit 2: %s", body)
	}
	ws := "ws://" + tn.RPCAddr()
	for origin, ok := range map[string]bool{"http://ops.example": true, "http://evil.example": false, url: true} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := gethrpc.DialOptions(ctx, ws, gethrpc.WithHeader("Origin", origin))
		cancel()
		if err == nil {
			c.Close()
		}
		if (err == nil) != ok {
			t.Errorf("WebSocket from %s: %v; want accepted %v", origin, err, ok)
		}
	}
}
