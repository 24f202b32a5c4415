package cli

import (
	"context"
	"errors"
)

var cmdPs = &Command{
	Name:    "ps",
	Summary: "show the victim ranking as the killer sees it",
	Run: func(ctx context.Context, env Env, args []string) error {
		return errors.New("not implemented yet")
	},
}
