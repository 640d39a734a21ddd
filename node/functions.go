package node

import (
	"fmt"
	"sort"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/taskrt"
)

// Functions returns the registry of what a node configured with fns hosts:
// the builtins and each configured http or exec function.
func Functions(fns map[string]config.FunctionConfig) (*taskrt.Registry, error) {
	reg := taskrt.NewRegistry()
	names := make([]string, 0, len(fns))
	for name := range fns {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fc := fns[name]
		var f taskrt.Function
		var err error
		switch {
		case fc.HTTP != "" && len(fc.Exec) == 0:
			f, err = taskrt.NewHTTPFunction(fc.HTTP)
		case fc.HTTP == "" && len(fc.Exec) > 0:
			f, err = taskrt.NewExecFunction(fc.Exec)
		default:
			err = fmt.Errorf("set exactly one of http or exec")
		}
		if err != nil {
			return nil, fmt.Errorf("functions.%s: %w", name, err)
		}
		if err := reg.Register(name, f); err != nil {
			return nil, fmt.Errorf("functions.%s: %w", name, err)
		}
	}
	return reg, nil
}

// hosted lists the configured function names, sorted: what the node
// announces (builtins go without saying).
func hosted(fns map[string]config.FunctionConfig) []string {
	names := make([]string, 0, len(fns))
	for name := range fns {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
