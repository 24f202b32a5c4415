package metrics

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// KillDurationBuckets are the upper bounds, in seconds, of the time-to-kill
// histogram: from the trigger firing to the victim's exit.
var KillDurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Daemon is the set of metrics oomguard's daemon exports. Every field is
// ready to use after NewDaemon; resolve labelled series once (With) and keep
// them on hot paths.
type Daemon struct {
	// Registry serves all of them.
	Registry *Registry

	// MemAvailable is MemAvailable/MemTotal (oomguard_mem_available_ratio).
	MemAvailable Gauge
	// SwapFree is SwapFree/SwapTotal, 0 without swap (oomguard_swap_free_ratio).
	SwapFree Gauge
	// PressureSome and PressureFull are the avg10 of the PSI files as a ratio,
	// labelled resource (memory|io|cpu) and cgroup ("" for the system).
	PressureSome GaugeVec
	PressureFull GaugeVec
	// ScopeAvailable is (limit - usage + reclaimable file) / limit of each
	// scope cgroup, labelled cgroup.
	ScopeAvailable GaugeVec
	// RefaultRate is workingset refaults per second (thrash detection).
	RefaultRate Gauge
	// TriggerActive is 1 while a trigger is firing, labelled trigger.
	TriggerActive GaugeVec
	// TriggerValue is the current value of each configured trigger in its
	// base unit (a ratio for percentages), labelled trigger (a name such as
	// "memory", "psi:memory:full:/sys/fs/cgroup/x").
	TriggerValue GaugeVec
	// TriggerThreshold is the configured threshold of each trigger, labelled
	// trigger and level (term|kill).
	TriggerThreshold GaugeVec

	// Kills counts victims killed, labelled trigger (memory, swap, psi,
	// scope_limit, thrash, forkbomb, kmem_budget, ...).
	Kills CounterVec
	// KillFailures counts kills that missed their deadline or failed,
	// labelled reason.
	KillFailures CounterVec
	// WouldKill counts dry-run decisions, labelled trigger.
	WouldKill CounterVec
	// ForkBombsContained counts fork bombs frozen and killed.
	ForkBombsContained Counter
	// ForkBombProcessesKilled counts processes killed as bomb members.
	ForkBombProcessesKilled Counter
	// KmemBudgetBreaches counts cgroups found over their kernel-memory
	// budget, labelled action.
	KmemBudgetBreaches CounterVec
	// EventLosses counts lost events, labelled source (proc_connector, ...).
	EventLosses CounterVec
	// Resyncs counts full /proc rescans after a loss, labelled source.
	Resyncs CounterVec
	// KillDuration is the time from trigger to the victim's exit, seconds.
	KillDuration Histogram
	// HookFailures counts hooks that failed or timed out, labelled event.
	HookFailures CounterVec
	// ConfigReloads counts SIGHUP reloads, labelled result (ok|error).
	ConfigReloads CounterVec
}

