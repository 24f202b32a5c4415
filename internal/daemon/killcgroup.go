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
	"sync"
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
// when it may be. Names in rules.protect match the comm, the base name of
// the executable (/proc/PID/exe, read without the process's mmap_lock) or
// argv[0]; the command line, whose read takes that lock, is read last and
// waited for at most cmdlineWait (readWithin). A process whose command
// line cannot be read in time is judged by its comm and executable, as the
// scanner judges one past scan.CmdlineHold: the kill of its cgroup, which
// its workload's thrashing members are most likely to hold up, goes on.
func protectedNow(pid int, rules policy.Rules) string {
	if adj, err := (kmem.ProcFS{}).OOMScoreAdj(pid); err == nil && adj == -1000 {
		return "oom_score_adj is -1000"
	}
	if len(rules.Protected) == 0 {
		return ""
	}
	base := filepath.Join("/proc", strconv.Itoa(pid))
	comm, _ := os.ReadFile(filepath.Join(base, "comm"))
	name := strings.TrimSpace(string(comm))
	if n, ok := rules.ProtectedName(name, ""); ok {
		return "protected name " + n
	}
	dir := base
	exe, err := os.Readlink(filepath.Join(dir, "exe"))
	if err != nil {
		// A leader that exited before its other threads has no mm, nor
		// executable or command line, of its own: the process's are
		// read through a live thread.
		if tid, live := procfs.LiveThread("/proc", pid); live {
			dir = filepath.Join(base, "task", strconv.Itoa(tid))
			exe, err = os.Readlink(filepath.Join(dir, "exe"))
		}
	}
	if err == nil {
		// Replaced on disk since it started (an upgrade): the path it had.
		exe = strings.TrimSuffix(exe, " (deleted)")
		if n, ok := rules.ProtectedExe(name, exe); ok {
			return "protected name " + n
		}
	}
	cmdline, ok := readWithin(filepath.Join(dir, "cmdline"), cmdlineWait)
	if !ok {
		return "" // judged by comm and executable
	}
	cmdline = bytes.TrimRight(cmdline, "\x00")
	if n, ok := rules.ProtectedName(name, string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))); ok {
		return "protected name " + n
	}
	return ""
}

// maxBlockedReads bounds the reads readWithin may have out at once.
const maxBlockedReads = 4

// blockedReads holds readWithin's reads still out, by path: a caller that
// asks for a file whose read is out waits for that read instead of making
// another, so that a process asked about again and again (the cgroup
// kill's rounds ask every few milliseconds) holds one read at most.
var blockedReads = struct {
	sync.Mutex
	m map[string]*pendingRead
}{m: map[string]*pendingRead{}}

// pendingRead is one read of readWithin's: done is closed once b holds the
// file (empty on an error). late says a caller gave up waiting for it.
type pendingRead struct {
	done chan struct{}
	b    []byte
	late bool
}

// readWithin reads the file at path on a goroutine of its own and waits at
// most d for it. ok is false when the read did not end in time (it stays
// out, and later calls for the same path do not wait for it again while
// it is; once it has ended, a call reads afresh), or when maxBlockedReads
// reads are out already. An error reads as an empty file, as the callers
// take it.
func readWithin(path string, d time.Duration) (b []byte, ok bool) {
	blockedReads.Lock()
	r := blockedReads.m[path]
	if r != nil && r.late {
		blockedReads.Unlock()
		select {
		case <-r.done:
			return r.b, true
		default:
			return nil, false
		}
	}
	if r == nil {
		if len(blockedReads.m) >= maxBlockedReads {
			blockedReads.Unlock()
			return nil, false
		}
		r = &pendingRead{done: make(chan struct{})}
		blockedReads.m[path] = r
		go func() {
			r.b, _ = os.ReadFile(path)
			blockedReads.Lock()
			delete(blockedReads.m, path)
			blockedReads.Unlock()
			close(r.done)
		}()
	}
	blockedReads.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.done:
		return r.b, true
	case <-t.C:
		blockedReads.Lock()
		r.late = true
		blockedReads.Unlock()
		return nil, false
	}
}
