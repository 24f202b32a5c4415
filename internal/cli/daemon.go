package cli

import (
	"context"
	"errors"
)

var cmdDaemon = &Command{
	Name:    "daemon",
	Summary: "run the memory-pressure manager",
	Run: func(ctx context.Context, env Env, args []string) error {
		return errors.New("not implemented yet")
	},
}
