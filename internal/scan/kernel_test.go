package scan

import (
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

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/kmem/kmemtest"
	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/procfs"
	"github.com/oomguard/oomguard/internal/testbed"
)

// sharersSource makes a parent and one child that share, or not, the
// parent's mm, then waits to be killed. argv[1] picks how the child is made:
//
//	vfork       vfork(2); the parent is blocked in syscall 58
//	clonevfork  clone(2) with CLONE_VM|CLONE_VFORK on a stack of its own
//	clone3vfork clone3(2) with CLONE_VM|CLONE_VFORK on the parent's stack
//	clonevm     clone(2) with CLONE_VM only: a sibling sharing the mm
//	fork        fork(2): no sharing
//
// A vfork child must not return or touch the parent's stack frame, so every
// child only loops on pause(2).
const sharersSource = `
#define _GNU_SOURCE
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static char stack[1 << 16] __attribute__((aligned(16)));
static int child(void *arg) { for (;;) syscall(SYS_pause); return 0; }

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	const char *m = argv[1];
	if (!strcmp(m, "vfork")) {
		if (vfork() == 0) for (;;) syscall(SYS_pause);
	} else if (!strcmp(m, "clonevfork")) {
		clone(child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, 0);
	} else if (!strcmp(m, "clone3vfork")) {
		struct clone_args a;
		memset(&a, 0, sizeof a);
		a.flags = CLONE_VM | CLONE_VFORK;
		a.exit_signal = SIGCHLD;
		if (syscall(SYS_clone3, &a, sizeof a) == 0) for (;;) syscall(SYS_pause);
	} else if (!strcmp(m, "clonevm")) {
		clone(child, stack + sizeof stack, CLONE_VM | SIGCHLD, 0);
	} else if (!strcmp(m, "fork")) {
		if (fork() == 0) for (;;) syscall(SYS_pause);
	} else return 2;
	for (;;) pause();
}
`

// startPair runs the sharers program in a new group and waits until both of
// its processes are there and asleep. It returns the group and the parent's
// and child's PIDs.
func startPair(t *testing.T, mode string) (*testbed.Group, int, int) {
	t.Helper()
	bin := testbed.CompileC(t, sharersSource)
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 10})
	g.Start(bin, mode)
	if !g.WaitProcs(30*time.Second, func(p []int) bool { return len(p) == 2 }) {
		t.Fatalf("%s: group has %v, want 2 processes", mode, g.Procs())
	}
	pids := g.Procs()
	slices.Sort(pids)
	parent, child := pids[0], pids[1]
	// Wait until the child is asleep in pause and the parent blocked.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(child) + "/syscall")
		if len(b) > 3 && string(b[:3]) == "34 " {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return g, parent, child
}

func scanGroup(t *testing.T, g *testbed.Group) map[int]policy.Process {
	t.Helper()
	s := New(Config{Scopes: []cgroupfs.Cgroup{g.Memory}, SelfPID: os.Getpid()})
	var snap policy.Snapshot
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	out := map[int]policy.Process{}
	for _, p := range snap.Processes {
		out[p.PID] = p
	}
	return out
}

func TestKernelSharedMM(t *testing.T) {
	testbed.Require(t)
	tests := []struct {
		mode       string
		shared     bool
		vforkChild bool
	}{
		{"vfork", true, true},
		{"clonevfork", true, true},
		{"clone3vfork", true, true},
		{"clonevm", true, false},
		{"fork", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			g, parent, child := startPair(t, tt.mode)
			procs := scanGroup(t, g)
			if len(procs) != 2 {
				t.Fatalf("scan found %v, want %d and %d", procs, parent, child)
			}
			pp, cp := procs[parent], procs[child]
			if pp.MMGroup == 0 || cp.MMGroup == 0 {
				t.Fatalf("MMGroup 0 for a process with an mm: parent %+v child %+v", pp, cp)
			}
			if got := pp.MMGroup == cp.MMGroup; got != tt.shared {
				t.Errorf("same MMGroup = %v (parent %d, child %d), want %v", got, pp.MMGroup, cp.MMGroup, tt.shared)
			}
			if tt.shared && pp.MMGroup != parent {
				t.Errorf("MMGroup = %d, want the lowest PID %d", pp.MMGroup, parent)
			}
			if cp.VforkChild != tt.vforkChild || pp.VforkChild {
				t.Errorf("VforkChild: child %v (want %v), parent %v (want false)", cp.VforkChild, tt.vforkChild, pp.VforkChild)
			}
			if cp.PPID != parent {
				t.Errorf("child PPID = %d, want %d", cp.PPID, parent)
			}
			// ConfirmGroup agrees with kcmp right now.
			s := New(Config{})
			got, err := s.ConfirmGroup(child, []int{parent, child, os.Getpid()})
			if err != nil {
				t.Fatal(err)
			}
			want := []int{child}
			if tt.shared {
				want = append(want, parent)
			}
			if !slices.Equal(got, want) {
				t.Errorf("ConfirmGroup(%d) = %v, want %v", child, got, want)
			}
		})
	}
}

