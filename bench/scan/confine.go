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

// startSleepers starts a shell inside the group that forks and execs n
// sleep processes (each exec'd, as on a real machine), then becomes a sleep
// itself. Sleeps last at most lifetime, so nothing outlives a crashed run
// by long.
func (g *group) startSleepers(n int, lifetime time.Duration) error {
	secs := strconv.Itoa(int(lifetime.Seconds()))
	script := fmt.Sprintf(`for f in %s %s %s; do echo $$ > $f || exit 1; done
i=0; while [ $i -lt %d ]; do sleep %s & i=$((i+1)); done; exec sleep %s`,
		g.memory.File("cgroup.procs"), g.pids.File("cgroup.procs"), g.freezer.File("cgroup.procs"), n, secs, secs)
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Start()
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
