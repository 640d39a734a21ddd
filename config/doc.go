// Package config loads and checks a sagachain node's configuration
// (config.yaml, SPEC §4): the file's settings over [Default], then
// SAGACHAIN_* environment variables over both.
//
// Function names keep their dots and their case ("airline.reserve" is one
// key). Unknown keys are errors that name the key, so a misspelt setting is
// never silently ignored.
//
// config imports no other package of this module; callers convert its plain
// values into the types of the packages that use them.
package config
