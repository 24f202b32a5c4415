package config

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// Overrides are the daemon flags that override the configuration: a flag
// given on the command line wins over the file and its drop-ins; a flag not
// given leaves the file's value alone. Repeatable flags (--scope, --psi,
// --prefer, --avoid, --ignore, --protect, --kmem-budget) replace the file's
// whole list.
//
// Use: o := RegisterFlags(fs); fs.Parse(args); c, err := Load(path, dir);
// err = o.Apply(c). Values are parsed (and rejected) by fs.Parse.
type Overrides struct {
	fs    *flag.FlagSet
	apply map[string]func(*Config)
	keys  map[string][]string // flag -> config keys it sets
}

// RegisterFlags defines the override flags on fs.
func RegisterFlags(fs *flag.FlagSet) *Overrides {
	o := &Overrides{fs: fs, apply: map[string]func(*Config){}, keys: map[string][]string{}}

	var scope []string
	o.list("scope", "scope", "limit the daemon to this cgroup `DIR` (repeatable; replaces config scope)", func(s string) error {
		scope = append(scope, s)
		return nil
	}, func(c *Config) { c.Scope = scope })
	o.boolean("dry-run", "dry_run", "report what would be killed without killing", func(c *Config, b bool) { c.DryRun = b })
	o.duration("interval", "interval", "memory poll `period`", func(c *Config, d Duration) { c.Interval = d })
	o.str("socket", "socket.path", "control socket `PATH`", func(c *Config, s string) { c.Socket.Path = s })
	o.percent("mem-term", "memory.term_percent", func(c *Config, p Percent) { c.Memory.TermPercent = p })
	o.percent("mem-kill", "memory.kill_percent", func(c *Config, p Percent) { c.Memory.KillPercent = p })
	o.percent("swap-term", "memory.swap_term_percent", func(c *Config, p Percent) { c.Memory.SwapTermPercent = p })
	o.percent("swap-kill", "memory.swap_kill_percent", func(c *Config, p Percent) { c.Memory.SwapKillPercent = p })

	var psi []PSI
	o.list("psi", "psi", "PSI trigger `\"RESOURCE KIND STALL WINDOW [LEVEL] [CGROUP]\"`, e.g. \"memory some 150ms 2s\" (repeatable)", func(s string) error {
		p, err := ParsePSI(s)
		psi = append(psi, p)
		return err
	}, func(c *Config) { c.PSI = psi })

	for _, r := range []struct {
		name, key string
		field     func(*Config) *[]Regexp
	}{
		{"prefer", "rules.prefer", func(c *Config) *[]Regexp { return &c.Rules.Prefer }},
		{"avoid", "rules.avoid", func(c *Config) *[]Regexp { return &c.Rules.Avoid }},
		{"ignore", "rules.ignore", func(c *Config) *[]Regexp { return &c.Rules.Ignore }},
	} {
		var list []Regexp
		field := r.field
		o.list(r.name, r.key, "`REGEXP` on comm or command line (repeatable)", func(s string) error {
			var re Regexp
			err := re.UnmarshalText([]byte(s))
			list = append(list, re)
			return err
		}, func(c *Config) { *field(c) = list })
	}
	var protect []string
	o.list("protect", "rules.protect", "never kill processes with this `NAME` (repeatable)", func(s string) error {
		protect = append(protect, s)
		return nil
	}, func(c *Config) { c.Rules.Protect = protect })

	o.duration("term-grace", "kill.term_grace", "SIGTERM to SIGKILL grace `period` (0 = SIGKILL only)", func(c *Config, d Duration) { c.Kill.TermGrace = d })
	o.duration("kill-deadline", "kill.deadline", "wait this `long` for a victim to exit", func(c *Config, d Duration) { c.Kill.Deadline = d })
	o.boolean("no-mrelease", "kill.mrelease", "do not reap victims with process_mrelease", func(c *Config, b bool) { c.Kill.Mrelease = !b })
	o.duration("mrelease-after", "kill.mrelease_after", "give a victim this `long` to exit by itself before reaping it, while nothing stalls on memory (0 = at once)", func(c *Config, d Duration) { c.Kill.MreleaseAfter = d })
	o.boolean("kill-cgroup", "kill.kill_cgroup", "kill the victim's whole cgroup", func(c *Config, b bool) { c.Kill.KillCgroup = b })
	o.boolean("no-forkbomb", "forkbomb.enabled", "disable fork-bomb detection", func(c *Config, b bool) { c.ForkBomb.Enabled = !b })

	var budgets []KmemBudget
	o.list("kmem-budget", "kmem.budget", "kernel-memory budget `DIR=SIZE[:ACTION]` (repeatable)", func(s string) error {
		b, err := ParseKmemBudget(s)
		budgets = append(budgets, b)
		return err
	}, func(c *Config) { c.Kmem.Budget = budgets })

	o.str("metrics-listen", "metrics.listen", "serve Prometheus metrics on loopback `ADDR` (IP:PORT or unix:/path)", func(c *Config, s string) { c.Metrics.Listen = s })
	o.str("pre-kill-hook", "hooks.pre_kill", "`COMMAND` run before each kill", func(c *Config, s string) { c.Hooks.PreKill = s })
	o.str("post-kill-hook", "hooks.post_kill", "`COMMAND` run after each kill", func(c *Config, s string) { c.Hooks.PostKill = s })
	o.boolean("no-dbus", "notify.dbus", "do not emit D-Bus Killed signals", func(c *Config, b bool) { c.Notify.DBus = !b })
	o.str("dbus-address", "notify.dbus_address", "D-Bus `ADDRESS` instead of the system bus", func(c *Config, s string) { c.Notify.DBusAddress = s })
	o.boolean("desktop-notify", "notify.desktop", "send desktop notifications to affected users", func(c *Config, b bool) { c.Notify.Desktop = b })
	o.str("log-level", "log.level", "`LEVEL`: debug|info|warn|error", func(c *Config, s string) { c.Log.Level = LogLevel(s) })
	o.str("log-format", "log.format", "`FORMAT`: auto|text|journal", func(c *Config, s string) { c.Log.Format = LogFormat(s) })
	return o
}

