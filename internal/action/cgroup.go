package action

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/sys"
)

// CgroupKiller kills every process of a cgroup and its descendants, stopping
// them all first so that none can fork a replacement while the others die.
type CgroupKiller struct {
	// FreezerRoot is the v1 freezer hierarchy's mount point, or "" when
	// there is none (then v1 cgroups are stopped with SIGSTOP).
	FreezerRoot string
	// FreezerPath returns pid's cgroup path in the v1 freezer hierarchy as
	// /proc/PID/cgroup shows it (ok false when it has none). Nil: no v1
	// freezing.
	FreezerPath func(pid int) (path string, ok bool, err error)
	// Protected tells why pid must be left alone ("" when it may be
	// killed). Protected processes are never signalled, and a cgroup that
	// holds one is never frozen or killed whole. Nil protects nothing but
	// PID 1 and this process.
	Protected func(pid int) string
	// FreezeTimeout bounds waiting for a freeze, 2 s when zero.
	FreezeTimeout time.Duration
	// Deadline bounds waiting for the cgroup to empty, DefaultDeadline
	// when zero.
	Deadline time.Duration
	// Mrelease and MreleaseAfter are Killer's: with Mrelease, each member
	// still alive MreleaseAfter after its SIGKILL is reaped with
	// process_mrelease(2); without, its memory is left to its own exit.
	// The v2 cgroup.kill path reaps nothing.
	Mrelease      bool
	MreleaseAfter time.Duration
	// Log receives warnings; nil discards them.
	Log *slog.Logger
}

// CgroupKill reports what CgroupKiller.Kill did.
type CgroupKill struct {
	// Method says how: "cgroup.freeze + cgroup.kill", "v1 freezer PATH +
	// SIGKILL via pidfds" or "SIGSTOP + SIGKILL via pidfds".
	Method string
	// Killed are the PIDs that were sent SIGKILL (every member, for
	// cgroup.kill).
	Killed []int
	// Released are members process_mrelease succeeded on.
	Released []int
	// Protected are members left alone, with the reason.
	Protected map[int]string
}

func (k *CgroupKiller) protected(pid int) string {
	if pid <= 1 || pid == selfPID {
		return "oomguard itself or PID 1"
	}
	if k.Protected == nil {
		return ""
	}
	return k.Protected(pid)
}

var selfPID = unix.Getpid()

func (k *CgroupKiller) freezeTimeout() time.Duration {
	if k.FreezeTimeout > 0 {
		return k.FreezeTimeout
	}
	return 2 * time.Second
}

func (k *CgroupKiller) deadline() time.Duration {
	if k.Deadline > 0 {
		return k.Deadline
	}
	return DefaultDeadline
}

func (k *CgroupKiller) warn(msg string, args ...any) {
	if k.Log != nil {
		k.Log.Warn(msg, args...)
	}
}

// Kill stops and kills every unprotected process in cg and its descendants,
// and waits, up to Deadline, until none is left. On cgroup v2 without a
// protected member it freezes cg and writes cgroup.kill. Otherwise it opens
// a pidfd for each member, checks that the member is still in cg after
// opening it (so a PID that left, or was reused outside, is never hit),
// stops them all (through their own v1 freezer cgroup when they share one
// that holds nobody else, else SIGSTOP), sends SIGKILL, thaws, and calls
// process_mrelease; it repeats for members that appeared meanwhile.
func (k *CgroupKiller) Kill(ctx context.Context, cg cgroupfs.Cgroup) (CgroupKill, error) {
	rep := CgroupKill{Protected: map[int]string{}}
	members, err := cg.ProcsBelow()
	if err != nil {
		return rep, fmt.Errorf("kill cgroup %s: %w", cg.Path, err)
	}
	for _, pid := range members {
		if why := k.protected(pid); why != "" {
			rep.Protected[pid] = why
		}
	}
	if cg.Version == cgroupfs.V2 && cg.Has("cgroup.kill") && len(rep.Protected) == 0 {
		rep.Method = "cgroup.freeze + cgroup.kill"
		if err := cg.Freeze(k.freezeTimeout()); err != nil {
			k.warn("kill cgroup: freeze before cgroup.kill", "cgroup", cg.Path, "err", err)
		}
		err := cg.Kill()
		if terr := cg.Thaw(); err == nil {
			err = terr
		}
		rep.Killed = members
		if err == nil {
			err = k.waitKilled(ctx, cg)
		}
		return rep, err
	}
	return k.killMembers(ctx, cg, rep)
}

