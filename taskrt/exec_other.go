//go:build !unix

package taskrt

import "os/exec"

// killProcessGroupOnCancel leaves exec's default cancellation, which kills
// the command's process only: process groups are a Unix notion.
func killProcessGroupOnCancel(*exec.Cmd) {}