// Apply writes the flags given on the command line into c and validates the
// result. Errors name the flag in Error.File.
func (o *Overrides) Apply(c *Config) error {
	byKey := map[string]string{}
	o.fs.Visit(func(f *flag.Flag) {
		if fn, ok := o.apply[f.Name]; ok {
			fn(c)
			for _, k := range o.keys[f.Name] {
				byKey[k] = "--" + f.Name
			}
		}
	})
	err := c.Validate()
	var vl ErrorList
	if err == nil || !errors.As(err, &vl) {
		return err
	}
	for _, e := range vl {
		for _, k := range strings.Split(e.Key, ", ") {
			for key, fl := range byKey {
				if k == key || strings.HasPrefix(k, key+"[") {
					e.File = fl
				}
			}
		}
	}
	return vl
}

// FlagFor returns the flag that overrides key ("memory.kill_percent" ->
// "mem-kill"), or "".
func (o *Overrides) FlagFor(key string) string {
	for f, ks := range o.keys {
		for _, k := range ks {
			if k == key {
				return f
			}
		}
	}
	return ""
}

type funcValue struct {
	set    func(string) error
	isBool bool
	last   string
}

func (v *funcValue) String() string { return v.last }
func (v *funcValue) Set(s string) error {
	v.last = s
	return v.set(s)
}
func (v *funcValue) IsBoolFlag() bool { return v.isBool }

func (o *Overrides) define(name, key, usage string, isBool bool, set func(string) error, apply func(*Config)) {
	o.fs.Var(&funcValue{set: set, isBool: isBool}, name, usage+" [config: "+key+"]")
	o.apply[name] = apply
	o.keys[name] = []string{key}
}

