package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Validate checks every value and their combinations. It returns nil or an
// ErrorList whose Key fields name the offending keys ("a, b" when two keys
// conflict). Load calls it; call it again after changing a Config in code.
func (c *Config) Validate() error {
	var v validator
	v.cgroupRoot(c.CgroupRoot)
	seen := map[string]bool{}
	for i, s := range c.Scope {
		k := fmt.Sprintf("scope[%d]", i)
		v.cgroupPath(k, s, c.CgroupRoot, false)
		if seen[s] {
			v.errorf(k, "cgroup %s is listed twice", s)
		}
		seen[s] = true
	}
	v.between("interval", c.Interval, 10*time.Millisecond, time.Minute)

	if c.Socket.Path == "" || !filepath.IsAbs(c.Socket.Path) {
		v.errorf("socket.path", "bad socket path %q: want an absolute path", c.Socket.Path)
	} else if len(c.Socket.Path) > 107 {
		v.errorf("socket.path", "socket path %q is longer than the 107 bytes a unix socket address holds", c.Socket.Path)
	}
	if c.Socket.Group != "" && !groupRe.MatchString(c.Socket.Group) {
		v.errorf("socket.group", "bad group %q: want a group name or a numeric GID", c.Socket.Group)
	}
	if c.Socket.Mode&0o002 != 0 {
		v.errorf("socket.mode", "mode %04o lets every user control the killer: the socket must not be world-writable", uint32(c.Socket.Mode))
	}
	if c.Socket.Mode&0o600 != 0o600 {
		v.errorf("socket.mode", "mode %04o: the owner (root) needs read and write (0600)", uint32(c.Socket.Mode))
	}

	v.order("memory.kill_percent", "memory.term_percent", c.Memory.KillPercent, c.Memory.TermPercent)
	v.order("memory.swap_kill_percent", "memory.swap_term_percent", c.Memory.SwapKillPercent, c.Memory.SwapTermPercent)
	if c.Memory.Lead != 0 {
		v.between("memory.lead", c.Memory.Lead, 0, 10*time.Second)
	}
	if c.Memory.StallPercent > 0 {
		v.between("memory.stall_window", c.Memory.StallWindow, 100*time.Millisecond, 10*time.Second)
	}
	v.order("scope_limits.kill_percent", "scope_limits.term_percent", c.ScopeLimits.KillPercent, c.ScopeLimits.TermPercent)

	for i, p := range c.PSI {
		k := fmt.Sprintf("psi[%d]", i)
		switch p.Resource {
		case ResourceMemory, ResourceIO, ResourceCPU:
		default:
			v.errorf(k+".resource", "bad resource %q: want memory|io|cpu", p.Resource)
		}
		if p.Kind != KindSome && p.Kind != KindFull {
			v.errorf(k+".kind", "bad kind %q: want some|full", p.Kind)
		}
		if p.Level != LevelTerm && p.Level != LevelKill {
			v.errorf(k+".level", "bad level %q: want term|kill", p.Level)
		}
		// The kernel's bounds for a PSI trigger (kernel/sched/psi.c).
		v.between(k+".window", p.Window, 500*time.Millisecond, 10*time.Second)
		if p.Stall <= 0 {
			v.errorf(k+".stall", "stall must be above 0 (it is the stall time within the window that fires)")
		} else if p.Stall > p.Window {
			v.errorf(k+".stall, "+k+".window", "stall %s is longer than the window %s: the trigger could never fire", p.Stall, p.Window)
		}
		if p.Cgroup != "" {
			v.cgroupPath(k+".cgroup", p.Cgroup, c.CgroupRoot, false)
		}
	}

	if c.Thrash.Enabled {
		if !(c.Thrash.RefaultRate > 0) {
			v.errorf("thrash.refault_rate", "refault_rate must be above 0 refaults per second when thrash detection is enabled")
		}
		v.between("thrash.sustain", c.Thrash.Sustain, time.Second, 10*time.Minute)
		if !(c.Thrash.Turnover >= 0 && c.Thrash.Turnover <= 100) {
			v.errorf("thrash.turnover", "turnover %v: want 0 (off) to 100 (a fraction of the available memory re-read per second)", c.Thrash.Turnover)
		}
	}

	for i, n := range c.Rules.Protect {
		k := fmt.Sprintf("rules.protect[%d]", i)
		if strings.TrimSpace(n) == "" {
			v.errorf(k, "empty process name")
		} else if strings.Contains(n, "/") {
			v.errorf(k, "bad process name %q: a name (comm or executable base name) has no '/'", n)
		}
	}
	for _, list := range []struct {
		key string
		res []Regexp
	}{{"rules.prefer", c.Rules.Prefer}, {"rules.avoid", c.Rules.Avoid}, {"rules.ignore", c.Rules.Ignore}} {
		for i, r := range list.res {
			if r.Regexp == nil {
				v.errorf(fmt.Sprintf("%s[%d]", list.key, i), "missing regular expression")
			}
		}
	}

	v.between("kill.deadline", c.Kill.Deadline, 10*time.Millisecond, time.Minute)
	v.between("kill.term_grace", c.Kill.TermGrace, 0, time.Minute)
	v.between("kill.mrelease_after", c.Kill.MreleaseAfter, 0, time.Duration(c.Kill.Deadline))

	if c.ForkBomb.Enabled {
		if c.ForkBomb.MinFamily < 2 {
			v.errorf("forkbomb.min_family", "min_family %d: a family of fewer than 2 processes is no bomb", c.ForkBomb.MinFamily)
		}
		if !(c.ForkBomb.MinRate > 0) {
			v.errorf("forkbomb.min_rate", "min_rate must be above 0 processes per second")
		}
		v.between("forkbomb.max_age", c.ForkBomb.MaxAge, time.Second, time.Hour)
		for _, f := range []struct {
			key string
			val float64
		}{
			{"forkbomb.min_young_fraction", c.ForkBomb.MinYoungFraction},
			{"forkbomb.min_orphan_fraction", c.ForkBomb.MinOrphanFraction},
			{"forkbomb.orphan_family_fraction", c.ForkBomb.OrphanFamilyFraction},
		} {
			if !(f.val > 0 && f.val <= 1) {
				v.errorf(f.key, "%s %v: want a fraction above 0 and at most 1", f.key[len("forkbomb."):], f.val)
			}
		}
		if c.ForkBomb.MinDepth < 1 {
			v.errorf("forkbomb.min_depth", "min_depth %d: want at least 1", c.ForkBomb.MinDepth)
		}
		for _, f := range []struct {
			key string
			val int
		}{{"forkbomb.orphan_family", c.ForkBomb.OrphanFamily}, {"forkbomb.replicating_family", c.ForkBomb.ReplicatingFamily},
			{"forkbomb.cloning_family", c.ForkBomb.CloningFamily}} {
			if f.val < 2 {
				v.errorf(f.key, "%s %d: a family of fewer than 2 processes is no bomb", f.key[len("forkbomb."):], f.val)
			}
		}
		if c.ForkBomb.ReplicatingGenerations < 2 {
			// One exited parent of several children is any script that
			// starts background jobs and exits.
			v.errorf("forkbomb.replicating_generations", "replicating_generations %d: want at least 2 (one is any script that backgrounds jobs and exits)", c.ForkBomb.ReplicatingGenerations)
		}
		if c.ForkBomb.CloningGenerations < 3 {
			// Two nested copies are a prefork server whose workers fork a
			// helper, or a subshell running a pipeline.
			v.errorf("forkbomb.cloning_generations", "cloning_generations %d: want at least 3 (two nested copies are a prefork worker's helper or a subshell's pipeline)", c.ForkBomb.CloningGenerations)
		}
		if c.ForkBomb.CopyAge <= 0 {
			v.errorf("forkbomb.copy_age", "copy_age %v: want a positive duration (a fork on its way to exec is a copy until it execs)", time.Duration(c.ForkBomb.CopyAge))
		}
	}

	for i, b := range c.Kmem.Budget {
		k := fmt.Sprintf("kmem.budget[%d]", i)
		if b.Path == "" {
			v.errorf(k+".path", "missing path: every budget names a cgroup directory or a glob of them")
		} else {
			v.cgroupPath(k+".path", b.Path, c.CgroupRoot, true)
		}
		if b.Max == 0 {
			v.errorf(k+".max", "missing or zero max: give the budget as a size like \"256M\"")
		}
		switch b.Action {
		case KmemKillHeaviest, KmemKillCgroup, KmemReport:
		default:
			v.errorf(k+".action", "bad action %q: want kill-heaviest|kill-cgroup|report", b.Action)
		}
	}

	if err := CheckListen(c.Metrics.Listen); err != nil {
		v.errorf("metrics.listen", "%v", err)
	}

	for _, h := range []struct{ key, cmd string }{{"hooks.pre_kill", c.Hooks.PreKill}, {"hooks.post_kill", c.Hooks.PostKill}} {
		if h.cmd == "" {
			continue
		}
		if f := strings.Fields(h.cmd); len(f) == 0 || !filepath.IsAbs(f[0]) {
			v.errorf(h.key, "bad hook %q: the command must start with an absolute path (hooks run as root; no $PATH lookup)", h.cmd)
		}
	}
	v.between("hooks.timeout", c.Hooks.Timeout, 10*time.Millisecond, 5*time.Minute)

	if a := c.Notify.DBusAddress; a != "" && !dbusAddrRe.MatchString(a) {
		v.errorf("notify.dbus_address", "bad D-Bus address %q: want TRANSPORT:KEY=VALUE[,...], like unix:path=/run/dbus/system_bus_socket", a)
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.errorf("log.level", "bad level %q: want debug|info|warn|error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "text", "journal":
	default:
		v.errorf("log.format", "bad format %q: want auto|text|journal", c.Log.Format)
	}
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

var (
	groupRe    = regexp.MustCompile(`^([a-z_][a-z0-9_-]*\$?|[0-9]+)$`)
	dbusAddrRe = regexp.MustCompile(`^[a-z-]+:([a-z_]+=[^,;]*)(,[a-z_]+=[^,;]*)*(;[a-z-]+:([a-z_]+=[^,;]*)(,[a-z_]+=[^,;]*)*)*$`)
)

// CheckListen accepts the metrics listen addresses: "" (off), a loopback
// "IP:PORT" (127.0.0.0/8 or ::1; port 0 picks a free port) or
// "unix:/absolute/path". Anything reachable from another host is refused.
func CheckListen(addr string) error {
	if addr == "" {
		return nil
	}
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return fmt.Errorf("bad listen address %q: want unix:/absolute/path", addr)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad listen address %q: want 127.0.0.1:PORT, [::1]:PORT or unix:/path", addr)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("bad listen address %q: want a loopback IP literal (127.0.0.1 or ::1), not a host name", addr)
	}
	if !ip.IsLoopback() {
		return fmt.Errorf("listen address %q is not loopback: metrics are served on loopback or a unix socket only", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("bad port in listen address %q", addr)
	}
	return nil
}

type validator struct{ errs ErrorList }

func (v *validator) errorf(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) between(key string, d Duration, lo, hi time.Duration) {
	if d.D() < lo || d.D() > hi {
		v.errorf(key, "%s is out of range: want %s to %s", d, Duration(lo), Duration(hi))
	}
}

// order checks that a kill threshold is not above its term threshold; 0
// disables a threshold.
func (v *validator) order(killKey, termKey string, kill, term Percent) {
	if kill > 0 && term > 0 && kill > term {
		v.errorf(killKey+", "+termKey, "kill threshold %v%% is above the term threshold %v%%: SIGTERM would never be tried", float64(kill), float64(term))
	}
}

func (v *validator) cgroupRoot(root string) {
	if root == "" || !filepath.IsAbs(root) || filepath.Clean(root) != root {
		v.errorf("cgroup_root", "bad cgroup root %q: want an absolute, clean path", root)
	}
}

// cgroupPath accepts an absolute, clean path under root, with no "..", and
// with glob characters only when glob is set (and then a valid pattern).
func (v *validator) cgroupPath(key, p, root string, glob bool) {
	switch {
	case p == "" || !filepath.IsAbs(p):
		v.errorf(key, "bad cgroup path %q: want an absolute path under %s", p, root)
	case filepath.Clean(p) != p || strings.Contains(p, "/../") || strings.HasSuffix(p, "/.."):
		v.errorf(key, "bad cgroup path %q: not clean (want %s)", p, filepath.Clean(p))
	case strings.ContainsRune(p, 0) || strings.ContainsAny(p, "\n"):
		v.errorf(key, "bad cgroup path %q: control characters", p)
	case p == root || !strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/"):
		v.errorf(key, "bad cgroup path %q: not a cgroup below %s", p, root)
	case !glob && strings.ContainsAny(p, "*?["):
		v.errorf(key, "bad cgroup path %q: glob characters are only allowed in kmem.budget paths", p)
	case glob:
		if _, err := filepath.Match(p, ""); err != nil {
			v.errorf(key, "bad cgroup glob %q: %v", p, err)
		}
	}
}