// A scoped scan sees exactly the processes of the scope's subtree: those in
// the cgroup and in a child cgroup, and nothing else.
func TestKernelScopedScanExact(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 20})
	for i := 0; i < 3; i++ {
		g.Start("sleep", "60")
	}
	if !g.WaitProcs(30*time.Second, func(p []int) bool { return len(p) == 3 && allExeced(p, "sleep\x0060\x00") }) {
		t.Fatalf("group has %v", g.Procs())
	}
	// Move one sleeper into a child memory cgroup: still in scope.
	moved := g.Procs()[0]
	moveToChild(t, g, "sub", moved)
	s := New(Config{Scopes: []cgroupfs.Cgroup{g.Memory}, SelfPID: os.Getpid()})
	var snap policy.Snapshot
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, p := range snap.Processes {
		got = append(got, p.PID)
		if p.Comm != "sleep" || p.Cmdline != "sleep 60" || p.MMGroup != p.PID || p.RSS == 0 || p.Scope != 0 {
			t.Errorf("process %+v", p)
		}
		rel := g.Memory.Path[len("/sys/fs/cgroup/memory"):]
		if p.PID == moved && p.Cgroup != rel+"/sub" || p.PID != moved && p.Cgroup != rel {
			t.Errorf("pid %d cgroup %q, want under %q", p.PID, p.Cgroup, rel)
		}
	}
	want := g.Procs()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("scan found %v, group has %v", got, want)
	}
	// The cgroup path matches what the kernel writes in /proc/PID/cgroup.
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(moved) + "/cgroup")
	for _, p := range snap.Processes {
		if p.PID == moved && !containsLine(string(b), ":memory:"+p.Cgroup) {
			t.Errorf("/proc/%d/cgroup = %q, scan says %q", moved, b, p.Cgroup)
		}
	}
}

// moveToChild moves pid into a new child cgroup of g's memory cgroup, still
// in scope. The group's processes are killed before the child is removed.
func moveToChild(t *testing.T, g *testbed.Group, name string, pid int) {
	t.Helper()
	sub := g.Memory.Path + "/" + name
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(sub) })
	cg, err := cgroupfs.Open(sub)
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.AddProc(pid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.KillAll() }) // runs first: cleanups are last in, first out
}

func containsLine(s, suffix string) bool {
	for _, l := range splitLines(s) {
		if len(l) >= len(suffix) && l[len(l)-len(suffix):] == suffix {
			return true
		}
	}
	return false
}

// Processes that exit while a scan runs are skipped, never an error.
func TestKernelExitMidScan(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 50})
	g.Start("sh", "-c", "while :; do /bin/true & /bin/true; wait; done")
	if !g.WaitProcs(30*time.Second, func(p []int) bool { return len(p) > 0 }) {
		t.Fatal("the loop did not start")
	}
	s := New(Config{Scopes: []cgroupfs.Cgroup{g.Memory}})
	var snap policy.Snapshot
	seen := 0
	for i := 0; i < 300; i++ {
		if err := s.Processes(&snap); err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
		seen += len(snap.Processes)
	}
	if seen < 300 {
		t.Errorf("saw only %d processes in 300 passes", seen)
	}
}

// A pass over the same processes as the last one allocates nothing, with
// files kept open or not.
func TestKernelProcessesSteadyStateAllocs(t *testing.T) {
	for _, keep := range []Keep{KeepDefault, KeepAll, KeepNone} {
		t.Run(fmt.Sprint(keep), func(t *testing.T) { testSteadyState(t, keep) })
	}
}

