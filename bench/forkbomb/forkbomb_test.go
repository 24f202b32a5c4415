// Package forkbomb_bench measures the fork-bomb killer on the real kernel and
// writes docs/benchmarks/forkbomb.md. Regenerate with:
//
//	OOMGUARD_BENCH=1 go test ./bench/forkbomb -run TestForkbombBench -v -timeout 90m
//
// (as root; OOMGUARD_BENCH_RUNS sets the runs per bomb, default 10;
// OOMGUARD_BENCH_ONLY=NAME runs only the bombs and workloads whose file
// name holds NAME, for a quick look: the report it writes is then partial).
package forkbomb_bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/actionlog"
	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/forkguard"
	"github.com/oomguard/oomguard/internal/testbed"
)

const (
	forkLoopC = `#include <unistd.h>
int main(void) { for (;;) fork(); }
`
	slowBombC = `#include <unistd.h>
int main(void) { for (;;) { usleep(200000); fork(); } }
`
)

type bomb struct {
	name  string
	file  string // name in recorded testdata
	argv  []string
	atCap bool
}

func bombList(t *testing.T) []bomb {
	forkLoop := testbed.CompileC(t, forkLoopC)
	slow := testbed.CompileC(t, slowBombC)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	chain := filepath.Join(dir, "bomb.sh")
	os.WriteFile(chain, []byte("#!/bin/sh\nsh -c \"exec sh $0\" &\nsh -c \"exec sh $0\" &\n"), 0o755)
	return []bomb{
		{name: "bash `b(){ b|b & }; b`", file: "bash", argv: []string{"bash", "-c", "b(){ b|b & }; b"}},
		{name: "C fork() loop", file: "forkloop", argv: []string{forkLoop}},
		{name: "sh -c exec chain", file: "execchain", argv: []string{"sh", chain}},
		{name: "slow, doubling every 200 ms", file: "slow", argv: []string{slow}},
		{name: "C fork() loop sitting at pids.max (guard started after)", argv: []string{forkLoop}, atCap: true},
	}
}

type guardRun struct {
	g      *forkguard.Guard
	acts   *actionlog.Log
	cancel func()
	done   chan error
}

