package memlock

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/testbed"
)

// helperCmd returns a command that runs the test binary as "oomguard run"
// with options h around argv, inside the testbed group g.
func helperCmd(t *testing.T, g *testbed.Group, h helperOptions, argv ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	cmd := g.Command(self, argv...)
	cmd.Env = append(os.Environ(), helperEnv+"="+string(js))
	return cmd
}

// runHelper runs the helper to completion and returns stdout, stderr and the
// exit status.
func runHelper(t *testing.T, g *testbed.Group, h helperOptions, argv ...string) (string, string, int) {
	t.Helper()
	cmd := helperCmd(t, g, h, argv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", argv, err)
	}
	return out.String(), errb.String(), code
}

// kBLines parses "name kB" lines.
func kBLines(t *testing.T, out string) map[string]int64 {
	t.Helper()
	m := make(map[string]int64)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("bad line %q", l)
		}
		m[f[0]] = v
	}
	return m
}

var goBin = func() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}()

func TestStaticGoBinaryLocked(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 768 << 20})
	bin := filepath.Join(t.TempDir(), "alloc")
	build := exec.Command(goBin, "build", "-o", bin, "./testdata/alloc")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, _ := exec.Command("file", bin).Output(); len(out) > 0 && !bytes.Contains(out, []byte("statically linked")) {
		t.Fatalf("alloc is not static: %s", out)
	}
	parse := func(out string) map[string]int64 {
		m := make(map[string]int64)
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[2] == "kB" {
				m[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
		return m
	}
	for _, mode := range []LockMode{LockAll, LockOnFault} {
		out, errOut, code := runHelper(t, g, helperOptions{Lock: mode}, bin, "50")
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", mode, code, errOut)
		}
		m := parse(out)
		t.Logf("--mlock=%v: %v", mode, m)
		if m["VmRSS:"] < 50<<10 {
			t.Fatalf("%v: VmRSS %d kB, want >= 50 MiB:\n%s", mode, m["VmRSS:"], out)
		}
		// VmLck counts whole locked mappings, including the Go runtime's
		// PROT_NONE address-space reservations (over 1 GiB), exactly as an
		// mlockall(MCL_FUTURE) in the program itself would; it must cover
		// the RSS. smaps_rollup's Locked is the resident memory in locked
		// mappings: all of the RSS.
		if m["VmLck:"] < m["VmRSS:"] {
			t.Errorf("%v: VmLck %d kB is below VmRSS %d kB", mode, m["VmLck:"], m["VmRSS:"])
		}
		if m["Locked:"] < m["Rss:"]*98/100 {
			t.Errorf("%v: only %d of %d kB resident are locked", mode, m["Locked:"], m["Rss:"])
		}
	}
	out, _, _ := runHelper(t, g, helperOptions{}, bin, "50")
	if m := parse(out); m["VmLck:"] != 0 || m["Locked:"] != 0 {
		t.Errorf("without --mlock: %v, want nothing locked", m)
	}
}

