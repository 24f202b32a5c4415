package testbed

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"time"
)

// leaderExitSource holds argv[1] MiB of touched memory in a thread of its
// own while its main thread exits with pthread_exit: the process lives on,
// but its leader (/proc/PID) reads as a zombie with no memory. With
// argv[2] "sibling" it first clones a process that shares its mm
// (CLONE_VM without CLONE_THREAD), which sleeps.
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
	char *p = malloc(size);
	if (!p) exit(3);
	memset(p, 1, size);
	sink = p[size - 1];
	for (;;) pause();
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	size = (size_t)atol(argv[1]) << 20;
	if (argc > 2 && !strcmp(argv[2], "sibling") &&
	    clone(sibling, stack + sizeof stack, CLONE_VM | SIGCHLD, 0) < 0)
		return 3;
	pthread_t t;
	if (pthread_create(&t, 0, hold, 0)) return 3;
	pthread_exit(0);
}
`

// StartLeaderExited starts, in g, a process whose main thread exits while
// another of its threads holds mib MiB of touched memory, and waits until
// it is so: its /proc/PID/stat says state Z with two threads, and that
// thread's VmRSS has reached mib MiB. With sibling, a second process
// shares its mm. The processes g held before are left out. It returns
// the process's PID, and the sibling's (0 without).
func (g *Group) StartLeaderExited(mib int, sibling bool) (pid, sib int) {
	g.t.Helper()
	bin := CompileC(g.t, leaderExitSource, "-pthread")
	args := []string{strconv.Itoa(mib)}
	want := 1
	if sibling {
		args, want = append(args, "sibling"), 2
	}
	before := g.Procs()
	g.Start(bin, args...)
	var pids []int
	if !g.WaitProcs(10*time.Second, func(p []int) bool {
		pids = slices.DeleteFunc(p, func(pid int) bool { return slices.Contains(before, pid) })
		return len(pids) == want
	}) {
		g.t.Fatalf("testbed: want %d processes of the leader-exit program besides %v, have %v", want, before, pids)
	}
	slices.Sort(pids)
	pid = pids[0]
	if sibling {
		sib = pids[1]
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(sib) + "/status"); err == nil && bytes.Contains(b, []byte("\nThreads:\t2\n")) {
			pid, sib = sib, pid // PIDs wrapped around
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if leaderExitedWith(pid, uint64(mib)<<20) {
			return pid, sib
		}
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
		if t.Name() == strconv.Itoa(pid) {
			continue
		}
		status, err := os.ReadFile(dir + "/task/" + t.Name() + "/status")
		if err != nil {
			continue
		}
		_, rest, ok := bytes.Cut(status, []byte("\nVmRSS:"))
		if !ok {
			continue
		}
		line, _, _ := bytes.Cut(rest, []byte("\n"))
		kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(line), []byte(" kB"))), 10, 64)
		if err == nil && kb<<10 >= want {
			return true
		}
	}
	return false
}
