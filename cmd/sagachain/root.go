package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cast"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/sagachain/sagachain/config"
)

// app is what every command shares: the standard streams, the logger, the
// node configuration, and the command's flags resolved over the
// environment and the config file.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
	cfg            config.Config
	// configPath is the config file given with --config or
	// SAGACHAIN_CONFIG, empty for none.
	configPath string
	// cmd is the command being run; flags resolves its flags: the command
	// line over SAGACHAIN_<FLAG> over the config file's <flag> key over the
	// flag's default.
	cmd   *cobra.Command
	flags *viper.Viper
}

// execute runs the command line args and returns the process's exit code.
func execute(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, log: slog.New(slog.NewTextHandler(stderr, nil))}
	root := a.newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var e *exitError
	if !errors.As(err, &e) {
		// Every RunE marks its errors (see runE), so an unmarked error is
		// cobra's own: an unknown command or a wrong argument.
		e = &exitError{code: exitUsage, err: err, usage: true}
	}
	if !e.quiet {
		fmt.Fprintf(stderr, "sagachain: %s\n", printableText(e.err.Error()))
		if e.usage && cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return e.code
}

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "sagachain",
		Short: "Run multi-step operations as sagas: planned in stages, checked by rules, rolled back in reverse",
		Long: `sagachain runs operations: sets of tasks whose data dependencies put them into
stages. The tasks of a stage run in parallel; every output is checked by the
task's rule; when anything fails, what was done is undone in reverse stage order.

Every flag can also be set in the config file (--config) under its name, or in
the environment as SAGACHAIN_<FLAG> (SAGACHAIN_LOG_FORMAT=json); the command
line wins over the environment, which wins over the file.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: a.runE(a.setup),
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.PersistentFlags().String("config", "", "node config file (YAML, SPEC §4): functions, limits; for dev and node it replaces the home's config.yaml; also SAGACHAIN_CONFIG")
	root.PersistentFlags().String("log-format", "text", "format of the logs on stderr: text or json")
	root.PersistentFlags().String("log-level", "info", "the least severe logs shown: debug, info, warn or error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.AddCommand(a.newPlanCmd(), a.newRunCmd(), a.newVersionCmd(),
		a.newInitCmd(), a.newKeysCmd(), a.newDevCmd(), a.newNodeCmd(),
		a.newSubmitCmd(), a.newOpCmd(), a.newChainCmd(), a.newExportCmd(), a.newImportCmd(), a.newVerifyCmd(), a.newBenchCmd(),
		a.newTestnetCmd(), a.newDemoCmd())
	return root
}

// runE marks the errors of a command's function that carry no exit code as
// failures (exit 1), so that execute can tell them from cobra's own.
func (a *app) runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		var e *exitError
		if err == nil || errors.As(err, &e) {
			return err
		}
		return &exitError{code: exitFailure, err: err}
	}
}

// setup loads the config file and resolves the command's flags and logger.
func (a *app) setup(cmd *cobra.Command, _ []string) error {
	path, err := cmd.Flags().GetString("config")
	if err != nil {
		return err
	}
	if env, ok := os.LookupEnv(config.EnvPrefix + "_CONFIG"); ok && !cmd.Flags().Changed("config") {
		path = env
	}
	cfg, err := config.Load(path, flagNames(cmd.Root())...)
	if err != nil {
		return inputError(err)
	}
	a.configPath, a.cmd = path, cmd
	return a.useConfig(cfg, path)
}

// useConfig makes cfg, read from the file at path, the configuration: its
// flag settings become the layer under the environment and the command
// line, and the logger follows the resolved --log-format.
func (a *app) useConfig(cfg config.Config, path string) error {
	v := viper.New()
	v.SetEnvPrefix(config.EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(a.cmd.Flags()); err != nil {
		return err
	}
	if err := v.MergeConfigMap(cfg.Flags); err != nil {
		return inputErrorf("config %s: %w", path, err)
	}
	a.cfg, a.flags = cfg, v

	var level slog.Level
	if err := level.UnmarshalText([]byte(a.flagString("log-level"))); err != nil {
		return inputErrorf("%s: want debug, info, warn or error, got %q", a.flagSource("log-level"), a.flagString("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch format := a.flagString("log-format"); format {
	case "text":
		h = slog.NewTextHandler(a.stderr, opts)
	case "json":
		h = slog.NewJSONHandler(a.stderr, opts)
	default:
		return inputErrorf("%s: want text or json, got %q", a.flagSource("log-format"), format)
	}
	a.log = slog.New(h)
	return nil
}

// flagNames lists the flags of every command under root that a config file
// may set: all but --config itself and --help.
func flagNames(root *cobra.Command) []string {
	seen := map[string]bool{"config": true, "help": true}
	var names []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) {
			if !seen[f.Name] {
				seen[f.Name] = true
				names = append(names, f.Name)
			}
		}
		c.LocalFlags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	slices.Sort(names)
	return names
}

// flagSource says where a flag's value came from, for error messages.
func (a *app) flagSource(name string) string {
	if f := a.cmd.Flags().Lookup(name); f != nil && f.Changed {
		return "--" + name
	}
	env := config.EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	if _, ok := os.LookupEnv(env); ok {
		return env
	}
	return "config key " + strings.ReplaceAll(name, "-", "_")
}

// flagString resolves a string flag.
func (a *app) flagString(name string) string {
	return a.flags.GetString(name)
}

// flagBool resolves a boolean flag; a value that is not a boolean is an
// input error naming where it came from.
func (a *app) flagBool(name string) (bool, error) {
	b, err := cast.ToBoolE(a.flags.Get(name))
	if err != nil {
		return false, inputErrorf("%s: want true or false, got %v", a.flagSource(name), a.flags.Get(name))
	}
	return b, nil
}

// flagStrings resolves a repeatable string flag: every use on the command
// line, else the environment's value as one CSV record (k=1,"k2={""a"":1}"),
// else the config file's list.
func (a *app) flagStrings(name string) ([]string, error) {
	if f := a.cmd.Flags().Lookup(name); f != nil && f.Changed {
		return a.cmd.Flags().GetStringArray(name)
	}
	switch v := a.flags.Get(name).(type) {
	case nil:
		return nil, nil
	case string:
		if v == "" {
			return nil, nil
		}
		rec, err := csv.NewReader(strings.NewReader(v)).Read()
		if err != nil {
			return nil, inputErrorf("%s: want comma-separated values: %w", a.flagSource(name), err)
		}
		return rec, nil
	default:
		s, err := cast.ToStringSliceE(v)
		if err != nil {
			return nil, inputErrorf("%s: want a list of strings, got %v", a.flagSource(name), v)
		}
		return s, nil
	}
}

// flagInt resolves an integer flag; a value that is not an integer is an
// input error naming where it came from.
func (a *app) flagInt(name string) (int, error) {
	n, err := cast.ToIntE(a.flags.Get(name))
	if err != nil {
		return 0, inputErrorf("%s: want a whole number, got %v", a.flagSource(name), a.flags.Get(name))
	}
	return n, nil
}
