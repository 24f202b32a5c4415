package daemon

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/kmemguard"
	"github.com/oomguard/oomguard/internal/policy/kmembudget"
)

// addComponents builds the optional parts the configuration asks for.
func (d *Daemon) addComponents(cfg *config.Config) error {
	if len(cfg.Kmem.Budget) > 0 {
		var budgets []kmembudget.Budget
		for _, b := range cfg.Kmem.Budget {
			action, err := kmembudget.ParseAction(string(b.Action))
			if err != nil {
				return fmt.Errorf("kmem budget %s: %w", b.Path, err)
			}
			budgets = append(budgets, kmembudget.Budget{Pattern: filepath.Clean(b.Path), Max: b.Max.Bytes(), Action: action})
		}
		g, err := kmemguard.New(kmemguard.Config{
			Scopes:  d.scopes,
			Budgets: budgets,
			DryRun:  cfg.DryRun,
			SelfPID: os.Getpid(),
		}, d.log.With("part", "kmem"), d.actions)
		if err != nil {
			return err
		}
		d.components["kmem budgets"] = g
	}
	return nil
}
