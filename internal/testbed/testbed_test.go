package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReaperWaitsForOrphans(t *testing.T) {
	g := New(t, Options{MemoryLimit: 64 << 20, PidsMax: 50, V2: true})
	// The shell exits at once; its orphan lives on for a second and must be
	// reaped by the subreaper, which returns only then.
	begin := time.Now()
	out, err := g.Command("sh", "-c", "sleep 1 & echo started; exit 3").Output()
	if code := exitCode(err); code != 3 || string(out) != "started\n" {
		t.Fatalf("reaper: output %q, exit code %d; want \"started\\n\", 3", out, code)
	}
	if d := time.Since(begin); d < time.Second {
		t.Fatalf("reaper returned after %v, before its orphan exited", d)
	}
	if n := len(g.Procs()); n != 0 {
		t.Fatalf("%d processes left in the group", n)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestWorkloadJoinsEveryCgroup(t *testing.T) {
	g := New(t, Options{PidsMax: 20, V2: true})
	cmd := g.Start("sleep", "60")
	var pids []int
	if !g.WaitProcs(5*time.Second, func(p []int) bool { pids = p; return len(p) == 1 }) {
		t.Fatalf("workload did not appear in %s: %v", g.Freezer.Path, pids)
	}
	if pids[0] == cmd.Process.Pid {
		t.Fatalf("the reaper %d itself joined the cgroup", cmd.Process.Pid)
	}
	if n := g.PidsCurrent(); n != 1 {
		t.Errorf("pids.current %d, want 1: the workload alone", n)
	}
	if k := g.KmemMaxUsage(); k == 0 {
		t.Errorf("memory.kmem.max_usage_in_bytes is 0 with a process in the group, which has a task struct and a stack")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pids[0]) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"memory:", "pids:", "freezer:", "0::"} {
		if !strings.Contains(string(b), c) || !strings.Contains(lineOf(string(b), c), g.Name) {
			t.Errorf("workload not in its %s cgroup:\n%s", c, b)
		}
	}
	if err := g.KillAll(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); exitCode(err) != 137 {
		t.Fatalf("reaper exit: %v, want status 137 (SIGKILL)", err)
	}
}

func TestKillAllStopsAForkBomb(t *testing.T) {
	g := New(t, Options{PidsMax: 300})
	g.Start("timeout", "30", "bash", "-c", "b(){ b|b & }; b; wait")
	if !g.WaitProcs(10*time.Second, func(p []int) bool { return len(p) > 100 }) {
		t.Fatalf("the bomb never grew: %v", g.Procs())
	}
	if err := g.KillAll(); err != nil {
		t.Fatal(err)
	}
	if n := len(g.Procs()); n != 0 {
		t.Fatalf("%d bomb processes survived KillAll", n)
	}
}

func lineOf(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, prefix) {
			return l
		}
	}
	return ""
}

// TestSweepStaleRemovesGroupsOfGoneBinaries: a test binary killed by a
// signal leaves its groups, and whatever runs in them, behind. The next
// binary ends and removes them; the groups of a binary still running are
// left alone.
func TestSweepStaleRemovesGroupsOfGoneBinaries(t *testing.T) {
	Require(t)
	own, err := OwnMemoryCgroup()
	if err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	owner := exec.Command("sleep", "60") // a binary still running
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { owner.Process.Kill(); owner.Wait() }()
	left := exec.Command("sleep", "60") // a workload the gone binary left
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { left.Process.Kill(); left.Wait() }()
	dirs := func(name string) []string {
		return []string{filepath.Join(own, name), filepath.Join(V1Root, "pids", name), filepath.Join(V1Root, "freezer", name)}
	}
	staleName := fmt.Sprintf("%s%d-1", namePrefix, gone.Process.Pid)
	liveName := fmt.Sprintf("%s%d-1", namePrefix, owner.Process.Pid)
	for _, name := range []string{staleName, liveName} {
		for _, d := range dirs(name) {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(d) })
		}
	}
	for _, d := range dirs(staleName) {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(left.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Another package's test binary, starting beside this one, may sweep
	// the group first; what counts is that it is gone.
	msgs := SweepStale(own)
	t.Logf("sweep: %q", msgs)
	for _, d := range dirs(staleName) {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", d, err)
		}
	}
	var ee *exec.ExitError
	if err := left.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("the workload left behind: %v, want killed by SIGKILL", err)
	}
	for _, d := range dirs(liveName) {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("the running binary's %s: %v", d, err)
		}
	}
}
