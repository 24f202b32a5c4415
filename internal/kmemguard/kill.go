package kmemguard

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/actionlog"
	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/kmem"
	"github.com/oomguard/oomguard/internal/policy/kmembudget"
	"github.com/oomguard/oomguard/internal/sys"
)

// killHeaviest kills the process inside cg with the most attributed kernel
// memory.
func (g *Guard) killHeaviest(cg cgroupfs.Cgroup, d kmembudget.Decision, rep kmem.Cgroup, nums map[string]float64) {
	cands := make([]kmembudget.Candidate, 0, len(rep.Processes))
	for _, p := range rep.Processes {
		cands = append(cands, g.candidate(p))
	}
	// The attribution was read without pipe data (fast); measure exactly
	// only the processes that could still be the heaviest.
	if cs := kmembudget.Contenders(cands, g.cfg.SelfPID); len(cs) > 1 {
		full := kmem.ProcFS{Root: g.cfg.Proc.Root}
		for i, c := range cands {
			if !containsCandidate(cs, c.PID) {
				continue
			}
			if p, err := full.Process(c.PID); err == nil && p.StartTime == c.StartTime {
				cands[i] = g.candidate(p)
			}
		}
	}
	v, err := kmembudget.Heaviest(cands, g.cfg.SelfPID)
	if err != nil {
		g.log.Warn("kmem budget: nothing to kill", "cgroup", d.Cgroup, "err", err)
		g.record(actionlog.Action{Kind: "skip", Trigger: "kmem-budget", Cgroup: d.Cgroup, Numbers: nums,
			Reason: fmt.Sprintf("%s is above its kernel-memory budget but %v", d.Cgroup, err), DryRun: g.cfg.DryRun})
		return
	}
	nums = maps.Clone(nums) // the breach record keeps its own
	nums["victim_kmem"] = float64(v.KernelMemory)
	reason := fmt.Sprintf("kill pid %d (%s), the heaviest kernel-memory user in %s with %s attributed; cgroup kernel memory %s > budget %s",
		v.PID, v.Comm, d.Cgroup, kmembudget.FormatBytes(v.KernelMemory), kmembudget.FormatBytes(d.Usage), kmembudget.FormatBytes(d.Budget.Max))
	a := actionlog.Action{Kind: "kill", Trigger: "kmem-budget", Reason: reason, Cgroup: d.Cgroup,
		PIDs: []int{v.PID}, Numbers: nums, DryRun: g.cfg.DryRun}
	if g.cfg.DryRun {
		g.log.Warn("kmem budget: dry run, would kill", "pid", v.PID, "comm", v.Comm, "cgroup", d.Cgroup)
		g.record(a)
		return
	}
	fd, err := g.openMember(cg, v.PID, v.StartTime)
	if err != nil {
		g.log.Warn("kmem budget: victim not killed", "pid", v.PID, "cgroup", d.Cgroup, "err", err)
		a.Kind, a.Reason = "skip", reason+": "+err.Error()
		g.record(a)
		return
	}
	defer fd.Close()
	sent := time.Now()
	a.Time = sent // the kill happened when SIGKILL was sent
	if err := fd.SendSignal(unix.SIGKILL); err != nil {
		g.log.Warn("kmem budget: kill failed", "pid", v.PID, "err", err)
		a.Kind, a.Reason = "skip", reason+": "+err.Error()
		g.record(a)
		return
	}
	if err := fd.ProcessMrelease(); err != nil {
		g.log.Debug("kmem budget: process_mrelease", "pid", v.PID, "err", err)
	}
	dead, _ := fd.WaitExit(g.cfg.KillTimeout)
	nums["exit_wait_seconds"] = time.Since(sent).Seconds()
	g.log.Warn("kmem budget: killed the heaviest kernel-memory user", "pid", v.PID, "comm", v.Comm,
		"cgroup", d.Cgroup, "kmem", v.KernelMemory, "exited", dead, "exit_wait", time.Since(sent))
	g.record(a)
}

// candidate turns an attributed process into a victim candidate. Where the
// pipe data was not read, the upper bound counts every pipe as full to
// fs.pipe-max-size.
func (g *Guard) candidate(p kmem.Process) kmembudget.Candidate {
	c := kmembudget.Candidate{
		PID: p.PID, StartTime: p.StartTime, Comm: p.Comm, OOMScoreAdj: p.OOMScoreAdj,
		KernelMemory: p.Total, Exiting: p.State == "Z" || p.State == "X",
	}
	if !p.PipeDataRead {
		c.UpperBound = p.Total + uint64(p.Pipes)*g.pipeMax
	}
	return c
}

