package cli

import (
	"context"
	"errors"
)

var cmdRun = &Command{
	Name:    "run",
	Summary: "run a command with memory locks and OOM protection",
	Run: func(ctx context.Context, env Env, args []string) error {
		return errors.New("not implemented yet")
	},
}
