package cli

import (
	"context"
	"errors"
)

var cmdConfig = &Command{
	Name:    "config",
	Summary: "check or show the configuration",
	Run: func(ctx context.Context, env Env, args []string) error {
		return errors.New("not implemented yet")
	},
}
