// Command run benchmarks "oomguard run": a shell loop of execs and a parallel
// build of a generated C project, each bare and under oomguard run with
// tracing only, --mlock and --mlock=onfault (all with --recursive), in
// interleaved rounds, and writes the medians and their ratios to bare as a
// Markdown table.
//
// It confines itself (and so every workload) in a v1 memory cgroup limited to
// 1 GiB and a v1 pids cgroup with pids.max 2000, both removed at the end.
// Run it as root from the repository root:
//
//	go run ./bench/run -out docs/benchmarks/run.md
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type mode struct {
	name    string
	args    []string // oomguard run arguments before "--"; nil means no oomguard
	preload string   // a shim for LD_PRELOAD (shimNoop or shimLock), without oomguard
}

// The reference modes run without oomguard, with a shim preloaded into every
// dynamically linked process: shimNoop does nothing (the cost of loading a
// shim), shimLock calls mlockall(MCL_CURRENT|MCL_FUTURE) in its constructor
// and in every fork child (pthread_atfork), as --mlock --recursive asks to
// happen in every process. shimLock is the lock's own cost, the floor under
// any engine that locks from outside; it covers dynamically linked programs
// only, which every program of these workloads is.
const (
	shimNoop = "noop"
	shimLock = "lock"
)

var modes = []mode{
	{name: "bare", args: nil},
	{name: "run (no tracing)", args: []string{}},
	{name: "run --trace --recursive", args: []string{"--trace", "--recursive"}},
	{name: "run --mlock", args: []string{"--mlock"}},
	{name: "run --trace --mlock", args: []string{"--trace", "--mlock"}},
	{name: "run --mlock --recursive", args: []string{"--mlock", "--recursive"}},
	{name: "run --trace --mlock --recursive", args: []string{"--trace", "--mlock", "--recursive"}},
	{name: "run --mlock=onfault --recursive", args: []string{"--mlock=onfault", "--recursive"}},
	{name: "reference: LD_PRELOAD shim that does nothing", preload: shimNoop},
	{name: "reference: LD_PRELOAD shim that calls mlockall", preload: shimLock},
}

// The modes that the report's summary compares, by index into modes.
var (
	modeBare      = modeIndex("bare")
	modeRecursive = modeIndex("run --mlock --recursive")
	modeFloor     = modeIndex("reference: LD_PRELOAD shim that calls mlockall")
)

// modeIndex returns the index of the mode named name; it panics on a name
// that modes lacks, at start-up.
func modeIndex(name string) int {
	for i, m := range modes {
		if m.name == name {
			return i
		}
	}
	panic("bench/run: no mode " + name)
}

// shimSource is the C source of the reference shims; LOCK selects shimLock.
const shimSource = `#include <sys/mman.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
static void lock(void) {
	if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
		fprintf(stderr, "shim: mlockall: %s\n", strerror(errno));
}
__attribute__((constructor)) static void init(void) {
#ifdef LOCK
	lock();
	pthread_atfork(0, 0, lock);
#endif
}
`

type workload struct {
	name  string
	prep  func() error // run before each measurement, not timed
	argv  []string
	check func() error
}

type sample struct{ wall, cpu time.Duration }

