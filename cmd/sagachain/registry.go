package main

import (
	"maps"
	"slices"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/taskrt"
)

// registry returns the functions this process hosts: the builtins and the
// config's http and exec functions.
func (a *app) registry() (*taskrt.Registry, error) {
	reg := taskrt.NewRegistry()
	for _, name := range slices.Sorted(maps.Keys(a.cfg.Functions)) {
		f, err := newFunction(a.cfg.Functions[name])
		if err == nil {
			err = reg.Register(name, f)
		}
		if err != nil {
			return nil, inputErrorf("config: functions.%s: %w", name, err)
		}
	}
	return reg, nil
}

// newFunction makes the function a validated config entry describes.
func newFunction(fc config.FunctionConfig) (taskrt.Function, error) {
	if fc.HTTP != "" {
		f, err := taskrt.NewHTTPFunction(fc.HTTP)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	f, err := taskrt.NewExecFunction(fc.Exec)
	if err != nil {
		return nil, err
	}
	return f, nil
}
