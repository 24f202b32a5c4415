package config

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var cmpConfig = []cmp.Option{
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b Regexp) bool { return a.String() == b.String() }),
}

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRejections covers every way a file is rejected: each case must fail
// with FILE:LINE of the offending key and a reason.
func TestRejections(t *testing.T) {
	cases := []struct {
		name string
		text string
		line int
		want string
	}{
		{"syntax", "dry_run = true\n[memory\nterm_percent = 1\n", 2, "syntax error"},
		{"syntax duplicate key", "dry_run = true\ndry_run = false\n", 2, "syntax error"},
		{"unknown top-level key", "dry_run = true\nfrobnicate = 1\n", 2, `unknown key "frobnicate"`},
		{"unknown key wrong case", "[memory]\nTerm_Percent = 10\n", 2, `did you mean "term_percent"`},
		{"unknown nested key", "[memory]\nterm_percent = 10\nkill_percnt = 5\n", 3, `unknown key "kill_percnt"`},
		{"unknown key in second psi", "[[psi]]\nstall = \"100ms\"\n\n[[psi]]\nstall = \"100ms\"\nwindw = \"2s\"\n", 6, `psi[1].windw: unknown key`},
		{"unknown table", "[memroy]\nterm_percent = 1\n", 1, `unknown key "memroy"`},
		{"bool wanted", "dry_run = \"yes\"\n", 1, "want true or false"},
		{"string wanted", "[socket]\npath = 5\n", 2, "want a string"},
		{"int wanted", "[forkbomb]\nmin_family = \"ten\"\n", 2, "want an integer"},
		{"int wanted not float", "[forkbomb]\nmin_family = 1.5\n", 2, "want an integer"},
		{"number wanted", "[thrash]\nrefault_rate = \"fast\"\n", 2, "want a number"},
		{"table wanted", "memory = 5\n", 1, "want a table"},
		{"array wanted", "scope = \"/sys/fs/cgroup/a\"\n", 1, "want an array"},
		{"array element type", "scope = [\"/sys/fs/cgroup/a\", 5]\n", 1, "scope[1]: want a string"},
		{"array of tables element", "psi = [1]\n", 1, "psi[0]: want a table"},
		{"bad size suffix", "[[kmem.budget]]\npath = \"/sys/fs/cgroup/a\"\nmax = \"12X\"\n", 3, `unknown suffix "X"`},
		{"bad size negative", "[[kmem.budget]]\npath = \"/sys/fs/cgroup/a\"\nmax = -5\n", 3, "negative"},
		{"bad size fractional bytes", "[[kmem.budget]]\npath = \"/sys/fs/cgroup/a\"\nmax = \"1.5\"\n", 3, "fractional bytes"},
		{"bad size type", "[[kmem.budget]]\npath = \"/sys/fs/cgroup/a\"\nmax = true\n", 3, "bad size"},
		{"bad size no number", "[[kmem.budget]]\npath = \"/sys/fs/cgroup/a\"\nmax = \"G\"\n", 3, "bad size"},
		{"zero size", "[[kmem.budget]]\npath = \"/sys/fs/cgroup/a\"\nmax = 0\n", 3, "zero max"},
		{"percent above 100", "[memory]\nterm_percent = 101\n", 2, "bad percentage 101"},
		{"percent negative", "[memory]\nswap_kill_percent = -1\n", 2, "bad percentage -1"},
		{"percent string", "[scope_limits]\nterm_percent = \"10%\"\n", 2, "want a number between 0 and 100"},
		{"percent float above 100", "[thrash]\npressure_percent = 100.5\n", 2, "bad percentage"},
		{"bad duration", "interval = \"2 parsecs\"\n", 1, "bad duration"},
		{"negative duration", "[kill]\nterm_grace = \"-1s\"\n", 2, "negative"},
		{"duration as int", "[hooks]\ntimeout = 5\n", 2, "want a string with a unit"},
		{"bad regex", "[rules]\nprefer = [\"^ok$\", \"(unclosed\"]\n", 2, "rules.prefer[1]: bad regular expression"},
		{"bad regex multi-line", "[rules]\navoid = [\n  \"fine\",\n]\nignore = [\"[z-a]\"]\n", 5, "bad regular expression"},
		{"bad regex after brackets in comments and a string", "[rules]\navoid = [ # [\n  '\\[b', # [\n]\nignore = [\"[z-a]\"]\n", 5, "bad regular expression"},
		{"empty regex", "[rules]\nignore = [\"\"]\n", 2, "empty"},
		{"bad resource", "[[psi]]\nresource = \"disk\"\nstall = \"1s\"\n", 2, "want one of memory|io|cpu"},
		{"bad kind", "[[psi]]\nkind = \"half\"\nstall = \"1s\"\n", 2, "want one of some|full"},
		{"bad level", "[[psi]]\nstall = \"1s\"\nlevel = \"maybe\"\n", 3, "want one of term|kill"},
		{"bad kmem action", "[[kmem.budget]]\npath = \"/sys/fs/cgroup/a\"\nmax = \"1G\"\naction = \"nuke\"\n", 4, "kill-heaviest|kill-cgroup|report"},
		{"bad log level", "[log]\nlevel = \"loud\"\n", 2, "debug|info|warn|error"},
		{"bad log format", "[log]\nformat = \"xml\"\n", 2, "auto|text|journal"},
		{"bad mode digits", "[socket]\nmode = \"0999\"\n", 2, "bad mode"},
		{"bad mode type", "[socket]\nmode = 600\n", 2, "octal string"},
		{"mode world-writable", "[socket]\nmode = \"0666\"\n", 2, "world-writable"},
		{"mode without owner", "[socket]\nmode = \"0060\"\n", 2, "owner"},
		{"bad group", "[socket]\ngroup = \"Bad Group\"\n", 2, "bad group"},
		{"relative socket", "[socket]\npath = \"oomguard.sock\"\n", 2, "absolute path"},
		{"long socket", "[socket]\npath = \"/" + strings.Repeat("x", 120) + "\"\n", 2, "107 bytes"},
		{"relative cgroup root", "cgroup_root = \"sys/fs/cgroup\"\n", 1, "bad cgroup root"},
		{"relative scope", "scope = [\"user.slice\"]\n", 1, "absolute path"},
		{"unclean scope", "scope = [\"/sys/fs/cgroup/a/../b\"]\n", 1, "not clean"},
		{"scope outside root", "scope = [\"/tmp/a\"]\n", 1, "not a cgroup below /sys/fs/cgroup"},
		{"scope is root", "scope = [\"/sys/fs/cgroup\"]\n", 1, "not a cgroup below"},
		{"scope glob", "scope = [\"/sys/fs/cgroup/*\"]\n", 1, "glob characters"},
		{"scope duplicate", "scope = [\"/sys/fs/cgroup/a\", \"/sys/fs/cgroup/a\"]\n", 1, "listed twice"},
		{"scope under custom root", "cgroup_root = \"/tmp/cg\"\nscope = [\"/sys/fs/cgroup/a\"]\n", 2, "not a cgroup below /tmp/cg"},
		{"interval zero", "dry_run = true\ninterval = \"0s\"\n", 2, "out of range"},
		{"interval too long", "interval = \"2m\"\n", 1, "out of range"},
		{"memory kill above term", "[memory]\nterm_percent = 3\n", 2, "memory.kill_percent, memory.term_percent: kill threshold 5% is above the term threshold 3%"},
		{"swap kill above term", "[memory]\nswap_kill_percent = 20\n", 2, "SIGTERM would never be tried"},
		{"scope limits kill above term", "[scope_limits]\nterm_percent = 5\nkill_percent = 6\n", 3, "above the term threshold"},
		{"psi window too short", "[[psi]]\nstall = \"100ms\"\nwindow = \"100ms\"\n", 3, "out of range"},
		{"psi window too long", "[[psi]]\nstall = \"100ms\"\nwindow = \"11s\"\n", 3, "out of range"},
		{"psi stall missing", "[[psi]]\nresource = \"io\"\n", 1, "stall must be above 0"},
		{"psi stall above window", "[[psi]]\nstall = \"3s\"\nwindow = \"2s\"\n", 3, "could never fire"},
		{"psi bad cgroup", "[[psi]]\nstall = \"1s\"\ncgroup = \"/home/x\"\n", 3, "bad cgroup path"},
		{"thrash zero rate", "[thrash]\nrefault_rate = 0\n", 2, "refault_rate must be above 0"},
		{"thrash sustain", "[thrash]\nsustain = \"0s\"\n", 2, "out of range"},
		{"thrash turnover negative", "[thrash]\nturnover = -0.5\n", 2, "turnover -0.5"},
		{"memory stall window too short", "[memory]\nstall_window = \"10ms\"\n", 2, "out of range"},
		{"protect empty", "[rules]\nprotect = [\"sshd\", \"\"]\n", 2, "rules.protect[1]: empty process name"},
		{"protect path", "[rules]\nprotect = [\"/usr/sbin/sshd\"]\n", 2, "has no '/'"},
		{"kill deadline zero", "[kill]\ndeadline = \"0s\"\n", 2, "out of range"},
		{"term grace too long", "[kill]\nterm_grace = \"2m\"\n", 2, "out of range"},
		{"mrelease after past the deadline", "[kill]\ndeadline = \"1s\"\nmrelease_after = \"1500ms\"\n", 3, "out of range"},
		{"forkbomb family", "[forkbomb]\nmin_family = 1\n", 2, "fewer than 2"},
		{"forkbomb rate", "[forkbomb]\nmin_rate = 0\n", 2, "min_rate must be above 0"},
		{"forkbomb age", "[forkbomb]\nmax_age = \"0s\"\n", 2, "out of range"},
		{"forkbomb young fraction", "[forkbomb]\nmin_young_fraction = 1.5\n", 2, "min_young_fraction 1.5: want a fraction"},
		{"forkbomb orphan fraction", "[forkbomb]\nmin_orphan_fraction = 0.0\n", 2, "min_orphan_fraction 0: want a fraction"},
		{"forkbomb depth", "[forkbomb]\nmin_depth = 0\n", 2, "min_depth 0: want at least 1"},
		{"forkbomb orphan family", "[forkbomb]\norphan_family = 1\n", 2, "orphan_family 1: a family of fewer than 2"},
		{"forkbomb orphan family fraction", "[forkbomb]\norphan_family_fraction = 2.0\n", 2, "orphan_family_fraction 2: want a fraction"},
		{"forkbomb replicating family", "[forkbomb]\nreplicating_family = 0\n", 2, "replicating_family 0: a family of fewer than 2"},
		{"forkbomb replicating generations", "[forkbomb]\nreplicating_generations = 1\n", 2, "replicating_generations 1: want at least 2"},
		{"forkbomb cloning family", "[forkbomb]\ncloning_family = 1\n", 2, "cloning_family 1: a family of fewer than 2"},
		{"forkbomb cloning generations", "[forkbomb]\ncloning_generations = 2\n", 2, "cloning_generations 2: want at least 3"},
		{"forkbomb copy age", "[forkbomb]\ncopy_age = \"0s\"\n", 2, "copy_age 0s: want a positive duration"},
		{"kmem no path", "[[kmem.budget]]\nmax = \"1G\"\n", 1, "missing path"},
		{"kmem bad glob", "[[kmem.budget]]\npath = \"/sys/fs/cgroup/[a\"\nmax = \"1G\"\n", 2, "bad cgroup glob"},
		{"kmem outside root", "[kmem]\n[[kmem.budget]]\npath = \"/etc/*\"\nmax = \"1G\"\n", 3, "not a cgroup below"},
		{"metrics public", "[metrics]\nlisten = \"0.0.0.0:9100\"\n", 2, "not loopback"},
		{"metrics lan", "[metrics]\nlisten = \"192.168.1.2:9100\"\n", 2, "not loopback"},
		{"metrics hostname", "[metrics]\nlisten = \"localhost:9100\"\n", 2, "not a host name"},
		{"metrics no port", "[metrics]\nlisten = \"127.0.0.1\"\n", 2, "bad listen address"},
		{"metrics bad port", "[metrics]\nlisten = \"127.0.0.1:99999\"\n", 2, "bad port"},
		{"metrics relative unix", "[metrics]\nlisten = \"unix:metrics.sock\"\n", 2, "unix:/absolute/path"},
		{"hook relative", "[hooks]\npre_kill = \"notify-admin --now\"\n", 2, "absolute path"},
		{"hook timeout", "[hooks]\ntimeout = \"0s\"\n", 2, "out of range"},
		{"dbus address", "[notify]\ndbus_address = \"/run/dbus/system_bus_socket\"\n", 2, "bad D-Bus address"},
		{"dotted key", "memory.kill_percent = 200\n", 1, "bad percentage"},
		{"inline table key", "memory = { term_percent = 200 }\n", 1, "bad percentage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, t.TempDir(), "oomguard.toml", tc.text)
			c, err := Load(p, "")
			if err == nil {
				t.Fatalf("Load accepted:\n%s\ngot %+v", tc.text, c)
			}
			msg := err.Error()
			loc := p + ":" + strconv.Itoa(tc.line) + ": "
			if !strings.HasPrefix(msg, loc) {
				t.Errorf("error %q does not start with %q", msg, loc)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			var el ErrorList
			if !errors.As(err, &el) || el[0].File != p || el[0].Line != tc.line {
				t.Errorf("error is not an ErrorList placed at %s:%d: %#v", p, tc.line, err)
			}
		})
	}
}