func TestGenerations(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	script, _ := filepath.Abs("testdata/level.sh")
	cases := []struct {
		name   string
		h      helperOptions
		locked []bool // levels 0..3
		engine string
		// atEntry is how many images the notifier locks at their entry:
		// levels 1 to 3 are new sh images of root's, which has
		// CAP_IPC_LOCK; level 0 is locked at start.
		atEntry int
	}{
		{"plain", helperOptions{}, []bool{false, false, false, false}, "none", 0},
		{"mlock", helperOptions{Lock: LockAll}, []bool{true, false, false, false}, "notifier", 0},
		{"mlock-full-ptrace", helperOptions{Lock: LockAll, Trace: true}, []bool{true, false, false, false}, "ptrace", 0},
		{"inherit", helperOptions{Lock: LockAll, Scope: ScopeInherit}, []bool{true, true, false, false}, "ptrace", 0},
		{"recursive", helperOptions{Lock: LockAll, Scope: ScopeRecursive}, []bool{true, true, true, true}, "notifier", 3},
		{"recursive-onfault", helperOptions{Lock: LockOnFault, Scope: ScopeRecursive}, []bool{true, true, true, true}, "notifier", 3},
		// --trace keeps the full ptrace engine, locking or not.
		{"recursive-full-ptrace", helperOptions{Lock: LockAll, Scope: ScopeRecursive, Trace: true}, []bool{true, true, true, true}, "ptrace", 0},
		{"trace-only", helperOptions{Trace: true, Scope: ScopeRecursive}, []bool{false, false, false, false}, "ptrace", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := runHelper(t, g, c.h, "sh", script, "0", "3")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(errOut, "ENGINE "+c.engine+"\n") {
				t.Errorf("want engine %s:\n%s", c.engine, errOut)
			}
			if !strings.Contains(errOut, fmt.Sprintf("ATENTRY %d\n", c.atEntry)) {
				t.Errorf("want %d images locked at entry:\n%s", c.atEntry, errOut)
			}
			m := kBLines(t, out)
			for lvl, want := range c.locked {
				v, ok := m["L"+strconv.Itoa(lvl)]
				if !ok {
					t.Fatalf("no level %d in output:\n%s", lvl, out)
				}
				if (v > 0) != want {
					t.Errorf("level %d: VmLck %d kB, want locked=%v\n%s", lvl, v, want, out)
				}
			}
		})
	}
	// The issue's own example: every level of nested shells is locked.
	out, errOut, code := runHelper(t, g, helperOptions{Lock: LockAll, Scope: ScopeRecursive},
		"sh", "-c", `grep VmLck /proc/$$/status; sh -c "grep VmLck /proc/self/status"; true`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := regexp.MustCompile(`VmLck:\s+(\d+) kB`).FindAllStringSubmatch(out, -1)
	if len(lines) != 2 {
		t.Fatalf("want 2 VmLck lines, got:\n%s", out)
	}
	for _, l := range lines {
		if l[1] == "0" {
			t.Errorf("a level is unlocked under --recursive:\n%s", out)
		}
	}
}

func TestForkVforkCloneThreads(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	src, err := os.ReadFile("testdata/clones.c")
	if err != nil {
		t.Fatal(err)
	}
	for _, static := range []bool{false, true} {
		flags := []string{"-pthread"}
		if static {
			flags = append(flags, "-static")
		}
		bin := testbed.CompileC(t, string(src), flags...)
		all := []string{"root", "thread", "clonevm", "fork", "grandchild", "grandchild-exec", "vfork-exec", "root-end"}
		cases := []struct {
			name     string
			h        helperOptions
			unlocked []string
		}{
			{"none", helperOptions{}, all},
			// The thread, the clone(CLONE_VM) child and the vfork child share
			// the command's address space, so they are locked with it.
			{"mlock", helperOptions{Lock: LockAll}, []string{"fork", "grandchild", "grandchild-exec", "vfork-exec"}},
			{"inherit", helperOptions{Lock: LockAll, Scope: ScopeInherit}, []string{"grandchild", "grandchild-exec"}},
			{"recursive", helperOptions{Lock: LockAll, Scope: ScopeRecursive}, nil},
			{"recursive-report", helperOptions{Lock: LockAll, Scope: ScopeInherit, Report: true}, []string{"grandchild", "grandchild-exec"}},
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/static=%v", c.name, static), func(t *testing.T) {
				out, errOut, code := runHelper(t, g, c.h, bin)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				m := kBLines(t, out)
				for _, name := range all {
					v, ok := m[name]
					if !ok {
						t.Fatalf("%s did not report:\n%s", name, out)
					}
					want := true
					for _, u := range c.unlocked {
						if u == name {
							want = false
						}
					}
					if (v > 0) != want {
						t.Errorf("%s: VmLck %d kB, want locked=%v", name, v, want)
					}
				}
				if t.Failed() {
					t.Logf("output:\n%s\nstderr:\n%s", out, errOut)
				}
			})
		}
	}
}

// reportRows parses the helper's REPORT lines.
func reportRows(t *testing.T, stderr string) []map[string]string {
	t.Helper()
	var rows []map[string]string
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "REPORT ") {
			continue
		}
		row := make(map[string]string)
		for _, kv := range strings.Fields(l)[1:] {
			k, v, _ := strings.Cut(kv, "=")
			row[k] = v
		}
		rows = append(rows, row)
	}
	return rows
}

