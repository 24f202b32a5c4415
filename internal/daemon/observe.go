package daemon

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/oomguard/oomguard/internal/actionlog"
	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/forkguard"
	"github.com/oomguard/oomguard/internal/hooks"
	"github.com/oomguard/oomguard/internal/metrics"
	"github.com/oomguard/oomguard/internal/notify"
)

// isKill reports whether a is an action that killed (or, dry-run, would
// have killed) processes.
func isKill(a actionlog.Action) bool {
	return (a.Kind == "kill" || a.Kind == "contain-forkbomb") && len(a.PIDs) > 0
}

// observers turn recorded actions into metrics, D-Bus signals, desktop
// notifications and post-kill hooks. They run beside the killers and never
// block them: Record calls them synchronously, and each hands off.
type observers struct {
	metrics *metrics.Daemon
	hooks   *hooks.Runner
	notify  *notify.Notifier

	mu       sync.Mutex
	lastLoss map[string]uint64
}

// startObservers sets up what the configuration asks for. A missing system
// bus or an unusable metrics address is logged, not fatal: the killer matters
// more than its reports.
func (d *Daemon) startObservers(ctx context.Context, cfg *config.Config) (*observers, error) {
	o := &observers{lastLoss: map[string]uint64{}}
	o.hooks = hooks.New(cfg.Hooks, d.log.With("part", "hooks"))
	if cfg.Notify.DBus || cfg.Notify.Desktop {
		n, err := notify.New(notify.OptionsFrom(cfg.Notify, d.log.With("part", "notify")))
		if err != nil {
			d.log.Warn("D-Bus notifications off", "err", err)
		} else {
			o.notify = n
		}
	}
	if cfg.Metrics.Listen != "" {
		o.metrics = metrics.NewDaemon(d.Version, "/proc")
		l, err := metrics.Listen(cfg.Metrics.Listen)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		o.metrics.Registry.OnScrape(func() { o.scrape(d) })
		go metrics.Serve(ctx, l, o.metrics.Registry)
		d.log.Info("serving metrics", "addr", cfg.Metrics.Listen)
	}
	d.actions.Subscribe(o.record)
	return o, nil
}

// record is called for every action the daemon records.
func (o *observers) record(a actionlog.Action) {
	if m := o.metrics; m != nil {
		switch {
		case a.Kind == "kill" && a.DryRun:
			m.WouldKill.With(a.Trigger).Inc()
		case a.Kind == "kill":
			m.Kills.With(a.Trigger).Add(float64(len(a.PIDs)))
			if s, ok := a.Numbers["kill_duration_seconds"]; ok {
				m.KillDuration.Observe(s)
			}
		case a.Kind == "contain-forkbomb" && !a.DryRun:
			m.ForkBombsContained.Inc()
			m.ForkBombProcessesKilled.Add(float64(len(a.PIDs)))
			m.Kills.With("forkbomb").Add(float64(len(a.PIDs)))
		case a.Kind == "kmem-breach":
			m.KmemBudgetBreaches.With(a.Trigger).Inc()
		case a.Kind == "skip":
			m.KillFailures.With("deadline").Inc()
		case a.Kind == "reload":
			m.ConfigReloads.With("ok").Inc()
		case a.Kind == "reload-failed":
			m.ConfigReloads.With("error").Inc()
		}
	}
	if !isKill(a) || a.DryRun {
		return
	}
	ev := hooks.Event{PID: a.PIDs[0], PIDs: a.PIDs, Comm: a.Comm, Cgroup: a.Cgroup, Trigger: a.Trigger,
		Reason: a.Reason, RSSBytes: uint64(a.Numbers["rss_bytes"]), Result: "killed"}
	if len(a.UIDs) > 0 {
		ev.UID = a.UIDs[0]
	}
	o.hooks.PostKill(ev)
	if o.notify != nil {
		k := notify.Kill{Cgroup: a.Cgroup, Reason: a.Reason, Comm: a.Comm, Trigger: a.Trigger}
		for _, p := range a.PIDs {
			k.PIDs = append(k.PIDs, uint32(p))
		}
		for _, u := range a.UIDs {
			k.UIDs = append(k.UIDs, uint32(u))
		}
		o.notify.Killed(k)
	}
}

// scrape refreshes the gauges from the memory killer's latest snapshot and
// the event sources' loss counters, at every scrape.
func (o *observers) scrape(d *Daemon) {
	m := o.metrics
	if d.memory != nil {
		t := d.memory.triggerStatus()
		if t.MemTotal > 0 {
			m.MemAvailable.Set(float64(t.MemAvailable) / float64(t.MemTotal))
		}
		if t.SwapTotal > 0 {
			m.SwapFree.Set(float64(t.SwapFree) / float64(t.SwapTotal))
		} else {
			m.SwapFree.Set(0)
		}
		for res, pf := range map[string]struct{ some, full float64 }{
			"memory": {t.Pressure.Memory.Some.Avg10, t.Pressure.Memory.Full.Avg10},
			"io":     {t.Pressure.IO.Some.Avg10, t.Pressure.IO.Full.Avg10},
			"cpu":    {t.Pressure.CPU.Some.Avg10, t.Pressure.CPU.Full.Avg10},
		} {
			m.PressureSome.With(res, "").Set(pf.some / 100)
			m.PressureFull.With(res, "").Set(pf.full / 100)
		}
		for _, s := range t.Scopes {
			if s.Limit > 0 && s.Limit < 1<<60 {
				avail := float64(s.Limit) - float64(s.Usage) + float64(s.ReclaimableFile)
				m.ScopeAvailable.With(s.Path).Set(avail / float64(s.Limit))
			}
			m.PressureSome.With("memory", s.Path).Set(s.Pressure.Memory.Some.Avg10 / 100)
			m.PressureFull.With("memory", s.Path).Set(s.Pressure.Memory.Full.Avg10 / 100)
		}
		for _, name := range []string{"memavail", "scope", "psi", "thrash"} {
			active := 0.0
			if t.Verdict.Trigger == name && t.Verdict.Level.String() != "none" {
				active = 1
			}
			m.TriggerActive.With(name).Set(active)
		}
	}
	for _, c := range d.components {
		if g, ok := c.(*forkguard.Guard); ok {
			st := g.Stats()
			o.addDelta(m.EventLosses.With("proc_connector"), "loss", st.Events.Overruns)
			o.addDelta(m.Resyncs.With("proc_connector"), "resync", st.Resyncs)
		}
	}
}

// addDelta adds to counter what total grew by since the last scrape.
func (o *observers) addDelta(c metrics.Counter, key string, total uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if total > o.lastLoss[key] {
		c.Add(float64(total - o.lastLoss[key]))
	}
	o.lastLoss[key] = total
}

func (o *observers) close() {
	o.hooks.Wait()
	if o.notify != nil {
		o.notify.Close()
	}
}

// ownerUIDs returns the owners of the given processes (the owner of
// /proc/PID), skipping processes already gone.
func ownerUIDs(pids []int) []int {
	var uids []int
	seen := map[int]bool{}
	for _, p := range pids {
		st, err := os.Stat(fmt.Sprintf("/proc/%d", p))
		if err != nil {
			continue
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && !seen[int(sys.Uid)] {
			seen[int(sys.Uid)] = true
			uids = append(uids, int(sys.Uid))
		}
	}
	return uids
}
