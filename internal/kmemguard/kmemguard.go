// Package kmemguard is the daemon component that enforces kernel-memory
// budgets on cgroups: it polls their kernel memory, lets
// policy/kmembudget decide, and carries out the decision.
package kmemguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oomguard/oomguard/internal/actionlog"
	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/control"
	"github.com/oomguard/oomguard/internal/kmem"
	"github.com/oomguard/oomguard/internal/policy/kmembudget"
)

// Budget is a kernel-memory budget; see kmembudget.Budget.
type Budget = kmembudget.Budget

// Defaults for the zero fields of Config.
const (
	DefaultInterval      = 100 * time.Millisecond
	DefaultRescan        = time.Second
	DefaultKillTimeout   = 5 * time.Second
	DefaultFreezeTimeout = 2 * time.Second
	DefaultFreezerRoot   = "/sys/fs/cgroup/freezer"
)

// Config configures a Guard.
type Config struct {
	// Scopes confine the guard: every budgeted cgroup must lie inside one of
	// them, and a relative budget directory is taken relative to each. With
	// no scopes each budget's own cgroup is the confinement.
	Scopes []cgroupfs.Cgroup
	// Budgets are applied first match first to every cgroup they name.
	Budgets []Budget
	// DryRun logs and records what would be done, and does nothing.
	DryRun bool
	// Interval is the poll interval; zero means DefaultInterval (100 ms).
	Interval time.Duration
	// Rescan is how often glob budgets are expanded again to pick up new
	// cgroups; zero means DefaultRescan (1 s).
	Rescan time.Duration
	// Proc is the procfs to read processes from; the zero value is /proc.
	Proc kmem.ProcFS
	// FreezerRoot is the v1 freezer hierarchy's mount point; empty means
	// DefaultFreezerRoot.
	FreezerRoot string
	// SelfPID is never acted on; zero means os.Getpid().
	SelfPID int
	// ProtectedName, when set, tells why the configuration protects pid
	// (a protected name, as the memory killer's rules.protect), or ""
	// when it does not. Such a process is never chosen nor killed, as PID
	// 1, oomguard itself, oom_score_adj -1000 and kernel threads never are.
	ProtectedName func(pid int) string
	// KillTimeout bounds the wait for victims to die; zero means
	// DefaultKillTimeout.
	KillTimeout time.Duration
	// FreezeTimeout bounds the wait for a freezer to report FROZEN; zero
	// means DefaultFreezeTimeout.
	FreezeTimeout time.Duration
}

// Guard enforces kernel-memory budgets. Create it with New; Run it once.
// Report and the control handler are safe to call while it runs.
type Guard struct {
	cfg     Config
	log     *slog.Logger
	actions *actionlog.Log

	mu       sync.Mutex // guards the fields below
	tracker  kmembudget.Tracker
	targets  []*target
	lastScan time.Time
	errOnce  map[string]bool
	inFlight map[string]bool // cgroups with an action in progress
	pipeMax  uint64          // fs.pipe-max-size: the most one pipe holds
}

// target is one budgeted cgroup being polled.
type target struct {
	cg     cgroupfs.Cgroup
	reader *cgroupfs.KmemReader
	budget Budget
}

// New checks cfg and returns a Guard. A nil logger discards logs; a nil
// action log records nothing.
func New(cfg Config, log *slog.Logger, actions *actionlog.Log) (*Guard, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Rescan == 0 {
		cfg.Rescan = DefaultRescan
	}
	if cfg.KillTimeout == 0 {
		cfg.KillTimeout = DefaultKillTimeout
	}
	if cfg.FreezeTimeout == 0 {
		cfg.FreezeTimeout = DefaultFreezeTimeout
	}
	if cfg.FreezerRoot == "" {
		cfg.FreezerRoot = DefaultFreezerRoot
	}
	if cfg.SelfPID == 0 {
		cfg.SelfPID = os.Getpid()
	}
	if cfg.Interval < 0 || cfg.Rescan < 0 {
		return nil, errors.New("kmem guard: negative interval")
	}
	var budgets []Budget
	for _, b := range cfg.Budgets {
		if filepath.IsAbs(b.Pattern) {
			budgets = append(budgets, b)
			continue
		}
		if len(cfg.Scopes) == 0 {
			return nil, fmt.Errorf("kmem budget %q: a relative cgroup needs a scope to be relative to", b.Pattern)
		}
		for _, s := range cfg.Scopes {
			rb := b
			rb.Pattern = filepath.Join(s.Path, b.Pattern)
			budgets = append(budgets, rb)
		}
	}
	for i, b := range budgets {
		b.Pattern = filepath.Clean(b.Pattern)
		budgets[i] = b
		if err := b.Validate(); err != nil {
			return nil, err
		}
		if len(cfg.Scopes) > 0 && !hasMeta(b.Pattern) && !inScopes(cfg.Scopes, b.Pattern) {
			return nil, fmt.Errorf("kmem budget %q: outside every --scope", b.Pattern)
		}
	}
	if len(budgets) == 0 {
		return nil, errors.New("kmem guard: no budgets")
	}
	cfg.Budgets = budgets
	pipeMax := uint64(1 << 20)
	root := cfg.Proc.Root
	if root == "" {
		root = "/proc"
	}
	if b, err := os.ReadFile(filepath.Join(root, "sys/fs/pipe-max-size")); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			pipeMax = n
		}
	}
	return &Guard{cfg: cfg, log: log, actions: actions, errOnce: map[string]bool{}, inFlight: map[string]bool{}, pipeMax: pipeMax}, nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

