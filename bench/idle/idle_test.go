// Package idle measures what oomguard costs while nothing happens: resident
// memory and CPU of an idle daemon, side by side with earlyoom in the same
// run. Regenerate docs/benchmarks/idle.md with
//
//	go test ./bench/idle -run TestIdleCost -count=1 -v -args -write
//
// Without -write it runs a short window and only checks that both daemons
// were measured.
package idle

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/testbed"
)

var write = flag.Bool("write", false, "measure a long window and write docs/benchmarks/idle.md")

// sample is one daemon's cost over one window, beside earlyoom's in the
// same window.
type sample struct {
	name      string
	rssKiB    int64 // VmRSS at the end of the window
	hwmKiB    int64 // VmHWM: the peak
	cpuNanos  int64 // time on a CPU during the window, all threads
	eoNanos   int64 // earlyoom's in the same window; -1 without earlyoom
	windowSec float64
	forkRate  float64 // forks a second on the machine during the window
}

func (s sample) cpuPercent() float64 { return 100 * float64(s.cpuNanos) / 1e9 / s.windowSec }

func (s sample) eoPercent() float64 { return 100 * float64(s.eoNanos) / 1e9 / s.windowSec }

// daemon is one oomguard configuration measured.
type daemon struct {
	name string
	args []string
	// forkEvery makes the harness run /bin/true this often during the
	// window; 0 forks nothing.
	forkEvery time.Duration
}

// TestIdleCost runs earlyoom for the whole test and, beside it, one
// oomguard configuration at a time: each window compares one oomguard
// with earlyoom, side by side, and nothing else of ours runs then.
func TestIdleCost(t *testing.T) {
	testbed.Require(t)
	window, warmup, rounds := 5*time.Second, 3*time.Second, 1
	if *write {
		window, warmup, rounds = 45*time.Second, 10*time.Second, 2
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "oomguard")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/oomguard")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build oomguard: %v\n%s", err, out)
	}
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20})
	sock := filepath.Join(dir, "oomguard.sock")
	daemons := []daemon{
		{"oomguard, scoped to a test cgroup", []string{bin, "daemon", "--scope", g.Memory.Path, "--socket", sock, "--no-dbus"}, 0},
		{"oomguard --dry-run, whole machine", []string{bin, "daemon", "--dry-run", "--socket", sock, "--no-dbus"}, 0},
		{"oomguard --dry-run --no-forkbomb, whole machine", []string{bin, "daemon", "--dry-run", "--no-forkbomb", "--socket", sock, "--no-dbus"}, 0},
		{"oomguard --dry-run, whole machine, a process started every 2 s", []string{bin, "daemon", "--dry-run", "--socket", sock, "--no-dbus"}, 2 * time.Second},
	}
	eoPID := -1
	if eo := earlyoomBinary(t); eo != "" {
		eoPID = start(t, eo, "--dryrun").Process.Pid
	} else {
		t.Log("earlyoom is not available: measured without it")
	}
	samples := make([][]sample, len(daemons)) // by daemon, one per round
	for r := 0; r < rounds; r++ {
		for i, d := range daemons {
			cmd := start(t, d.args...)
			time.Sleep(warmup) // start-up is not idle
			s := measure(t, cmd.Process.Pid, eoPID, window, d.forkEvery)
			s.name = d.name
			stop(cmd)
			t.Logf("round %d: %-48s RSS %5.1f MiB (peak %5.1f)  CPU %.4f%% of a core, earlyoom %.4f%%, machine %.1f forks/s",
				r+1, s.name, float64(s.rssKiB)/1024, float64(s.hwmKiB)/1024, s.cpuPercent(), s.eoPercent(), s.forkRate)
			if s.rssKiB <= 0 {
				t.Errorf("%s: no RSS measured", s.name)
			}
			samples[i] = append(samples[i], s)
		}
	}
	if *write {
		writeDoc(t, samples, window, warmup)
	}
}

// start starts a daemon that the test stops at its end at the latest.
func start(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logs := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", args[0], err)
	}
	t.Cleanup(func() {
		stop(cmd)
		if t.Failed() {
			t.Logf("%s log:\n%s", args[0], logs.String())
		}
	})
	return cmd
}

