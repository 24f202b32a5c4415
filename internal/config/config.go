// Package config is oomguard's typed configuration: the TOML file with its
// drop-ins, strict validation with FILE:LINE errors, and the daemon flags
// that override the file.
package config

// Default paths of the configuration.
const (
	// DefaultPath is the main configuration file.
	DefaultPath = "/etc/oomguard/oomguard.toml"
	// DefaultDropinDir holds *.toml drop-ins merged after the main file in
	// lexical order.
	DefaultDropinDir = "/etc/oomguard/oomguard.d"
	// DefaultCgroupRoot is where cgroup paths must live.
	DefaultCgroupRoot = "/sys/fs/cgroup"
)

// Config is the daemon's whole configuration. The zero value is not useful:
// start from Default or Load. Strings from the file stop at this boundary:
// sizes, percentages, durations, enums and regular expressions are typed.
//
// A Config is a plain value; it is not safe to modify concurrently with
// readers. On reload the daemon builds a new one and swaps it in.
type Config struct {
	// CgroupRoot is the mount point of the cgroup hierarchies. Every cgroup
	// path in the configuration must lie under it.
	CgroupRoot string `toml:"cgroup_root"`
	// Scope limits the daemon to the processes of these cgroup directories
	// (and their descendants). Empty means the whole machine.
	Scope []string `toml:"scope"`
	// DryRun makes the daemon report what it would kill without killing.
	DryRun bool `toml:"dry_run"`
	// Interval is the period of the memory poll between events. The
	// daemon sizes each poll to the time the fastest hog would need to
	// reach a level, between 100 ms and 4 intervals, and shortens it
	// further near one.
	Interval Duration `toml:"interval"`

	Socket      Socket      `toml:"socket"`
	Memory      Memory      `toml:"memory"`
	PSI         []PSI       `toml:"psi"`
	ScopeLimits ScopeLimits `toml:"scope_limits"`
	Thrash      Thrash      `toml:"thrash"`
	Rules       Rules       `toml:"rules"`
	Kill        Kill        `toml:"kill"`
	ForkBomb    ForkBomb    `toml:"forkbomb"`
	Kmem        Kmem        `toml:"kmem"`
	Metrics     Metrics     `toml:"metrics"`
	Hooks       Hooks       `toml:"hooks"`
	Notify      Notify      `toml:"notify"`
	Log         Log         `toml:"log"`
}

// Socket configures the control socket.
type Socket struct {
	// Path of the unix socket.
	Path string `toml:"path"`
	// Group, when set, owns the socket so its members may use it (with a
	// Mode that grants the group access). A name or a numeric GID.
	Group string `toml:"group"`
	// Mode is the socket's permission. World-writable modes are rejected.
	Mode FileMode `toml:"mode"`
}

// Memory is the system-wide MemAvailable/SwapFree trigger, in earlyoom's
// semantics. A percentage of 0 disables that threshold.
type Memory struct {
	// TermPercent: below this share of MemTotal available, send SIGTERM.
	TermPercent Percent `toml:"term_percent"`
	// KillPercent: below this share of MemTotal available, send SIGKILL.
	KillPercent Percent `toml:"kill_percent"`
	// SwapTermPercent and SwapKillPercent are the same for SwapFree/SwapTotal.
	SwapTermPercent Percent `toml:"swap_term_percent"`
	SwapKillPercent Percent `toml:"swap_kill_percent"`
	// RequireBoth fires only when memory AND swap are below their thresholds
	// (earlyoom). On a machine without swap, swap counts as exhausted.
	RequireBoth bool `toml:"require_both"`
	// StallPercent and StallWindow let memory alone reach its thresholds
	// while swap is still free, once the kernel stalls on it: memory "full"
	// pressure of at least StallPercent of the last StallWindow. 0 disables
	// (earlyoom's rule: swap must run low too).
	StallPercent Percent  `toml:"stall_percent"`
	StallWindow  Duration `toml:"stall_window"`
	// Lead compares MemAvailable as it will be this far ahead, at the rate
	// it falls: the time choosing, signalling and reaping a victim takes.
	// 0 disables.
	Lead Duration `toml:"lead"`
}

// PSI is one pressure-stall trigger, written to a pressure file and polled.
type PSI struct {
	Resource Resource  `toml:"resource"`
	Kind     StallKind `toml:"kind"`
	// Stall is the stall time within Window that fires the trigger.
	Stall Duration `toml:"stall"`
	// Window is the tracking window: 500ms to 10s (the kernel's bounds).
	// Without CAP_SYS_RESOURCE the kernel only accepts multiples of 2s.
	Window Duration `toml:"window"`
	Level  Level    `toml:"level"`
	// Cgroup is the cgroup directory whose pressure file is watched; empty
	// means /proc/pressure (the whole system).
	Cgroup string `toml:"cgroup"`
}

