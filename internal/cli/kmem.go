package cli

import (
	"context"
	"errors"
)

var cmdKmem = &Command{
	Name:    "kmem",
	Summary: "show kernel memory per cgroup",
	Run: func(ctx context.Context, env Env, args []string) error {
		return errors.New("not implemented yet")
	},
}