func testSteadyState(t *testing.T, keep Keep) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 20})
	for i := 0; i < 5; i++ {
		g.Start("sleep", "60")
	}
	bin := testbed.CompileC(t, sharersSource)
	g.Start(bin, "vfork")
	g.Start(bin, "clonevm")
	if !g.WaitProcs(30*time.Second, func(p []int) bool { return len(p) == 9 && allHaveCmdline(p) }) {
		t.Fatalf("group has %v", g.Procs())
	}
	// The daemon's setting: command lines read on reader goroutines.
	s := New(Config{Scopes: []cgroupfs.Cgroup{g.Memory}, SelfPID: os.Getpid(), KeepOpen: keep, CmdlineWait: 100 * time.Millisecond, CmdlinePriority: 1})
	defer s.Close()
	var snap policy.Snapshot
	for i := 0; i < 2; i++ {
		if err := s.Processes(&snap); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(20, func() {
		if err := s.Processes(&snap); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("steady-state Processes allocates %v times per pass, want 0", n)
	}
	if len(snap.Processes) != 9 {
		t.Errorf("found %d processes, want 9", len(snap.Processes))
	}
	if st := s.LastPass(); st.New != 0 || st.Read != 9 || st.Kcmp == 0 {
		t.Errorf("last pass %+v: want 0 new, 9 read, and kcmp calls for the two sharing pairs", st)
	}
	vfork := 0
	for _, p := range snap.Processes {
		if p.VforkChild {
			vfork++
		}
	}
	if vfork != 1 {
		t.Errorf("%d vfork children, want 1", vfork)
	}
}

// Files kept open for a process are closed once it is gone.
func TestKernelKeptFilesClosed(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 20})
	for i := 0; i < 5; i++ {
		g.Start("sleep", "60")
	}
	if !g.WaitProcs(30*time.Second, func(p []int) bool { return len(p) == 5 }) {
		t.Fatalf("group has %v", g.Procs())
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	s := New(Config{Scopes: []cgroupfs.Cgroup{g.Memory}, KeepOpen: KeepAll})
	var snap policy.Snapshot
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	if got := fds() - before; got != 15 {
		t.Errorf("%d files open for 5 processes, want 15", got)
	}
	// Read through the kept files: the values are live.
	if err := s.Processes(&snap); err != nil || len(snap.Processes) != 5 || snap.Processes[0].RSS == 0 {
		t.Fatalf("second pass: %v, %+v", err, snap.Processes)
	}
	if err := g.KillAll(); err != nil {
		t.Fatal(err)
	}
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	if got := fds() - before; got != 0 || len(snap.Processes) != 0 {
		t.Errorf("after the group died: %d files still open, %d processes", got, len(snap.Processes))
	}
}

// allExeced reports whether every pid's cmdline is cmdline (exec is done).
func allExeced(pids []int, cmdline string) bool {
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil || string(b) != cmdline {
			return false
		}
	}
	return true
}

// allHaveCmdline reports whether every pid has finished exec (has arguments).
func allHaveCmdline(pids []int) bool {
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil || len(b) == 0 {
			return false
		}
	}
	return true
}

// A v2 scope (here without the memory controller) is scanned the same way,
// and Cgroup is the path of the "0::" line; System reports the scope's PSI.
func TestKernelScopedScanV2(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 20, V2: true})
	for i := 0; i < 2; i++ {
		g.Start("sleep", "60")
	}
	if !g.WaitProcs(30*time.Second, func(p []int) bool { return len(p) == 2 && allExeced(p, "sleep\x0060\x00") }) {
		t.Fatalf("group has %v", g.Procs())
	}
	s := New(Config{Scopes: []cgroupfs.Cgroup{*g.V2Cgroup}})
	var snap policy.Snapshot
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	want := g.Procs()
	slices.Sort(want)
	var got []int
	for _, p := range snap.Processes {
		got = append(got, p.PID)
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cgroup")
		if err != nil || !containsLine(string(b), "0::"+p.Cgroup) || p.Cgroup == "" {
			t.Errorf("pid %d: Cgroup %q, /proc/PID/cgroup %q", p.PID, p.Cgroup, b)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("scan found %v, group has %v", got, want)
	}
	if err := s.System(&snap); err != nil {
		t.Fatal(err)
	}
	sc := snap.Scopes[0]
	if sc.Path != g.V2Cgroup.Path || !sc.Pressure.Memory.Valid || !sc.Pressure.IO.Valid || sc.Limit != 0 || sc.RefaultFile != -1 {
		t.Errorf("v2 scope without memory controller: %+v", sc)
	}
}

