package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/forkguard"
	"github.com/oomguard/oomguard/internal/kmemguard"
	"github.com/oomguard/oomguard/internal/policy/forkbomb"
	"github.com/oomguard/oomguard/internal/policy/kmembudget"
)

// addComponents builds the optional parts the configuration asks for.
func (d *Daemon) addComponents(cfg *config.Config) error {
	if cfg.ForkBomb.Enabled {
		g, err := forkguard.New(forkguard.Config{
			Scopes: d.scopes,
			DryRun: cfg.DryRun,
			Detector: forkbomb.Config{
				MinFamily:         cfg.ForkBomb.MinFamily,
				YouthAge:          time.Duration(cfg.ForkBomb.MaxAge),
				MinYoungFraction:  cfg.ForkBomb.MinYoungFraction,
				RateWindow:        time.Second,
				MinRate:           cfg.ForkBomb.MinRate,
				MinDepth:          cfg.ForkBomb.MinDepth,
				MinOrphanFraction: cfg.ForkBomb.MinOrphanFraction,

				OrphanFamily:           cfg.ForkBomb.OrphanFamily,
				OrphanFamilyFraction:   cfg.ForkBomb.OrphanFamilyFraction,
				ReplicatingFamily:      cfg.ForkBomb.ReplicatingFamily,
				ReplicatingGenerations: cfg.ForkBomb.ReplicatingGenerations,
				CloningFamily:          cfg.ForkBomb.CloningFamily,
				CloningGenerations:     cfg.ForkBomb.CloningGenerations,
				CopyAge:                time.Duration(cfg.ForkBomb.CopyAge),
			},
			KernelFilter: cfg.ForkBomb.KernelFilter,
		}, d.log.With("part", "forkbomb"), d.actions)
		if err != nil {
			// The memory killer is worth running without it.
			d.log.Error("fork-bomb guard off: cannot start it (it needs CAP_NET_ADMIN for the proc connector); --no-forkbomb silences this", "err", err)
		} else {
			d.components["fork-bomb guard"] = g
		}
	}
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
			// rules.protect holds here too.
			ProtectedName: d.kmemProtected,
		}, d.log.With("part", "kmem"), d.actions)
		if err != nil {
			return err
		}
		d.components["kmem budgets"] = g
	}
	return nil
}

// kmemProtected tells why the kernel-memory guard must spare pid (see
// protectedNow), under the configuration in force when it asks: a reload
// that changes rules.protect counts from then on, as it does for the
// memory killer.
func (d *Daemon) kmemProtected(pid int) string { return protectedNow(pid, PolicyRules(d.config())) }
