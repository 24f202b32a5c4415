package e2e

// hogSource grows memory at a fixed rate and then holds it.
//
//	hog TOTAL_MB USEC_PER_MB [shared] [wait]
//
// "shared" allocates MAP_SHARED|MAP_ANONYMOUS memory, which the OOM reaper
// cannot release (only the victim's exit frees it). "wait" reads one byte
// from stdin before allocating. It prints "ready PID" once it holds TOTAL_MB.
const hogSource = `
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 3) return 2;
	long total = atol(argv[1]), usec = atol(argv[2]);
	int shared = 0, wait = 0;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "shared")) shared = 1;
		if (!strcmp(argv[i], "wait")) wait = 1;
	}
	if (wait) { char c; if (read(0, &c, 1) != 1) return 3; }
	int flags = MAP_ANONYMOUS | (shared ? MAP_SHARED : MAP_PRIVATE);
	char *p = mmap(NULL, total << 20, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED) { perror("mmap"); return 4; }
	for (long mb = 0; mb < total; mb++) {
		for (long off = 0; off < (1 << 20); off += 4096) p[(mb << 20) + off] = 1;
		if (usec) usleep(usec);
	}
	printf("ready %d\n", getpid());
	fflush(stdout);
	for (;;) pause();
}
`

// cloneVMSource makes a process and a sibling sharing one mm through
// clone(CLONE_VM) without CLONE_THREAD, then grows memory in the shared mm.
//
//	clonevm TOTAL_MB USEC_PER_MB
//
// It prints "pids PARENT CHILD" before allocating.
const cloneVMSource = `
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int sibling(void *arg) { for (;;) pause(); return 0; }

int main(int argc, char **argv) {
	if (argc < 3) return 2;
	long total = atol(argv[1]), usec = atol(argv[2]);
	char *stack = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int child = clone(sibling, stack + (1 << 16), CLONE_VM | SIGCHLD, NULL);
	if (child < 0) { perror("clone"); return 3; }
	printf("pids %d %d\n", getpid(), child);
	fflush(stdout);
	char *p = mmap(NULL, total << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (long mb = 0; mb < total; mb++) {
		for (long off = 0; off < (1 << 20); off += 4096) p[(mb << 20) + off] = 1;
		if (usec) usleep(usec);
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) pause();
}
`

// vforkSource vforks a child that, still sharing its parent's mm, moves
// itself into the cgroup.procs files given as arguments, maps and touches
// TOTAL_MB, and then waits forever without exec'ing.
//
//	vforker TOTAL_MB PROCS_FILE...
//
// It prints "pids PARENT CHILD" to stderr from the child (the parent is
// blocked in vfork until the child execs or exits).
const vforkSource = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	long total = atol(argv[1]);
	pid_t parent = getpid();
	pid_t c = vfork();
	if (c == 0) {
		char buf[64];
		pid_t self = syscall(SYS_getpid);
		int n = snprintf(buf, sizeof buf, "%d", self);
		for (int i = 2; i < argc; i++) {
			int fd = syscall(SYS_open, argv[i], O_WRONLY);
			if (fd < 0 || syscall(SYS_write, fd, buf, n) != n) syscall(SYS_exit, 5);
			syscall(SYS_close, fd);
		}
		char *p = (char *)syscall(SYS_mmap, NULL, total << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		for (long off = 0; off < (total << 20); off += 4096) p[off] = 1;
		n = snprintf(buf, sizeof buf, "pids %d %d\n", parent, self);
		syscall(SYS_write, 2, buf, n);
		struct timespec ts = {3600, 0};
		for (;;) syscall(SYS_nanosleep, &ts, NULL);
	}
	return 0;
}
`