// TestKernelCgroupKernel: a process holding 2,000 full pipes in its own
// memory cgroup carries that cgroup's kernel memory in CgroupKernel, where
// its RSS shows none of it; a sleeper in a child cgroup carries only its
// own cgroup's little.
func TestKernelCgroupKernel(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, PidsMax: 20})
	in := kmemtest.Start(t, g, kmemtest.Spec{Pipes: 2000, PipeData: 4096})
	in.WaitReady(t, 60*time.Second)
	g.Start("sleep", "60")
	var sleeper int
	if !g.WaitProcs(30*time.Second, func(p []int) bool {
		for _, pid := range p {
			if allExeced([]int{pid}, "sleep\x0060\x00") {
				sleeper = pid
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no sleeper in %v", g.Procs())
	}
	moveToChild(t, g, "calm", sleeper)
	s := New(Config{Scopes: []cgroupfs.Cgroup{g.Memory}, SelfPID: os.Getpid()})
	var snap policy.Snapshot
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	s.CgroupKernel(&snap)
	var inflater, calm *policy.Process
	for i := range snap.Processes {
		p := &snap.Processes[i]
		switch p.PID {
		case sleeper:
			calm = p
		default:
			if inflater == nil || p.CgroupKernel > inflater.CgroupKernel {
				inflater = p
			}
		}
	}
	if inflater == nil || calm == nil {
		t.Fatalf("scan found %+v", snap.Processes)
	}
	// Every process left in the group's own cgroup shares its kernel
	// memory; the pipes alone are 2000 x 4 KiB.
	shared := 0
	for _, p := range snap.Processes {
		if p.Cgroup == inflater.Cgroup {
			shared++
		}
	}
	if want := uint64(2000*4096) / uint64(shared); inflater.CgroupKernel < want {
		t.Errorf("inflater %d: CgroupKernel %d, want >= %d (2000 pipes over %d processes)", inflater.PID, inflater.CgroupKernel, want, shared)
	}
	if calm.CgroupKernel*10 > inflater.CgroupKernel {
		t.Errorf("sleeper in %s: CgroupKernel %d, not far below the inflater's %d", calm.Cgroup, calm.CgroupKernel, inflater.CgroupKernel)
	}
	t.Logf("inflater %d in %s: %d KiB (RSS %d KiB); sleeper in %s: %d KiB",
		inflater.PID, inflater.Cgroup, inflater.CgroupKernel>>10, inflater.RSS>>10, calm.Cgroup, calm.CgroupKernel>>10)

	// Later passes over the same cgroups keep their readers: no
	// allocation, the same shares.
	inflaterKmem := inflater.CgroupKernel
	if n := testing.AllocsPerRun(20, func() { s.CgroupKernel(&snap) }); n != 0 {
		t.Errorf("CgroupKernel over cgroups already seen allocates %v times per pass, want 0", n)
	}
	for _, p := range snap.Processes {
		if p.PID == inflater.PID && (p.CgroupKernel < inflaterKmem/2 || p.CgroupKernel > 2*inflaterKmem) {
			t.Errorf("inflater's CgroupKernel went from %d to %d with the reader kept", inflaterKmem, p.CgroupKernel)
		}
	}
	// A cgroup no process of the snapshot is in any more is dropped.
	calmCgroup := calm.Cgroup
	if _, ok := s.kmem[calmCgroup]; !ok {
		t.Fatalf("no reader kept for the sleeper's cgroup %s", calmCgroup)
	}
	snap.Processes = slices.DeleteFunc(snap.Processes, func(p policy.Process) bool { return p.PID == sleeper })
	s.CgroupKernel(&snap)
	if _, ok := s.kmem[calmCgroup]; ok || len(s.kmem) != 1 {
		t.Errorf("after the sleeper left the snapshot, readers kept for %d cgroups (%s among them: %v), want 1", len(s.kmem), calmCgroup, ok)
	}
}

// TestKernelWarmInSlices fills a cold cache with Warm: with a deadline
// already past, one process per call, the count left going down to none;
// then the first Processes pass finds every process cached (no new one)
// and reads the same fields as a scanner that started with a pass.
func TestKernelWarmInSlices(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 20})
	for i := 0; i < 6; i++ {
		g.Start("sleep", "60")
	}
	if !g.WaitProcs(30*time.Second, func(p []int) bool { return len(p) == 6 && allExeced(p, "sleep\x0060\x00") }) {
		t.Fatalf("group has %v", g.Procs())
	}
	scopes := []cgroupfs.Cgroup{g.Memory}
	s := New(Config{Scopes: scopes, SelfPID: os.Getpid(), CmdlineWait: 100 * time.Millisecond})
	defer s.Close()
	past := time.Now().Add(-time.Second)
	var lefts []int
	for range 10 {
		left, err := s.Warm(past)
		if err != nil {
			t.Fatalf("Warm: %v", err)
		}
		lefts = append(lefts, left)
		if left == 0 {
			break
		}
	}
	// One process per call; the call that reads the last one leaves the
	// group's kernel-memory reader (six processes in it) to the next.
	if want := []int{5, 4, 3, 2, 1, 6, 0}; !slices.Equal(lefts, want) {
		t.Errorf("Warm left %v after each call, want %v", lefts, want)
	}
	if left, err := s.Warm(past); err != nil || left != 0 {
		t.Errorf("Warm on a warm cache: left %d, err %v", left, err)
	}
	if len(s.cache) != 6 || s.kept != 6 {
		t.Errorf("after Warm: %d cached, %d with files kept, want 6 and 6", len(s.cache), s.kept)
	}
	// Two exit: the next Warm drops them and closes their files, with no
	// Processes pass in between.
	before := g.Procs()
	extra := []*exec.Cmd{g.Start("sleep", "60"), g.Start("sleep", "60")}
	if !g.WaitProcs(30*time.Second, func(p []int) bool { return len(p) == 8 && allExeced(p, "sleep\x0060\x00") }) {
		t.Fatalf("group has %v", g.Procs())
	}
	var gone []int
	for _, pid := range g.Procs() {
		if !slices.Contains(before, pid) {
			gone = append(gone, pid)
		}
	}
	if left, err := s.Warm(time.Now().Add(time.Second)); err != nil || left != 0 || len(s.cache) != 8 {
		t.Fatalf("Warm with two new processes: left %d, err %v, %d cached, want 0, nil, 8", left, err, len(s.cache))
	}
	for _, pid := range gone {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, c := range extra {
		c.Wait() // the subreaper exits with its workload
	}
	if !g.WaitProcs(30*time.Second, func(p []int) bool { return len(p) == 6 }) {
		t.Fatalf("group has %v", g.Procs())
	}
	if left, err := s.Warm(past); err != nil || left != 0 {
		t.Errorf("Warm after two exits: left %d, err %v", left, err)
	}
	for _, pid := range gone {
		if _, ok := s.cache[pid]; ok {
			t.Errorf("exited process %d still cached after Warm", pid)
		}
	}
	if len(s.cache) != 6 || s.kept != 6 {
		t.Errorf("after the exits: %d cached, %d with files kept, want 6 and 6", len(s.cache), s.kept)
	}
	if st := s.LastPass(); st != (PassStats{}) {
		t.Errorf("LastPass after Warm alone = %+v, want the zero value (no Processes pass yet)", st)
	}
	var warmed policy.Snapshot
	if err := s.Processes(&warmed); err != nil {
		t.Fatal(err)
	}
	if st := s.LastPass(); st.New != 0 || st.Read != 6 {
		t.Errorf("first pass after Warm: %+v, want 6 read and none new", st)
	}
	// Warm, with nothing left cold, also made the group's kernel-memory
	// reader ready: the first CgroupKernel pass reads it without
	// allocating (a cold one allocates about 20 times per cgroup). Counted
	// over one call, so a stray allocation elsewhere in the test process
	// is allowed for.
	if c := s.kmem[warmed.Processes[0].Cgroup]; c == nil || c.r == nil {
		t.Errorf("no kernel-memory reader ready for %s after Warm: %+v", warmed.Processes[0].Cgroup, c)
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	s.CgroupKernel(&warmed)
	runtime.ReadMemStats(&ms1)
	if n := ms1.Mallocs - ms0.Mallocs; n > 3 {
		t.Errorf("the first CgroupKernel after Warm allocated %d times, want none", n)
	}
	cold := New(Config{Scopes: scopes, SelfPID: os.Getpid()})
	defer cold.Close()
	var want policy.Snapshot
	if err := cold.Processes(&want); err != nil {
		t.Fatal(err)
	}
	if st := cold.LastPass(); st.New != 6 {
		t.Errorf("a cold scanner's pass: %+v, want 6 new", st)
	}
	if len(warmed.Processes) != len(want.Processes) {
		t.Fatalf("%d processes after Warm, %d from a cold pass", len(warmed.Processes), len(want.Processes))
	}
	for i, p := range warmed.Processes {
		w := want.Processes[i]
		if p.PID != w.PID || p.Cmdline != w.Cmdline || p.Cgroup != w.Cgroup || p.Comm != w.Comm || p.UID != w.UID {
			t.Errorf("process %d after Warm: %+v, from a cold pass: %+v", p.PID, p, w)
		}
	}
}

// Unscoped, kernel threads are read once: the next pass takes every one
// still running from the cache (its pidfd polled), with what a cold
// scanner reads for it, and reads no file of theirs.
func TestKernelThreadsReadOnce(t *testing.T) {
	s := New(Config{SelfPID: os.Getpid()})
	defer s.Close()
	var first, second policy.Snapshot
	if err := s.Processes(&first); err != nil {
		t.Fatal(err)
	}
	if st := s.LastPass(); st.KernelThreads != 0 {
		t.Errorf("first pass took %d kernel threads from an empty cache", st.KernelThreads)
	}
	type key struct {
		pid   int
		start uint64
	}
	before := map[key]policy.Process{}
	for _, p := range first.Processes {
		if p.KernelThread {
			before[key{p.PID, p.StartTime}] = p
		}
	}
	if len(before) == 0 {
		t.Fatal("no kernel thread in /proc")
	}
	if err := s.Processes(&second); err != nil {
		t.Fatal(err)
	}
	both := 0
	for _, p := range second.Processes {
		was, ok := before[key{p.PID, p.StartTime}]
		if !ok {
			continue
		}
		both++
		if !p.KernelThread || p.PPID != was.PPID || p.Comm != was.Comm || p.Cgroup != was.Cgroup || p.Cmdline != was.Cmdline {
			t.Errorf("kernel thread %d from the cache: %+v, first read: %+v", p.PID, p, was)
		}
	}
	if st := s.LastPass(); st.KernelThreads != both {
		t.Errorf("second pass took %d kernel threads from the cache, want the %d listed in both passes", st.KernelThreads, both)
	}
	// A cold scanner reads the same parent and cgroup for them.
	cold := New(Config{SelfPID: os.Getpid()})
	defer cold.Close()
	var fresh policy.Snapshot
	if err := cold.Processes(&fresh); err != nil {
		t.Fatal(err)
	}
	for _, p := range fresh.Processes {
		if was, ok := before[key{p.PID, p.StartTime}]; ok && (!p.KernelThread || p.PPID != was.PPID || p.Cgroup != was.Cgroup) {
			t.Errorf("kernel thread %d read cold: %+v, from the cache: %+v", p.PID, p, was)
		}
	}
}

// A watched entry whose process exits is dropped by the next pass and its
// PID read again. Kernel threads cannot be made to exit, so the test
// watches a child of its own as if it were one, and kills it; the child
// stays a zombie (it is not reaped yet), so its PID is still listed.
func TestKernelWatchedThreadExits(t *testing.T) {
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	defer child.Process.Kill()
	pid := child.Process.Pid
	if !allExecedWithin(pid, "sleep\x0060\x00", 10*time.Second) {
		t.Fatalf("child %d did not exec sleep", pid)
	}
	s := New(Config{SelfPID: os.Getpid()})
	defer s.Close()
	var snap policy.Snapshot
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	e, ok := s.cache[pid]
	if !ok {
		t.Fatalf("child %d not cached", pid)
	}
	s.closeFiles(&e)
	others := pidfdsOf(t, pid) // os.Process holds one of its own
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.pidfd, e.watched, e.kept = pidfd, true, true
	s.kept++
	s.cache[pid] = e
	find := func() policy.Process {
		t.Helper()
		if err := s.Processes(&snap); err != nil {
			t.Fatal(err)
		}
		for _, p := range snap.Processes {
			if p.PID == pid {
				return p
			}
		}
		t.Fatalf("child %d not in the pass", pid)
		return policy.Process{}
	}
	if p := find(); !p.KernelThread {
		t.Fatalf("watched child read as %+v, want it taken from the cache as a kernel thread", p)
	}
	child.Process.Signal(syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if i := slices.Index(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d did not become a zombie", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p := find()
	if p.KernelThread || p.State != 'Z' || !p.Exiting {
		t.Errorf("child after its exit: %+v, want it read again: a zombie, no kernel thread", p)
	}
	if e := s.cache[pid]; e.watched {
		t.Errorf("the exited child's entry is still watched")
	}
	if fds := pidfdsOf(t, pid); !slices.Equal(fds, others) {
		t.Errorf("pidfds %v of the exited child are open, want only os.Process's %v", fds, others)
	}
}

// pidfdsOf lists this process's descriptors that are pidfds of pid.
func pidfdsOf(t *testing.T, pid int) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, ent := range ents {
		b, err := os.ReadFile("/proc/self/fdinfo/" + ent.Name())
		if err == nil && slices.Contains(strings.Split(string(b), "\n"), "Pid:\t"+strconv.Itoa(pid)) {
			fds = append(fds, ent.Name())
		}
	}
	return fds
}

// allExecedWithin waits up to d for pid's cmdline to be cmdline.
func allExecedWithin(pid int, cmdline string, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if allExeced([]int{pid}, cmdline) {
			return true
		}
	}
	return false
}

// A process whose main thread exited (pthread_exit) while another thread
// holds its memory is a live process: its /proc/PID files read as a
// zombie's (state Z, no memory, no command line), so the scan reads it
// through the live thread. It is neither exiting nor memoryless, and kcmp
// groups it with a process sharing its mm.
func TestKernelLeaderExited(t *testing.T) {
	testbed.Require(t)
	for _, sibling := range []bool{false, true} {
		t.Run(fmt.Sprintf("sibling=%v", sibling), func(t *testing.T) {
			g := testbed.New(t, testbed.Options{MemoryLimit: 128 << 20, PidsMax: 10})
			pid, sib := g.StartLeaderExited(32, sibling)
			procs := scanGroup(t, g)
			p, ok := procs[pid]
			if !ok {
				t.Fatalf("scan of %v missed process %d", procs, pid)
			}
			if p.State == 'Z' || p.Exiting || p.KernelThread {
				t.Errorf("process %d reads as state %c, exiting %v, kernel thread %v: want a live process", pid, p.State, p.Exiting, p.KernelThread)
			}
			if p.RSS < 32<<20 {
				t.Errorf("RSS %d, want the 32 MiB its thread holds", p.RSS)
			}
			if p.MMTask == 0 || p.MMTask == pid || p.MMGroup == 0 {
				t.Errorf("MMTask %d, MMGroup %d: want a live thread of %d, and an mm", p.MMTask, p.MMGroup, pid)
			}
			if !strings.Contains(p.Cmdline, "32") {
				t.Errorf("Cmdline %q, want the program's arguments", p.Cmdline)
			}
			if p.Comm == "holder" || p.Comm == "" {
				t.Errorf("Comm %q: want the process's name, not its holding thread's", p.Comm)
			}
			var st procfs.Stat
			if err := procfs.NewFS("/proc").NewReader().Stat(pid, &st); err != nil || !st.LeaderExited() {
				t.Fatalf("stat of %d: %+v, %v; want a leader that exited", pid, st, err)
			}
			if p.StartTime != st.StartTime {
				t.Errorf("StartTime %d, want the leader's %d (the process's identity)", p.StartTime, st.StartTime)
			}
			s := New(Config{})
			want, candidates := []int{pid}, []int{os.Getpid()}
			if sibling {
				sp := procs[sib]
				if sp.MMGroup != p.MMGroup || p.MMGroup != min(pid, sib) {
					t.Errorf("MMGroup %d and the sibling's %d: want both %d, as they share one mm", p.MMGroup, sp.MMGroup, min(pid, sib))
				}
				want, candidates = append(want, sib), append(candidates, sib)
			}
			got, err := s.ConfirmGroup(pid, candidates)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("ConfirmGroup(%d) = %v, want %v", pid, got, want)
			}
			if sibling {
				// The other way: the process whose leader exited is the
				// candidate, compared through its live thread.
				got, err := s.ConfirmGroup(sib, []int{os.Getpid(), p.MMPID()})
				if err != nil {
					t.Fatal(err)
				}
				if want := []int{sib, p.MMPID()}; !slices.Equal(got, want) {
					t.Errorf("ConfirmGroup(%d) = %v, want %v (the sibling, and %d through its thread)", sib, got, want, pid)
				}
			}
		})
	}
}

// A process read, and its files kept open, while its leader ran, then read
// again after the leader exited: the second pass reads it through its live
// thread, with the process's name (not the thread's, "holder"), the
// command line of the first pass and its memory.
func TestKernelLeaderExitsBetweenPasses(t *testing.T) {
	testbed.Require(t)
	g := testbed.New(t, testbed.Options{MemoryLimit: 128 << 20, PidsMax: 10})
	cue := filepath.Join(t.TempDir(), "exit")
	pid := g.StartLeaderExitOnCue(32, cue)
	s := New(Config{Scopes: []cgroupfs.Cgroup{g.Memory}, SelfPID: os.Getpid(), KeepOpen: KeepAll})
	defer s.Close()
	pass := func() policy.Process {
		t.Helper()
		var snap policy.Snapshot
		if err := s.Processes(&snap); err != nil {
			t.Fatal(err)
		}
		for _, p := range snap.Processes {
			if p.PID == pid {
				return p
			}
		}
		t.Fatalf("scan missed process %d: %+v", pid, snap.Processes)
		return policy.Process{}
	}
	before := pass()
	if before.MMTask != 0 || before.RSS < 32<<20 || before.Exiting {
		t.Fatalf("before the leader exits: %+v", before)
	}
	if err := os.WriteFile(cue, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	g.WaitLeaderExited(pid, 32)
	after := pass()
	if after.MMTask == 0 || after.Exiting || after.State == 'Z' || after.RSS < 32<<20 {
		t.Errorf("after the leader exited: MMTask %d, exiting %v, state %c, RSS %d; want a live process read through its thread",
			after.MMTask, after.Exiting, after.State, after.RSS)
	}
	if after.Comm != before.Comm || after.Cmdline != before.Cmdline || after.StartTime != before.StartTime {
		t.Errorf("after the leader exited: comm %q, cmdline %q, start %d; want the process's %q, %q, %d",
			after.Comm, after.Cmdline, after.StartTime, before.Comm, before.Cmdline, before.StartTime)
	}
}

// When the thread a process was read through has exited (here: a thread
// ID no task has), kcmp fails with ESRCH; the process is not taken for
// dead while another of its threads lives: that one takes the place, and
// the process shares its sibling's mm as before.
func TestKernelKcmpRetargetsAnExitedThread(t *testing.T) {
	testbed.Require(t)
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 10})
	pid, sib := g.StartLeaderExited(8, true)
	const gone = 1<<22 - 1 // above any pid_max: no such thread
	procs := []policy.Process{{PID: pid, MMTask: gone, MMGroup: -1}, {PID: sib, MMGroup: -1}}
	s := New(Config{})
	if r := s.kcmp(procs, 0, 1); r != -1 || !s.failed {
		t.Fatalf("kcmp through thread %d = %d (failed %v), want a failure", gone, r, s.failed)
	}
	p := procs[0]
	if p.Exiting || p.MMGroup != -1 || p.MMTask == gone || p.MMTask == pid || !s.retargeted {
		t.Fatalf("after the failure: %+v, retargeted %v; want a live thread of %d in place, and the process not exiting", p, s.retargeted, pid)
	}
	if r := s.kcmp(procs, 0, 1); r != 0 {
		t.Errorf("kcmp through thread %d = %d, want 0: %d and %d share one mm", p.MMTask, r, pid, sib)
	}
}