// ScopeLimits is the trigger on each scope cgroup's own limit: available =
// limit - usage + reclaimable file pages. 0 disables a threshold.
type ScopeLimits struct {
	TermPercent Percent `toml:"term_percent"`
	KillPercent Percent `toml:"kill_percent"`
}

// Thrash detects a working set that no longer fits: a high refault rate and
// memory pressure sustained while available memory is low, before
// MemAvailable alone says so.
type Thrash struct {
	Enabled bool `toml:"enabled"`
	// RefaultRate is workingset refaults per second (file + anon) above which
	// the system is considered to be thrashing.
	RefaultRate float64 `toml:"refault_rate"`
	// PressurePercent is the io or memory "some" pressure (avg10, or the
	// stall share of the last second, whichever is higher) above which
	// pressure counts.
	PressurePercent Percent `toml:"pressure_percent"`
	// Sustain is how long both must hold.
	Sustain Duration `toml:"sustain"`
	// AvailableSoftPercent: thrash only counts while MemAvailable is below
	// this share of MemTotal.
	AvailableSoftPercent Percent `toml:"available_soft_percent"`
	// Turnover lets refaults count without pressure when each second they
	// re-read at least this fraction of the available memory. 0 disables.
	Turnover float64 `toml:"turnover"`
}

// Rules steer victim choice. Expressions match a process's comm or its
// command line (arguments joined by spaces).
type Rules struct {
	// Prefer raises the badness of matching processes.
	Prefer []Regexp `toml:"prefer"`
	// Avoid lowers it.
	Avoid []Regexp `toml:"avoid"`
	// Ignore never kills matching processes, nor the processes sharing an
	// address space with one (earlyoom's --ignore); Avoid is the rule that
	// still kills when nothing else is left.
	Ignore []Regexp `toml:"ignore"`
	// Protect names processes (comm, or the base name of the executable)
	// that are never killed.
	Protect []string `toml:"protect"`
}

// Kill configures how victims die.
type Kill struct {
	// TermGrace is the time between SIGTERM and SIGKILL for term-level
	// triggers; 0 sends SIGKILL only.
	TermGrace Duration `toml:"term_grace"`
	// Deadline is how long to wait for a victim to exit after SIGKILL before
	// marking it skipped and choosing another.
	Deadline Duration `toml:"deadline"`
	// Mrelease reaps the victim's memory with process_mrelease after SIGKILL.
	Mrelease bool `toml:"mrelease"`
	// MreleaseAfter is how long a victim has to exit by itself after
	// SIGKILL before its memory is reaped, while no task stalls on memory;
	// under a memory stall the victim is reaped at once (see
	// policy.KillConfig.ReapAfter).
	MreleaseAfter Duration `toml:"mrelease_after"`
	// KillCgroup kills, after the victim's mm group, every other process
	// of its cgroup (see etc/oomguard.toml).
	KillCgroup bool `toml:"kill_cgroup"`
}

// ForkBomb configures fork-bomb detection on the process lineage. A family
// is a bomb when it is recent (MinYoungFraction of it younger than MaxAge,
// or births at MinRate) and either big and replicating (MinFamily members,
// and MinDepth forks deep or MinOrphanFraction of it orphaned by dead
// ancestors), or replicating through exiting parents at a smaller size
// (OrphanFamily members, MinDepth deep, OrphanFamilyFraction orphaned; or
// ReplicatingFamily members and ReplicatingGenerations nested exited
// parents of two or more), or a growing family of copies that fork copies
// (CloningFamily members, CloningGenerations nested copies that ran
// CopyAge without exec). The defaults, and the reasoning behind them, are
// in etc/oomguard.toml and the forkbomb package.
type ForkBomb struct {
	Enabled bool `toml:"enabled"`
	// MinFamily is the least number of live members of a bomb.
	MinFamily int `toml:"min_family"`
	// MinRate is a birth rate, in processes per second over the last
	// second, that counts as recent whatever the members' age.
	MinRate float64 `toml:"min_rate"`
	// MaxAge: members younger than this count as young.
	MaxAge Duration `toml:"max_age"`
	// MinYoungFraction is the share of young members that counts as recent.
	MinYoungFraction float64 `toml:"min_young_fraction"`
	// MinDepth is the fork depth below the family's root that counts as
	// replicating.
	MinDepth int `toml:"min_depth"`
	// MinOrphanFraction is the share of members with a dead parent that
	// counts as replicating.
	MinOrphanFraction float64 `toml:"min_orphan_fraction"`
	// OrphanFamily is the least number of live members of a bomb that
	// OrphanFamilyFraction of is orphaned (and MinDepth deep).
	OrphanFamily int `toml:"orphan_family"`
	// OrphanFamilyFraction is the share of orphans that makes a family of
	// OrphanFamily members a bomb.
	OrphanFamilyFraction float64 `toml:"orphan_family_fraction"`
	// ReplicatingFamily is the least number of live members of a bomb
	// found by its replication generations.
	ReplicatingFamily int `toml:"replicating_family"`
	// ReplicatingGenerations is how many exited parents of two or more
	// lines of descendants, nested along one line, make a family of
	// ReplicatingFamily members a bomb.
	ReplicatingGenerations int `toml:"replicating_generations"`
	// CloningFamily is the least number of live members of a bomb found
	// by its clone generations.
	CloningFamily int `toml:"cloning_family"`
	// CloningGenerations is how many live copies (forked, never exec'd),
	// nested one inside the other, make a growing family of
	// CloningFamily copies a bomb.
	CloningGenerations int `toml:"cloning_generations"`
	// CopyAge is how long a copy must run without exec to count in
	// CloningGenerations.
	CopyAge Duration `toml:"copy_age"`
	// KernelFilter asks the kernel (Linux 6.6+) to deliver only fork, exec
	// and exit events. Off by default: the events it filters out still
	// take sequence numbers, so they look like lost events, and each costs
	// a /proc resynchronisation.
	KernelFilter bool `toml:"kernel_filter"`
}

