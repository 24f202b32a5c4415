// Package testbed confines test workloads on a real kernel: every process a
// test starts runs inside cgroups the test created (a v1 memory cgroup nested
// under the test's own, a v1 pids cgroup, a v1 freezer cgroup and, on request,
// a v2 cgroup), under a subreaper that reaps orphans at once, and is ended by
// freeze, kill, thaw when the test ends.
package testbed

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/cgroupfs"
)

// Root paths of the v1 hierarchies and the v2 hierarchy on these machines.
const (
	V1Root = "/sys/fs/cgroup"
	V2Root = "/sys/fs/cgroup/unified"
)

// Options says which cgroups a Group gets and their limits.
type Options struct {
	// MemoryLimit is memory.limit_in_bytes of the memory cgroup. 0 means
	// 256 MiB; it may not exceed 1 GiB.
	MemoryLimit int64
	// OOMKillDisable sets memory.oom_control to 1, so the kernel's memcg OOM
	// killer pauses the cgroup instead of killing in it.
	OOMKillDisable bool
	// PidsMax is pids.max of the pids cgroup. 0 means 2000, the most allowed.
	PidsMax int
	// V2 also creates a cgroup in the v2 hierarchy (no memory controller
	// there) for cgroup.freeze, cgroup.kill and per-cgroup pressure files.
	V2 bool
}

// Group is a set of cgroups created for one test. Everything it runs stays in
// all of them.
type Group struct {
	Name    string
	Memory  cgroupfs.Cgroup
	Pids    cgroupfs.Cgroup
	Freezer cgroupfs.Cgroup
	// V2Cgroup is set when Options.V2 was.
	V2Cgroup *cgroupfs.Cgroup

	t       testing.TB
	reapers []*exec.Cmd
}

var (
	serial    atomic.Int64
	sweepOnce sync.Once
)

// namePrefix starts every group's name, followed by the creating test
// binary's PID and a serial number.
const namePrefix = "oomguard-test-"

// SweepStale ends and removes the groups of test binaries that are gone: a
// binary killed by a signal (a go test timeout, a stopped run) never ran
// its cleanups. A group is stale when the PID in its name is not a live
// process; a PID reused since errs toward leaving the group alone. Its
// processes, started by that binary's tests, are ended the safe way
// (KillAll). It looks in ownMemory (this process's memory cgroup), the v1
// pids and freezer hierarchies and the v2 one, and returns what it did or
// failed to do.
func SweepStale(ownMemory string) []string {
	parents := []string{ownMemory, filepath.Join(V1Root, "pids"), filepath.Join(V1Root, "freezer"), V2Root}
	stale := map[string]bool{}
	var names []string
	for _, dir := range parents {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			pid, ok := ownerPID(e.Name())
			if !e.IsDir() || !ok || pid == os.Getpid() || stale[e.Name()] {
				continue
			}
			if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
				continue // alive, or not ours to ask about
			}
			stale[e.Name()] = true
			names = append(names, e.Name())
		}
	}
	var msgs []string
	for _, name := range names {
		g := &Group{Name: name, V2Cgroup: new(cgroupfs.Cgroup)}
		// In the order of parents.
		slots := []*cgroupfs.Cgroup{&g.Memory, &g.Pids, &g.Freezer, g.V2Cgroup}
		for i, dir := range parents {
			if c, err := cgroupfs.Open(filepath.Join(dir, name)); err == nil {
				*slots[i] = c
			}
		}
		if g.Freezer.Path != "" {
			if err := g.KillAll(); err != nil {
				msgs = append(msgs, fmt.Sprintf("testbed: stale group %s of a test binary that is gone: %v", name, err))
				continue
			}
		}
		if errs := g.removeCgroups(); len(errs) > 0 {
			msgs = append(msgs, fmt.Sprintf("testbed: stale group %s: %v", name, errors.Join(errs...)))
		} else {
			msgs = append(msgs, fmt.Sprintf("testbed: removed stale group %s of a test binary that is gone", name))
		}
	}
	return msgs
}

