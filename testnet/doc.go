// Package testnet holds what exercises sagachain as a user would: the
// example operations (ops/), the container image (docker/), tests that run
// the sagachain binary as real processes (a node killed mid-task loses
// nothing it acknowledged), the import rule of DESIGN §3, and, in e2e/, the
// fault tests on a four-validator network.
package testnet
