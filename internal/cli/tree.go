package cli

import (
	"context"
	"errors"
)

var cmdTree = &Command{
	Name:    "tree",
	Summary: "show the process lineage, dead ancestors included",
	Run: func(ctx context.Context, env Env, args []string) error {
		return errors.New("not implemented yet")
	},
}
