package testnet

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sagachain/sagachain"

// allowedImports is DESIGN §3: imports point down only. Each package may
// import the project packages listed for it, and nothing else of the
// project; test files are free.
var allowedImports = map[string][]string{
	"taskrt":        {},
	"p2p":           {},
	"config":        {},
	"ledger":        {"taskrt"},
	"consensus":     {"ledger", "taskrt"},
	"node/rpc":      {"ledger", "taskrt"},
	"node/web":      {},
	"node/metrics":  {"ledger", "taskrt"},
	"node/monitor":  {"config", "ledger", "taskrt"},
	"node":          {"consensus", "p2p", "ledger", "taskrt", "config", "node/rpc", "node/metrics", "node/monitor"},
	"demo":          {},
	"testnet":       {},
	"testnet/e2e":   {"ledger", "taskrt", "node/rpc", "config"},
	"cmd/sagachain": {"node", "node/rpc", "node/web", "consensus", "p2p", "ledger", "taskrt", "config", "demo"},
}

// TestImportsPointDown enforces DESIGN §3 with go list, as go-ethereum's
// build/ci.go does, so the architecture cannot rot silently: a package
// importing one it may not, or a package the rule does not know, fails.
func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		allowed, known := allowedImports[name]
		if !known {
			t.Errorf("package %s is not in the import rule; add it to allowedImports with what it may import", name)
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if !slices.Contains(allowed, dep) {
				t.Errorf("%s imports %s, which DESIGN §3 does not allow", name, dep)
			}
		}
	}
	if seen < 10 {
		t.Fatalf("go list saw only %d packages of the project", seen)
	}
}