// stop ends a daemon with SIGTERM; a second call does nothing.
func stop(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// measure samples pid (and earlyoom's eoPID, when > 0) over window. It
// forks nothing, since a fork is an event for the guard measured, unless
// forkEvery asks it to run /bin/true that often.
func measure(t *testing.T, pid, eoPID int, window, forkEvery time.Duration) sample {
	cpu0, eo0 := cpuNanos(t, pid), int64(0)
	if eoPID > 0 {
		eo0 = cpuNanos(t, eoPID)
	}
	begin := time.Now()
	forks0 := forkCount(t)
	if forkEvery > 0 {
		for end := begin.Add(window); time.Now().Before(end); time.Sleep(forkEvery) {
			if err := exec.Command("/bin/true").Run(); err != nil {
				t.Fatalf("run /bin/true: %v", err)
			}
		}
	} else {
		time.Sleep(window)
	}
	s := sample{windowSec: time.Since(begin).Seconds(), eoNanos: -1}
	s.forkRate = float64(forkCount(t)-forks0) / s.windowSec
	s.cpuNanos = cpuNanos(t, pid) - cpu0
	if eoPID > 0 {
		s.eoNanos = cpuNanos(t, eoPID) - eo0
	}
	s.rssKiB, s.hwmKiB = statusKiB(t, pid, "VmRSS:"), statusKiB(t, pid, "VmHWM:")
	return s
}

func writeDoc(t *testing.T, samples [][]sample, window, warmup time.Duration) {
	var b strings.Builder
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Fprintf(&b, "# Idle cost: oomguard beside earlyoom\n\n")
	fmt.Fprintf(&b, "Generated by `go test ./bench/idle -run TestIdleCost -count=1 -v -args -write` on %s, kernel %s, %d CPUs.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), strings.TrimSpace(string(kernel)), runtime.NumCPU())
	fmt.Fprintf(&b, "earlyoom (Debian's binary, at its defaults with `--dryrun`) runs for the whole benchmark. Beside it, one oomguard configuration at a time runs for a %.0f s window after a %.0f s start-up (start-up is not idle), in %d rounds that take the configurations in turn; so each window compares one oomguard with earlyoom, side by side, on an otherwise idle machine. CPU is the time the daemon's threads spent on a CPU in the window (the first field of /proc/PID/task/*/schedstat, in nanoseconds, so even earlyoom's small figure is measured, not rounded to 10 ms ticks); RSS is VmRSS at the end of the last window. The oomguard daemons run with their defaults (fork-bomb guard on, D-Bus off since this machine has no system bus). The harness forks nothing during a window, since each fork is an event for the fork-bomb guard, except in the last configuration, where it runs /bin/true every 2 s to show what the guard costs a machine that is idle but not silent. Targets: RSS at most 12 MiB, idle CPU no higher than earlyoom's.\n\n",
		window.Seconds(), warmup.Seconds(), len(samples[0]))
	b.WriteString("| daemon | RSS (MiB) | peak RSS (MiB) | CPU (% of a core), per round | earlyoom in the same windows | CPU / earlyoom, per round | machine forks/s |\n|---|---|---|---|---|---|---|\n")
	for _, ss := range samples {
		last := ss[len(ss)-1]
		var cpu, eo, ratio, forks []string
		for _, s := range ss {
			cpu = append(cpu, fmt.Sprintf("%.4f", s.cpuPercent()))
			forks = append(forks, fmt.Sprintf("%.1f", s.forkRate))
			switch {
			case s.eoNanos < 0:
				eo, ratio = append(eo, "-"), append(ratio, "-")
			case s.eoNanos == 0:
				eo, ratio = append(eo, "0"), append(ratio, "(earlyoom used no CPU)")
			default:
				eo = append(eo, fmt.Sprintf("%.4f", s.eoPercent()))
				ratio = append(ratio, fmt.Sprintf("%.2f", float64(s.cpuNanos)/float64(s.eoNanos)))
			}
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %s | %s | %s | %s |\n", last.name, float64(last.rssKiB)/1024, float64(last.hwmKiB)/1024,
			strings.Join(cpu, ", "), strings.Join(eo, ", "), strings.Join(ratio, ", "), strings.Join(forks, ", "))
	}
	b.WriteString("\nThe fork-bomb guard handles every fork, exec and exit event of the machine, so its share grows with the machine's fork rate (last column); on a silent machine it sleeps until the next event, and each lone process (its fork, exec and exit) costs it two wake-ups, the second after a 5 ms sleep in nanosleep(2) that also sets Go's monitor thread polling for about a millisecond. The run without it shows what the memory killer alone costs.\n")
	if err := os.WriteFile("../../docs/benchmarks/idle.md", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// earlyoomBinary returns an earlyoom binary: the installed one, or one
// unpacked from Debian's package into a cache (never installed, so no init
// script can start it).
func earlyoomBinary(t *testing.T) string {
	if p, err := exec.LookPath("earlyoom"); err == nil {
		return p
	}
	cache := "/var/tmp/oomguard-bench/earlyoom"
	bin := filepath.Join(cache, "root/usr/bin/earlyoom")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	os.MkdirAll(cache, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dl := exec.CommandContext(ctx, "apt-get", "download", "earlyoom")
	dl.Dir = cache
	if out, err := dl.CombinedOutput(); err != nil {
		t.Logf("apt-get download earlyoom: %v\n%s", err, out)
		return ""
	}
	debs, _ := filepath.Glob(filepath.Join(cache, "earlyoom_*.deb"))
	if len(debs) == 0 {
		return ""
	}
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], filepath.Join(cache, "root")).CombinedOutput(); err != nil {
		t.Logf("dpkg-deb -x: %v\n%s", err, out)
		return ""
	}
	return bin
}

// forkCount is the number of forks since boot (/proc/stat "processes").
func forkCount(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "processes" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Fatal("no processes line in /proc/stat")
	return 0
}

// cpuNanos is the time pid's threads have spent on a CPU, from the first
// field of each /proc/PID/task/TID/schedstat. (A thread that exits takes
// its time with it; the daemons measured keep their threads.)
func cpuNanos(t *testing.T, pid int) int64 {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(files) == 0 {
		t.Fatalf("daemon %d died: %v", pid, err)
	}
	var sum int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that just exited
		}
		fields := strings.Fields(string(b))
		if len(fields) == 0 {
			t.Fatalf("%s: empty", f)
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		sum += n
	}
	return sum
}

func statusKiB(t *testing.T, pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("daemon %d died: %v", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return -1
}