// Kmem holds the per-cgroup kernel-memory budgets.
type Kmem struct {
	Budget []KmemBudget `toml:"budget"`
}

// KmemBudget is a kernel-memory budget for the cgroups that match Path.
type KmemBudget struct {
	// Path is a cgroup directory or a glob (filepath.Match) of them.
	Path   string     `toml:"path"`
	Max    Size       `toml:"max"`
	Action KmemAction `toml:"action"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listen is "" (off), a loopback "IP:PORT", or "unix:/path".
	Listen string `toml:"listen"`
}

// Hooks are commands run around kills, through /bin/sh -c, with the victim
// in OOMGUARD_* environment variables.
type Hooks struct {
	// PreKill runs before the kill; the killer waits at most Timeout.
	PreKill string `toml:"pre_kill"`
	// PostKill runs after the kill, asynchronously.
	PostKill string `toml:"post_kill"`
	// Timeout bounds each hook; a hook still running then is killed with its
	// process group.
	Timeout Duration `toml:"timeout"`
}

// Notify configures notifications of kills.
type Notify struct {
	// DBus emits org.oomguard.Manager1.Killed on the system bus.
	DBus bool `toml:"dbus"`
	// DBusAddress overrides the bus address ("" = the system bus).
	DBusAddress string `toml:"dbus_address"`
	// Desktop sends org.freedesktop.Notifications to the affected users'
	// sessions, best effort.
	Desktop bool `toml:"desktop"`
}

// Log configures logging.
type Log struct {
	Level  LogLevel  `toml:"level"`
	Format LogFormat `toml:"format"`
}

// Default returns the built-in configuration. Every value is explained in
// etc/oomguard.toml.
func Default() *Config {
	return &Config{
		CgroupRoot: DefaultCgroupRoot,
		Interval:   Duration(1e9),
		Socket:     Socket{Path: "/run/oomguard/oomguard.sock", Mode: 0o600},
		Memory: Memory{
			TermPercent: 10, KillPercent: 5,
			SwapTermPercent: 10, SwapKillPercent: 5,
			RequireBoth:  true,
			StallPercent: 20, StallWindow: Duration(500e6), Lead: Duration(100e6),
		},
		ScopeLimits: ScopeLimits{TermPercent: 10, KillPercent: 5},
		Thrash: Thrash{
			Enabled:              true,
			RefaultRate:          2000,
			PressurePercent:      20,
			Sustain:              Duration(2e9),
			AvailableSoftPercent: 20,
			Turnover:             0.25,
		},
		Kill: Kill{Deadline: Duration(2e9), Mrelease: true, MreleaseAfter: Duration(100e6)},
		ForkBomb: ForkBomb{Enabled: true, MinFamily: 200, MinRate: 2000, MaxAge: Duration(60e9),
			MinYoungFraction: 0.8, MinDepth: 6, MinOrphanFraction: 0.3,
			OrphanFamily: 50, OrphanFamilyFraction: 0.5, ReplicatingFamily: 16, ReplicatingGenerations: 3,
			CloningFamily: 8, CloningGenerations: 3, CopyAge: Duration(20e6)},
		Hooks:  Hooks{Timeout: Duration(5e9)},
		Notify: Notify{DBus: true},
		Log:    Log{Level: "info", Format: "auto"},
	}
}

// newPSI is the starting point of a [[psi]] entry: keys the entry leaves out
// keep these values.
func newPSI() PSI {
	return PSI{Resource: ResourceMemory, Kind: KindSome, Window: Duration(2e9), Level: LevelKill}
}

// newKmemBudget is the starting point of a [[kmem.budget]] entry.
func newKmemBudget() KmemBudget { return KmemBudget{Action: KmemKillHeaviest} }