func TestMakeRecursive(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	g := testbed.New(t, testbed.Options{MemoryLimit: 1 << 30})
	dir := t.TempDir()
	writeProject(t, dir, 12)
	out, errOut, code := runHelper(t, g, helperOptions{Lock: LockAll, Scope: ScopeRecursive, Report: true},
		"make", "-s", "-C", dir, "-j8")
	if code != 0 {
		t.Fatalf("make exit %d:\n%s\n%s", code, out, errOut)
	}
	prog, err := exec.Command(filepath.Join(dir, "prog")).Output()
	if err != nil {
		t.Fatalf("built program: %v", err)
	}
	if got, want := strings.TrimSpace(string(prog)), "sum 78"; got != want {
		t.Fatalf("built program prints %q, want %q", got, want)
	}
	rows := reportRows(t, errOut)
	compilers := 0
	for _, r := range rows {
		switch r["comm"] {
		case "cc1", "as", "collect2", "ld":
			compilers++
		}
		if r["lock"] != "yes" && r["lock"] != "shared" {
			t.Errorf("not locked: %v", r)
		}
		if r["lock"] == "yes" && r["vmlck"] == "0" {
			t.Errorf("locked but VmLck 0: %v", r)
		}
	}
	if compilers < 12 {
		t.Errorf("only %d compiler processes in the report:\n%s", compilers, errOut)
	}
	t.Logf("%d processes reported, %d compiler processes", len(rows), compilers)
}