func startGuard(t *testing.T, scope cgroupfs.Cgroup) *guardRun {
	t.Helper()
	acts := actionlog.New(16)
	g, err := forkguard.New(forkguard.Config{Scopes: []cgroupfs.Cgroup{scope}}, nil, acts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &guardRun{g: g, acts: acts, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- g.Run(ctx) }()
	select {
	case <-g.Ready():
	case err := <-r.done:
		t.Fatalf("guard: %v", err)
	}
	return r
}

func (r *guardRun) stop() {
	r.cancel()
	<-r.done
}

// cpuacct creates a cpuacct cgroup for one workload; the workload joins it
// through a shell prefix.
func cpuacct(t *testing.T) (dir string, prefix []string) {
	t.Helper()
	dir = filepath.Join(testbed.V1Root, "cpuacct", fmt.Sprintf("oomguard-bench-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 300; i++ {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return dir, []string{"sh", "-c", "echo $$ > " + dir + "/cgroup.procs && exec \"$@\"", "sh"}
}

func cpuUsage(dir string) time.Duration {
	b, _ := os.ReadFile(filepath.Join(dir, "cpuacct.usage"))
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return time.Duration(n)
}

type sample struct {
	contain   time.Duration // the root's start (or guard start, at cap) to contained
	fromFork  time.Duration // the bomb's first fork to contained (0 at cap)
	peak      int
	survivors int
	guardCPU  time.Duration
	bombCPU   time.Duration
	method    string
}

func median[T int | time.Duration | float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func runBomb(t *testing.T, b bomb) (sample, error) {
	acct, prefix := cpuacct(t)
	// 1 GiB, the most allowed: 2,000 bomb processes fit, so the memory
	// cgroup's OOM killer does not kill members (whose orphans a guard
	// started later could not tie to the family) before the guard acts.
	g := testbed.New(t, testbed.Options{PidsMax: 2000, MemoryLimit: 1 << 30})
	defer g.KillAll()
	var r *guardRun
	if !b.atCap {
		r = startGuard(t, g.Pids)
		defer r.stop()
	}
	argv := append(append(prefix, "timeout", "30"), b.argv...)
	cmd := g.Start(argv[0], argv[1:]...)
	defer func() { go cmd.Wait() }()
	var guardStart time.Time
	if b.atCap {
		if !g.WaitProcs(30*time.Second, func(p []int) bool { return len(p) >= 1990 }) {
			return sample{}, fmt.Errorf("bomb did not reach the cap")
		}
		guardStart = time.Now()
		r = startGuard(t, g.Pids)
		defer r.stop()
	}
	var act *actionlog.Action
	deadline := time.Now().Add(30 * time.Second)
	for act == nil && time.Now().Before(deadline) {
		for _, a := range r.acts.Recent() {
			if a.Kind == "contain-forkbomb" {
				a := a
				act = &a
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if act == nil {
		return sample{}, fmt.Errorf("%s: not contained in 30s", b.name)
	}
	containedAt := time.Now()
	t.Logf("%s: %s; numbers %v", b.name, act.Reason, act.Numbers)
	g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 0 })
	time.Sleep(200 * time.Millisecond)
	s := sample{
		peak:      int(act.Numbers["killed"]),
		survivors: len(g.Procs()),
		guardCPU:  r.g.Stats().ThreadCPU,
		bombCPU:   cpuUsage(acct),
		method:    methodOf(act.Reason),
	}
	if b.atCap {
		s.contain = containedAt.Sub(guardStart)
	} else {
		s.contain = time.Duration(act.Numbers["time_to_contain_seconds"] * float64(time.Second))
		s.fromFork = time.Duration(act.Numbers["time_from_first_fork_seconds"] * float64(time.Second))
	}
	return s, nil
}

type baseline struct {
	cpu   time.Duration // CPU burned in the window
	alive int           // processes left at the end of the window
}

func runBaseline(t *testing.T, b bomb, window time.Duration) baseline {
	acct, prefix := cpuacct(t)
	g := testbed.New(t, testbed.Options{PidsMax: 2000})
	argv := append(append(prefix, "timeout", "30"), b.argv...)
	cmd := g.Start(argv[0], argv[1:]...)
	time.Sleep(window)
	res := baseline{cpu: cpuUsage(acct), alive: len(g.Procs())}
	g.KillAll()
	go cmd.Wait()
	return res
}

// selected reports whether OOMGUARD_BENCH_ONLY (unset: everything) asks
// for the bomb or workload recorded under file.
func selected(file string) bool {
	only := os.Getenv("OOMGUARD_BENCH_ONLY")
	return only == "" || strings.Contains(file, only)
}

// selfCPU returns the user and system time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func TestForkbombBench(t *testing.T) {
	if os.Getenv("OOMGUARD_BENCH") == "" {
		t.Skip("set OOMGUARD_BENCH=1 to run the fork-bomb benchmark")
	}
	testbed.Require(t)
	runs := 10
	if n, err := strconv.Atoi(os.Getenv("OOMGUARD_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	bombs := bombList(t)
	var md strings.Builder
	fmt.Fprintf(&md, "# Fork-bomb killer benchmark\n\n")
	fmt.Fprintf(&md, "Generated by `OOMGUARD_BENCH=1 go test ./bench/forkbomb -run TestForkbombBench -v -timeout 90m` (as root) on %s, kernel %s, %d CPUs, %s.\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), kernel(), runtime.NumCPU(), "shared with other jobs (see the load averages)")
	fmt.Fprintf(&md, "Load average at start: %s.\n\n", loadavg())
	fmt.Fprintf(&md, "Every bomb runs in a testbed group (v1 pids cgroup with pids.max=2000, freezer, memory cgroup limited to 1 GiB) under `timeout 30`, with the guard scoped to the group's pids cgroup, default thresholds. Medians over %d runs.\n\n", runs)
	fmt.Fprintf(&md, "- *time to containment*: to every member dead, from the bomb's first fork (the first FORK event below the family's root: the issue's measure) and from the root's own start (its FORK event from `timeout`: stricter, since it adds however long the root runs before it forks, 200 ms for the slow bomb); for the bomb at the cap, from guard start.\n")
	fmt.Fprintf(&md, "- *peak family*: members killed (the family stops growing once stopped).\n")
	fmt.Fprintf(&md, "- *guard CPU*: CPU time of the guard's event thread, which also detects and contains.\n")
	fmt.Fprintf(&md, "- *bomb CPU*: CPU the bomb burned (cpuacct) from start to end.\n\n")
	fmt.Fprintf(&md, "| bomb | method | time to containment from the first fork (median, max) | from the root's start (median, max) | peak family (median, max) | survivors (total) | guard CPU (median) | bomb CPU (median) |\n|---|---|---|---|---|---|---|---|\n")
	for _, b := range bombs {
		if !selected(b.file) {
			continue
		}
		var ss []sample
		for i := 0; i < runs; i++ {
			s, err := runBomb(t, b)
			if err != nil {
				t.Errorf("%s run %d: %v", b.name, i, err)
				continue
			}
			t.Logf("%s run %d: %+v", b.name, i, s)
			ss = append(ss, s)
		}
		var ct, ff, gc, bc []time.Duration
		var pk []int
		surv := 0
		methods := map[string]int{}
		for _, s := range ss {
			ct, gc, bc, pk = append(ct, s.contain), append(gc, s.guardCPU), append(bc, s.bombCPU), append(pk, s.peak)
			ff = append(ff, s.fromFork)
			surv += s.survivors
			methods[s.method]++
		}
		fromFork := "–" // at the cap: the guard starts long after the first fork
		if !b.atCap {
			fromFork = fmt.Sprintf("%v, %v", median(ff).Round(time.Millisecond), slices.Max(append(ff, 0)).Round(time.Millisecond))
		}
		fmt.Fprintf(&md, "| %s | %s | %s | %v, %v | %d, %d | %d | %v | %v |\n", b.name, fmtMethods(methods), fromFork,
			median(ct).Round(time.Millisecond), slices.Max(append(ct, 0)).Round(time.Millisecond), median(pk), slices.Max(append(pk, 0)), surv,
			median(gc), median(bc).Round(time.Millisecond))
	}
	const window = 3 * time.Second
	fmt.Fprintf(&md, "\n## The same bombs under pids.max alone\n\nNo guard; each bomb is left %v in its pids.max=2000 group (3 runs, median), then ended by the test harness (freeze, kill, thaw).\n\n", window)
	fmt.Fprintf(&md, "| bomb | CPU burned in %v | processes alive at the end |\n|---|---|---|\n", window)
	for _, b := range bombs[:4] {
		if !selected(b.file) {
			continue
		}
		var cpu []time.Duration
		var alive []int
		for i := 0; i < 3; i++ {
			r := runBaseline(t, b, window)
			cpu, alive = append(cpu, r.cpu), append(alive, r.alive)
		}
		fmt.Fprintf(&md, "| %s | %v (%.2f cores) | %d |\n", b.name, median(cpu).Round(time.Millisecond), median(cpu).Seconds()/window.Seconds(), median(alive))
	}
	legit(t, &md)
	fmt.Fprintf(&md, "\nLoad average at end: %s.\n", loadavg())
	out := filepath.Join("..", "..", "docs", "benchmarks", "forkbomb.md")
	if err := os.WriteFile(out, []byte(md.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s:\n%s", out, md.String())
}

func fmtMethods(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// legit runs each legitimate workload without and with the guard, back to
// back, and reports wall times, their ratio and false positives.
func legit(t *testing.T, md *strings.Builder) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	var mk strings.Builder
	mk.WriteString("all:")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&mk, " f%d.o", i)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.c", i)), []byte(fmt.Sprintf("int f%d(int x) { return x * %d; }\n", i, i)), 0o644)
	}
	mk.WriteString("\n%.o: %.c\n\tcc -O0 -c $< -o $@\nclean:\n\trm -f *.o\n")
	os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk.String()), 0o644)
	mod := filepath.Join(dir, "mod")
	os.MkdirAll(mod, 0o755)
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/gen\n\ngo 1.22\n"), 0o644)
	for i := 0; i < 24; i++ {
		pd := filepath.Join(mod, fmt.Sprintf("p%d", i))
		os.MkdirAll(pd, 0o755)
		os.WriteFile(filepath.Join(pd, "p.go"), []byte(fmt.Sprintf("package p%d\n\n// F computes.\nfunc F(x int) int { return x * %d }\n", i, i)), 0o644)
	}
	type work struct {
		name  string
		file  string
		argv  []string
		dir   string
		env   []string
		reset func()
	}
	works := []work{
		{name: "make -j16, 300 targets", file: "make-j16", argv: []string{"make", "-s", "-j16"}, dir: dir,
			reset: func() { exec.Command("make", "-s", "-C", dir, "clean").Run() }},
		{name: "xargs -P 32, 5000 jobs", file: "xargs-P32", argv: []string{"sh", "-c", "seq 5000 | xargs -P 32 -n 1 true"}, dir: dir},
		{name: "shell loop, /bin/true ×10000", file: "shell-loop", argv: []string{"sh", "-c", "i=0; while [ $i -lt 10000 ]; do /bin/true; i=$((i+1)); done"}, dir: dir},
		{name: "go build -p 4, 24 packages", file: "go-build", argv: []string{"go", "build", "-p", "4", "./..."}, dir: mod,
			env:   []string{"GOFLAGS=-mod=mod", "GOTOOLCHAIN=local"},
			reset: func() { os.RemoveAll(filepath.Join(mod, ".cache")) }},
	}
	record := os.Getenv("OOMGUARD_RECORD") != ""
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("OOMGUARD_BENCH_LEGIT_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	fmt.Fprintf(md, "\n## Legitimate workloads\n\nEach workload runs in a testbed group without the guard and with a guard scoped to that group, back to back, in %d rounds that alternate which goes first (go build with a fresh GOCACHE each time). Times are medians; the ratios are with / without, of the medians and of the best rounds (noise from other load only adds time), and, per round, of the two runs of that round, which ran back to back (median, then lowest and highest). *Guard CPU* is the CPU time the benchmark process (the guard and its goroutines; the process does nothing else meanwhile) used during a run with the guard, over the workload's own CPU time (cpuacct) in that run: the share of the workload's CPU the guard would take from it if both competed for the same CPUs, a bound on its cost that the wall-time noise does not blur. *Workload CPU* compares the workload's own CPU time (cpuacct) with and without the guard: the proc connector's messages are built in the forking process's context, so that is where a cost to the workload itself would show. False positives are families the guard reported as bombs, over all rounds.\n\n", rounds)
	fmt.Fprintf(md, "| workload | without guard (median) | with guard (median) | ratio of medians | ratio of best | ratio within a round, median [min–max] | workload CPU, ratio of medians | guard CPU / workload CPU (median) | false positives |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range works {
		if !selected(w.file) {
			continue
		}
		var without, with, cpuWithout, cpuWith []time.Duration
		var share []float64
		fp := 0
		for round := 0; round < rounds; round++ {
			order := []bool{false, true}
			if round%2 == 1 {
				order = []bool{true, false}
			}
			for _, withGuard := range order {
				if w.reset != nil {
					w.reset()
				}
				g := testbed.New(t, testbed.Options{PidsMax: 2000, MemoryLimit: 1 << 30})
				var r *guardRun
				if withGuard {
					r = startGuard(t, g.Pids)
				}
				acct, prefix := cpuacct(t)
				argv := append(append(prefix[1:], "timeout", "600"), w.argv...)
				cmd := g.Command(prefix[0], argv...)
				cmd.Dir = w.dir
				cmd.Env = append(os.Environ(), w.env...)
				cmd.Env = append(cmd.Env, "GOCACHE="+filepath.Join(mod, ".cache"))
				var rec *recorder
				if withGuard && record {
					rec = startRecorder(t)
				}
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				start, selfStart := time.Now(), selfCPU()
				err := cmd.Start()
				if err == nil {
					if rec != nil {
						rec.follow(cmd.Process.Pid, 0)
					}
					err = cmd.Wait()
				}
				t.Logf("%s round %d, guard %v: %v wall, %v workload CPU, %v benchmark process CPU", w.name, round, withGuard,
					time.Since(start).Round(time.Millisecond), cpuUsage(acct).Round(time.Millisecond), (selfCPU() - selfStart).Round(time.Millisecond))
				work := cpuUsage(acct)
				if !withGuard {
					without = append(without, time.Since(start))
					cpuWithout = append(cpuWithout, work)
				} else {
					with = append(with, time.Since(start))
					cpuWith = append(cpuWith, work)
					if work > 0 {
						share = append(share, (selfCPU()-selfStart).Seconds()/work.Seconds())
					}
				}
				if rec != nil {
					time.Sleep(50 * time.Millisecond)
					rec.finish(t, "legit-"+w.file+".events.gz", strings.Join(w.argv, " "))
				}
				if err != nil {
					t.Errorf("%s: %v\n%s", w.name, err, out.String())
				}
				if r != nil {
					fp += int(r.g.Stats().Found)
					r.stop()
				}
			}
		}
		mo, mw := median(without), median(with)
		var paired []float64
		for i := range min(len(with), len(without)) {
			paired = append(paired, with[i].Seconds()/without[i].Seconds())
		}
		slices.Sort(paired)
		pm := 0.0
		if n := len(paired); n > 0 {
			pm = (paired[(n-1)/2] + paired[n/2]) / 2
		}
		fmt.Fprintf(md, "| %s | %v | %v | %.3f | %.3f | %.3f [%.3f–%.3f] | %.3f | %.4f | %d |\n", w.name, mo.Round(time.Millisecond), mw.Round(time.Millisecond),
			mw.Seconds()/mo.Seconds(), slices.Min(with).Seconds()/slices.Min(without).Seconds(),
			pm, paired[0], paired[len(paired)-1],
			median(cpuWith).Seconds()/median(cpuWithout).Seconds(), median(share), fp)
	}
}

// methodOf returns how a contain-forkbomb action stopped the family, from
// its reason ("… via sigstop (not frozen: WHY)"), with the why reduced to
// its kind: the PIDs and cgroup paths in it differ from run to run.
func methodOf(reason string) string {
	m := strings.TrimSpace(reason[strings.LastIndex(reason, " via ")+5:])
	method, why, ok := strings.Cut(m, " (not frozen: ")
	switch {
	case !ok:
		return m
	case strings.Contains(why, "also holds process"):
		return method + " (cgroup shared)"
	case strings.Contains(why, "not frozen after"):
		return method + " (freeze timed out)"
	}
	return method + " (not frozen)"
}
