package daemon

import "github.com/oomguard/oomguard/internal/config"

// addComponents starts the optional parts the configuration asks for.
func (d *Daemon) addComponents(cfg *config.Config) error {
	return nil
}