// TestMakeRecursiveNotifier builds the same project under the default
// engine of --mlock --recursive, the notifier, which has no report: the
// compiler is a wrapper script that records its own VmLck and execs cc, so
// every compile and link job shows it was locked (gcc and its cc1, as and ld
// are started the same way, by vfork or fork and exec, one level deeper).
func TestMakeRecursiveNotifier(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("cc is not installed")
	}
	g := testbed.New(t, testbed.Options{MemoryLimit: 1 << 30})
	dir := t.TempDir()
	writeProject(t, dir, 12)
	log := filepath.Join(dir, "vmlck.log")
	wrapper := filepath.Join(dir, "cc-wrapper")
	script := fmt.Sprintf("#!/bin/sh\nwhile read -r k v _; do if [ \"$k\" = VmLck: ]; then echo \"$v\" >> %s; fi; done < /proc/$$/status\nexec %s \"$@\"\n", log, cc)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runHelper(t, g, helperOptions{Lock: LockAll, Scope: ScopeRecursive},
		"make", "-s", "-C", dir, "-j8", "CC="+wrapper)
	if code != 0 {
		t.Fatalf("make exit %d:\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "ENGINE notifier\n") {
		t.Errorf("want the notifier:\n%s", errOut)
	}
	prog, err := exec.Command(filepath.Join(dir, "prog")).Output()
	if err != nil {
		t.Fatalf("built program: %v", err)
	}
	if got, want := strings.TrimSpace(string(prog)), "sum 78"; got != want {
		t.Fatalf("built program prints %q, want %q", got, want)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	jobs := strings.Fields(string(b))
	if len(jobs) != 14 { // 13 compiles and the link
		t.Errorf("%d compiler jobs recorded, want 14: %q", len(jobs), b)
	}
	for _, v := range jobs {
		if v == "0" {
			t.Errorf("a compiler job ran unlocked: %q", b)
			break
		}
	}
}

// writeProject writes a C project of n source files and a Makefile whose
// program prints "sum" and 1+...+n.
func writeProject(t testing.TB, dir string, n int) {
	t.Helper()
	var mk, main strings.Builder
	objs := make([]string, 0, n)
	main.WriteString("#include <stdio.h>\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&main, "int f%d(void);\n", i)
		src := fmt.Sprintf("static int pad[64] = {%d};\nint f%d(void) { return pad[0]; }\n", i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.c", i)), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, fmt.Sprintf("f%d.o", i))
	}
	main.WriteString("int main(void) { int s = 0;\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&main, "s += f%d();\n", i)
	}
	main.WriteString("printf(\"sum %d\\n\", s); return 0; }\n")
	if err := os.WriteFile(filepath.Join(dir, "main.c"), []byte(main.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&mk, "prog: main.o %s\n\t$(CC) -o $@ $^\n%%.o: %%.c\n\t$(CC) -O1 -c -o $@ $<\nclean:\n\trm -f prog *.o\n", strings.Join(objs, " "))
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPassThrough(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	for _, h := range []helperOptions{{}, {Lock: LockAll, Scope: ScopeRecursive}} {
		name := "plain"
		if h.Lock != LockNone {
			name = "mlock-recursive"
		}
		t.Run(name, func(t *testing.T) {
			if _, _, code := runHelper(t, g, h, "sh", "-c", "exit 7"); code != 7 {
				t.Errorf("exit status %d, want 7", code)
			}
			if _, _, code := runHelper(t, g, h, "sh", "-c", "kill -KILL $$"); code != 128+9 {
				t.Errorf("death by SIGKILL: status %d, want 137", code)
			}
			if _, _, code := runHelper(t, g, h, "sh", "-c", "kill -TERM $$"); code != 128+15 {
				t.Errorf("death by SIGTERM: status %d, want 143", code)
			}
			if _, _, code := runHelper(t, g, h, "/nonexistent/cmd"); code != 127 {
				t.Errorf("missing command: status %d, want 127", code)
			}
			cmd := helperCmd(t, g, h, "sh", "-c", "tr a-z A-Z; echo err >&2")
			cmd.Stdin = strings.NewReader("piped input\n")
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				t.Fatalf("stdin pipe: %v: %s", err, errb.String())
			}
			// The helper (not oomguard run) adds the ENGINE and ATENTRY
			// lines.
			if stderr, _, _ := strings.Cut(errb.String(), "ENGINE "); out.String() != "PIPED INPUT\n" || stderr != "err\n" {
				t.Errorf("stdin/stdout/stderr: got %q / %q", out.String(), errb.String())
			}

			// SIGINT sent to oomguard (through the testbed reaper, which
			// forwards it to its child) reaches the command exactly once.
			cmd = helperCmd(t, g, h, "sh", "-c", `n=0; trap 'n=$((n+1))' INT; echo ready; while [ $n -eq 0 ]; do sleep 0.05; done; sleep 0.3; echo "ints $n"; exit 42`)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			rd := bufio.NewReader(stdout)
			if l, _ := rd.ReadString('\n'); l != "ready\n" {
				t.Fatalf("got %q before the signal", l)
			}
			cmd.Process.Signal(syscall.SIGINT)
			rest, _ := rd.ReadString('\n')
			err = cmd.Wait()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 42 || rest != "ints 1\n" {
				t.Errorf("SIGINT forwarding: %v, output %q", err, rest)
			}
		})
	}
}

func TestJobControl(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	cmd := helperCmd(t, g, helperOptions{Lock: LockAll, Scope: ScopeRecursive},
		"sh", "-c", `echo $$; kill -STOP $$; echo resumed`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(stdout)
	l, _ := rd.ReadString('\n')
	pid, err := strconv.Atoi(strings.TrimSpace(l))
	if err != nil {
		t.Fatalf("pid line %q", l)
	}
	state := func() string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 {
			return string(b[i+2])
		}
		return "?"
	}
	deadline := time.Now().Add(5 * time.Second)
	for state() != "t" && state() != "T" {
		if time.Now().After(deadline) {
			t.Fatalf("command never stopped (state %s)", state())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if s := state(); s != "t" && s != "T" {
		t.Fatalf("stopped command was resumed by the tracer (state %s)", s)
	}
	syscall.Kill(pid, syscall.SIGCONT)
	if l, _ := rd.ReadString('\n'); l != "resumed\n" {
		t.Errorf("after SIGCONT: %q", l)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v", err)
	}
}

func TestOOMScoreAdjAndPidsMax(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	adj := 500
	for _, h := range []helperOptions{
		{OOMScoreAdj: &adj, Limits: Limits{PidsMax: 40, MemoryMax: 200 << 20}},
		{OOMScoreAdj: &adj, Limits: Limits{PidsMax: 40, MemoryMax: 200 << 20}, Lock: LockAll, Scope: ScopeRecursive},
	} {
		script := `show() { echo "adj $(cat /proc/self/oom_score_adj)"; p=$(sed -n 's/^[0-9]*:pids://p' /proc/self/cgroup); echo "pids $p $(cat /sys/fs/cgroup/pids$p/pids.max)"; m=$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup); echo "mem $m $(cat /sys/fs/cgroup/memory$m/memory.limit_in_bytes)"; }; show; sh -c "$(typeset -f show 2>/dev/null || echo 'true'); true"; ( show ); sh -c 'cat /proc/self/oom_score_adj'`
		out, errOut, code := runHelper(t, g, h, "sh", "-c", script)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var cgroups []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) == 1:
				if f[0] != "500" {
					t.Errorf("grandchild oom_score_adj %s, want 500", f[0])
				}
			case f[0] == "adj" && f[1] != "500":
				t.Errorf("oom_score_adj %s, want 500", f[1])
			case f[0] == "pids":
				if len(f) != 3 || f[2] != "40" || !strings.Contains(f[1], "oomguard-run-") {
					t.Errorf("pids cgroup line %q, want pids.max 40 in an oomguard-run cgroup", l)
				}
				cgroups = append(cgroups, "/sys/fs/cgroup/pids"+f[1])
			case f[0] == "mem":
				if len(f) != 3 || f[2] != strconv.Itoa(200<<20) || !strings.Contains(f[1], "oomguard-run-") {
					t.Errorf("memory cgroup line %q", l)
				}
				cgroups = append(cgroups, "/sys/fs/cgroup/memory"+f[1])
			}
		}
		if len(cgroups) != 4 {
			t.Fatalf("output:\n%s", out)
		}
		for _, c := range cgroups {
			if _, err := os.Stat(c); !os.IsNotExist(err) {
				t.Errorf("cgroup %s left behind (%v)", c, err)
			}
		}
	}
	// pids.max is enforced on the descendants: the shell cannot fork the
	// sixth process.
	_, errOut, code := runHelper(t, g, helperOptions{Limits: Limits{PidsMax: 5}}, "sh", "-c",
		`for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait`)
	if code == 0 || !strings.Contains(strings.ToLower(errOut), "fork") {
		t.Errorf("pids.max 5 did not stop 8 background sleeps: exit %d, %q", code, errOut)
	}
}

func TestOrphansAreWaitedFor(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	marker := filepath.Join(t.TempDir(), "orphan-done")
	start := time.Now()
	_, errOut, code := runHelper(t, g, helperOptions{Limits: Limits{PidsMax: 20}, Lock: LockAll, Scope: ScopeRecursive},
		"sh", "-c", fmt.Sprintf(`(sleep 0.5; touch %s) & exit 3`, marker))
	if code != 3 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("run returned before the orphan ended (after %v)", time.Since(start))
	}
}

// TestNotifierWaitsForOrphansIdly: while the notifier waits for an orphan
// after the command has exited, it sleeps (the reaped command's pidfd, which
// reports POLLHUP whatever is asked, once made it spin for the orphan's
// whole life).
func TestNotifierWaitsForOrphansIdly(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	cmd := helperCmd(t, g, helperOptions{Lock: LockAll, Scope: ScopeRecursive}, "sh", "-c", "(sleep 1) & exit 0")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "ENGINE notifier\n") {
		t.Errorf("want the notifier:\n%s", errb.String())
	}
	// Everything the helper and its command used in 1 s of waiting.
	if cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(); cpu > 300*time.Millisecond {
		t.Errorf("oomguard run used %v of CPU while an orphan slept 1 s", cpu)
	}
}

