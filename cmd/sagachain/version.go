package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is the release this binary was built from, set with
// -ldflags "-X main.version=v1.2.3"; `go install ...@v1.2.3` sets it too.
var version = "dev"

func (a *app) newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of sagachain",
		Args:  cobra.NoArgs,
		// The version must print even when the config is broken.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: a.runE(func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(a.stdout, "sagachain %s (%s %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		}),
	}
}

// buildVersion is version, or the module version the go command stamped.
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return version
}
