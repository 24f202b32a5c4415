package cli

import (
	"context"
	"errors"
)

var cmdStatus = &Command{
	Name:    "status",
	Summary: "show the running daemon's state",
	Run: func(ctx context.Context, env Env, args []string) error {
		return errors.New("not implemented yet")
	},
}