// ownerPID returns the PID in a group's name.
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, false
	}
	pid, _, ok := strings.Cut(rest, "-")
	n, err := strconv.Atoi(pid)
	return n, ok && err == nil && n > 0
}

// Require skips the test unless it runs as root on a machine with the v1
// memory, pids and freezer hierarchies.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("testbed: needs root to create cgroups")
	}
	for _, c := range []string{"memory", "pids", "freezer"} {
		if _, err := os.Stat(filepath.Join(V1Root, c, "cgroup.procs")); err != nil {
			t.Skipf("testbed: no cgroup v1 %s hierarchy at %s", c, filepath.Join(V1Root, c))
		}
	}
}

// OwnMemoryCgroup returns the v1 memory cgroup directory of this process.
func OwnMemoryCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == "memory" {
			return filepath.Join(V1Root, "memory", parts[2]), nil
		}
	}
	return "", fmt.Errorf("no memory line in /proc/self/cgroup")
}

// New creates a Group and registers its removal with t.Cleanup.
func New(t testing.TB, o Options) *Group {
	t.Helper()
	Require(t)
	if o.MemoryLimit == 0 {
		o.MemoryLimit = 256 << 20
	}
	if o.MemoryLimit > 1<<30 {
		t.Fatalf("testbed: memory limit %d is above the 1 GiB allowed", o.MemoryLimit)
	}
	if o.PidsMax == 0 {
		o.PidsMax = 2000
	}
	if o.PidsMax > 2000 {
		t.Fatalf("testbed: pids.max %d is above the 2000 allowed", o.PidsMax)
	}
	own, err := OwnMemoryCgroup()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	sweepOnce.Do(func() {
		for _, msg := range SweepStale(own) {
			t.Log(msg)
		}
	})
	name := fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), serial.Add(1))
	g := &Group{Name: name, t: t}
	t.Cleanup(g.destroy)
	g.Memory = mkdir(t, filepath.Join(own, name))
	g.Pids = mkdir(t, filepath.Join(V1Root, "pids", name))
	g.Freezer = mkdir(t, filepath.Join(V1Root, "freezer", name))
	if o.V2 {
		c := mkdir(t, filepath.Join(V2Root, name))
		g.V2Cgroup = &c
	}
	must(t, g.Memory.WriteFile("memory.limit_in_bytes", strconv.FormatInt(o.MemoryLimit, 10)))
	if o.OOMKillDisable {
		must(t, g.Memory.WriteFile("memory.oom_control", "1"))
	}
	must(t, g.Pids.WriteFile("pids.max", strconv.Itoa(o.PidsMax)))
	return g
}

func mkdir(t testing.TB, dir string) cgroupfs.Cgroup {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("testbed: create cgroup: %v", err)
	}
	c, err := cgroupfs.Open(dir)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
}

// Cgroups returns every cgroup of the group.
func (g *Group) Cgroups() []cgroupfs.Cgroup {
	cs := []cgroupfs.Cgroup{g.Memory, g.Pids, g.Freezer}
	if g.V2Cgroup != nil {
		cs = append(cs, *g.V2Cgroup)
	}
	return cs
}