// leaderExitVforkSource: the main thread exits (pthread_exit) while a
// worker thread makes a vfork child with clone3(2), as glibc's posix_spawn
// does; the child sleeps, so the worker stays blocked in clone3.
const leaderExitVforkSource = `
#define _GNU_SOURCE
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *spawn(void *arg) {
	struct clone_args a;
	memset(&a, 0, sizeof a);
	a.flags = CLONE_VM | CLONE_VFORK;
	a.exit_signal = SIGCHLD;
	if (syscall(SYS_clone3, &a, sizeof a) == 0) for (;;) syscall(SYS_pause);
	for (;;) pause();
	return 0;
}

int main(void) {
	pthread_t t;
	if (pthread_create(&t, 0, spawn, 0)) return 3;
	pthread_exit(0);
}
`

// A vfork child made by a worker thread of a process whose leader has
// exited is still seen as a vfork child: the worker, not the leader, is
// the thread found blocked in clone3, waiting for it (its wchan).
func TestKernelVforkChildOfALeaderThatExited(t *testing.T) {
	testbed.Require(t)
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 10})
	g.Start(testbed.CompileC(t, leaderExitVforkSource, "-pthread"))
	var parent, child int
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pids := g.Procs(); len(pids) == 2 {
			for _, pid := range pids {
				var st procfs.Stat
				if procfs.NewFS("/proc").NewReader().Stat(pid, &st) == nil && st.LeaderExited() {
					parent = pid
				}
			}
			child = pids[0] + pids[1] - parent
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(child) + "/syscall")
			if parent != 0 && len(b) > 3 && string(b[:3]) == "34 " {
				break // the child sleeps in pause
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("want a process whose leader exited and its vfork child asleep; group has %v", g.Procs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	procs := scanGroup(t, g)
	pp, cp := procs[parent], procs[child]
	if !cp.VforkChild || pp.VforkChild {
		t.Errorf("VforkChild: child %v (want true), parent %v (want false)", cp.VforkChild, pp.VforkChild)
	}
	if pp.MMGroup == 0 || pp.MMGroup != cp.MMGroup {
		t.Errorf("MMGroup: parent %d, child %d; want one group", pp.MMGroup, cp.MMGroup)
	}
	// The parent out of the scope (moved to another group, which takes
	// its live threads): the child is still seen as its vfork child, the
	// parent compared through a live thread.
	other := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 10})
	for _, c := range other.Cgroups() {
		if err := os.WriteFile(filepath.Join(c.Path, "cgroup.procs"), []byte(strconv.Itoa(parent)), 0); err != nil {
			t.Fatalf("move %d to %s: %v", parent, c.Path, err)
		}
	}
	// The move wakes the worker from its wait for a moment: it reads as
	// running (no system call) until it sleeps again.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		procs = scanGroup(t, g)
		if _, in := procs[parent]; in {
			t.Fatalf("the parent %d is still in the scope after its move: %v", parent, procs)
		}
		if cp = procs[child]; cp.VforkChild || time.Now().After(deadline) {
			break
		}
	}
	if !cp.VforkChild {
		t.Errorf("with its parent out of the scope, the child %d is not seen as a vfork child: %+v", child, cp)
	}
}