func main() {
	oomguard := flag.String("oomguard", "", "oomguard binary (default: go build ./cmd/oomguard)")
	loops := flag.Int("loops", 2000, "execs in the shell loop")
	files := flag.Int("files", 32, "C files in the generated project")
	jobs := flag.Int("jobs", 8, "make -j")
	rounds := flag.Int("rounds", 7, "interleaved rounds (the best and the median are reported)")
	out := flag.String("out", "", "write the Markdown report here (default: stdout)")
	flag.Parse()

	tmp, err := os.MkdirTemp("", "oomguard-bench-run")
	check(err)
	defer os.RemoveAll(tmp)
	if *oomguard == "" {
		*oomguard = filepath.Join(tmp, "oomguard")
		b := exec.Command("go", "build", "-o", *oomguard, "./cmd/oomguard")
		b.Stderr = os.Stderr
		check(b.Run())
	}
	// The load before any workload runs: the one at the end is mostly the
	// benchmark's own (make -j).
	loadBefore, _ := os.ReadFile("/proc/loadavg")
	undo, err := confine()
	check(err)
	defer undo()
	// On SIGINT or SIGTERM, the running workload gets SIGTERM, and the
	// cgroups are removed before exiting.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fail := func(err error) {
		if err != nil {
			undo()
			check(err)
		}
	}

	shims, err := buildShims(tmp)
	fail(err)

	proj := filepath.Join(tmp, "proj")
	check(os.Mkdir(proj, 0o755))
	check(writeProject(proj, *files))
	loop := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done`, *loops)
	wls := []workload{
		{name: fmt.Sprintf("shell loop of %d execs", *loops), argv: []string{"sh", "-c", loop}},
		{
			name: fmt.Sprintf("make -j%d (%d C files)", *jobs, *files),
			prep: func() error { return exec.Command("make", "-s", "-C", proj, "clean").Run() },
			argv: []string{"make", "-s", "-C", proj, "-j" + strconv.Itoa(*jobs)},
			check: func() error {
				b, err := exec.Command(filepath.Join(proj, "prog")).Output()
				if err != nil || strings.TrimSpace(string(b)) != fmt.Sprintf("sum %d", *files*(*files+1)/2) {
					return fmt.Errorf("built program printed %q: %v", b, err)
				}
				return nil
			},
		},
	}

	res := make([][][]sample, len(wls)) // [workload][mode][round]
	for w := range wls {
		res[w] = make([][]sample, len(modes))
	}
	for r := 0; r < *rounds; r++ {
		for w, wl := range wls {
			for m, md := range modes {
				s, err := measure(ctx, *oomguard, shims, wl, md)
				fail(err)
				res[w][m] = append(res[w][m], s)
				fmt.Fprintf(os.Stderr, "round %d %-28s %-34s wall %7.3fs cpu %7.3fs\n", r+1, wl.name, md.name, s.wall.Seconds(), s.cpu.Seconds())
			}
		}
	}

	var buf bytes.Buffer
	writeReport(&buf, wls, res, *rounds, strings.TrimSpace(string(loadBefore)))
	if *out == "" {
		os.Stdout.Write(buf.Bytes())
		return
	}
	fail(os.WriteFile(*out, buf.Bytes(), 0o644))
}

// buildShims compiles the reference shims into dir with cc, checks that
// shimLock locks, and returns each shim's path by name.
func buildShims(dir string) (map[string]string, error) {
	src := filepath.Join(dir, "shim.c")
	if err := os.WriteFile(src, []byte(shimSource), 0o644); err != nil {
		return nil, err
	}
	shims := map[string]string{}
	for name, defs := range map[string][]string{shimNoop: nil, shimLock: {"-DLOCK"}} {
		so := filepath.Join(dir, "shim-"+name+".so")
		args := append(append([]string{"-O2", "-shared", "-fPIC"}, defs...), "-o", so, src, "-lpthread")
		if out, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build the %s shim: cc %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		shims[name] = so
	}
	probe := exec.Command("sh", "-c", "grep VmLck /proc/self/status")
	probe.Env = append(os.Environ(), "LD_PRELOAD="+shims[shimLock])
	out, err := probe.CombinedOutput()
	if f := strings.Fields(string(out)); err != nil || len(f) < 2 || f[1] == "0" {
		return nil, fmt.Errorf("the %s shim does not lock: grep VmLck under it printed %q: %v", shimLock, out, err)
	}
	return shims, nil
}

func measure(ctx context.Context, oomguard string, shims map[string]string, wl workload, md mode) (sample, error) {
	if wl.prep != nil {
		if err := wl.prep(); err != nil {
			return sample{}, fmt.Errorf("%s: prepare: %w", wl.name, err)
		}
	}
	argv := wl.argv
	if md.args != nil {
		argv = append(append(append([]string{oomguard, "run"}, md.args...), "--"), wl.argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if md.preload != "" {
		cmd.Env = append(os.Environ(), "LD_PRELOAD="+shims[md.preload])
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%s under %s: %v\n%s", wl.name, md.name, err, stderr.String())
	}
	if stderr.Len() > 0 {
		return sample{}, fmt.Errorf("%s under %s wrote to stderr:\n%s", wl.name, md.name, stderr.String())
	}
	if wl.check != nil {
		if err := wl.check(); err != nil {
			return sample{}, fmt.Errorf("%s under %s: %w", wl.name, md.name, err)
		}
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return sample{wall, cpu}, nil
}

func stat(s []sample, f func(sample) time.Duration) (min, median time.Duration) {
	v := make([]time.Duration, len(s))
	for i := range s {
		v[i] = f(s[i])
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[0], v[len(v)/2]
}

// withinRound returns the median over rounds of s's wall time divided by
// bare's in the same round.
func withinRound(s, bare []sample) float64 {
	r := make([]float64, 0, len(s))
	for i := range s {
		if i < len(bare) && bare[i].wall > 0 {
			r = append(r, float64(s[i].wall)/float64(bare[i].wall))
		}
	}
	if len(r) == 0 {
		return 0
	}
	sort.Float64s(r)
	return r[len(r)/2]
}

func wallOf(s sample) time.Duration { return s.wall }
func cpuOf(s sample) time.Duration  { return s.cpu }

func writeReport(w io.Writer, wls []workload, res [][][]sample, rounds int, loadBefore string) {
	host, _ := os.Hostname()
	var uts syscall.Utsname
	syscall.Uname(&uts)
	release := utsString(uts.Release[:])
	fmt.Fprintf(w, "# oomguard run: cost of tracing and locking\n\n")
	fmt.Fprintf(w, "Generated by `go run ./bench/run -out docs/benchmarks/run.md` (as root, from the repository root; `-rounds`, `-loops`, `-files`, `-jobs` change the defaults) on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "Machine: %s, Linux %s, %d CPUs, %s; load average before the run: %s.\n\n", host, release, runtime.NumCPU(), runtime.Version(), loadBefore)
	fmt.Fprintf(w, "Each workload runs bare and under each `oomguard run` mode in %d interleaved rounds. Wall time is given as the best round (noise from other load on the machine only adds time) and the median; CPU time is user+system of the whole process tree, oomguard's tracer included. Every ratio is to bare, measured in the same run; *within a round* is the median over rounds of each round's ratio to that round's bare run (the runs of a round are back to back, so this ratio suffers least from load that comes and goes). The target is a wall ratio of at most 1.3 under `--mlock --recursive`.\n\n", rounds)
	fmt.Fprintf(w, "Modes: *run (no tracing)* only wraps (the command starts through oomguard's release helper, which waits for its cgroup, oom_score_adj and RLIMIT_MEMLOCK to be set, then execs it untraced); *--trace* takes the same ptrace stops as locking without injecting; *--mlock* alone traces and locks the command only; *--recursive* covers every descendant. `--mlock` and `--mlock --recursive` run the seccomp notifier (processes are seized only at exec and, under `--recursive`, fork, and new images of processes with CAP_IPC_LOCK are locked without a stop of their own); adding `--trace` keeps the full ptrace engine, which traces every covered process for its whole life, for comparison. The two *reference* modes run without oomguard: an LD_PRELOAD shim, loaded into every process of the workload, that does nothing, and one that calls `mlockall(MCL_CURRENT|MCL_FUTURE)` in its constructor and in every fork child, which is what `--mlock --recursive` asks to happen in every process. The second is the lock's own cost, a floor under any engine that locks from outside (a shim cannot cover static or setuid programs, or programs that clean their environment, which is why oomguard does not work this way).\n\n")
	if noisy(res, loadBefore) {
		fmt.Fprintf(w, "**Caveat: this run was noisy.** The machine had other load (a load average above the CPU count before the run, or bare rounds spread by more than 20%%), so wall times mostly measure that load, not oomguard; a ratio below 1 is noise. The CPU-time ratios are the trustworthy figures here; rerun on a quiet machine for wall ratios.\n\n")
	}
	for wi, wl := range wls {
		fmt.Fprintf(w, "## %s\n\n", wl.name)
		fmt.Fprintln(w, "| mode | wall, best | best / bare | wall, median | median / bare | wall / bare within a round, median | CPU, median | CPU / bare |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
		bwMin, bwMed := stat(res[wi][0], wallOf)
		_, bcMed := stat(res[wi][0], cpuOf)
		for mi, md := range modes {
			wMin, wMed := stat(res[wi][mi], wallOf)
			_, cMed := stat(res[wi][mi], cpuOf)
			fmt.Fprintf(w, "| %s | %.3f s | %.2f | %.3f s | %.2f | %.2f | %.3f s | %.2f |\n", md.name,
				wMin.Seconds(), float64(wMin)/float64(bwMin), wMed.Seconds(), float64(wMed)/float64(bwMed),
				withinRound(res[wi][mi], res[wi][0]), cMed.Seconds(), float64(cMed)/float64(bcMed))
		}
		fmt.Fprintln(w)
		rec := withinRound(res[wi][modeRecursive], res[wi][modeBare])
		floor := withinRound(res[wi][modeFloor], res[wi][modeBare])
		verdict := "met"
		if rec > 1.3 {
			verdict = "missed"
		}
		fmt.Fprintf(w, "Target (`%s` at most 1.3× bare, within a round): **%s**, %.2f×. The lock's own cost (`%s`): %.2f× bare; oomguard's engine on top of it: %.2f× the shim's time, within a round.\n\n",
			modes[modeRecursive].name, verdict, rec, modes[modeFloor].name, floor, withinRound(res[wi][modeRecursive], res[wi][modeFloor]))
	}
}

// noisy reports whether other load disturbed the run: a 1-minute load
// average above the CPU count before it, or bare rounds spread by more than
// 20%.
func noisy(res [][][]sample, loadavg string) bool {
	if f := strings.Fields(loadavg); len(f) > 0 {
		if l, err := strconv.ParseFloat(f[0], 64); err == nil && l > float64(runtime.NumCPU()) {
			return true
		}
	}
	for _, w := range res {
		lo, _ := stat(w[0], wallOf)
		hi := lo
		for _, s := range w[0] {
			hi = max(hi, s.wall)
		}
		if float64(hi) > 1.2*float64(lo) {
			return true
		}
	}
	return false
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// writeProject writes a C project of n files whose program prints
// "sum" and 1+...+n.
func writeProject(dir string, n int) error {
	var main strings.Builder
	var objs []string
	main.WriteString("#include <stdio.h>\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&main, "int f%d(void);\n", i)
		src := fmt.Sprintf("#include <stdio.h>\n#include <string.h>\nstatic int pad[64] = {%d};\nint f%d(void) { char b[32]; snprintf(b, sizeof b, \"%%d\", pad[0]); return (int)strlen(b) ? pad[0] : 0; }\n", i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.c", i)), []byte(src), 0o644); err != nil {
			return err
		}
		objs = append(objs, fmt.Sprintf("f%d.o", i))
	}
	main.WriteString("int main(void) { int s = 0;\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&main, "s += f%d();\n", i)
	}
	main.WriteString("printf(\"sum %d\\n\", s); return 0; }\n")
	if err := os.WriteFile(filepath.Join(dir, "main.c"), []byte(main.String()), 0o644); err != nil {
		return err
	}
	mk := fmt.Sprintf("prog: main.o %s\n\tcc -o $@ $^\n%%.o: %%.c\n\tcc -O2 -c -o $@ $<\nclean:\n\trm -f prog *.o\n", strings.Join(objs, " "))
	return os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk), 0o644)
}

// confine moves this process into a new v1 memory cgroup (1 GiB, nested
// under its own) and a new v1 pids cgroup (pids.max 2000), and returns the
// function that moves it back and removes them.
func confine() (func(), error) {
	own := map[string]string{}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.SplitN(sc.Text(), ":", 3)
		if len(p) == 3 {
			own[p[1]] = p[2]
		}
	}
	f.Close()
	name := fmt.Sprintf("oomguard-bench-run-%d", os.Getpid())
	pid := strconv.Itoa(os.Getpid())
	var undo []func()
	undoAll := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	for _, c := range []struct{ ctrl, file, value string }{
		{"memory", "memory.limit_in_bytes", strconv.Itoa(1 << 30)},
		{"pids", "pids.max", "2000"},
	} {
		rel, ok := own[c.ctrl]
		if !ok {
			undoAll()
			return nil, fmt.Errorf("no v1 %s cgroup in /proc/self/cgroup", c.ctrl)
		}
		parent := filepath.Join("/sys/fs/cgroup", c.ctrl, rel)
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			undoAll()
			return nil, err
		}
		undo = append(undo, func() {
			os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(pid), 0)
			for i := 0; i < 200 && os.Remove(dir) != nil; i++ {
				time.Sleep(10 * time.Millisecond)
			}
		})
		if err := os.WriteFile(filepath.Join(dir, c.file), []byte(c.value), 0); err != nil {
			undoAll()
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(pid), 0); err != nil {
			undoAll()
			return nil, err
		}
	}
	return undoAll, nil
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/run:", err)
		os.Exit(1)
	}
}