// Command returns a command that runs name with args inside the group's
// cgroups, under a subreaper outside them that reaps every orphan of the
// workload. The command's Process is the subreaper; its exit status is the
// workload's. Start it with Start or Run as usual; the group kills whatever
// is left when the test ends.
func (g *Group) Command(name string, args ...string) *exec.Cmd {
	g.t.Helper()
	reaper := Reaper(g.t)
	var join []string
	for _, c := range g.Cgroups() {
		join = append(join, c.File("cgroup.procs"))
	}
	// The reaper forks, the child writes itself into each cgroup and execs
	// the workload, so the reaper itself stays outside.
	full := append([]string{strings.Join(join, ":"), name}, args...)
	cmd := exec.Command(reaper, full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	g.reapers = append(g.reapers, cmd)
	return cmd
}

// Start is Command followed by Start, failing the test on error.
func (g *Group) Start(name string, args ...string) *exec.Cmd {
	g.t.Helper()
	cmd := g.Command(name, args...)
	if err := cmd.Start(); err != nil {
		g.t.Fatalf("testbed: start %s: %v", name, err)
	}
	return cmd
}

// Procs returns the PIDs now in the group (read from the freezer cgroup,
// which every workload process joins).
func (g *Group) Procs() []int {
	pids, err := g.Freezer.Procs()
	if err != nil {
		g.t.Fatalf("testbed: %v", err)
	}
	return pids
}

// WaitProcs waits up to timeout until cond holds for the group's PID list and
// reports whether it did.
func (g *Group) WaitProcs(timeout time.Duration, cond func(pids []int) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := g.Freezer.Procs()
		if err == nil && cond(pids) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// KillAll ends every process in the group the safe way: freeze, wait until
// frozen, SIGKILL every member, thaw, wait until empty. A group that cannot
// be frozen (a task waiting in a paused memcg OOM never freezes) is killed
// all the same, since such tasks are killable; the error then says so.
func (g *Group) KillAll() error {
	freezeErr := g.Freezer.Freeze(10 * time.Second)
	for round := 0; round < 100; round++ {
		pids, err := g.Freezer.Procs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if round == 0 {
			if err := g.Freezer.Thaw(); err != nil {
				return err
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.Freezer.Thaw()
	if !g.WaitProcs(10*time.Second, func(p []int) bool { return len(p) == 0 }) {
		left, _ := g.Freezer.Procs()
		return fmt.Errorf("testbed: %s still has processes %v", g.Freezer.Path, left)
	}
	if freezeErr != nil {
		return fmt.Errorf("testbed: killed without freezing first: %w", freezeErr)
	}
	return nil
}

func (g *Group) destroy() {
	if err := g.KillAll(); err != nil {
		g.t.Errorf("testbed cleanup: %v", err)
	}
	for _, r := range g.reapers {
		if r.Process == nil {
			continue
		}
		r.Process.Kill()
		// Wait also waits for the copying of a non-file Stdout or Stderr,
		// which a surviving workload could hold open forever; a test may
		// also have waited already. Do not let either hang the cleanup.
		done := make(chan struct{})
		go func() { r.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			g.t.Errorf("testbed cleanup: subreaper %d did not finish within 10s", r.Process.Pid)
		}
	}
	for _, err := range g.removeCgroups() {
		g.t.Errorf("testbed cleanup: %v", err)
	}
}

// removeCgroups removes every cgroup of the group, retrying each for up
// to 2 s (a cgroup is busy until its last task is reaped), and returns
// what failed.
func (g *Group) removeCgroups() []error {
	var errs []error
	for _, c := range g.Cgroups() {
		if c.Path == "" {
			continue
		}
		var err error
		for i := 0; i < 200; i++ {
			if err = os.Remove(c.Path); err == nil || os.IsNotExist(err) {
				err = nil
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", c.Path, err))
		}
	}
	return errs
}

// Stat returns field name (for example "total_rss" or "hierarchical_memory_limit")
// of the memory cgroup's memory.stat, or -1 when absent.
func (g *Group) Stat(name string) int64 {
	b, err := g.Memory.ReadFile("memory.stat")
	if err != nil {
		g.t.Fatalf("testbed: %v", err)
	}
	return statField(b, name)
}

// MaxUsage returns memory.max_usage_in_bytes of the memory cgroup: the
// most it has been charged since it was made.
func (g *Group) MaxUsage() int64 {
	v, err := g.Memory.ReadUint("memory.max_usage_in_bytes")
	if err != nil {
		g.t.Fatalf("testbed: %v", err)
	}
	return int64(v)
}

// KmemMaxUsage returns memory.kmem.max_usage_in_bytes of the memory
// cgroup: the most kernel memory (task structs, stacks, page tables, slab)
// it has been charged since it was made; -1 where the kernel has no such
// file.
func (g *Group) KmemMaxUsage() int64 {
	v, err := g.Memory.ReadUint("memory.kmem.max_usage_in_bytes")
	if errors.Is(err, fs.ErrNotExist) {
		return -1
	}
	if err != nil {
		g.t.Fatalf("testbed: %v", err)
	}
	return int64(v)
}

// PidsCurrent returns pids.current of the pids cgroup: its tasks, zombies
// not yet reaped included (which cgroup.procs no longer lists).
func (g *Group) PidsCurrent() int {
	v, err := g.Pids.ReadUint("pids.current")
	if err != nil {
		g.t.Fatalf("testbed: %v", err)
	}
	return int(v)
}

// OOMKills returns the oom_kill count of the memory cgroup's memory.oom_control.
func (g *Group) OOMKills() int64 {
	b, err := g.Memory.ReadFile("memory.oom_control")
	if err != nil {
		g.t.Fatalf("testbed: %v", err)
	}
	return statField(b, "oom_kill")
}

func statField(b []byte, name string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return -1
}

// CompileC compiles a C program with gcc and returns the binary's path. The
// binary is cached by the hash of its source and flags, so a suite compiles
// each program once. extraFlags may add, for example, "-static" or "-pthread".
func CompileC(t testing.TB, src string, extraFlags ...string) string {
	t.Helper()
	h := sha256.Sum256([]byte(src + "\x00" + strings.Join(extraFlags, " ")))
	dir := filepath.Join(os.TempDir(), "oomguard-testbin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	bin := filepath.Join(dir, hex.EncodeToString(h[:8]))
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("testbed: gcc is not installed; run scripts/setup.sh")
	}
	srcPath := bin + ".c"
	if err := os.WriteFile(srcPath, []byte(src), 0o644); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	tmp := fmt.Sprintf("%s.tmp%d", bin, os.Getpid())
	args := append([]string{"-O2", "-Wall", "-o", tmp, srcPath}, extraFlags...)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("testbed: gcc %v: %v\n%s", args, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return bin
}

// Reaper returns the path of the subreaper binary that Command uses.
func Reaper(t testing.TB) string {
	return CompileC(t, reaperSource)
}

// reaperSource: argv[1] is a colon-separated list of cgroup.procs files to
// join, argv[2…] the workload. It becomes a child subreaper, forks the
// workload, reaps every descendant that is reparented to it, forwards
// SIGTERM/SIGINT to the workload, and exits with the workload's status (or
// 128+N for a death by signal N) once it has no children left.
const reaperSource = `
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t child;
static void forward(int sig) { if (child > 0) kill(child, sig); }

int main(int argc, char **argv) {
	if (argc < 3) { fprintf(stderr, "usage: reaper PROCS[:PROCS...] CMD ARGS...\n"); return 127; }
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) { perror("reaper: PR_SET_CHILD_SUBREAPER"); return 127; }
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) { perror("reaper: pipe"); return 127; }
	child = fork();
	if (child < 0) { perror("reaper: fork"); return 127; }
	if (child == 0) {
		close(p[0]);
		char *list = strdup(argv[1]);
		char pid[32];
		int n = snprintf(pid, sizeof pid, "%d", getpid());
		for (char *f = strtok(list, ":"); f; f = strtok(NULL, ":")) {
			int fd = open(f, O_WRONLY);
			if (fd < 0 || write(fd, pid, n) != n) {
				dprintf(p[1], "reaper: join %s: %s\n", f, strerror(errno));
				_exit(127);
			}
			close(fd);
		}
		execvp(argv[2], argv + 2);
		dprintf(p[1], "reaper: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	signal(SIGTERM, forward);
	signal(SIGINT, forward);
	char msg[512];
	ssize_t m = read(p[0], msg, sizeof msg - 1);
	if (m > 0) { msg[m] = 0; fputs(msg, stderr); }
	int code = 0;
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, 0);
		if (w < 0) {
			if (errno == EINTR) continue;
			break;
		}
		if (w == child) code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	return code;
}
`