func TestClearErrors(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	marker := filepath.Join(t.TempDir(), "ran")
	touch := []string{"sh", "-c", "touch " + marker}
	neg := -500
	cases := []struct {
		name string
		h    helperOptions
		want string
	}{
		{"negative-oom-score-adj", helperOptions{OOMScoreAdj: &neg}, "CAP_SYS_RESOURCE"},
		{"memory-min-on-v1", helperOptions{Limits: Limits{MemoryMin: 64 << 20}}, "memory.min"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := runHelper(t, g, c.h, touch...)
			if code != 125 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q; want 125 and %q", code, errOut, c.want)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran")
			}
		})
	}
}

// TestUnprivileged runs the helper as nobody with the default 8 MiB
// RLIMIT_MEMLOCK: --mlock and a cgroup must both fail clearly, before the
// command runs.
func TestUnprivileged(t *testing.T) {
	testbed.Require(t)
	bin := worldCopy(t)
	dir := filepath.Dir(bin)
	marker := filepath.Join(dir, "ran")
	cases := []struct {
		name string
		h    helperOptions
		want []string
	}{
		{"mlock", helperOptions{Lock: LockAll}, []string{"RLIMIT_MEMLOCK", "CAP_IPC_LOCK", "ulimit -l"}},
		{"cgroup", helperOptions{Limits: Limits{MemoryMax: 64 << 20}}, []string{"create cgroup", "permission denied", "delegate"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			js, _ := json.Marshal(c.h)
			cmd := exec.Command(bin, "sh", "-c", "touch "+marker)
			cmd.Env = append(os.Environ(), helperEnv+"="+string(js))
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Credential: &syscall.Credential{Uid: 65534, Gid: 65534},
				Pdeathsig:  syscall.SIGKILL,
			}
			var rl syscall.Rlimit
			syscall.Getrlimit(8 /* RLIMIT_MEMLOCK */, &rl)
			if rl.Max == ^uint64(0) || rl.Max >= minUsefulMemlock {
				t.Skipf("RLIMIT_MEMLOCK hard limit %d is not low here", rl.Max)
			}
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 125 {
				t.Fatalf("want exit 125, got %v: %s", err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("message %q lacks %q", out, w)
				}
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran")
			}
		})
	}
}

