// clones: the command locks itself only through oomguard run. It reports the
// VmLck of itself, a thread, a clone(CLONE_VM) child, a fork child, a
// grandchild of that fork child, a vfork child that execs itself, and a
// vfork child that only _exits, one "name kB" line each.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

static long vmlck(void) {
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY);
	if (fd < 0) return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0) return -1;
	buf[n] = 0;
	char *p = strstr(buf, "VmLck:");
	return p ? strtol(p + 6, NULL, 10) : -1;
}

static void report(const char *name) {
	char line[64];
	int n = snprintf(line, sizeof line, "%s %ld\n", name, vmlck());
	write(1, line, n);
}

static void *thread_fn(void *arg) { report("thread"); return NULL; }
static int clone_fn(void *arg) { report("clonevm"); return 0; }

int main(int argc, char **argv) {
	if (argc > 1) { report(argv[1]); return 0; }
	report("root");

	pthread_t th;
	pthread_create(&th, NULL, thread_fn, NULL);
	pthread_join(th, NULL);

	static char stack[256 * 1024];
	pid_t c = clone(clone_fn, stack + sizeof stack, CLONE_VM | SIGCHLD, NULL);
	waitpid(c, NULL, 0);

	pid_t f = fork();
	if (f == 0) {
		report("fork");
		pid_t g = fork();
		if (g == 0) { report("grandchild"); _exit(0); }
		waitpid(g, NULL, 0);
		pid_t ge = fork();
		if (ge == 0) { execl("/proc/self/exe", argv[0], "grandchild-exec", (char *)NULL); _exit(127); }
		waitpid(ge, NULL, 0);
		_exit(0);
	}
	waitpid(f, NULL, 0);

	pid_t v = vfork();
	if (v == 0) { execl("/proc/self/exe", argv[0], "vfork-exec", (char *)NULL); _exit(127); }
	waitpid(v, NULL, 0);

	v = vfork();
	if (v == 0) { _exit(0); }
	waitpid(v, NULL, 0);
	report("root-end");
	return 0;
}
