package kmemguard

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/action"
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
	if _, err := fd.ProcessMrelease(); err != nil {
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
	c.ProtectedBy = g.protectedName(p.PID)
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
	if why := g.Protected(pid); why != "" {
		return fail(fmt.Errorf("pid %d is protected (%s)", pid, why))
	}
	return fd, nil
}

// Protected tells why the guard would spare pid, read now (see
// kmembudget.Protected; Config.ProtectedName is asked at each call), or ""
// when it may kill it.
func (g *Guard) Protected(pid int) string {
	adj, err := g.cfg.Proc.OOMScoreAdj(pid)
	if err != nil {
		adj = 0
	}
	return kmembudget.Protected(kmembudget.Candidate{PID: pid, OOMScoreAdj: adj, ProtectedBy: g.protectedName(pid)}, g.cfg.SelfPID)
}

// protectedName is Config.ProtectedName's reason for pid, "" without one.
func (g *Guard) protectedName(pid int) string {
	if g.cfg.ProtectedName == nil {
		return ""
	}
	return g.cfg.ProtectedName(pid)
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
// them all (action.CgroupKiller): on v2 through cgroup.freeze and
// cgroup.kill; on v1 (or when a protected process is inside) through the
// processes' own freezer cgroup when they have one that holds nobody else,
// else SIGSTOP through pidfds, then SIGKILL through pidfds, then thaw.
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
	killer := action.CgroupKiller{
		FreezerRoot:   g.cfg.FreezerRoot,
		FreezerPath:   func(pid int) (string, bool, error) { return g.cfg.Proc.CgroupPath(pid, "freezer") },
		Protected:     g.Protected,
		FreezeTimeout: g.cfg.FreezeTimeout,
		Deadline:      g.cfg.KillTimeout,
		Mrelease:      true,
		Log:           g.log,
	}
	rep, err := killer.Kill(ctx, cg)
	for pid, why := range rep.Protected {
		g.log.Info("kmem budget: protected process left alone", "pid", pid, "why", why)
	}
	a.PIDs = rep.Killed
	a.Reason = reason + " via " + rep.Method
	if err != nil {
		a.Reason += ": " + err.Error()
		g.log.Warn("kmem budget: killing the cgroup", "cgroup", cg.Path, "how", rep.Method, "err", err)
	} else {
		g.log.Warn("kmem budget: killed the cgroup", "cgroup", cg.Path, "how", rep.Method, "pids", rep.Killed)
	}
	g.record(a)
}