// worldCopy copies the test binary into a new directory that user nobody can
// reach, and returns its path.
func worldCopy(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "memlock-unpriv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestLockFailureWarns runs, under oomguard as root, a command that drops
// CAP_IPC_LOCK (setpriv) and then runs a program whose image alone exceeds
// the 8 MiB RLIMIT_MEMLOCK: mlockall fails in it, the failure is reported
// with the PID and errno, and the program still runs; a small program after
// it is locked within the limit.
func TestLockFailureWarns(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	var rl syscall.Rlimit
	syscall.Getrlimit(8 /* RLIMIT_MEMLOCK */, &rl)
	if rl.Max == ^uint64(0) || rl.Max >= 64<<20 {
		t.Skipf("RLIMIT_MEMLOCK hard limit %d is not low here", rl.Max)
	}
	big := testbed.CompileC(t, `#include <stdio.h>
static volatile char big[96 << 20];
int main(int argc, char **argv) { big[argc] = 1; printf("big ran %d\n", big[argc]); return 0; }
`)
	small := testbed.CompileC(t, `#include <stdio.h>
#include <string.h>
#include <stdlib.h>
int main(void) { char b[4096]; FILE *f = fopen("/proc/self/status", "r");
	while (fgets(b, sizeof b, f)) if (!strncmp(b, "VmLck:", 6)) printf("small %ld\n", strtol(b + 6, NULL, 10));
	return 0; }
`)
	out, errOut, code := runHelper(t, g, helperOptions{Lock: LockAll, Scope: ScopeRecursive},
		"setpriv", "--bounding-set=-ipc_lock", "--inh-caps=-ipc_lock", "--", "sh", "-c", big+"; "+small)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(out, "big ran") {
		t.Errorf("the program that could not be locked did not run: %q", out)
	}
	if m := regexp.MustCompile(`small (\d+)`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("the small program was not locked: %q", out)
	}
	warn := regexp.MustCompile(`warning: pid \d+ \(\S+\) is NOT locked: mlockall: cannot allocate memory \(RLIMIT_MEMLOCK`)
	if !warn.MatchString(errOut) {
		t.Errorf("no warning naming the PID and errno in %q (stdout %q)", errOut, out)
	}
	if !strings.Contains(errOut, "LOCKFAILURES 1") {
		t.Errorf("Result.LockFailures is not 1: %q", errOut)
	}
	// setpriv is the command (locked at start); every image after it lacks
	// CAP_IPC_LOCK, so none is locked at its entry without a check: the
	// checked injection is what sees the failure.
	if !strings.Contains(errOut, "ATENTRY 0\n") {
		t.Errorf("want no image locked at entry: %q", errOut)
	}
}

// TestSignalAfterCommandExit: once the command has exited, a signal to
// oomguard reaches what it left behind, so run can end: in its cgroup, and
// without one (no limits asked for), the orphans oomguard adopted as their
// subreaper (before, it swallowed the signal and waited the orphan out).
func TestSignalAfterCommandExit(t *testing.T) {
	for _, c := range []struct {
		name string
		h    helperOptions
	}{
		{"in its cgroup", helperOptions{Limits: Limits{PidsMax: 20}}},
		{"without a cgroup", helperOptions{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := testbed.New(t, testbed.Options{})
			cmd := helperCmd(t, g, c.h, "sh", "-c", "sleep 30 & echo started")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if l, _ := bufio.NewReader(stdout).ReadString('\n'); l != "started\n" {
				t.Fatalf("got %q", l)
			}
			time.Sleep(300 * time.Millisecond) // let the command exit
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("run took %v: the orphan did not get SIGTERM", d)
			}
		})
	}
}

