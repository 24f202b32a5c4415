package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oomguard/oomguard/internal/action"
	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/kmem"
	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/procfs"
)

// victimCgroup resolves the cgroup path the snapshot gave the victim (as
// /proc/PID/cgroup shows it, in the scope's hierarchy or, unscoped, the
// memory hierarchy) to its directory, and refuses the cgroups that must
// never be killed whole: a hierarchy's root, one outside every scope, and
// one with processes in child cgroups (on v1, a parent's processes and its
// children's are different workloads).
func (m *memoryKiller) victimCgroup(path string, mounts cgroupfs.Mounts) (cgroupfs.Cgroup, error) {
	if path == "" || path == "/" {
		return cgroupfs.Cgroup{}, fmt.Errorf("the victim is in the root cgroup %q, which is never killed whole", path)
	}
	var dir string
	if len(m.scopes) > 0 {
		for _, s := range m.scopes {
			mt, ok := mounts.Holding(s.Path)
			if !ok {
				continue
			}
			if d, ok := mt.DirOf(path); ok && s.Contains(d) {
				dir = d
				break
			}
		}
		if dir == "" {
			return cgroupfs.Cgroup{}, fmt.Errorf("cgroup %s is not inside the scope", path)
		}
	} else {
		mt, ok := mounts.Memory()
		if !ok {
			return cgroupfs.Cgroup{}, errors.New("no cgroup hierarchy with memory accounting is mounted")
		}
		d, ok := mt.DirOf(path)
		if !ok || d == mt.Dir {
			return cgroupfs.Cgroup{}, fmt.Errorf("cgroup %s is the root of, or outside, the hierarchy mounted at %s", path, mt.Dir)
		}
		dir = d
	}
	cg, err := cgroupfs.Open(dir)
	if err != nil {
		return cgroupfs.Cgroup{}, err
	}
	kids, err := cg.Children()
	if err != nil {
		return cgroupfs.Cgroup{}, err
	}
	for _, k := range kids {
		p, err := k.ProcsBelow()
		if err != nil {
			return cgroupfs.Cgroup{}, err
		}
		if len(p) > 0 {
			return cgroupfs.Cgroup{}, fmt.Errorf("cgroup %s has processes in its child cgroup %s", dir, k.Path)
		}
	}
	return cg, nil
}

// cgroupKiller returns the killer of whole cgroups for Rules.KillCgroup,
// and the victim's cgroup, resolved with victimCgroup. The policy already
// refused a victim whose cgroup held a protected process; a process that
// joined since is checked again (oom_score_adj -1000, protected names, PID
// 1 and oomguard itself) and left alone, and the cgroup is then not frozen
// whole.
func (m *memoryKiller) cgroupKiller(c policy.Candidate, rules policy.Rules, act action.Killer) (action.CgroupKiller, cgroupfs.Cgroup, error) {
	mounts := cgroupfs.ReadMounts("/proc/self/mountinfo")
	k := action.CgroupKiller{
		Log:           m.log,
		Deadline:      act.Deadline,
		Protected:     func(pid int) string { return protectedNow(pid, rules) },
		Mrelease:      act.Mrelease,
		MreleaseAfter: act.MreleaseAfter,
	}
	if mt, ok := mounts.V1("freezer"); ok {
		k.FreezerRoot = mt.Dir
		k.FreezerPath = func(pid int) (string, bool, error) { return kmem.ProcFS{}.CgroupPath(pid, "freezer") }
	}
	cg, err := m.victimCgroup(c.Cgroup, mounts)
	if err != nil {
		return k, cg, err
	}
	return k, cg, stillIn(cg, c.Victim, c.StartTime)
}

// stillIn checks that the victim (PID and start time) is in cg now. The
// snapshot's cgroup of a process is read when it is first seen (and again
// only after an exec), so a victim moved to another cgroup since, by a
// service manager or an administrator, would have its old cgroup, another
// workload, killed whole.
func stillIn(cg cgroupfs.Cgroup, pid int, start uint64) error {
	members, err := cg.ProcsBelow()
	if err != nil {
		return fmt.Errorf("check that victim pid %d is still in %s: %w", pid, cg.Path, err)
	}
	if !slices.Contains(members, pid) {
		return fmt.Errorf("victim pid %d is no longer in cgroup %s (moved since it was chosen), which is not killed whole", pid, cg.Path)
	}
	if st, err := action.ReadStartTime("/proc", pid); err != nil || (start != 0 && st != start) {
		return fmt.Errorf("victim pid %d is gone or was reused (start time %d, chosen with %d: %v); cgroup %s is not killed whole", pid, st, start, err, cg.Path)
	}
	return nil
}

// protectedNow tells why pid must not be killed, read from /proc now: ""
// when it may be. The command line is read only when rules.protect names
// something the comm does not already match, and then waited for at most
// cmdlineWait (see readWithin): a process whose command line cannot be
// read in time could be one the rules protect, so it is taken as
// protected.
func protectedNow(pid int, rules policy.Rules) string {
	if adj, err := (kmem.ProcFS{}).OOMScoreAdj(pid); err == nil && adj == -1000 {
		return "oom_score_adj is -1000"
	}
	if len(rules.Protected) == 0 {
		return ""
	}
	base := filepath.Join("/proc", strconv.Itoa(pid))
	comm, _ := os.ReadFile(filepath.Join(base, "comm"))
	if name, ok := rules.ProtectedName(strings.TrimSpace(string(comm)), ""); ok {
		return "protected name " + name
	}
	cmdline, ok := readWithin(filepath.Join(base, "cmdline"), cmdlineWait)
	if ok && len(cmdline) == 0 {
		// A leader that exited before its other threads has no command
		// line of its own; the process's is read through a live thread.
		if tid, live := procfs.LiveThread("/proc", pid); live {
			cmdline, ok = readWithin(filepath.Join(base, "task", strconv.Itoa(tid), "cmdline"), cmdlineWait)
		}
	}
	if !ok {
		return "its command line could not be read within " + cmdlineWait.String() +
			" (a read of /proc/PID/cmdline blocked on its mmap_lock), and rules.protect may name it by its executable"
	}
	cmdline = bytes.TrimRight(cmdline, "\x00")
	if name, ok := rules.ProtectedName(strings.TrimSpace(string(comm)), string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))); ok {
		return "protected name " + name
	}
	return ""
}

// maxBlockedReads bounds the reads readWithin may leave blocked at once;
// blockedReads holds a token for each.
const maxBlockedReads = 4

var blockedReads = make(chan struct{}, maxBlockedReads)

// readWithin reads the file at path on a goroutine of its own and waits at
// most d for it; ok is false when the read did not end in time (the
// goroutine ends when it does), or when maxBlockedReads reads are out
// already. An error reads as an empty file, as the callers take it.
func readWithin(path string, d time.Duration) (b []byte, ok bool) {
	select {
	case blockedReads <- struct{}{}:
	default:
		return nil, false
	}
	done := make(chan []byte, 1)
	go func() {
		defer func() { <-blockedReads }()
		b, _ := os.ReadFile(path)
		done <- b
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case b := <-done:
		return b, true
	case <-t.C:
		return nil, false
	}
}