func TestAllErrorsReported(t *testing.T) {
	p := write(t, t.TempDir(), "a.toml", "[memory]\nterm_percent = 200\n\n[kill]\ndeadline = \"soon\"\nbogus = 1\n")
	_, err := Load(p, "")
	var el ErrorList
	if !errors.As(err, &el) {
		t.Fatalf("want ErrorList, got %v", err)
	}
	var lines []int
	for _, e := range el {
		lines = append(lines, e.Line)
	}
	if diff := cmp.Diff([]int{2, 5, 6}, lines); diff != "" {
		t.Errorf("error lines (-want +got):\n%s\n%v", diff, err)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.toml"), "")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("want ErrNotExist, got %v", err)
	}
}

func TestLoadValues(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "oomguard.toml", `
scope = ["/sys/fs/cgroup/unified/jobs"]
dry_run = true
interval = "500ms"

[socket]
group = "oomguard"
mode = "0660"

[memory]
term_percent = 8.5
kill_percent = 4
require_both = false

[[psi]]
resource = "memory"
kind = "full"
stall = "150ms"
window = "2s"

[[psi]]
resource = "io"
stall = "1s"
window = "4s"
level = "term"
cgroup = "/sys/fs/cgroup/unified/db"

[rules]
prefer = ["^(chrome|firefox)$"]
protect = ["sshd", "Xorg"]

[[kmem.budget]]
path = "/sys/fs/cgroup/memory/jobs/*"
max = "512MiB"
action = "kill-cgroup"

[metrics]
listen = "[::1]:9101"
`)
	got, err := Load(p, "")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Scope = []string{"/sys/fs/cgroup/unified/jobs"}
	want.DryRun = true
	want.Interval = Duration(500 * time.Millisecond)
	want.Socket.Group = "oomguard"
	want.Socket.Mode = 0o660
	want.Memory.TermPercent = 8.5
	want.Memory.KillPercent = 4
	want.Memory.RequireBoth = false
	want.PSI = []PSI{
		{Resource: "memory", Kind: "full", Stall: Duration(150 * time.Millisecond), Window: Duration(2 * time.Second), Level: "kill"},
		{Resource: "io", Kind: "some", Stall: Duration(time.Second), Window: Duration(4 * time.Second), Level: "term", Cgroup: "/sys/fs/cgroup/unified/db"},
	}
	want.Rules.Prefer = []Regexp{MustRegexp("^(chrome|firefox)$")}
	want.Rules.Protect = []string{"sshd", "Xorg"}
	want.Kmem.Budget = []KmemBudget{{Path: "/sys/fs/cgroup/memory/jobs/*", Max: 512 << 20, Action: KmemKillCgroup}}
	want.Metrics.Listen = "[::1]:9101"
	if diff := cmp.Diff(want, got, cmpConfig...); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	if !got.Rules.Prefer[0].MatchString("firefox") {
		t.Error("compiled prefer rule does not match")
	}
}

