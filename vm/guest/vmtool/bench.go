package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// reader reads a file over and over (actively used file pages).
func reader(args []string) error {
	fs := flag.NewFlagSet("reader", flag.ExitOnError)
	file := fs.String("file", "", "file to read")
	fs.Parse(args)
	buf := make([]byte, 1<<20)
	for {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		for {
			if _, err := f.Read(buf); err != nil {
				break
			}
		}
		f.Close()
	}
}

// Sample is one reading of /proc/meminfo, milliseconds after the workload
// started.
type Sample struct {
	T          int64 `json:"t"`
	AvailKB    int64 `json:"avail_kb"`
	SwapFreeKB int64 `json:"swap_free_kb"`
	Workload   int   `json:"workload_procs"`
	// MemSomeUs, MemFullUs and IOSomeUs are the PSI "total" stall counters
	// (µs since boot) of /proc/pressure/memory and io; Refaults is
	// workingset_refault_file of /proc/vmstat. Rates come from differences.
	MemSomeUs int64 `json:"mem_some_us"`
	MemFullUs int64 `json:"mem_full_us"`
	IOSomeUs  int64 `json:"io_some_us"`
	Refaults  int64 `json:"refaults"`
	// KillerCPUUs is the CPU time the killer has used so far, all its
	// threads summed (µs, from /proc/PID/task/*/schedstat), read every
	// cpuEvery samples from the first; 0 in the others, and without a
	// killer.
	KillerCPUUs int64 `json:"killer_cpu_us,omitempty"`
}

// cpuEvery is how many samples apart the killer's CPU time is read: every
// 500 ms. Each read opens a file per thread of the killer, and the probe
// shares this process: read every sample, it would cost the probe more
// beside a killer with more threads.
const cpuEvery = 10

// cpuTimeUs returns the CPU time of every live thread of pid, in µs: the
// first field of each /proc/PID/task/TID/schedstat (ns on the CPU). It is
// 0 when pid is 0 or gone.
func cpuTimeUs(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, _ := os.ReadDir(dir)
	var ns int64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		f, _, _ := strings.Cut(string(b), " ")
		n, _ := strconv.ParseInt(f, 10, 64)
		ns += n
	}
	return ns / 1000
}

// psiTotals returns the "some" and "full" total counters of a pressure file.
func psiTotals(path string) (some, full int64) {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		i := strings.Index(l, "total=")
		if i < 0 {
			continue
		}
		v, _ := strconv.ParseInt(strings.TrimSpace(l[i+len("total="):]), 10, 64)
		if strings.HasPrefix(l, "some") {
			some = v
		} else if strings.HasPrefix(l, "full") {
			full = v
		}
	}
	return some, full
}

