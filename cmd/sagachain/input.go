package main

import (
	"encoding/json"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/taskrt"
)

// parseInputs turns --input label=value pairs into operation inputs. A
// value is JSON when it parses as JSON (42, true, {"a": 1}, "quoted"), else
// the string as written.
func parseInputs(pairs []string) (map[string]any, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	in := make(map[string]any, len(pairs))
	for _, p := range pairs {
		label, raw, ok := strings.Cut(p, "=")
		if !ok || label == "" {
			return nil, inputErrorf("--input %q: want label=value", p)
		}
		if _, dup := in[label]; dup {
			return nil, inputErrorf("--input %s: given twice", label)
		}
		v, err := inputValue(raw)
		if err != nil {
			return nil, inputErrorf("--input %s: %w", label, err)
		}
		in[label] = v
	}
	return in, nil
}

// inputValue decodes raw as JSON, keeping whole numbers exact, or returns
// it as a string when it is not JSON.
func inputValue(raw string) (any, error) {
	if !json.Valid([]byte(raw)) {
		return raw, nil
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return taskrt.NormalizeJSON(v)
}

// addInputFlag adds --input to a command that loads an operation file.
func addInputFlag(cmd *cobra.Command) {
	cmd.Flags().StringArray("input", nil, "set operation input `label=value` (value is JSON if it parses as JSON, else a string); repeatable")
}

// inputs parses the --input flags of the running command.
func (a *app) inputs() (map[string]any, error) {
	pairs, err := a.flagStrings("input")
	if err != nil {
		return nil, err
	}
	return parseInputs(pairs)
}