func TestDropins(t *testing.T) {
	dir := t.TempDir()
	main := write(t, dir, "oomguard.toml", "dry_run = true\n[memory]\nterm_percent = 20\nkill_percent = 10\n[[psi]]\nstall = \"100ms\"\n[[psi]]\nstall = \"200ms\"\n")
	dd := filepath.Join(dir, "oomguard.d")
	os.Mkdir(dd, 0o755)
	write(t, dd, "20-late.toml", "[memory]\nkill_percent = 2\n")
	write(t, dd, "10-early.toml", "[memory]\nkill_percent = 15\nterm_percent = 30\n[[psi]]\nresource = \"io\"\nstall = \"1s\"\n")
	write(t, dd, "ignored.conf", "garbage = \n")
	c, err := Load(main, dd)
	if err != nil {
		t.Fatal(err)
	}
	if !c.DryRun || c.Memory.TermPercent != 30 || c.Memory.KillPercent != 2 {
		t.Errorf("merge order: dry_run=%v term=%v kill=%v, want true 30 2", c.DryRun, c.Memory.TermPercent, c.Memory.KillPercent)
	}
	if len(c.PSI) != 1 || c.PSI[0].Resource != ResourceIO || c.PSI[0].Window != Duration(2*time.Second) {
		t.Errorf("[[psi]] in a drop-in must replace the list, with entry defaults: %+v", c.PSI)
	}

	// An error in a drop-in names the drop-in and its line.
	bad := write(t, dd, "30-bad.toml", "\n[kill]\nmrelease = 1\n")
	_, err = Load(main, dd)
	if err == nil || !strings.HasPrefix(err.Error(), bad+":3: ") {
		t.Errorf("want error at %s:3, got %v", bad, err)
	}
	os.Remove(bad)

	// A conflict between files is reported where the conflicting key was set.
	late := write(t, dd, "40-conflict.toml", "# lower term\n[memory]\nterm_percent = 1\n")
	_, err = Load(main, dd)
	if err == nil || !strings.HasPrefix(err.Error(), late+":3: ") || !strings.Contains(err.Error(), "above the term threshold") {
		t.Errorf("want conflict at %s:3, got %v", late, err)
	}
}

func TestDefaultValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

// The example configuration shipped in etc/ must load, and must state the
// built-in defaults.
func TestExampleConfig(t *testing.T) {
	p := filepath.Join("..", "..", "etc", "oomguard.toml")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no example config: %v", err)
	}
	c, err := Load(p, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Default(), c, cmpConfig...); diff != "" {
		t.Errorf("etc/oomguard.toml differs from Default() (-default +example):\n%s", diff)
	}
}

func TestTOMLRoundTrip(t *testing.T) {
	c := Default()
	c.Scope = []string{"/sys/fs/cgroup/a", "/sys/fs/cgroup/b"}
	c.Memory.TermPercent = 12.5
	c.PSI = []PSI{{Resource: "cpu", Kind: "some", Stall: Duration(time.Second), Window: Duration(2 * time.Second), Level: "term"}}
	c.Rules.Avoid = []Regexp{MustRegexp(`^(sshd|systemd)$`)}
	c.Kmem.Budget = []KmemBudget{{Path: "/sys/fs/cgroup/x", Max: 1000, Action: KmemReport}}
	c.Hooks.PreKill = "/usr/local/bin/hook --pre"
	b, err := c.TOML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scope = [", "term_percent = 12.5", `max = "1000"`, `avoid = ["^(sshd|systemd)$"]`, "ignore = []"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("TOML output lacks %q:\n%s", want, b)
		}
	}
	p := write(t, t.TempDir(), "show.toml", string(b))
	got, err := Load(p, "")
	if err != nil {
		t.Fatalf("reloading the shown config: %v\n%s", err, b)
	}
	if diff := cmp.Diff(c, got, cmpConfig...); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]Size{
		"0": 0, "4096": 4096, "4k": 4096, "4K": 4096, "4KiB": 4096, "64M": 64 << 20, "64MB": 64 << 20,
		"512MiB": 512 << 20, "1G": 1 << 30, "1.5G": 3 << 29, "2T": 2 << 40, " 8 M ": 8 << 20,
		"64m": 64 << 20, "2g": 2 << 30, "1t": 1 << 40, "2MB": 2 << 20,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "12X", "1.5", "-1G", "1iB", "1GG", "99999999999T", "17179869184G", "99999999999999999999999", "64Q"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
	if s := Size(3 << 29).String(); s != "1536MiB" {
		t.Errorf("String = %q", s)
	}
}

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "oomguard.toml", "[memory]\nterm_percent = 20\nkill_percent = 10\n[rules]\nprotect = [\"sshd\"]\n")
	newFS := func() (*flag.FlagSet, *Overrides) {
		fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
		fs.SetOutput(new(strings.Builder))
		return fs, RegisterFlags(fs)
	}

	fs, o := newFS()
	err := fs.Parse([]string{"--mem-kill", "7", "--dry-run", "--psi", "memory some 150ms 2s", "--psi", "io full 1s 4s term /sys/fs/cgroup/db",
		"--kmem-budget", "/sys/fs/cgroup/memory/ci/*=256M:report", "--no-mrelease", "--protect", "Xorg", "--protect", "sshd", "--metrics-listen", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Apply(c); err != nil {
		t.Fatal(err)
	}
	want, _ := Load(p, "")
	want.Memory.KillPercent = 7
	want.DryRun = true
	want.PSI = []PSI{
		{Resource: "memory", Kind: "some", Stall: Duration(150 * time.Millisecond), Window: Duration(2 * time.Second), Level: "kill"},
		{Resource: "io", Kind: "full", Stall: Duration(time.Second), Window: Duration(4 * time.Second), Level: "term", Cgroup: "/sys/fs/cgroup/db"},
	}
	want.Kmem.Budget = []KmemBudget{{Path: "/sys/fs/cgroup/memory/ci/*", Max: 256 << 20, Action: KmemReport}}
	want.Kill.Mrelease = false
	want.Rules.Protect = []string{"Xorg", "sshd"}
	want.Metrics.Listen = "127.0.0.1:0"
	if diff := cmp.Diff(want, c, cmpConfig...); diff != "" {
		t.Errorf("flags over file (-want +got):\n%s", diff)
	}

	// Bad values are rejected when parsing.
	for _, args := range [][]string{
		{"--mem-term", "120"}, {"--interval", "soon"}, {"--psi", "memory some 150ms"}, {"--psi", "disk some 1s 2s"},
		{"--prefer", "("}, {"--kmem-budget", "/sys/fs/cgroup/a"}, {"--kmem-budget", "/sys/fs/cgroup/a=1G:nuke"}, {"--dry-run=maybe"},
	} {
		fs, _ := newFS()
		if err := fs.Parse(args); err == nil {
			t.Errorf("flags %q accepted", args)
		}
	}
	// Combinations are validated after Apply, and the error names the flag.
	fs, o = newFS()
	if err := fs.Parse([]string{"--mem-term", "5", "--metrics-listen", "0.0.0.0:9100"}); err != nil {
		t.Fatal(err)
	}
	c, _ = Load(p, "")
	err = o.Apply(c)
	if err == nil || !strings.Contains(err.Error(), "--mem-term: memory.kill_percent, memory.term_percent") || !strings.Contains(err.Error(), "--metrics-listen: metrics.listen") {
		t.Errorf("want errors naming --mem-term and --metrics-listen, got %v", err)
	}
	if f := o.FlagFor("memory.swap_kill_percent"); f != "swap-kill" {
		t.Errorf("FlagFor = %q", f)
	}
}

func TestLocate(t *testing.T) {
	src := `# comment
a = 1
"b.c" = 2
[t]
x = [
  "k = v", # not a key
  "]",
]
y = """
z = 3
"""
w = 4 # trailing
[[arr]]
k = 1
[[arr]]
k = 2
[ n . "m" ]
q = 'x=y'
`
	got := locate(src)
	want := map[string]int{"a": 2, "b.c": 3, "t": 4, "t.x": 5, "t.y": 9, "t.w": 12, "arr[0]": 13, "arr[0].k": 14, "arr[1]": 15, "arr[1].k": 16, "n.m": 17, "n.m.q": 18}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("locate (-want +got):\n%s", diff)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add("[memory]\nterm_percent = 10\n[[psi]]\nstall = \"1s\"\n")
	f.Add("scope = [\"/sys/fs/cgroup/a\"]\n[rules]\nprefer = [\"x\"]\n")
	f.Fuzz(func(t *testing.T, src string) {
		l := NewLoader()
		l.Add("fuzz.toml", []byte(src))
		c, err := l.Finish()
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Load accepted an invalid config: %v", verr)
			}
			return
		}
		var el ErrorList
		if !errors.As(err, &el) {
			t.Fatalf("error is not an ErrorList: %v", err)
		}
	})
}