func inScopes(scopes []cgroupfs.Cgroup, dir string) bool {
	for _, s := range scopes {
		if s.Contains(dir) {
			return true
		}
	}
	return false
}

// Run polls every Interval until ctx is done, then waits for actions in
// progress and returns nil. A breach is handled in its own goroutine as soon
// as the poll sees it, so a slow kill in one cgroup (waiting for a victim to
// exit) does not delay polling the others; a cgroup has at most one action
// in progress.
func (g *Guard) Run(ctx context.Context) error {
	g.log.Info("kmem guard started", "budgets", len(g.cfg.Budgets), "interval", g.cfg.Interval, "dry_run", g.cfg.DryRun)
	t := time.NewTicker(g.cfg.Interval)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		for _, d := range g.poll(time.Now()) {
			if !g.begin(d.Cgroup) {
				g.log.Warn("kmem budget breach while an action on the cgroup is in progress", "cgroup", d.Cgroup, "usage", d.Usage)
				continue
			}
			wg.Add(1)
			go func(d kmembudget.Decision) {
				defer wg.Done()
				defer g.end(d.Cgroup)
				g.handle(ctx, d)
			}(d)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// begin marks an action on cgroup in progress; false if one already is.
func (g *Guard) begin(cgroup string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inFlight[cgroup] {
		return false
	}
	g.inFlight[cgroup] = true
	return true
}

func (g *Guard) end(cgroup string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.inFlight, cgroup)
}

// Check runs one poll at now and carries out its decisions before
// returning; Run does the same but handles decisions concurrently.
func (g *Guard) Check(ctx context.Context, now time.Time) {
	for _, d := range g.poll(now) {
		g.handle(ctx, d)
	}
}

// poll re-expands the budgets when Rescan has passed, reads every budgeted
// cgroup's kernel memory and returns the decisions. Between rescans and
// without a breach it does not allocate.
func (g *Guard) poll(now time.Time) []kmembudget.Decision {
	var ds []kmembudget.Decision
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lastScan.IsZero() || now.Sub(g.lastScan) >= g.cfg.Rescan {
		g.rescan()
		g.lastScan = now
	}
	for _, tg := range g.targets {
		usage, _, err := tg.reader.Usage()
		if err != nil {
			g.logOnce(tg.cg.Path, "kmem guard: cannot read kernel memory", err)
			continue
		}
		if d, act := g.tracker.Observe(now, kmembudget.Observation{Cgroup: tg.cg.Path, Budget: tg.budget, Usage: usage}); act {
			ds = append(ds, d)
		}
	}
	return ds
}

func (g *Guard) logOnce(key, msg string, err error) {
	if g.errOnce[key] {
		return
	}
	g.errOnce[key] = true
	g.log.Warn(msg, "cgroup", key, "err", err)
}

// rescan expands the budgets into targets, keeping the readers of cgroups
// already known. Called with g.mu held.
func (g *Guard) rescan() {
	old := map[string]*target{}
	for _, t := range g.targets {
		old[t.cg.Path] = t
	}
	seen := map[string]bool{}
	var next []*target
	for _, b := range g.cfg.Budgets {
		dirs := []string{b.Pattern}
		if hasMeta(b.Pattern) {
			m, err := filepath.Glob(b.Pattern)
			if err != nil {
				g.logOnce(b.Pattern, "kmem guard: bad glob", err)
				continue
			}
			dirs = m
		}
		for _, d := range dirs {
			if seen[d] {
				continue // an earlier budget applies
			}
			if len(g.cfg.Scopes) > 0 && !inScopes(g.cfg.Scopes, d) {
				g.logOnce(d, "kmem guard: cgroup outside every scope, not guarded", errors.New("outside scope"))
				continue
			}
			if t, ok := old[d]; ok {
				t.budget = b
				next = append(next, t)
				seen[d] = true
				continue
			}
			if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
				continue // a glob also matches control files
			}
			cg, err := cgroupfs.Open(d)
			if err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					g.logOnce(d, "kmem guard: not a cgroup", err)
				}
				continue
			}
			seen[d] = true
			next = append(next, &target{cg: cg, reader: cg.KmemReader(), budget: b})
			delete(g.errOnce, d)
		}
	}
	for p := range old {
		if !seen[p] {
			g.tracker.Forget(p)
		}
	}
	g.targets = next
}

