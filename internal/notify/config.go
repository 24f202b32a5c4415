package notify

import (
	"log/slog"

	"github.com/oomguard/oomguard/internal/config"
)

// OptionsFrom returns the Options for the [notify] table of the
// configuration.
func OptionsFrom(c config.Notify, log *slog.Logger) Options {
	return Options{Address: c.DBusAddress, Signal: c.DBus, Desktop: c.Desktop, Log: log}
}
