package hooks

import (
	"log/slog"

	"github.com/oomguard/oomguard/internal/config"
)

// New returns a Runner for the [hooks] table of the configuration.
func New(c config.Hooks, log *slog.Logger) *Runner {
	return &Runner{PreKillCmd: c.PreKill, PostKillCmd: c.PostKill, Timeout: c.Timeout.D(), Log: log}
}
