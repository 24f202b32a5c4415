package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/cgroupfs"
)

// group is one confinement for sleepers: a v1 memory cgroup nested under our
// own, a v1 pids cgroup and a v1 freezer cgroup, as testbed makes them.
type group struct {
	name                  string
	memory, pids, freezer cgroupfs.Cgroup
}

const v1Root = "/sys/fs/cgroup"

// ownMemoryCgroup is this process's v1 memory cgroup directory.
func ownMemoryCgroup() (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && parts[1] == "memory" {
			return filepath.Join(v1Root, "memory", parts[2]), nil
		}
	}
	return "", errors.New("no memory line in /proc/self/cgroup")
}

// newGroup creates the cgroups with memory.limit_in_bytes memLimit and
// pids.max pidsMax.
func newGroup(name string, memLimit int64, pidsMax int) (*group, error) {
	own, err := ownMemoryCgroup()
	if err != nil {
		return nil, err
	}
	g := &group{name: name}
	dirs := []string{filepath.Join(own, name), filepath.Join(v1Root, "pids", name), filepath.Join(v1Root, "freezer", name)}
	cgs := []*cgroupfs.Cgroup{&g.memory, &g.pids, &g.freezer}
	for i, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			g.remove()
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		if *cgs[i], err = cgroupfs.Open(d); err != nil {
			g.remove()
			return nil, err
		}
	}
	if err := g.memory.WriteFile("memory.limit_in_bytes", strconv.FormatInt(memLimit, 10)); err != nil {
		g.remove()
		return nil, err
	}
	if err := g.pids.WriteFile("pids.max", strconv.Itoa(pidsMax)); err != nil {
		g.remove()
		return nil, err
	}
	return g, nil
}

// startSleepers runs launcher inside the group: it joins the group's
// cgroups, then forks and execs n sleepers (each exec'd, so each has an
// address-space layout of its own, as on a real machine) and waits.
// Launcher and sleepers end by themselves after lifetime (alarm), so nothing
// outlives a crashed run by long.
func (g *group) startSleepers(bins *programs, n int, lifetime time.Duration) error {
	cmd := exec.Command(bins.launcher, strconv.Itoa(n), bins.sleeper, strconv.Itoa(int(lifetime.Seconds())),
		g.memory.File("cgroup.procs"), g.pids.File("cgroup.procs"), g.freezer.File("cgroup.procs"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Start()
}

// programs are the launcher and sleeper binaries, built with gcc -static.
type programs struct {
	dir, launcher, sleeper string
}

const launcherSource = `
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
	if (argc < 5) { fprintf(stderr, "usage: launcher N SLEEPER SECONDS PROCS...\n"); return 2; }
	char pid[32];
	int len = snprintf(pid, sizeof pid, "%d", getpid());
	for (int i = 4; i < argc; i++) {
		int fd = open(argv[i], O_WRONLY);
		if (fd < 0 || write(fd, pid, len) != len) { perror(argv[i]); return 1; }
		close(fd);
	}
	int n = atoi(argv[1]);
	for (int i = 0; i < n; i++) {
		pid_t c = fork();
		if (c == 0) { execl(argv[2], "sleeper", argv[3], (char *)0); _exit(127); }
		if (c < 0) { perror("launcher: fork"); break; }
	}
	alarm(atoi(argv[3]));
	for (;;) pause();
}
`

const sleeperSource = `
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
	alarm(argc > 1 ? atoi(argv[1]) : 600);
	for (;;) pause();
}
`

// buildPrograms compiles the launcher and the sleeper into a new temporary
// directory.
func buildPrograms() (*programs, error) {
	dir, err := os.MkdirTemp("", "oomguard-bench-scan-")
	if err != nil {
		return nil, err
	}
	p := &programs{dir: dir, launcher: filepath.Join(dir, "launcher"), sleeper: filepath.Join(dir, "sleeper")}
	for bin, src := range map[string]string{p.launcher: launcherSource, p.sleeper: sleeperSource} {
		if err := os.WriteFile(bin+".c", []byte(src), 0o644); err != nil {
			return nil, err
		}
		if out, err := exec.Command("gcc", "-O2", "-static", "-o", bin, bin+".c").CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("gcc %s: %v\n%s", bin, err, out)
		}
	}
	return p, nil
}

// wait waits until the group holds n processes.
func (g *group) wait(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := g.freezer.Procs()
		if err != nil {
			return err
		}
		if len(pids) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d processes after %v", g.name, len(pids), n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends every process of the group: freeze, wait until frozen, SIGKILL
// every member, thaw, until the group is empty.
func (g *group) kill() error {
	if g.freezer.Path == "" {
		return nil
	}
	if err := g.freezer.Freeze(30 * time.Second); err != nil {
		return err
	}
	for round := 0; round < 1000; round++ {
		pids, err := g.freezer.Procs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		if round == 0 {
			if err := g.freezer.Thaw(); err != nil {
				return err
			}
		}
		reap()
		time.Sleep(10 * time.Millisecond)
	}
	return g.freezer.Thaw()
}

// remove removes the group's cgroups, retrying while dying members leave.
func (g *group) remove() error {
	var errs []error
	for _, c := range []cgroupfs.Cgroup{g.memory, g.pids, g.freezer} {
		if c.Path == "" {
			continue
		}
		var err error
		for i := 0; i < 500; i++ {
			reap()
			if err = os.Remove(c.Path); err == nil || os.IsNotExist(err) {
				err = nil
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reap collects every exited child; this process is a child subreaper, so
// the sleepers' zombies come here.
func reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// selfCgroup is a memory cgroup this process moves into for the
// measurements, and the one it came from.
type selfCgroup struct {
	cg, home cgroupfs.Cgroup
}

// newSelfCgroup creates a child of our memory cgroup, without a limit of its
// own, and moves this process (all its threads) into it.
func newSelfCgroup(name string) (*selfCgroup, error) {
	own, err := ownMemoryCgroup()
	if err != nil {
		return nil, err
	}
	home, err := cgroupfs.Open(own)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(own, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	cg, err := cgroupfs.Open(dir)
	if err == nil {
		err = cg.AddProc(os.Getpid())
	}
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	return &selfCgroup{cg: cg, home: home}, nil
}

// leave moves this process back and removes the cgroup.
func (s *selfCgroup) leave() {
	if err := s.home.AddProc(os.Getpid()); err != nil {
		fmt.Fprintln(os.Stderr, "bench/scan: cleanup:", err)
	}
	for i := 0; i < 500; i++ {
		if err := os.Remove(s.cg.Path); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "bench/scan: cleanup: cannot remove", s.cg.Path)
}