// vmstat returns one counter of /proc/vmstat, or -1.
func vmstat(key string) int64 {
	b, _ := os.ReadFile("/proc/vmstat")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok && k == key {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// ProbeSample is one iteration of the latency probe.
type ProbeSample struct {
	T     int64   `json:"t"`
	LatMs float64 `json:"lat_ms"`
}

// BenchResult is what one system-wide run reports (all times in ms after
// the workload started; -1 when the event never happened).
type BenchResult struct {
	Scenario    string `json:"scenario"`
	Killer      string `json:"killer"`
	MemTotalKB  int64  `json:"mem_total_kb"`
	SwapTotalKB int64  `json:"swap_total_kb"`
	WindowMs    int64  `json:"window_ms"`
	// StartUnixMs is the wall clock at t=0 (the workload's start), so that
	// the killer's log lines can be placed on the run's timeline.
	StartUnixMs int64           `json:"start_unix_ms"`
	OnsetMs     int64           `json:"onset_ms"`
	FirstKillMs int64           `json:"first_kill_ms"`
	EndMs       int64           `json:"end_ms"`
	ReleaseMs   int64           `json:"release_ms"`
	MaxStallMs  float64         `json:"max_stall_ms"`
	Bystanders  map[string]bool `json:"bystanders_alive"`
	WorkloadEnd bool            `json:"workload_ended"`
	KillerAlive bool            `json:"killer_alive"`
	// KernelOOMKills is how many processes the kernel's OOM killer killed
	// during the run (/proc/vmstat oom_kill, end less start).
	KernelOOMKills int64         `json:"kernel_oom_kills"`
	Samples        []Sample      `json:"samples"`
	Probe          []ProbeSample `json:"probe"`
	Notes          []string      `json:"notes,omitempty"`
}

const cgRoot = "/sys/fs/cgroup"

// startIn starts argv directly inside cgroup dir (clone3 with
// CLONE_INTO_CGROUP, so no instant is spent outside it) with oom_score_adj
// 0. It would inherit our -1000, and setting it from here after the start
// races with the workload's first forks (a fork bomb's first generations
// kept -1000 and were protected from every killer), so a shell sets it
// before it execs argv.
func startIn(dir string, argv ...string) (*exec.Cmd, error) {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer syscall.Close(fd)
	argv = append([]string{"/bin/sh", "-c", `echo 0 >/proc/self/oom_score_adj && exec "$@"`, "sh"}, argv...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %v in %s: %w", argv, dir, err)
	}
	return cmd, nil
}

func populated(dir string) (int, bool) {
	b, err := os.ReadFile(dir + "/cgroup.procs")
	if err != nil {
		return 0, false
	}
	n := strings.Count(string(b), "\n")
	return n, n > 0
}

// bench runs one system-wide scenario: bystanders "shell" and "editor", a
// latency probe (read a file, run /bin/true every 100 ms), the workload in
// cgroup "workload", and reports when memory pressure began, when the
// workload was first hit and ended, when memory came back, the probe's
// worst stall, and whether the bystanders lived. The killer under test runs
// beside it, started by the caller.
func bench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	scenario := fs.String("scenario", "fasthog", "fasthog|slowleak|thrash|clonevm|forkbomb|kmembomb")
	killer := fs.String("killer", "kernel", "name recorded in the result")
	window := fs.Duration("window", 30*time.Second, "how long to wait for the end after the onset of pressure (after the start when none)")
	maxRun := fs.Duration("max", 150*time.Second, "longest run after the workload starts")
	after := fs.Duration("after", 3*time.Second, "how long to keep sampling after the workload ended")
	cacheFile := fs.String("cache-file", "", "file read by the thrash scenario's active reader")
	killerPID := fs.Int("killer-pid", 0, "PID of the killer, to report whether it survived")
	fs.Parse(args)

	os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0)
	if err := syscall.Mlockall(syscall.MCL_CURRENT | syscall.MCL_FUTURE); err != nil {
		fmt.Fprintf(os.Stderr, "bench: mlockall: %v\n", err)
	}
	res := BenchResult{Scenario: *scenario, Killer: *killer, OnsetMs: -1, FirstKillMs: -1, EndMs: -1, ReleaseMs: -1,
		Bystanders: map[string]bool{}, WindowMs: window.Milliseconds()}
	res.MemTotalKB, _ = meminfo("MemTotal:")
	res.SwapTotalKB, _ = meminfo("SwapTotal:")

	wl, by := cgRoot+"/workload", cgRoot+"/bystanders"
	for _, d := range []string{wl, by} {
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
	}
	self, _ := os.Executable()
	// Page contents matter only to zram; filling is slow under emulation.
	fill := "-fill=false"
	if res.SwapTotalKB > 0 {
		fill = "-fill"
	}
	var bys []*exec.Cmd
	for _, b := range []struct {
		name string
		mb   int
	}{{"shell", 16}, {"editor", 64}} {
		c, err := startIn(by, self, "hog", "-mb", strconv.Itoa(b.mb), fill, "-touch-every", "1s")
		if err != nil {
			return fmt.Errorf("start bystander %s: %w", b.name, err)
		}
		bys = append(bys, c)
		defer c.Process.Kill()
	}
	if *scenario == "thrash" && *cacheFile != "" {
		c, err := startIn(by, self, "reader", "-file", *cacheFile)
		if err != nil {
			return err
		}
		defer c.Process.Kill()
	}
	time.Sleep(1500 * time.Millisecond)

	var mu sync.Mutex
	start := time.Now()
	now := func() int64 { return time.Since(start).Milliseconds() }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// The probe.
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := time.Now()
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			os.ReadFile("/etc/vm/env")
			exec.Command("/bin/true").Run()
			lat := time.Since(t0)
			if late := t0.Sub(next); late > 0 {
				lat += late
			}
			mu.Lock()
			res.Probe = append(res.Probe, ProbeSample{T: t0.Sub(start).Milliseconds(), LatMs: float64(lat.Microseconds()) / 1000})
			mu.Unlock()
			next = next.Add(100 * time.Millisecond)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			} else {
				next = time.Now()
			}
		}
	}()

	marker := "/tmp/hog-stopped"
	os.Remove(marker)
	var argv []string
	switch *scenario {
	case "fasthog":
		argv = []string{self, "hog", "-mb", "3000", fill}
	case "slowleak":
		argv = []string{self, "hog", "-mb", "3000", fill, "-rate", "16"}
	case "thrash":
		argv = []string{self, "hog", "-mb", "3000", fill, "-rate", "64", "-stop-avail", "14", "-loop", "-marker", marker}
	case "clonevm":
		argv = []string{"/test/bin/clonevm", "3000", "64"}
	case "forkbomb":
		argv = []string{"/bin/sh", "-c", "exec 2>/dev/null; b() { b | b & }; b; sleep 1000"}
	case "kmembomb":
		argv = []string{self, "pipes", "-n", "200000"}
	default:
		return fmt.Errorf("unknown scenario %q", *scenario)
	}
	oomKillsBefore := vmstat("oom_kill")
	start = time.Now()
	res.StartUnixMs = start.UnixMilli()
	wc, err := startIn(wl, argv...)
	if err != nil {
		return fmt.Errorf("start workload: %w", err)
	}
	firstDeath := make(chan struct{})
	go func() { wc.Wait(); close(firstDeath) }()
	if *scenario == "forkbomb" || *scenario == "thrash" {
		res.OnsetMs = 0
	}
	deadline := func() time.Time {
		from := start
		if res.OnsetMs > 0 {
			from = start.Add(time.Duration(res.OnsetMs) * time.Millisecond)
		}
		if d := from.Add(*window); d.Before(start.Add(*maxRun)) {
			return d
		}
		return start.Add(*maxRun)
	}
	var endAt time.Time
	seen := false
	for {
		t := now()
		avail, _ := meminfo("MemAvailable:")
		swapFree, _ := meminfo("SwapFree:")
		n, pop := populated(wl)
		memSome, memFull := psiTotals("/proc/pressure/memory")
		ioSome, _ := psiTotals("/proc/pressure/io")
		mu.Lock()
		res.Samples = append(res.Samples, Sample{T: t, AvailKB: avail, SwapFreeKB: swapFree, Workload: n,
			MemSomeUs: memSome, MemFullUs: memFull, IOSomeUs: ioSome, Refaults: vmstat("workingset_refault_file")})
		if len(res.Samples)%cpuEvery == 1 {
			res.Samples[len(res.Samples)-1].KillerCPUUs = cpuTimeUs(*killerPID)
		}
		mu.Unlock()
		if *scenario == "thrash" && res.OnsetMs <= 0 {
			if st, err := os.Stat(marker); err == nil {
				res.OnsetMs = st.ModTime().Sub(start).Milliseconds()
			}
		}
		if res.OnsetMs < 0 && avail*10 < res.MemTotalKB {
			res.OnsetMs = t
		}
		select {
		case <-firstDeath:
			if res.FirstKillMs < 0 {
				res.FirstKillMs = t
			}
		default:
		}
		if pop {
			seen = true
		}
		if !pop && seen && res.EndMs < 0 {
			res.EndMs = t
			res.WorkloadEnd = true
			if res.FirstKillMs < 0 {
				res.FirstKillMs = t
			}
			endAt = time.Now()
		}
		if res.EndMs >= 0 && res.ReleaseMs < 0 && avail*100 >= res.MemTotalKB*40 {
			res.ReleaseMs = t
		}
		if !endAt.IsZero() && time.Since(endAt) > *after {
			break
		}
		if endAt.IsZero() && time.Now().After(deadline()) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	res.KernelOOMKills = vmstat("oom_kill") - oomKillsBefore
	for i, name := range []string{"shell", "editor"} {
		res.Bystanders[name] = bys[i].Process.Signal(syscall.Signal(0)) == nil && !exited(bys[i].Process.Pid)
	}
	if *killerPID > 0 {
		res.KillerAlive = syscall.Kill(*killerPID, 0) == nil && !exited(*killerPID)
	}
	for _, p := range res.Probe {
		if p.LatMs > res.MaxStallMs {
			res.MaxStallMs = p.LatMs
		}
	}
	// End what is left: the workload, then the bystanders.
	os.WriteFile(wl+"/cgroup.kill", []byte("1"), 0)
	os.WriteFile(by+"/cgroup.kill", []byte("1"), 0)
	enc := json.NewEncoder(os.Stdout)
	return enc.Encode(res)
}

// exited reports whether pid is a zombie (dead, not yet reaped).
func exited(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}