// Signal sends sig through pidfds to every unprotected process in cg and
// its descendants whose membership still holds once its pidfd is open, and
// returns their PIDs. It stops nothing: it is the polite first step (a
// SIGTERM) before Kill. It holds at most as many pidfds at once as there are
// descriptors to spare.
func (k *CgroupKiller) Signal(cg cgroupfs.Cgroup, sig unix.Signal) ([]int, error) {
	done := map[int]bool{}
	batch := max(fdBudget(), minBatch)
	var sent []int
	for round := 0; ; round++ {
		fds, now, err := k.openMembers(cg, done, nil, batch)
		for _, fd := range fds {
			done[fd.PID()] = true
			if fd.SendSignal(sig) == nil {
				sent = append(sent, fd.PID())
			}
			fd.Close()
		}
		if err != nil {
			return sent, fmt.Errorf("signal cgroup %s: %w", cg.Path, err)
		}
		if len(fds) == 0 || round > 10+len(now)/batch {
			return sent, nil
		}
	}
}

// openMembers opens a pidfd for every unprotected process in cg and its
// descendants that is not in known, then reads the membership again and
// keeps only the pidfds of processes still in it: a PID that left (or was
// reused outside) after its pidfd was opened is never signalled. It
// returns the kept pidfds and the membership it checked against; protected
// members are recorded in protected when it is not nil.
func (k *CgroupKiller) openMembers(cg cgroupfs.Cgroup, known map[int]bool, protected map[int]string, limit int) ([]*sys.PidFD, []int, error) {
	members, err := cg.ProcsBelow()
	if err != nil {
		return nil, nil, err
	}
	var opened []*sys.PidFD
	for _, pid := range members {
		if known[pid] {
			continue
		}
		if limit > 0 && len(opened) == limit {
			break
		}
		if why := k.protected(pid); why != "" {
			if protected != nil {
				protected[pid] = why
			}
			continue
		}
		if fd, err := sys.PidfdOpen(pid); err == nil {
			opened = append(opened, fd)
		}
	}
	now, err := cg.ProcsBelow()
	if err != nil {
		for _, fd := range opened {
			fd.Close()
		}
		return nil, nil, err
	}
	kept := opened[:0]
	for _, fd := range opened {
		if slices.Contains(now, fd.PID()) {
			kept = append(kept, fd)
		} else {
			fd.Close()
		}
	}
	return kept, now, nil
}

