package testbed

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/oomguard/oomguard/internal/procfs"
)

// leaderExitSource holds argv[1] MiB of touched memory in a thread of its
// own, named "holder", while its main thread exits with pthread_exit: the
// process lives on, but its leader (/proc/PID) reads as a zombie with no
// memory. With argv[2] "sibling" it first clones a process that shares its
// mm (CLONE_VM without CLONE_THREAD), which sleeps. With argv[3], the main
// thread exits only once that file exists.
const leaderExitSource = `
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char stack[1 << 16] __attribute__((aligned(16)));
static size_t size;
static volatile char sink;

static int sibling(void *arg) { for (;;) pause(); return 0; }

static void *hold(void *arg) {
	pthread_setname_np(pthread_self(), "holder");
	char *p = malloc(size);
	if (!p) exit(3);
	memset(p, 1, size);
	sink = p[size - 1];
	for (;;) pause();
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 3) return 2;
	size = (size_t)atol(argv[1]) << 20;
	if (!strcmp(argv[2], "sibling") &&
	    clone(sibling, stack + sizeof stack, CLONE_VM | SIGCHLD, 0) < 0)
		return 3;
	pthread_t t;
	if (pthread_create(&t, 0, hold, 0)) return 3;
	if (argc > 3)
		while (access(argv[3], F_OK)) usleep(1000);
	pthread_exit(0);
}
`

// StartLeaderExited starts, in g, a process whose main thread exits while
// another of its threads ("holder") holds mib MiB of touched memory, and
// waits until it is so (WaitLeaderExited). With sibling, a second process
// shares its mm. The processes g held before are left out. It returns the
// process's PID, and the sibling's (0 without).
func (g *Group) StartLeaderExited(mib int, sibling bool) (pid, sib int) {
	g.t.Helper()
	mode := "alone"
	if sibling {
		mode = "sibling"
	}
	pid, sib = g.startLeaderExit(mode, mib)
	g.WaitLeaderExited(pid, mib)
	return pid, sib
}

// StartLeaderExitOnCue starts the program of StartLeaderExited, alone, and
// returns its PID once its holder thread holds mib MiB, its main thread
// still running; that thread exits once the file cue exists.
func (g *Group) StartLeaderExitOnCue(mib int, cue string) int {
	g.t.Helper()
	pid, _ := g.startLeaderExit("alone", mib, cue)
	deadline := time.Now().Add(10 * time.Second)
	for rss(filepath.Join("/proc", strconv.Itoa(pid), "status")) < uint64(mib)<<20 {
		if time.Now().After(deadline) {
			g.t.Fatalf("testbed: process %d did not come to hold %d MiB", pid, mib)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pid
}

// startLeaderExit starts the program with mode and mib (and the cue, if
// any) and returns its PID and its sibling's, told apart by parenthood.
func (g *Group) startLeaderExit(mode string, mib int, cue ...string) (pid, sib int) {
	g.t.Helper()
	bin := CompileC(g.t, leaderExitSource, "-pthread")
	want := 1
	if mode == "sibling" {
		want = 2
	}
	before := g.Procs()
	g.Start(bin, append([]string{strconv.Itoa(mib), mode}, cue...)...)
	var pids []int
	if !g.WaitProcs(10*time.Second, func(p []int) bool {
		pids = slices.DeleteFunc(p, func(pid int) bool { return slices.Contains(before, pid) })
		return len(pids) == want
	}) {
		g.t.Fatalf("testbed: want %d processes of the leader-exit program besides %v, have %v", want, before, pids)
	}
	if want == 1 {
		return pids[0], 0
	}
	// The sibling is the main process's child (clone with SIGCHLD).
	if ppid(pids[0]) == pids[1] {
		return pids[1], pids[0]
	}
	return pids[0], pids[1]
}

// WaitLeaderExited waits until process pid's leader reads as a zombie with
// two threads, and its other thread's VmRSS has reached mib MiB.
func (g *Group) WaitLeaderExited(pid, mib int) {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !leaderExitedWith(pid, uint64(mib)<<20) {
		if time.Now().After(deadline) {
			stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			g.t.Fatalf("testbed: process %d did not come to hold %d MiB with its leader exited: stat %q", pid, mib, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leaderExitedWith reports whether process pid's leader reads as a zombie
// with two threads, and the other thread's VmRSS is at least want bytes.
func leaderExitedWith(pid int, want uint64) bool {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z' {
		return false
	}
	tasks, err := os.ReadDir(dir + "/task")
	if err != nil {
		return false
	}
	for _, t := range tasks {
		if t.Name() != strconv.Itoa(pid) && rss(dir+"/task/"+t.Name()+"/status") >= want {
			return true
		}
	}
	return false
}

// rss returns the VmRSS of a status file in bytes, 0 when unknown.
func rss(status string) uint64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(b, []byte("\nVmRSS:"))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(line), []byte(" kB"))), 10, 64)
	if err != nil {
		return 0
	}
	return kb << 10
}

// ppid returns the parent of pid as its stat says, 0 when unknown.
func ppid(pid int) int {
	var st procfs.Stat
	if procfs.NewFS("/proc").NewReader().Stat(pid, &st) != nil {
		return 0
	}
	return st.PPID
}