// TestNotifierForks: under the notifier, a child forked without exec (a
// subshell) is locked, and forks that fail at pids.max end in an error in
// the command rather than a hang in oomguard (the failed call brings no
// fork event, only the interrupt's stop).
func TestNotifierForks(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	out, errOut, code := runHelper(t, g, helperOptions{Limits: Limits{PidsMax: 4}, Lock: LockAll, Scope: ScopeRecursive},
		"sh", "-c", `for i in 1 2 3 4 5 6; do
	( while read -r k v _; do if [ "$k" = VmLck: ]; then echo "S $v"; fi; done < /proc/self/status; sleep 0.3 ) &
done; wait`)
	if !strings.Contains(errOut, "ENGINE notifier\n") {
		t.Errorf("want the notifier:\n%s", errOut)
	}
	// dash gives up (exit 2) at its first refused fork.
	if code != 2 || !strings.Contains(strings.ToLower(errOut), "fork") {
		t.Fatalf("want a fork refused at pids.max 4, and the shell's exit 2: exit %d\n%s\n%s", code, out, errOut)
	}
	subshells := regexp.MustCompile(`S (\d+)`).FindAllStringSubmatch(out, -1)
	if len(subshells) == 0 {
		t.Fatalf("no subshell ran:\n%s", out)
	}
	for _, s := range subshells {
		if s[1] == "0" {
			t.Errorf("a forked subshell is not locked:\n%s", out)
		}
	}
}

// TestVDSOPadding: the notifier's gadget goes into the last 8 bytes of the
// vDSO mapping, which this kernel's vDSO image leaves unused and zero.
func TestVDSOPadding(t *testing.T) {
	if !entryGadgetArch {
		t.Skip("no entry gadget on this architecture")
	}
	off := vdsoPadding("/proc")
	if off == 0 {
		t.Fatal("vdsoPadding found no room in this kernel's vDSO")
	}
	if off%8 != 0 || off < 4096-8 {
		t.Errorf("offset %#x: want the last 8 bytes of a mapping of whole pages", off)
	}
	if got := vdsoPadding(t.TempDir()); got != 0 {
		t.Errorf("vdsoPadding of a proc root without files = %#x, want 0", got)
	}
}

// TestThreadExec: a thread other than the main one execs (the kernel gives
// the new image the thread group's ID); under both engines of --recursive
// the new image is locked and the run ends with its status.
func TestThreadExec(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	bin := testbed.CompileC(t, `#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
static void *run(void *a) { (void)a;
	execl("/bin/sh", "sh", "-c", "while read -r k v _; do if [ \"$k\" = VmLck: ]; then echo \"L $v\"; fi; done < /proc/$$/status; exit 7", (char *)0);
	perror("execl"); return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, run, 0); for (;;) pause(); }
`, "-pthread")
	for _, h := range []helperOptions{{Lock: LockAll, Scope: ScopeRecursive}, {Lock: LockAll, Scope: ScopeRecursive, Trace: true}} {
		out, errOut, code := runHelper(t, g, h, bin)
		if code != 7 {
			t.Fatalf("%+v: exit %d, want 7: %s", h, code, errOut)
		}
		if m := regexp.MustCompile(`L (\d+)`).FindStringSubmatch(out); m == nil || m[1] == "0" {
			t.Errorf("%+v: the image exec'd from a thread is not locked: %q", h, out)
		}
	}
}

// TestNotifierFallsBack: without CAP_SYS_ADMIN (here dropped from
// oomguard's bounding set by setpriv) the notifier cannot install its
// filter, and the full ptrace engine locks every level instead.
func TestNotifierFallsBack(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	g := testbed.New(t, testbed.Options{})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(helperOptions{Lock: LockAll, Scope: ScopeRecursive})
	script, _ := filepath.Abs("testdata/level.sh")
	cmd := g.Command("setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--", self, "sh", script, "0", "2")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(js))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "ENGINE ptrace\n") {
		t.Errorf("want the full ptrace engine:\n%s", errb.String())
	}
	m := kBLines(t, out.String())
	for lvl := 0; lvl <= 2; lvl++ {
		if v, ok := m["L"+strconv.Itoa(lvl)]; !ok || v == 0 {
			t.Errorf("level %d not locked:\n%s", lvl, out.String())
		}
	}
}