func containsCandidate(cs []kmembudget.Candidate, pid int) bool {
	for _, c := range cs {
		if c.PID == pid {
			return true
		}
	}
	return false
}

// errNotMember says a PID is no longer (or never was) in the cgroup.
var errNotMember = errors.New("not in the budgeted cgroup")

// openMember opens a pidfd for pid and checks, after opening, that it is
// the same process (start time, when start is not 0), that it is still in
// cg or a descendant, and that it is not protected. From then on the pidfd
// names that process and no other.
func (g *Guard) openMember(cg cgroupfs.Cgroup, pid int, start uint64) (*sys.PidFD, error) {
	fd, err := sys.PidfdOpen(pid)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*sys.PidFD, error) { fd.Close(); return nil, err }
	if start != 0 {
		st, err := g.cfg.Proc.StartTime(pid)
		if err != nil {
			return fail(err)
		}
		if st != start {
			return fail(fmt.Errorf("pid %d was reused (start time %d, want %d)", pid, st, start))
		}
	}
	members, err := kmem.Members(cg)
	if err != nil {
		return fail(err)
	}
	if !contains(members, pid) {
		return fail(fmt.Errorf("pid %d: %w %s", pid, errNotMember, cg.Path))
	}
	if why := g.protected(pid); why != "" {
		return fail(fmt.Errorf("pid %d is protected (%s)", pid, why))
	}
	return fd, nil
}

func (g *Guard) protected(pid int) string {
	adj, err := g.cfg.Proc.OOMScoreAdj(pid)
	if err != nil {
		adj = 0
	}
	return kmembudget.Protected(kmembudget.Candidate{PID: pid, OOMScoreAdj: adj}, g.cfg.SelfPID)
}

