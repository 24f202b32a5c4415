// Command kmem benchmarks oomguard's kernel-memory pass and budget check on
// real v1 memory cgroups and writes docs/benchmarks/kmem.md.
//
// It creates N empty memory cgroups under its own memory cgroup, measures
// side by side, in interleaved rounds, the cost of reading every cgroup's
// memory.stat and the cost of oomguard's kmem passes over the same cgroups,
// then removes the cgroups. Run it as root:
//
//	go run ./bench/kmem -out docs/benchmarks/kmem.md
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/actionlog"
	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/kmem"
	"github.com/oomguard/oomguard/internal/kmem/kmemtest"
	"github.com/oomguard/oomguard/internal/kmemguard"
	"github.com/oomguard/oomguard/internal/policy/kmembudget"
	"github.com/oomguard/oomguard/internal/testbed"
)

func main() {
	n := flag.Int("n", 500, "number of empty memory cgroups")
	rounds := flag.Int("rounds", 40, "interleaved rounds per measurement")
	out := flag.String("out", "", "write the markdown report here (default: stdout)")
	kills := flag.Int("kills", 5, "kill-heaviest breach scenarios to time")
	flag.Parse()
	if err := run(*n, *rounds, *kills, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench/kmem:", err)
		os.Exit(1)
	}
}

func ownMemoryCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		p := strings.SplitN(line, ":", 3)
		if len(p) == 3 && p[1] == "memory" {
			return filepath.Join("/sys/fs/cgroup/memory", p[2]), nil
		}
	}
	return "", fmt.Errorf("no v1 memory cgroup in /proc/self/cgroup")
}

