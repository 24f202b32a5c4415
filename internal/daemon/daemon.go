// Package daemon wires oomguard together: event sources and readers build a
// snapshot, the policy core decides, actuators act. It decides nothing.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oomguard/oomguard/internal/actionlog"
	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/control"
	"github.com/oomguard/oomguard/internal/sdnotify"
)

// component is a part of the daemon with its own loop, such as the
// fork-bomb guard or the kernel-memory budget guard.
type component interface {
	Run(ctx context.Context) error
}

// controlRegistrar is a component that answers control-socket methods.
type controlRegistrar interface {
	RegisterControl(srv *control.Server)
}

// Daemon is one running oomguard service. Create it with New, start it with
// Run; Reload swaps in a new configuration while it runs. It is not
// reusable after Run returns.
type Daemon struct {
	// Version is reported by metrics (oomguard_build_info); set it before Run.
	Version string
	// RehearsalVictim is the argv of a program the memory killer starts
	// and kills at start, before its loop, so that the kill path (pidfds,
	// signals, the wait, process_mrelease) has run once and its code is
	// locked in memory before a real kill needs it (see
	// memoryKiller.rehearseKill). The program must run until it is killed
	// or its standard input closes. nil skips the rehearsal; set it before
	// Run.
	RehearsalVictim []string

	log     *slog.Logger
	actions *actionlog.Log
	started time.Time
	srv     *control.Server
	scopes  []cgroupfs.Cgroup

	mu  sync.Mutex
	cfg *config.Config

	memory     *memoryKiller
	components map[string]component
	lastSteps  atomic.Uint64
}

// New checks cfg against the machine (the scope cgroups must exist) and
// builds the daemon's parts. Nothing runs until Run.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	d := &Daemon{
		log:        log,
		actions:    actionlog.New(50),
		started:    time.Now(),
		srv:        control.NewServer(log),
		cfg:        cfg,
		components: map[string]component{},
	}
	for _, s := range cfg.Scope {
		c, err := cgroupfs.Open(s)
		if err != nil {
			return nil, fmt.Errorf("scope: %w", err)
		}
		d.scopes = append(d.scopes, c)
	}
	// The memory killer measures each scope's memory, so it watches only
	// scopes with memory accounting (a v1 pids cgroup has none). With
	// scopes but none of them measurable, it stays off rather than falling
	// back to the whole machine.
	var memScopes []cgroupfs.Cgroup
	for _, s := range d.scopes {
		if s.Has("memory.usage_in_bytes") || s.Has("memory.current") {
			memScopes = append(memScopes, s)
		} else {
			log.Info("scope has no memory accounting; the memory killer does not watch it", "scope", s.Path)
		}
	}
	if len(d.scopes) == 0 || len(memScopes) > 0 {
		m, err := newMemoryKiller(cfg, memScopes, log, d.actions)
		if err != nil {
			return nil, err
		}
		d.memory = m
	} else {
		log.Info("memory killer off: no scope has memory accounting")
	}
	if err := d.addComponents(cfg); err != nil {
		return nil, err
	}
	d.srv.Handle("status", d.handleStatus)
	if d.memory != nil {
		d.srv.Handle("ps", d.memory.handlePs)
	} else {
		d.srv.Handle("ps", func(context.Context, json.RawMessage) (any, error) {
			return nil, fmt.Errorf("%w: the memory killer is off (no scope has memory accounting)", ErrScopeMismatch)
		})
	}
	for _, c := range d.components {
		if r, ok := c.(controlRegistrar); ok {
			r.RegisterControl(d.srv)
		}
	}
	return d, nil
}

// Actions returns the daemon's action log.
func (d *Daemon) Actions() *actionlog.Log { return d.actions }