func contains(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

// killCgroup stops every process in cg and its descendants, then kills
// them all: on v2 through cgroup.freeze and cgroup.kill; on v1 (or when a
// protected process is inside) through the processes' own freezer cgroup
// when they have one that holds nobody else, else SIGSTOP through pidfds,
// then SIGKILL through pidfds, then thaw.
func (g *Guard) killCgroup(ctx context.Context, cg cgroupfs.Cgroup, d kmembudget.Decision, nums map[string]float64) {
	members, err := kmem.Members(cg)
	if err != nil {
		g.log.Warn("kmem budget: listing the cgroup", "cgroup", cg.Path, "err", err)
		return
	}
	reason := fmt.Sprintf("kill every process in %s (%d): kernel memory %s > budget %s",
		cg.Path, len(members), kmembudget.FormatBytes(d.Usage), kmembudget.FormatBytes(d.Budget.Max))
	a := actionlog.Action{Kind: "kill", Trigger: "kmem-budget", Reason: reason, Cgroup: cg.Path,
		PIDs: members, Numbers: nums, DryRun: g.cfg.DryRun}
	if g.cfg.DryRun {
		g.log.Warn("kmem budget: dry run, would kill the cgroup", "cgroup", cg.Path, "pids", members)
		g.record(a)
		return
	}
	a.Time = time.Now()
	var how string
	var killed []int
	anyProtected := false
	for _, pid := range members {
		if g.protected(pid) != "" {
			anyProtected = true
		}
	}
	if cg.Version == cgroupfs.V2 && cg.Has("cgroup.kill") && !anyProtected {
		how, killed, err = g.killV2(cg, members)
	} else {
		how, killed, err = g.killMembers(ctx, cg)
	}
	a.PIDs = killed
	a.Reason = reason + " via " + how
	if err != nil {
		a.Reason += ": " + err.Error()
		g.log.Warn("kmem budget: killing the cgroup", "cgroup", cg.Path, "how", how, "err", err)
	} else {
		g.log.Warn("kmem budget: killed the cgroup", "cgroup", cg.Path, "how", how, "pids", killed)
	}
	g.record(a)
}

func (g *Guard) killV2(cg cgroupfs.Cgroup, members []int) (string, []int, error) {
	how := "cgroup.freeze + cgroup.kill"
	if err := cg.Freeze(g.cfg.FreezeTimeout); err != nil {
		g.log.Warn("kmem budget: freeze before kill", "cgroup", cg.Path, "err", err)
	}
	err := cg.Kill()
	if terr := cg.Thaw(); err == nil {
		err = terr
	}
	if err == nil {
		err = g.waitEmpty(cg)
	}
	return how, members, err
}

// killMembers is the v1 kill: stop everyone (freezer or SIGSTOP), SIGKILL
// through pidfds, thaw, repeated until the cgroup is empty.
func (g *Guard) killMembers(ctx context.Context, cg cgroupfs.Cgroup) (string, []int, error) {
	fds := map[int]*sys.PidFD{}
	defer func() {
		for _, fd := range fds {
			fd.Close()
		}
	}()
	var killed []int
	how := ""
	deadline := time.Now().Add(g.cfg.KillTimeout)
	for round := 0; ; round++ {
		members, err := kmem.Members(cg)
		if err != nil {
			return how, killed, err
		}
		var opened []*sys.PidFD
		for _, pid := range members {
			if _, ok := fds[pid]; ok {
				continue
			}
			if why := g.protected(pid); why != "" {
				g.log.Info("kmem budget: protected process left alone", "pid", pid, "why", why)
				continue
			}
			fd, err := sys.PidfdOpen(pid)
			if err != nil {
				continue // gone
			}
			opened = append(opened, fd)
		}
		// Membership is checked again after the pidfds are open: a PID
		// that left (or was reused outside) is not signalled.
		now, err := kmem.Members(cg)
		if err != nil {
			for _, fd := range opened {
				fd.Close()
			}
			return how, killed, err
		}
		var fresh []*sys.PidFD
		for _, fd := range opened {
			if !contains(now, fd.PID()) {
				fd.Close()
				continue
			}
			fds[fd.PID()] = fd
			fresh = append(fresh, fd)
		}
		members = now
		if len(fresh) == 0 {
			if err := g.waitEmpty(cg); err == nil || time.Now().After(deadline) || ctx.Err() != nil {
				return how, killed, err
			}
			continue
		}
		var thaw func()
		if freezer, ok := g.ownFreezer(fresh, members); ok {
			if err := freezer.Freeze(g.cfg.FreezeTimeout); err == nil {
				how = "v1 freezer " + freezer.Path + " + SIGKILL via pidfds"
				thaw = func() { freezer.Thaw() }
			} else {
				freezer.Thaw()
				g.log.Warn("kmem budget: freezer", "cgroup", freezer.Path, "err", err)
			}
		}
		if thaw == nil {
			how = "SIGSTOP + SIGKILL via pidfds"
			for _, fd := range fresh {
				fd.SendSignal(unix.SIGSTOP)
			}
		}
		for _, fd := range fresh {
			if err := fd.SendSignal(unix.SIGKILL); err == nil {
				killed = append(killed, fd.PID())
			}
		}
		if thaw != nil {
			thaw()
		}
		for _, fd := range fresh {
			fd.ProcessMrelease()
		}
		if round > 50 || time.Now().After(deadline) || ctx.Err() != nil {
			return how, killed, g.waitEmpty(cg)
		}
	}
}

// ownFreezer returns the v1 freezer cgroup the processes of fds share, when
// they all share one that is not the root and holds no process outside
// members and no protected process: freezing it stops exactly them.
func (g *Guard) ownFreezer(fds []*sys.PidFD, members []int) (cgroupfs.Cgroup, bool) {
	var rel string
	for i, fd := range fds {
		p, ok, err := g.cfg.Proc.CgroupPath(fd.PID(), "freezer")
		if err != nil || !ok || p == "/" {
			return cgroupfs.Cgroup{}, false
		}
		if i == 0 {
			rel = p
		} else if p != rel {
			return cgroupfs.Cgroup{}, false
		}
	}
	fz, err := cgroupfs.Open(filepath.Join(g.cfg.FreezerRoot, rel))
	if err != nil || fz.Version != cgroupfs.V1 || !fz.CanFreeze() {
		return cgroupfs.Cgroup{}, false
	}
	inside := map[int]bool{}
	err = fz.Walk(func(c cgroupfs.Cgroup) error {
		pids, err := c.Procs()
		for _, p := range pids {
			inside[p] = true
		}
		return err
	})
	if err != nil {
		return cgroupfs.Cgroup{}, false
	}
	for p := range inside {
		if !contains(members, p) || g.protected(p) != "" {
			return cgroupfs.Cgroup{}, false
		}
	}
	return fz, true
}

// waitEmpty waits up to KillTimeout for cg and its descendants to hold no
// process.
func (g *Guard) waitEmpty(cg cgroupfs.Cgroup) error {
	deadline := time.Now().Add(g.cfg.KillTimeout)
	for {
		m, err := kmem.Members(cg)
		if err != nil {
			return err
		}
		left := 0
		for _, p := range m {
			if g.protected(p) == "" {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still holds %d processes after %v", cg.Path, left, g.cfg.KillTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
