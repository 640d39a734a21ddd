package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/ledger"
	"github.com/sagachain/sagachain/taskrt"
)

// allStatuses are the operation statuses of SPEC §2.
var allStatuses = []taskrt.OpStatus{
	taskrt.OpRunning, taskrt.OpCompleted, taskrt.OpRollingBack, taskrt.OpRolledBack, taskrt.OpRollbackFailed,
}

func TestStatusExitCodeCoversEveryStatus(t *testing.T) {
	want := map[taskrt.OpStatus]int{
		taskrt.OpCompleted:      exitOK,
		taskrt.OpRolledBack:     exitRolledBack,
		taskrt.OpRollbackFailed: exitRollbackFailed,
		taskrt.OpRunning:        exitFailure,
		taskrt.OpRollingBack:    exitFailure,
	}
	for _, s := range allStatuses {
		got := statusExitCode(s)
		if got != want[s] {
			t.Errorf("statusExitCode(%s) = %d, want %d", s, got, want[s])
		}
		// Only an operation that has not ended maps to the catch-all code.
		if s.Final() == (got == exitFailure) {
			t.Errorf("statusExitCode(%s) = %d, but Final() = %v", s, got, s.Final())
		}
	}
	if got := statusExitCode("unheard_of"); got != exitFailure {
		t.Errorf("statusExitCode(unknown) = %d, want %d", got, exitFailure)
	}
}

func TestExitCodeOfErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("disk on fire"), exitFailure},
		{inputErrorf("bad %s", "key"), exitUsage},
		{fmt.Errorf("wrapped: %w", inputErrorf("bad")), exitUsage},
		{usageError(errors.New("unknown flag")), exitUsage},
		{&exitError{code: exitRolledBack, err: errors.New("rolled back")}, exitRolledBack},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// The node's default limits are the operation limits of SPEC §1.
func TestConfigDefaultLimitsAreTaskrts(t *testing.T) {
	a := &app{cfg: config.Default()}
	got := a.limits()
	if want := taskrt.DefaultLimits(); got != want {
		t.Errorf("config.Default().Limits = %+v, taskrt.DefaultLimits() = %+v", got, want)
	}
	// What the client checks is what the chain's default genesis enforces.
	if chain, want := ledger.DefaultParams().TaskLimits(), taskrt.DefaultLimits(); chain != want {
		t.Errorf("ledger.DefaultParams().TaskLimits() = %+v, taskrt.DefaultLimits() = %+v", chain, want)
	}
}
