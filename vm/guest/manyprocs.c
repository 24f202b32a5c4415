// manyprocs N: creates N processes that share this one's address space
// (clone(CLONE_VM) without CLONE_THREAD, 16 KiB stacks), so that N can reach
// tens of thousands in a small guest, prints how many it made, and sleeps.
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int child(void *arg) {
	(void)arg;
	for (;;)
		pause();
	return 0;
}

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000;
	size_t stsz = 16384;
	char *stacks = mmap(NULL, stsz * n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (stacks == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	// No transparent huge pages: each child touches one 4 KiB page of its stack.
	madvise(stacks, stsz * n, MADV_NOHUGEPAGE);
	long made = 0;
	for (long i = 0; i < n; i++) {
		if (clone(child, stacks + stsz * (i + 1), CLONE_VM | SIGCHLD, NULL) < 0) {
			perror("clone");
			break;
		}
		made++;
	}
	printf("manyprocs: %ld processes\n", made);
	fflush(stdout);
	for (;;)
		pause();
}
