// Package kmemtest runs a C program that inflates kernel memory inside a
// testbed group, for the real-kernel tests of kmem, kmemguard and the CLI.
package kmemtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/testbed"
)

// Spec says how much kernel memory the inflater creates, of each kind.
type Spec struct {
	// Files are empty files created in a fresh directory on /dev/shm
	// (tmpfs): a dentry and a shmem inode each.
	Files int
	// Pipes are pipes each holding PipeData bytes.
	Pipes    int
	PipeData int
	// Maps are 4 KiB mappings, 2 MiB apart, each touched: one page-table
	// page each.
	Maps int
	// Threads are threads that sleep.
	Threads int
	// CrossAt, when not 0, makes the inflater print "cross MONO WALL"
	// (CLOCK_MONOTONIC and CLOCK_REALTIME nanoseconds) the first time its memory cgroup's kmem usage is above
	// CrossAt bytes, checked after every object.
	CrossAt uint64
	// Delay slows each step (every 64 objects) down by this much.
	Delay time.Duration
}

// Inflater is a running inflater.
type Inflater struct {
	Cmd *exec.Cmd
	// Dir is the directory of its files; removed when the test ends.
	Dir string
	// Ready is closed when the inflater has created everything.
	Ready chan struct{}
	// Crossed receives the time at which the inflater saw its cgroup cross
	// Spec.CrossAt.
	Crossed chan Crossing
	// Exited is closed when the subreaper (and so the inflater) has exited,
	// seen as the end of its output.
	Exited chan struct{}
}

// Start runs the inflater in g with s and returns once it has started.
func Start(t testing.TB, g *testbed.Group, s Spec) *Inflater {
	t.Helper()
	bin := testbed.CompileC(t, source, "-pthread")
	dir, err := os.MkdirTemp("/dev/shm", "oomguard-kmem-")
	if err != nil {
		t.Fatalf("kmemtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	usage := g.Memory.File("memory.kmem.usage_in_bytes")
	cmd := g.Command(bin, dir, strconv.Itoa(s.Files), strconv.Itoa(s.Pipes), strconv.Itoa(s.PipeData),
		strconv.Itoa(s.Maps), strconv.Itoa(s.Threads), usage, strconv.FormatUint(s.CrossAt, 10),
		strconv.FormatInt(s.Delay.Microseconds(), 10))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("kmemtest: %v", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("kmemtest: start: %v", err)
	}
	in := &Inflater{Cmd: cmd, Dir: dir, Ready: make(chan struct{}), Crossed: make(chan Crossing, 1), Exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 1 && f[0] == "ready":
				close(in.Ready)
			case len(f) == 5 && f[0] == "cross":
				var n [4]int64
				for i := range n {
					n[i], _ = strconv.ParseInt(f[i+1], 10, 64)
				}
				in.Crossed <- Crossing{Monotonic: time.Duration(n[0]), Wall: time.Unix(0, n[1]),
					BelowMonotonic: time.Duration(n[2]), BelowWall: time.Unix(0, n[3])}
			}
		}
		// EOF: the subreaper, which shares the pipe, has exited, so the
		// inflater has too. The testbed waits for the subreaper.
		close(in.Exited)
	}()
	return in
}

// WaitReady waits for the inflater to finish inflating.
func (in *Inflater) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-in.Ready:
	case <-in.Exited:
		t.Fatalf("kmemtest: inflater exited before it was ready")
	case <-time.After(timeout):
		t.Fatalf("kmemtest: inflater not ready after %v", timeout)
	}
}

// Crossing is when the inflater saw its cgroup's kmem usage cross
// Spec.CrossAt, on two clocks. The usage is checked after every object, so
// the true crossing lies between the last check below (Below*) and the
// first above (Monotonic, Wall); latencies measured from Below* are upper
// bounds.
type Crossing struct {
	// Monotonic is CLOCK_MONOTONIC, to compare with MonotonicNow.
	Monotonic time.Duration
	// Wall is CLOCK_REALTIME, to compare with recorded action times.
	Wall time.Time
	// BelowMonotonic and BelowWall are the last check that was not above.
	BelowMonotonic time.Duration
	BelowWall      time.Time
}