// The commented examples in etc/oomguard.toml ("#   [[psi]]" blocks) must
// be valid when uncommented.
func TestExampleConfigSnippets(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "etc", "oomguard.toml"))
	if err != nil {
		t.Skipf("no example config: %v", err)
	}
	var blocks []string
	var cur []string
	for _, l := range strings.Split(string(b), "\n") {
		body, ok := strings.CutPrefix(l, "#   ")
		switch {
		case ok && strings.HasPrefix(body, "[["):
			cur = []string{body}
		case ok && cur != nil:
			cur = append(cur, body)
		case cur != nil:
			blocks = append(blocks, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	if len(blocks) < 2 {
		t.Fatalf("found %d example blocks, want the [[psi]] and [[kmem.budget]] ones", len(blocks))
	}
	for _, blk := range blocks {
		p := write(t, t.TempDir(), "snippet.toml", blk+"\n")
		if _, err := Load(p, ""); err != nil {
			t.Errorf("example\n%s\nis invalid: %v", blk, err)
		}
	}
}

func TestSocketGID(t *testing.T) {
	for _, tc := range []struct {
		group string
		want  int
		ok    bool
	}{{"", -1, true}, {"0", 0, true}, {"root", 0, true}, {"no-such-group-oomguard", -1, false}} {
		got, err := (Socket{Group: tc.group}).GID()
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("GID(%q) = %d, %v", tc.group, got, err)
		}
	}
}