// Run serves the control socket and runs every part of the daemon until ctx
// ends, then returns nil. It returns an error when a part cannot start.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.config()
	protectSelf(d.log, "/proc")
	if len(d.scopes) == 0 {
		d.log.Warn("running unscoped: every process on this machine may be killed")
	}
	mode := os.FileMode(cfg.Socket.Mode)
	if mode == 0 {
		mode = 0o600
	}
	l, err := control.Listen(cfg.Socket.Path, mode)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Socket.Path)
	if err := chgrpSocket(cfg.Socket.Path, cfg.Socket.Group); err != nil {
		l.Close()
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	obs, err := d.startObservers(ctx, cfg)
	if err != nil {
		l.Close()
		return err
	}
	defer obs.close()
	if d.memory != nil {
		d.memory.hooks = obs.hooks
		d.memory.rehearsalVictim = d.RehearsalVictim
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(d.components)+2)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	run("control socket", func(ctx context.Context) error { return d.srv.Serve(ctx, l) })
	if d.memory != nil {
		run("memory killer", d.memory.Run)
	}
	for name, c := range d.components {
		run(name, c.Run)
	}
	scopes := make([]string, len(d.scopes))
	for i, s := range d.scopes {
		scopes[i] = s.Path
	}
	d.log.Info("daemon ready", "pid", os.Getpid(), "scopes", scopes, "dry_run", cfg.DryRun, "socket", cfg.Socket.Path)
	sd := sdnotify.FromEnv(os.Getenv)
	if err := sd.Ready(fmt.Sprintf("watching %d scopes", len(scopes))); err != nil {
		d.log.Warn("sd_notify READY failed", "err", err)
	}
	if timeout, ok := sdnotify.WatchdogInterval(os.Getenv, os.Getpid()); ok {
		go sd.RunWatchdog(ctx, timeout, d.alive)
	}

	<-ctx.Done()
	sd.Stopping()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	d.log.Info("daemon stopped")
	return errors.Join(all...)
}

// alive reports whether the memory killer's loop made progress since the
// last call, for the systemd watchdog: a stuck loop stops the pings.
func (d *Daemon) alive() bool {
	if d.memory == nil {
		return true
	}
	n := d.memory.steps.Load()
	prev := d.lastSteps.Swap(n)
	return n != prev
}

// Reload swaps in a new configuration: triggers, rules and kill settings
// change at once; the lineage record and in-flight victims are kept. Scope
// and socket changes need a restart and are refused.
func (d *Daemon) Reload(cfg *config.Config) (err error) {
	defer func() {
		if err != nil {
			d.actions.Record(actionlog.Action{Kind: "reload-failed", Trigger: "sighup", Reason: err.Error()})
		}
	}()
	old := d.config()
	if fmt.Sprint(old.Scope) != fmt.Sprint(cfg.Scope) || old.Socket != cfg.Socket {
		return errors.New("reload: scope and socket changes need a restart")
	}
	if d.memory != nil {
		if err := d.memory.reconfigure(cfg); err != nil {
			return fmt.Errorf("reload: %w", err)
		}
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.log.Info("configuration reloaded")
	d.actions.Record(actionlog.Action{Kind: "reload", Trigger: "sighup", Reason: "configuration reloaded"})
	return nil
}

func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Status is the answer to the control socket's "status" method.
type Status struct {
	Version       int                `json:"version"`
	PID           int                `json:"pid"`
	Started       time.Time          `json:"started"`
	UptimeSeconds float64            `json:"uptime_seconds"`
	DryRun        bool               `json:"dry_run"`
	Scopes        []string           `json:"scopes"`
	Triggers      TriggerStatus      `json:"triggers"`
	Actions       []actionlog.Action `json:"actions"`
	Counts        map[string]uint64  `json:"counts"`
	Components    []string           `json:"components"`
	Extra         map[string]any     `json:"extra,omitempty"`
}

func (d *Daemon) handleStatus(ctx context.Context, _ json.RawMessage) (any, error) {
	cfg := d.config()
	st := Status{
		Version:       control.APIVersion,
		PID:           os.Getpid(),
		Started:       d.started,
		UptimeSeconds: time.Since(d.started).Seconds(),
		DryRun:        cfg.DryRun,
		Scopes:        append([]string{}, cfg.Scope...),
		Actions:       d.actions.Recent(),
		Counts:        map[string]uint64{},
	}
	if d.memory != nil {
		st.Triggers = d.memory.triggerStatus()
	}
	for k, v := range d.actions.Counts() {
		st.Counts[k[0]+"/"+k[1]] = v
	}
	for name := range d.components {
		st.Components = append(st.Components, name)
	}
	return st, nil
}