func run(n, rounds, kills int, outPath string) error {
	own, err := ownMemoryCgroup()
	if err != nil {
		return err
	}
	parentDir := filepath.Join(own, fmt.Sprintf("oomguard-bench-kmem-%d", os.Getpid()))
	var dirs []string
	cleanup := func() {
		for _, d := range dirs {
			os.Remove(d)
		}
		os.Remove(parentDir)
	}
	defer cleanup()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, unix.SIGTERM)
	go func() { <-sig; cleanup(); os.Exit(130) }()

	if err := os.Mkdir(parentDir, 0o755); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		d := filepath.Join(parentDir, fmt.Sprintf("cg%03d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		dirs = append(dirs, d)
	}
	parent, err := cgroupfs.Open(parentDir)
	if err != nil {
		return err
	}
	cgs := make([]cgroupfs.Cgroup, n)
	statPaths := make([]string, n)
	readers := make([]*cgroupfs.KmemReader, n)
	for i, d := range dirs {
		cgs[i] = cgroupfs.Cgroup{Path: d, Version: cgroupfs.V1}
		statPaths[i] = filepath.Join(d, "memory.stat")
		readers[i] = cgs[i].KmemReader()
	}
	buf := make([]byte, 16384)
	readStat := func(p string) {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			panic(err)
		}
		for {
			m, err := unix.Read(fd, buf)
			if m <= 0 || err != nil {
				break
			}
		}
		unix.Close(fd)
	}
	var k cgroupfs.Kmem
	passes := []struct {
		name string
		fn   func()
	}{
		{"memory.stat of each cgroup (baseline)", func() {
			for _, p := range statPaths {
				readStat(p)
			}
		}},
		{"kmem pass: KmemReader.Usage, prepared readers (daemon poll)", func() {
			for _, r := range readers {
				if _, _, err := r.Usage(); err != nil {
					panic(err)
				}
			}
		}},
		{"kmem usage + max_usage: KmemReader.ReadSummary", func() {
			for _, r := range readers {
				if err := r.ReadSummary(&k); err != nil {
					panic(err)
				}
			}
		}},
		{"walk + memory.stat of each cgroup (baseline)", func() {
			parent.Walk(func(c cgroupfs.Cgroup) error {
				readStat(c.File("memory.stat"))
				return nil
			})
		}},
		{"kmem pass: kmem.Scan, walk + new readers (`oomguard kmem` ranking)", func() {
			if _, err := kmem.Scan([]cgroupfs.Cgroup{parent}); err != nil {
				panic(err)
			}
		}},
		{"full kmem read: all 8 v1 kmem files", func() {
			for _, r := range readers {
				if err := r.Read(&k); err != nil {
					panic(err)
				}
			}
		}},
	}
	times := make([][]time.Duration, len(passes))
	for _, p := range passes { // warm up
		p.fn()
	}
	for r := 0; r < rounds; r++ {
		for i, p := range passes {
			t0 := time.Now()
			p.fn()
			times[i] = append(times[i], time.Since(t0))
		}
	}
	med := make([]time.Duration, len(passes))
	for i := range times {
		med[i] = median(times[i])
	}

	// The daemon's budget check: one glob budget over the n cgroups.
	b := kmemguard.Budget{Pattern: parentDir + "/*", Max: 1 << 40, Action: kmembudget.Report}
	guard, err := kmemguard.New(kmemguard.Config{Scopes: []cgroupfs.Cgroup{parent}, Budgets: []kmemguard.Budget{b}, Rescan: time.Hour}, nil, nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	guard.Check(ctx, time.Now())
	if got := len(guard.Report()); got != n {
		return fmt.Errorf("guard tracks %d cgroups, want %d", got, n)
	}
	var checks []time.Duration
	for r := 0; r < rounds; r++ {
		t0 := time.Now()
		guard.Check(ctx, time.Now())
		checks = append(checks, time.Since(t0))
	}
	checkMed := median(checks)
	allocs := testing.AllocsPerRun(20, func() { guard.Check(ctx, time.Now()) })
	var rescans []time.Duration
	rguard, err := kmemguard.New(kmemguard.Config{Scopes: []cgroupfs.Cgroup{parent}, Budgets: []kmemguard.Budget{b}, Rescan: time.Nanosecond}, nil, nil)
	if err != nil {
		return err
	}
	for r := 0; r < rounds/4+1; r++ {
		t0 := time.Now()
		rguard.Check(ctx, time.Now())
		rescans = append(rescans, time.Since(t0))
	}
	rescanMed := median(rescans)

	lat, err := breachLatencies(kills)
	if err != nil {
		return err
	}
	load, _ := os.ReadFile("/proc/loadavg")

	var w io.Writer = os.Stdout
	if outPath != "" {
		f, err := os.Create(outPath)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Fprintf(w, "# Kernel-memory pass and budget check: benchmark\n\n")
	fmt.Fprintf(w, "Generated by `go run ./bench/kmem -n %d -rounds %d -out docs/benchmarks/kmem.md` (as root) on %s, Linux %s, %d CPUs, %s.\n",
		n, rounds, time.Now().UTC().Format("2006-01-02 15:04 UTC"), unix.ByteSliceToString(uts.Release[:]), runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(w, "It creates %d empty cgroup v1 memory cgroups under its own memory cgroup, runs every pass once per round, interleaved, for %d rounds, reports the median, and removes the cgroups. The machine is shared, so absolute times move between runs; the ratios are measured side by side in one run.\n\n", n, rounds)
	fmt.Fprintf(w, "## One pass over %d cgroups\n\n", n)
	fmt.Fprintf(w, "| pass | median | per cgroup | vs baseline |\n|---|---:|---:|---:|\n")
	base := map[int]int{0: 0, 1: 0, 2: 0, 3: 3, 4: 3, 5: 0}
	for i, p := range passes {
		fmt.Fprintf(w, "| %s | %v | %v | %.2fx |\n", p.name, med[i].Round(time.Microsecond), (med[i] / time.Duration(n)).Round(10*time.Nanosecond),
			float64(med[i])/float64(med[base[i]]))
	}
	ratio := float64(med[1]) / float64(med[0])
	cliRatio := float64(med[4]) / float64(med[3])
	verdict := func(r float64) string {
		if r <= 1.5 {
			return "meets"
		}
		return "MISSES"
	}
	fmt.Fprintf(w, "\n**Target: a kmem pass costs at most 1.5x reading memory.stat alone.** The daemon's poll pass (prepared readers) is %.2fx: %s the target. The `oomguard kmem` ranking pass, walk included, is %.2fx a walk that reads memory.stat: %s the target.\n\n",
		ratio, verdict(ratio), cliRatio, verdict(cliRatio))
	fmt.Fprintf(w, "A pass reads one file per cgroup: memory.kmem.usage_in_bytes on v1 (small, but the kernel formats it per read like any cgroup file), memory.stat itself on v2 (so about 1x by construction). max_usage, the kernel's kmem failcnt and limit (meaningless since the kernel ignores memory.kmem.limit_in_bytes) and memory.kmem.tcp.* are read only for the cgroups `oomguard kmem` displays: usage + max_usage costs %.2fx and all eight v1 files %.2fx, which is why the ranking pass reads neither.\n\n",
		float64(med[2])/float64(med[0]), float64(med[5])/float64(med[0]))
	fmt.Fprintf(w, "## The daemon's budget check\n\n")
	fmt.Fprintf(w, "One glob budget matching all %d cgroups, steady state (no rescan, no breach):\n\n", n)
	fmt.Fprintf(w, "| measure | value |\n|---|---:|\n")
	fmt.Fprintf(w, "| one poll (`Guard.Check`) over %d cgroups | %v |\n", n, checkMed.Round(time.Microsecond))
	fmt.Fprintf(w, "| per cgroup | %v |\n", (checkMed / time.Duration(n)).Round(10*time.Nanosecond))
	fmt.Fprintf(w, "| allocations per poll | %.0f |\n", allocs)
	fmt.Fprintf(w, "| CPU share at the default %v interval | %.1f%% of one CPU |\n", kmemguard.DefaultInterval, 100*float64(checkMed)/float64(kmemguard.DefaultInterval))
	fmt.Fprintf(w, "| poll with a glob rescan (once per %v by default) | %v |\n", kmemguard.DefaultRescan, rescanMed.Round(time.Microsecond))
	fmt.Fprintf(w, "\nThe poll reads one file per budgeted cgroup, so its cost grows linearly: a few budgets cost next to nothing, while hundreds of them at the default interval take a noticeable share of a CPU on this VM (the kernel's cost of reading a cgroup file dominates). Config.Interval trades that against reaction time.\n")
	fmt.Fprintf(w, "\n## Reaction to a breach\n\n")
	fmt.Fprintf(w, "%d runs of the kill-heaviest scenario of `TestKillHeaviestV1`: in a testbed memory cgroup a C inflater builds kernel stacks (200 threads), pipes (2000 x 4 KiB), page tables (4000 mappings) and tmpfs dentries/inodes, next to a small sleeper; the guard (default %v poll) has a %d MiB budget. The inflater itself reads its cgroup's memory.kmem.usage_in_bytes after every object it creates; the crossing lies between its last reading at or below the budget and its first above, and every latency here is measured from that last reading below, so it is an upper bound. The guard's action log gives the time of detection and of SIGKILL; the end of the inflater is seen when its subreaper's output closes.\n\n",
		len(lat), kmemguard.DefaultInterval, latencyBudget>>20)
	fmt.Fprintf(w, "On the kill path the attribution counts pipes without reading their queued data (three system calls per pipe saved) and reads it only for the processes that could still be the heaviest by their upper bound (every pipe full to fs.pipe-max-size); `TestKillHeaviestMeasuresPipes` shows that choice is still exact.\n\n")
	fmt.Fprintf(w, "| from the crossing to | median | max |\n|---|---:|---:|\n")
	for _, row := range []struct {
		name string
		pick func(latency) time.Duration
	}{
		{"breach detected (poll)", func(l latency) time.Duration { return l.detect }},
		{"SIGKILL sent to the heaviest (detect + attribution + pidfd checks)", func(l latency) time.Duration { return l.kill }},
		{"victim gone (kernel exit of 200 threads, 4000 mappings, 2000 pipes)", func(l latency) time.Duration { return l.exit }},
	} {
		var ds []time.Duration
		for _, l := range lat {
			ds = append(ds, row.pick(l))
		}
		fmt.Fprintf(w, "| %s | %v | %v |\n", row.name, median(ds).Round(time.Millisecond), maxOf(ds).Round(time.Millisecond))
	}
	var killMax time.Duration
	for _, l := range lat {
		killMax = max(killMax, l.kill)
	}
	v := "meets"
	if killMax > time.Second {
		v = "MISSES"
	}
	fmt.Fprintf(w, "\n**Target: a breach is acted on within 1 s of the crossing.** Worst crossing-to-SIGKILL here: %v: %s the target. The machine's load average during the run was %s(2 CPUs, shared with other work), which inflates every figure.\n",
		killMax.Round(time.Millisecond), v, strings.TrimSpace(strings.Join(strings.Fields(string(load))[:3], " "))+" ")
	return nil
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

const latencyBudget = 24 << 20

type latency struct{ detect, kill, exit time.Duration }

// breachLatencies runs the kill-heaviest scenario n times, each inside
// testing.Benchmark so that testbed can confine it (its cleanup removes the
// cgroups after each run).
func breachLatencies(n int) ([]latency, error) {
	var out []latency
	var failure error
	for i := 0; i < n && failure == nil; i++ {
		done := false
		testing.Benchmark(func(b *testing.B) {
			if done {
				return
			}
			done = true
			l, err := oneBreach(b)
			if err != nil {
				failure = err
				return
			}
			out = append(out, l)
		})
	}
	return out, failure
}

func oneBreach(b *testing.B) (latency, error) {
	g := testbed.New(b, testbed.Options{MemoryLimit: 512 << 20})
	g.Start("sleep", "600")
	budget := kmemguard.Budget{Pattern: g.Memory.Path, Max: latencyBudget, Action: kmembudget.KillHeaviest}
	log := actionlog.New(10)
	guard, err := kmemguard.New(kmemguard.Config{Scopes: []cgroupfs.Cgroup{g.Memory}, Budgets: []kmemguard.Budget{budget}}, nil, log)
	if err != nil {
		return latency{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go guard.Run(ctx)
	in := kmemtest.Start(b, g, kmemtest.Spec{Files: 10000, Pipes: 2000, PipeData: 4096, Maps: 4000, Threads: 200, CrossAt: latencyBudget})
	var c kmemtest.Crossing
	select {
	case c = <-in.Crossed:
	case <-in.Exited:
		return latency{}, fmt.Errorf("inflater exited without crossing")
	case <-time.After(60 * time.Second):
		return latency{}, fmt.Errorf("inflater did not cross the budget")
	}
	select {
	case <-in.Exited:
	case <-time.After(30 * time.Second):
		return latency{}, fmt.Errorf("inflater not killed")
	}
	// Measured from the last check below the budget: upper bounds.
	l := latency{exit: kmemtest.MonotonicNow() - c.BelowMonotonic}
	// The kill is recorded once the guard has seen the victim exit.
	for deadline := time.Now().Add(10 * time.Second); log.Count("kill", "") == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	for _, a := range log.Recent() {
		switch a.Kind {
		case "kmem-breach":
			l.detect = a.Time.Sub(c.BelowWall)
		case "kill":
			l.kill = a.Time.Sub(c.BelowWall)
		}
	}
	if l.kill == 0 {
		return l, fmt.Errorf("no kill recorded: %+v", log.Recent())
	}
	return l, nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