// A process whose leader exited, moved to another cgroup since: the move
// takes its threads and leaves the leader, an exiting task, where it was.
// Unscoped, the scan reads the process's cgroup through a live thread: the
// one it runs and is charged in now, not the leader's old one.
func TestKernelLeaderExitedCgroupIsItsThreads(t *testing.T) {
	testbed.Require(t)
	from := testbed.New(t, testbed.Options{MemoryLimit: 128 << 20, PidsMax: 10})
	to := testbed.New(t, testbed.Options{MemoryLimit: 128 << 20, PidsMax: 10})
	pid, _ := from.StartLeaderExited(8, false)
	// Into every hierarchy of to, whose cleanup then ends the process.
	for _, c := range to.Cgroups() {
		if err := os.WriteFile(filepath.Join(c.Path, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			t.Fatalf("move %d to %s: %v", pid, c.Path, err)
		}
	}
	memoryLine := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if _, rest, ok := strings.Cut(l, ":memory:"); ok {
				return rest
			}
		}
		t.Fatalf("%s has no memory line:\n%s", path, b)
		return ""
	}
	s := New(Config{SelfPID: os.Getpid()})
	var snap policy.Snapshot
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	for _, p := range snap.Processes {
		if p.PID != pid {
			continue
		}
		if p.MMTask == 0 {
			t.Fatalf("process %d read without a thread (MMTask 0): %+v", pid, p)
		}
		leader := memoryLine(fmt.Sprintf("/proc/%d/cgroup", pid))
		thread := memoryLine(fmt.Sprintf("/proc/%d/task/%d/cgroup", pid, p.MMTask))
		if leader == thread {
			t.Skipf("the move took the exited leader too (%s): nothing to tell apart", leader)
		}
		if p.Cgroup != thread {
			t.Errorf("Cgroup %q, want its thread's %q (the leader's, left behind: %q)", p.Cgroup, thread, leader)
		}
		return
	}
	t.Fatalf("the unscoped scan missed process %d", pid)
}
