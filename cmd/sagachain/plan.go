package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/taskrt"
)

func (a *app) newPlanCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan FILE",
		Short: "Print the stages of an operation file, without running anything",
		Long: `plan checks an operation file (YAML or JSON; - reads stdin) and prints its stages:
the tasks of a stage run in parallel, and a stage starts once the stage before it
has succeeded. It runs nothing and needs no function to be hosted.`,
		Example: `  sagachain plan testnet/ops/trip.yaml
  sagachain plan testnet/ops/trip.yaml --json
  sagachain plan testnet/ops/trip.yaml --dot | dot -Tsvg > trip.svg`,
		Args: oneFile,
		RunE: a.runE(a.plan),
	}
	cmd.Flags().Bool("json", false, `print {"name": ..., "stages": [[task ids], ...]}`)
	cmd.Flags().Bool("dot", false, "print the dependency graph in Graphviz dot")
	return cmd
}

// oneFile accepts exactly one argument, the operation file.
func oneFile(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError(fmt.Errorf("%s takes one operation file, got %d arguments", cmd.Name(), len(args)))
	}
	return nil
}

// planJSON is what `plan --json` prints (SPEC §2).
type planJSON struct {
	Name   string     `json:"name"`
	Stages [][]string `json:"stages"`
}

func (a *app) plan(_ *cobra.Command, args []string) error {
	asJSON, err := a.flagBool("json")
	if err != nil {
		return err
	}
	asDot, err := a.flagBool("dot")
	if err != nil {
		return err
	}
	if asJSON && asDot {
		return usageError(fmt.Errorf("%s and %s: choose one", a.flagSource("json"), a.flagSource("dot")))
	}
	plan, _, err := a.loadOperation(args[0], nil)
	if err != nil {
		return err
	}
	switch {
	case asJSON:
		b, err := json.Marshal(planJSON{Name: plan.Op.Name, Stages: plan.StageIDs()})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	case asDot:
		_, err := io.WriteString(a.stdout, plan.Dot())
		return err
	}
	return writePlan(a.stdout, plan)
}

// writePlan prints a plan for a person: each stage, then each of its
// tasks with its functions and the tasks it waits for.
//
//	book-trip · 3 stages · 5 tasks
//	stage 0: flight, payment
//	  flight   run airline.reserve  rollback airline.cancel
func writePlan(w io.Writer, plan *taskrt.Plan) error {
	op := plan.Op
	idW, runW, undoW := 0, 0, len("no rollback")
	for _, t := range op.Tasks {
		idW = max(idW, len(t.ID))
		runW = max(runW, len(t.Run))
		undoW = max(undoW, len("rollback ")+len(t.Rollback))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s · %s · %s\n", op.Name, plural(len(plan.Stages), "stage"), plural(len(op.Tasks), "task"))
	for k, stage := range plan.Stages {
		ids := make([]string, len(stage))
		for j, i := range stage {
			ids[j] = op.Tasks[i].ID
		}
		fmt.Fprintf(&b, "stage %d: %s\n", k, strings.Join(ids, ", "))
		for _, i := range stage {
			t := op.Tasks[i]
			undo := "no rollback"
			if t.Rollback != "" {
				undo = "rollback " + t.Rollback
			}
			line := fmt.Sprintf("  %-*s  run %-*s  %-*s", idW, t.ID, runW, t.Run, undoW, undo)
			if deps := plan.Deps[i]; len(deps) > 0 {
				names := make([]string, len(deps))
				for j, d := range deps {
					names[j] = op.Tasks[d].ID
				}
				line += "  needs " + strings.Join(names, ", ")
			}
			b.WriteString(strings.TrimRight(line, " ") + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// plural formats a count of things: "1 task", "3 tasks".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