// MonotonicNow reads CLOCK_MONOTONIC, the clock of Crossing.Monotonic.
func MonotonicNow() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// String describes the spec.
func (s Spec) String() string {
	return fmt.Sprintf("%d files, %d pipes x %d B, %d mappings, %d threads", s.Files, s.Pipes, s.PipeData, s.Maps, s.Threads)
}

// source: argv = DIR NFILES NPIPES PIPEDATA NMAPS NTHREADS USAGEFILE CROSSAT DELAYUS.
// Threads first, then pipes, then mappings, then files; after each step of
// 64 objects it sleeps DELAYUS; after every object it checks the kmem
// usage file against CROSSAT. It prints
// "ready" when done and then sleeps until killed.
const source = `
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *usagefile;
static unsigned long long crossat;
static int crossed;
static long delayus;

static long long ns(clockid_t c) {
	struct timespec ts;
	clock_gettime(c, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long below_mono, below_wall;

/* check reads the cgroup's kmem usage and reports the first crossing. */
static void check(void) {
	if (crossat == 0 || crossed) return;
	int fd = open(usagefile, O_RDONLY);
	if (fd < 0) return;
	char b[64];
	ssize_t n = read(fd, b, sizeof b - 1);
	long long mono = ns(CLOCK_MONOTONIC), wall = ns(CLOCK_REALTIME);
	close(fd);
	if (n <= 0) return;
	b[n] = 0;
	if (strtoull(b, NULL, 10) > crossat) {
		printf("cross %lld %lld %lld %lld\n", mono, wall, below_mono, below_wall);
		fflush(stdout);
		crossed = 1;
	} else {
		below_mono = ns(CLOCK_MONOTONIC);
		below_wall = ns(CLOCK_REALTIME);
	}
}

static void step(void) {
	if (delayus > 0) usleep(delayus);
	check();
}

static void *sleeper(void *arg) { (void)arg; for (;;) pause(); return NULL; }

int main(int argc, char **argv) {
	if (argc != 10) { fprintf(stderr, "usage: inflate DIR NFILES NPIPES PIPEDATA NMAPS NTHREADS USAGEFILE CROSSAT DELAYUS\n"); return 2; }
	const char *dir = argv[1];
	int nfiles = atoi(argv[2]), npipes = atoi(argv[3]), pipedata = atoi(argv[4]);
	int nmaps = atoi(argv[5]), nthreads = atoi(argv[6]);
	usagefile = argv[7];
	crossat = strtoull(argv[8], NULL, 10);
	delayus = atol(argv[9]);
	struct rlimit rl = { (rlim_t)npipes * 2 + 64, (rlim_t)npipes * 2 + 64 };
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) { perror("inflate: setrlimit"); return 1; }

	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 64 << 10);
	for (int i = 0; i < nthreads; i++) {
		pthread_t t;
		if (pthread_create(&t, &at, sleeper, NULL) != 0) { fprintf(stderr, "inflate: thread %d failed\n", i); return 1; }
		if (i % 64 == 63) step(); else check();
	}
	step();

	char *data = calloc(1, pipedata > 0 ? pipedata : 1);
	memset(data, 'x', pipedata);
	for (int i = 0; i < npipes; i++) {
		int p[2];
		if (pipe(p) != 0) { perror("inflate: pipe"); return 1; }
		if (pipedata > 0 && write(p[1], data, pipedata) != pipedata) { perror("inflate: write"); return 1; }
		if (i % 64 == 63) step(); else check();
	}
	step();

	const size_t huge = 2 << 20;
	char *base = mmap(NULL, (size_t)(nmaps + 1) * huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) { perror("inflate: reserve"); return 1; }
	base = (char *)(((uintptr_t)base + huge - 1) & ~(uintptr_t)(huge - 1));
	for (int i = 0; i < nmaps; i++) {
		char *p = base + (size_t)i * huge;
		if (mmap(p, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) { perror("inflate: mmap"); return 1; }
		p[0] = 1;
		if (i % 64 == 63) step(); else check();
	}
	step();

	char path[4096];
	for (int i = 0; i < nfiles; i++) {
		snprintf(path, sizeof path, "%s/f%d", dir, i);
		int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		if (fd < 0) { perror("inflate: create"); return 1; }
		close(fd);
		if (i % 64 == 63) step(); else check();
	}
	step();
	printf("ready\n");
	fflush(stdout);
	for (;;) pause();
}
`