// WaitEmpty waits up to timeout (or until ctx ends) for cg and its
// descendants to hold no process but protected ones. It returns how many
// unprotected processes are left (0 when it emptied).
func (k *CgroupKiller) WaitEmpty(ctx context.Context, cg cgroupfs.Cgroup, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := cg.ProcsBelow()
		if err != nil {
			return 0, fmt.Errorf("wait for cgroup %s to empty: %w", cg.Path, err)
		}
		left := 0
		for _, p := range m {
			if k.protected(p) == "" {
				left++
			}
		}
		if left == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return left, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitKilled waits up to Deadline for cg to empty after the kill, and
// says so when it did not.
func (k *CgroupKiller) waitKilled(ctx context.Context, cg cgroupfs.Cgroup) error {
	left, err := k.WaitEmpty(ctx, cg, k.deadline())
	if err == nil && left > 0 {
		err = fmt.Errorf("kill cgroup %s: %d processes still there after %v", cg.Path, left, k.deadline())
	}
	return err
}

// killMembers stops everyone (freezer or SIGSTOP), sends SIGKILL through
// pidfds and thaws, repeated until the cgroup holds only protected
// processes.
func (k *CgroupKiller) killMembers(ctx context.Context, cg cgroupfs.Cgroup, rep CgroupKill) (CgroupKill, error) {
	// A round opens at most as many pidfds as there are descriptors to
	// spare, and closes them once its members have SIGKILL: a cgroup of
	// tens of thousands of processes takes several rounds.
	done := map[int]bool{}
	batch := max(fdBudget(), minBatch)
	deadline := time.Now().Add(k.deadline())
	for round := 0; ; round++ {
		fresh, now, err := k.openMembers(cg, done, rep.Protected, batch)
		if err != nil {
			return rep, fmt.Errorf("kill cgroup %s: %w", cg.Path, err)
		}
		if len(fresh) == 0 {
			err := k.waitKilled(ctx, cg)
			if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
				return rep, err
			}
			continue
		}
		var thaw func()
		if freezer, ok := k.ownFreezer(fresh, now); ok {
			if err := freezer.Freeze(k.freezeTimeout()); err == nil {
				rep.Method = "v1 freezer " + freezer.Path + " + SIGKILL via pidfds"
				thaw = func() { freezer.Thaw() }
			} else {
				freezer.Thaw()
				k.warn("kill cgroup: freezer", "cgroup", freezer.Path, "err", err)
			}
		}
		if thaw == nil {
			rep.Method = "SIGSTOP + SIGKILL via pidfds"
			for _, fd := range fresh {
				fd.SendSignal(unix.SIGSTOP)
			}
		}
		for _, fd := range fresh {
			if err := fd.SendSignal(unix.SIGKILL); err == nil {
				rep.Killed = append(rep.Killed, fd.PID())
			}
		}
		if thaw != nil {
			thaw()
		}
		if k.Mrelease {
			rep.Released = append(rep.Released, k.mrelease(ctx, fresh, deadline)...)
		}
		for _, fd := range fresh {
			done[fd.PID()] = true
			fd.Close()
		}
		if round > 50+len(now)/batch || time.Now().After(deadline) || ctx.Err() != nil {
			return rep, k.waitKilled(ctx, cg)
		}
	}
}

// mrelease waits up to MreleaseAfter (not past deadline) for the members
// of fds, SIGKILLed, to exit by themselves, then reaps those still alive
// with process_mrelease and returns the PIDs it reaped.
func (k *CgroupKiller) mrelease(ctx context.Context, fds []*sys.PidFD, deadline time.Time) []int {
	alive := func() []*sys.PidFD {
		var left []*sys.PidFD
		for _, fd := range fds {
			if done, err := fd.Exited(); err != nil || !done {
				left = append(left, fd)
			}
		}
		return left
	}
	left := alive()
	until := time.Now().Add(k.MreleaseAfter)
	if until.After(deadline) {
		until = deadline
	}
	for len(left) > 0 && time.Now().Before(until) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
		left = alive()
	}
	var released []int
	for _, fd := range left {
		if ok, err := fd.ProcessMrelease(); err == nil && ok {
			released = append(released, fd.PID())
		}
	}
	return released
}

// ownFreezer returns the v1 freezer cgroup the processes of fds share, when
// they all share one that is not the root and holds no process outside
// members and no protected process: freezing it stops exactly them.
func (k *CgroupKiller) ownFreezer(fds []*sys.PidFD, members []int) (cgroupfs.Cgroup, bool) {
	if k.FreezerRoot == "" || k.FreezerPath == nil {
		return cgroupfs.Cgroup{}, false
	}
	var rel string
	for i, fd := range fds {
		p, ok, err := k.FreezerPath(fd.PID())
		if err != nil || !ok || p == "/" {
			return cgroupfs.Cgroup{}, false
		}
		if i == 0 {
			rel = p
		} else if p != rel {
			return cgroupfs.Cgroup{}, false
		}
	}
	fz, err := cgroupfs.Open(filepath.Join(k.FreezerRoot, rel))
	if err != nil || fz.Version != cgroupfs.V1 || !fz.CanFreeze() {
		return cgroupfs.Cgroup{}, false
	}
	inside, err := fz.ProcsBelow()
	if err != nil {
		return cgroupfs.Cgroup{}, false
	}
	for _, p := range inside {
		if !slices.Contains(members, p) || k.protected(p) != "" {
			return cgroupfs.Cgroup{}, false
		}
	}
	return fz, true
}