func (o *Overrides) list(name, key, usage string, set func(string) error, apply func(*Config)) {
	o.define(name, key, usage, false, set, apply)
}

func (o *Overrides) boolean(name, key, usage string, apply func(*Config, bool)) {
	var b bool
	o.define(name, key, usage, true, func(s string) error {
		v, err := strconv.ParseBool(s)
		b = v
		return err
	}, func(c *Config) { apply(c, b) })
}

func (o *Overrides) duration(name, key, usage string, apply func(*Config, Duration)) {
	var d Duration
	o.define(name, key, usage, false, func(s string) error {
		v, err := ParseDuration(s)
		d = v
		return err
	}, func(c *Config) { apply(c, d) })
}

func (o *Overrides) percent(name, key string, apply func(*Config, Percent)) {
	var p Percent
	o.define(name, key, "threshold in `PERCENT`", false, func(s string) error {
		v, err := ParsePercent(s)
		p = v
		return err
	}, func(c *Config) { apply(c, p) })
}

func (o *Overrides) str(name, key, usage string, apply func(*Config, string)) {
	var v string
	o.define(name, key, usage, false, func(s string) error {
		v = s
		return nil
	}, func(c *Config) { apply(c, v) })
}

// ParsePSI parses the --psi flag: "RESOURCE KIND STALL WINDOW [LEVEL] [CGROUP]",
// as in "memory some 150ms 2s" or "io full 500ms 2s term /sys/fs/cgroup/db".
// The level defaults to kill.
func ParsePSI(s string) (PSI, error) {
	f := strings.Fields(s)
	p := newPSI()
	if len(f) < 4 || len(f) > 6 {
		return p, fmt.Errorf("bad PSI trigger %q: want \"RESOURCE KIND STALL WINDOW [LEVEL] [CGROUP]\"", s)
	}
	if err := p.Resource.fromTOML(f[0]); err != nil {
		return p, fmt.Errorf("PSI trigger %q: resource: %w", s, err)
	}
	if err := p.Kind.fromTOML(f[1]); err != nil {
		return p, fmt.Errorf("PSI trigger %q: kind: %w", s, err)
	}
	var err error
	if p.Stall, err = ParseDuration(f[2]); err != nil {
		return p, fmt.Errorf("PSI trigger %q: stall: %w", s, err)
	}
	if p.Window, err = ParseDuration(f[3]); err != nil {
		return p, fmt.Errorf("PSI trigger %q: window: %w", s, err)
	}
	rest := f[4:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "/") {
		if err := p.Level.fromTOML(rest[0]); err != nil {
			return p, fmt.Errorf("PSI trigger %q: level: %w", s, err)
		}
		rest = rest[1:]
	}
	if len(rest) == 1 {
		p.Cgroup = rest[0]
	} else if len(rest) > 1 {
		return p, fmt.Errorf("bad PSI trigger %q: trailing words %q", s, rest[1:])
	}
	return p, nil
}

// ParseKmemBudget parses the --kmem-budget flag: "DIR=SIZE[:ACTION]", with
// the action defaulting to kill-heaviest.
func ParseKmemBudget(s string) (KmemBudget, error) {
	b := newKmemBudget()
	i := strings.LastIndex(s, "=")
	if i <= 0 {
		return b, fmt.Errorf("bad kmem budget %q: want DIR=SIZE[:ACTION]", s)
	}
	b.Path = s[:i]
	size, action, hasAction := strings.Cut(s[i+1:], ":")
	var err error
	if b.Max, err = ParseSize(size); err != nil {
		return b, fmt.Errorf("kmem budget %q: %w", s, err)
	}
	if hasAction {
		if b.Action, err = ParseKmemAction(action); err != nil {
			return b, fmt.Errorf("kmem budget %q: action: %w", s, err)
		}
	}
	return b, nil
}