// NewDaemon registers the daemon's metrics, including the process's own RSS
// and CPU read from procRoot/self at every scrape (procRoot is "/proc"
// outside tests), and oomguard_build_info{version}.
func NewDaemon(version, procRoot string) *Daemon {
	r := NewRegistry()
	d := &Daemon{
		Registry:         r,
		MemAvailable:     r.NewGauge("oomguard_mem_available_ratio", "MemAvailable as a fraction of MemTotal."),
		SwapFree:         r.NewGauge("oomguard_swap_free_ratio", "SwapFree as a fraction of SwapTotal (0 without swap)."),
		PressureSome:     r.NewGaugeVec("oomguard_pressure_some_avg10_ratio", "PSI 'some' avg10 as a fraction; cgroup is empty for the whole system.", "resource", "cgroup"),
		PressureFull:     r.NewGaugeVec("oomguard_pressure_full_avg10_ratio", "PSI 'full' avg10 as a fraction; cgroup is empty for the whole system.", "resource", "cgroup"),
		ScopeAvailable:   r.NewGaugeVec("oomguard_scope_available_ratio", "Available memory of a scope cgroup as a fraction of its limit.", "cgroup"),
		RefaultRate:      r.NewGauge("oomguard_workingset_refaults_per_second", "Workingset refaults per second, file and anon."),
		TriggerActive:    r.NewGaugeVec("oomguard_trigger_active", "1 while the trigger is firing.", "trigger"),
		TriggerValue:     r.NewGaugeVec("oomguard_trigger_value", "Current value of a trigger, in base units (ratios for percentages).", "trigger"),
		TriggerThreshold: r.NewGaugeVec("oomguard_trigger_threshold", "Configured threshold of a trigger, in base units.", "trigger", "level"),

		Kills:                   r.NewCounterVec("oomguard_kills_total", "Processes killed, by trigger.", "trigger"),
		KillFailures:            r.NewCounterVec("oomguard_kill_failures_total", "Kills that failed or missed their deadline, by reason.", "reason"),
		WouldKill:               r.NewCounterVec("oomguard_dry_run_kills_total", "Kills decided but not carried out in dry-run mode, by trigger.", "trigger"),
		ForkBombsContained:      r.NewCounter("oomguard_forkbombs_contained_total", "Fork bombs frozen and killed."),
		ForkBombProcessesKilled: r.NewCounter("oomguard_forkbomb_processes_killed_total", "Processes killed as members of a fork bomb."),
		KmemBudgetBreaches:      r.NewCounterVec("oomguard_kmem_budget_breaches_total", "Cgroups found over their kernel-memory budget, by action.", "action"),
		EventLosses:             r.NewCounterVec("oomguard_event_losses_total", "Events lost by an event source.", "source"),
		Resyncs:                 r.NewCounterVec("oomguard_resyncs_total", "Full rescans after lost events.", "source"),
		KillDuration:            r.NewHistogram("oomguard_kill_duration_seconds", "Time from a trigger firing to the victim's exit.", KillDurationBuckets),
		HookFailures:            r.NewCounterVec("oomguard_hook_failures_total", "Hooks that failed or timed out, by event.", "event"),
		ConfigReloads:           r.NewCounterVec("oomguard_config_reloads_total", "Configuration reloads, by result.", "result"),
	}
	r.NewGaugeVec("oomguard_build_info", "Always 1; the version label says which oomguard runs.", "version").With(version).Set(1)
	p := NewProcess(r, filepath.Join(procRoot, "self"))
	r.OnScrape(func() { p.Update() })
	return d
}

// Process exports a process's own resource use, read from its /proc
// directory at every scrape: oomguard_process_resident_memory_bytes,
// oomguard_process_cpu_seconds_total and oomguard_process_threads.
type Process struct {
	mu       sync.Mutex // one reading at a time: concurrent scrapes
	dir      string
	rss      Gauge
	cpu      Counter
	threads  Gauge
	pageSize float64
	buf      []byte
}

// NewProcess registers the process metrics for the /proc/PID directory dir.
func NewProcess(r *Registry, dir string) *Process {
	return &Process{
		dir:      dir,
		rss:      r.NewGauge("oomguard_process_resident_memory_bytes", "Resident set size of the oomguard daemon."),
		cpu:      r.NewCounter("oomguard_process_cpu_seconds_total", "User and system CPU time of the oomguard daemon."),
		threads:  r.NewGauge("oomguard_process_threads", "Threads of the oomguard daemon."),
		pageSize: float64(os.Getpagesize()),
		buf:      make([]byte, 0, 1024),
	}
}

// userHZ is the unit of the times in /proc/PID/stat, fixed by the kernel ABI.
const userHZ = 100

// Update reads dir/stat and sets the metrics. Errors leave them unchanged.
func (p *Process) Update() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.Open(filepath.Join(p.dir, "stat"))
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := f.Read(p.buf[:cap(p.buf)])
	if err != nil {
		return fmt.Errorf("read %s/stat: %w", p.dir, err)
	}
	st, err := parseStat(p.buf[:n])
	if err != nil {
		return fmt.Errorf("%s/stat: %w", p.dir, err)
	}
	p.rss.Set(float64(st.rssPages) * p.pageSize)
	cpu := float64(st.utime+st.stime) / userHZ
	// The counter holds the last reading; add the difference.
	p.cpu.Add(cpu - p.cpu.Value())
	p.threads.Set(float64(st.threads))
	return nil
}

type procStat struct {
	utime, stime, threads, rssPages uint64
}

// parseStat parses the fields of /proc/PID/stat that Process exports. The
// comm field may hold spaces and parentheses, so fields are counted from the
// last ')'.
func parseStat(b []byte) (procStat, error) {
	var st procStat
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st, fmt.Errorf("no ')' after comm")
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state) of proc(5).
	const utime, stime, threads, rss = 14 - 3, 15 - 3, 20 - 3, 24 - 3
	if len(fields) <= rss {
		return st, fmt.Errorf("%d fields, want more than %d", len(fields)+2, rss+3)
	}
	var err error
	get := func(i int) uint64 {
		v, e := strconv.ParseUint(string(fields[i]), 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("field %d: %w", i+3, e)
		}
		return v
	}
	st.utime, st.stime, st.threads, st.rssPages = get(utime), get(stime), get(threads), get(rss)
	return st, err
}
