// clonevm: a memory hog that shares its address space with a sibling made
// by clone(CLONE_VM) without CLONE_THREAD. Killing only one of the two frees
// nothing. Usage: clonevm MB RATE_MB_PER_S
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int sharer(void *arg) {
	(void)arg;
	for (;;)
		pause();
	return 0;
}

int main(int argc, char **argv) {
	long mb = argc > 1 ? atol(argv[1]) : 1024;
	long rate = argc > 2 ? atol(argv[2]) : 0;
	size_t stsz = 1 << 16;
	char *stack = mmap(NULL, stsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int pid = clone(sharer, stack + stsz, CLONE_VM | SIGCHLD, NULL);
	if (pid < 0) {
		perror("clone");
		return 1;
	}
	fprintf(stderr, "clonevm %d: sharer %d\n", getpid(), pid);
	size_t size = (size_t)mb << 20;
	char *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t x = 88172645463325252ull ^ getpid();
	for (size_t off = 0; off < size; off += 4096) {
		for (size_t i = off; i < off + 2048; i += 8) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			*(uint64_t *)(mem + i) = x;
		}
		if (rate > 0 && off % (1 << 20) == 0) {
			double want = (double)off / (double)(rate << 20);
			clock_gettime(CLOCK_MONOTONIC, &t);
			double have = (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
			if (want > have)
				usleep((useconds_t)((want - have) * 1e6));
		}
	}
	for (;;)
		pause();
}