// TestMlockCommandReexec: plain --mlock, under the notifier, locks the
// command's own new image after it execs, and leaves its children alone
// (their execs are notified and let go at once).
func TestMlockCommandReexec(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	out, errOut, code := runHelper(t, g, helperOptions{Lock: LockAll},
		"sh", "-c", `grep VmLck /proc/self/status; exec sh -c 'grep VmLck /proc/$$/status'`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := regexp.MustCompile(`VmLck:\s+(\d+) kB`).FindAllStringSubmatch(out, -1)
	if len(lines) != 2 || lines[0][1] != "0" || lines[1][1] == "0" {
		t.Errorf("want the child unlocked, then the command's new image locked:\n%s", out)
	}
	if !strings.Contains(errOut, "ENGINE notifier\nATENTRY 1\n") {
		t.Errorf("want the notifier, with the new image locked at its entry:\n%s", errOut)
	}
}

// TestSetuidKeepsItsPrivileges: run as nobody, `oomguard run` of a
// set-user-ID-root program that nothing traces (here with an
// oom_score_adj) starts it through the release helper, without ptrace, so
// it runs with its privileges: `id -u` prints 0. Started under
// PTRACE_TRACEME by an unprivileged tracer, the kernel ignores the setuid
// bit at the exec and it prints 65534, as the second case shows.
func TestSetuidKeepsItsPrivileges(t *testing.T) {
	testbed.Require(t)
	if os.Geteuid() != 0 {
		t.Skip("making a setuid-root program needs root")
	}
	bin := worldCopy(t)
	idPath, err := exec.LookPath("id")
	if err != nil {
		t.Skip("no id(1)")
	}
	data, err := os.ReadFile(idPath)
	if err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(filepath.Dir(bin), "id-setuid")
	if err := os.WriteFile(suid, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	adj := 300
	for _, c := range []struct {
		name string
		h    helperOptions
		want string
	}{
		{"release helper", helperOptions{OOMScoreAdj: &adj}, "0"},
		{"PTRACE_TRACEME", helperOptions{OOMScoreAdj: &adj, Traceme: true}, "65534"},
	} {
		t.Run(c.name, func(t *testing.T) {
			js, _ := json.Marshal(c.h)
			cmd := exec.Command(bin, suid, "-u")
			cmd.Env = append(os.Environ(), helperEnv+"="+string(js))
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Credential: &syscall.Credential{Uid: 65534, Gid: 65534},
				Pdeathsig:  syscall.SIGKILL,
			}
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				t.Fatalf("run %s -u as nobody: %v\n%s", suid, err, errb.String())
			}
			if got := strings.TrimSpace(out.String()); got != c.want {
				t.Fatalf("setuid-root id -u printed %q, want %q (stderr %q)", got, c.want, errb.String())
			}
		})
	}
}

// e32Source is a static i386 program with no libc: getpid, then exit 42.
const e32Source = `.globl _start
_start:
  mov $20, %eax
  int $0x80
  mov $1, %eax
  mov $42, %ebx
  int $0x80
`

// TestThirtyTwoBitProgramIsRefusedClearly: a 32-bit (i386) program cannot
// be locked (its registers come in another layout, its system calls have
// other numbers); under --mlock, with either engine, it runs unlocked, its
// exit status passes through, and the warning says why, where the
// injection used to fail on a zero pc ("PTRACE_PEEKDATA 0x0").
func TestThirtyTwoBitProgramIsRefusedClearly(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "e32.S")
	bin := filepath.Join(dir, "e32")
	if err := os.WriteFile(src, []byte(e32Source), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-m32", "-nostdlib", "-static", "-o", bin, src).CombinedOutput(); err != nil {
		t.Skipf("cannot build an i386 program here: %v\n%s", err, out)
	}
	for _, h := range []helperOptions{{Lock: LockAll}, {Lock: LockAll, Trace: true}} {
		g := testbed.New(t, testbed.Options{})
		_, errOut, code := runHelper(t, g, h, bin)
		if code != 42 {
			t.Errorf("%+v: exit %d, want the program's 42; stderr:\n%s", h, code, errOut)
		}
		if !strings.Contains(errOut, "(e32) is NOT locked: a 32-bit program") || strings.Contains(errOut, "PEEKDATA") {
			t.Errorf("%+v: stderr does not say the 32-bit program is not locked, and why:\n%s", h, errOut)
		}
	}
}

// TestInterruptedBeforeStart: a SIGTERM or SIGINT that reaches oomguard
// before Run takes the signals over ends the CLI's context; the command
// then never starts (it used to start, its signal lost), the run fails
// with 125 saying why, and the cgroup made for it is removed.
func TestInterruptedBeforeStart(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	marker := filepath.Join(t.TempDir(), "ran")
	_, errOut, code := runHelper(t, g, helperOptions{Interrupted: true, Limits: Limits{PidsMax: 20}}, "touch", marker)
	if code != 125 || !strings.Contains(errOut, "interrupted before touch started") {
		t.Errorf("exit %d, stderr %q; want 125 and the reason", code, errOut)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran")
	}
	// The run makes its cgroups under its own (the group's).
	for _, c := range g.Cgroups() {
		if left, _ := filepath.Glob(filepath.Join(c.Path, "oomguard-run-*")); len(left) > 0 {
			t.Errorf("the run's cgroups %v were left behind", left)
		}
	}
}
