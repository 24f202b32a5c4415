package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/source"
)

// eventWaker adapts a source.Waker to the loop's channel: the kernel's own
// notifications (cgroup v1 usage thresholds and OOM events, v2
// memory.events changes, PSI triggers) wake the loop at once instead of at
// its next poll.
type eventWaker struct {
	w      *source.Waker
	ch     chan struct{}
	cancel context.CancelFunc
}

func (e *eventWaker) C() <-chan struct{} { return e.ch }

func (e *eventWaker) Close() error {
	e.cancel()
	return e.w.Close()
}

// openWakeSources opens every event source that can tell the memory killer
// to look now. A source the kernel refuses is logged and left out: the poll
// still covers what it would have seen.
//
// It also returns, for each scope with a usage threshold armed, the lowest
// such threshold in bytes: below it, the kernel tells the loop when usage
// crosses it, and the poll may slow down (see fillInterval).
func openWakeSources(cfg *config.Config, scopes []cgroupfs.Cgroup, log *slog.Logger) (waker, map[string]uint64) {
	var srcs []source.Source
	type usageWatch struct {
		path string
		at   uint64
		src  int // index in srcs
	}
	var watches []usageWatch
	add := func(s source.Source, err error, what string, attrs ...any) bool {
		if err != nil {
			log.Warn("event source unavailable; polling covers it", append(attrs, "source", what, "err", err)...)
			return false
		}
		srcs = append(srcs, s)
		return true
	}
	for _, sc := range scopes {
		switch {
		case sc.Version == cgroupfs.V1 && sc.Has("memory.usage_in_bytes"):
			limit, err := sc.ReadUint("memory.limit_in_bytes")
			if err == nil && limit < 1<<60 {
				for _, pct := range []config.Percent{cfg.ScopeLimits.TermPercent, cfg.ScopeLimits.KillPercent} {
					if pct <= 0 {
						continue
					}
					at := uint64(float64(limit) * (1 - pct.Ratio()))
					s, err := source.OpenUsageThreshold(sc, at)
					if add(s, err, "usage threshold", "cgroup", sc.Path, "bytes", at) {
						watches = append(watches, usageWatch{sc.Path, at, len(srcs) - 1})
					}
				}
			}
			s, err := source.OpenOOMNotifier(sc)
			add(s, err, "oom notifier", "cgroup", sc.Path)
		case sc.Version == cgroupfs.V2 && sc.Has("memory.events"):
			s, err := source.WatchMemoryEvents(sc)
			add(s, err, "memory.events", "cgroup", sc.Path)
		}
	}
	for _, p := range cfg.PSI {
		spec := source.PSISpec{Kind: string(p.Kind), Stall: time.Duration(p.Stall), Window: time.Duration(p.Window)}
		var paths []string
		if len(scopes) == 0 {
			paths = append(paths, filepath.Join("/proc/pressure", string(p.Resource)))
		}
		for _, sc := range scopes {
			if sc.Has(string(p.Resource) + ".pressure") {
				paths = append(paths, sc.File(string(p.Resource)+".pressure"))
			}
		}
		for _, path := range paths {
			s, err := source.OpenPSI(path, spec, 100*time.Millisecond, log)
			add(s, err, "psi", "path", path, "spec", spec.String())
		}
	}
	if len(srcs) == 0 {
		return nil, nil
	}
	if len(srcs) > source.MaxSources {
		log.Warn("too many event sources; the rest are polled", "sources", len(srcs), "max", source.MaxSources)
		for _, s := range srcs[source.MaxSources:] {
			s.Close()
		}
		srcs = srcs[:source.MaxSources]
	}
	w, err := source.NewWaker(log, srcs...)
	if err != nil {
		log.Warn("event sources unavailable; polling only", "err", err)
		return nil, nil
	}
	watched := map[string]uint64{}
	for _, u := range watches {
		if u.src >= len(srcs) {
			continue // left out above
		}
		if at, ok := watched[u.path]; !ok || u.at < at {
			watched[u.path] = u.at
		}
	}
	for _, s := range w.Sources() {
		log.Debug("event source", "name", s.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &eventWaker{w: w, ch: make(chan struct{}, 1), cancel: cancel}
	go func() {
		for {
			if _, err := w.Wait(ctx); err != nil {
				return
			}
			select {
			case e.ch <- struct{}{}:
			default:
			}
		}
	}()
	return e, watched
}