// Report returns the daemon's view of every budgeted cgroup: budget,
// breaches counted, latest and peak usage.
func (g *Guard) Report() []kmem.DaemonCgroup {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []kmem.DaemonCgroup{}
	for _, s := range g.tracker.States() {
		out = append(out, kmem.DaemonCgroup{
			Path: s.Cgroup, Limit: s.Budget.Max, Low: s.Budget.LowMark(), Failcnt: s.Failcnt,
			Peak: s.Peak, Usage: s.Usage, Action: string(s.Budget.Action), Armed: s.Armed,
		})
	}
	return out
}

// ControlMethod is the control-socket method that answers with Report.
const ControlMethod = "kmem"

// ControlResult is the result of ControlMethod.
type ControlResult struct {
	Cgroups []kmem.DaemonCgroup `json:"cgroups"`
}

// RegisterControl answers ControlMethod ("kmem") on srv with Report, so
// `oomguard kmem` can show the daemon's budget and failcnt.
func (g *Guard) RegisterControl(srv *control.Server) {
	srv.Handle(ControlMethod, func(ctx context.Context, params json.RawMessage) (any, error) {
		return ControlResult{Cgroups: g.Report()}, nil
	})
}

// handle carries out one decision: log it with the breakdown, record it,
// and act.
func (g *Guard) handle(ctx context.Context, d kmembudget.Decision) {
	cg, err := cgroupfs.Open(d.Cgroup)
	if err != nil {
		g.log.Warn("kmem budget breach: cgroup is gone", "cgroup", d.Cgroup, "err", err)
		return
	}
	// A kill needs the victim fast: pipes are counted but their data is
	// not read (killHeaviest measures the close contenders exactly).
	proc := g.cfg.Proc
	proc.NoPipeData = d.Action != kmembudget.Report
	t0 := time.Now()
	rep, err := kmem.ReadCgroup(cg, kmem.Options{Proc: proc, Attribute: true, TopProcesses: math.MaxInt})
	took := time.Since(t0)
	if err != nil {
		g.log.Warn("kmem budget breach: reading the breakdown", "cgroup", d.Cgroup, "err", err)
	}
	bd := map[string]uint64{}
	for k, v := range rep.Breakdown {
		if v.Bytes != nil {
			bd[k] = *v.Bytes
		}
	}
	d.Breakdown = bd
	reason := d.Reason + kmembudget.DescribeBreakdown(bd)
	nums := map[string]float64{
		"usage": float64(d.Usage), "max": float64(d.Budget.Max), "low": float64(d.Budget.LowMark()),
		"failcnt": float64(d.Failcnt),
	}
	for k, v := range bd {
		nums["kmem_"+k] = float64(v)
	}
	attrs := []any{"cgroup", d.Cgroup, "usage", d.Usage, "max", d.Budget.Max, "failcnt", d.Failcnt,
		"action", string(d.Action), "dry_run", g.cfg.DryRun, "attribution", took}
	for _, k := range slices.Sorted(maps.Keys(bd)) {
		attrs = append(attrs, "kmem_"+k, bd[k])
	}
	g.log.Warn("kmem budget breach", attrs...)
	g.record(actionlog.Action{Time: d.Time, Kind: "kmem-breach", Trigger: "kmem-budget", Reason: reason, Cgroup: d.Cgroup,
		Numbers: nums, DryRun: g.cfg.DryRun})

	switch d.Action {
	case kmembudget.Report:
		return
	case kmembudget.KillHeaviest:
		g.killHeaviest(cg, d, rep, nums)
	case kmembudget.KillCgroup:
		g.killCgroup(ctx, cg, d, nums)
	}
}

func (g *Guard) record(a actionlog.Action) {
	if g.actions != nil {
		g.actions.Record(a)
	}
}
