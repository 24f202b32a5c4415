package daemon

import (
	"log/slog"
	"time"

	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/sys"
)

// realtimeHold is how long the memory loop stays at SCHED_FIFO after the
// last step that saw a task stalled on memory.
const realtimeHold = 2 * time.Second

// realtimeGovernor decides when the memory loop's thread runs at
// SCHED_FIFO for the memory's sake (loopScheduler adds the steps that
// act): from the first step that sees the memory "some" stall total
// grow (a task waited for memory: reclaim, refaults, swap-in; the
// system's total, or a scoped daemon's scopes' where they have PSI: see
// loopPressure) until realtimeHold passes without growth. Under such a
// stall every runnable task competes with reclaim for the CPUs, and a
// normal thread's pass from trigger to kill took 150 to 320 ms in a
// 2-vCPU guest paging to zram, 40 to 45 ms at SCHED_FIFO (bench/vm). Without a stall the loop's
// polls and the warming of its process cache run as any other task: at
// SCHED_FIFO they take a CPU whole, and every task sharing it waits
// (bench/vm's probe: the worst stall of a fast hog's run). The pass that
// decides a kill still runs at SCHED_FIFO: at normal priority beside the
// hog it took up to 143 ms instead of 20 to 40. Without PSI the loop
// always runs at SCHED_FIFO, as it cannot tell.
//
// want is pure: it takes the step's pressure and clock and returns the
// policy the thread should have.
type realtimeGovernor struct {
	total   uint64    // memory "some" total at the last step
	seen    bool      // total is set
	stalled time.Time // last step that saw the total grow
}

// want records the memory pressure p seen at now and reports whether the
// loop should run at SCHED_FIFO.
func (g *realtimeGovernor) want(p policy.PressureFile, now time.Time) bool {
	if !p.Valid {
		return true
	}
	if g.seen && p.Some.Total > g.total {
		g.stalled = now
	}
	g.total, g.seen = p.Some.Total, true
	return !g.stalled.IsZero() && now.Sub(g.stalled) < realtimeHold
}

// loopScheduler moves the memory loop's thread between SCHED_OTHER and
// SCHED_FIFO as its governor says. It is used only from the loop's locked
// OS thread; a nil loopScheduler (tests calling step directly, or a
// daemon without CAP_SYS_NICE) changes nothing.
type loopScheduler struct {
	gov      realtimeGovernor
	priority int
	realtime bool
	// stuck is set once a change of policy failed: the thread keeps the
	// policy it has, and the warning is not repeated at every step.
	stuck bool
	log   *slog.Logger
}

// apply records p and moves the calling thread to SCHED_FIFO when the
// governor wants it or when acting is urgent (a trigger level is reached
// or a kill is in flight: the pass that decides and the kill then run
// whole), and back to SCHED_OTHER otherwise, if it is not there already.
func (s *loopScheduler) apply(p policy.PressureFile, now time.Time, urgent bool) {
	if s == nil || s.stuck {
		return
	}
	want := s.gov.want(p, now) || urgent
	if want == s.realtime {
		return
	}
	var err error
	if want {
		err = sys.SetFIFO(s.priority)
	} else {
		err = sys.SetNormal()
	}
	if err != nil {
		s.log.Warn("memory loop: cannot change its scheduling policy; it keeps the one it has", "realtime", s.realtime,
			"wanted_realtime", want, "err", err)
		s.stuck = true
		return
	}
	s.realtime = want
	s.log.Debug("memory loop scheduling", "realtime", want, "memory_some_total_us", p.Some.Total)
}

// loopPressure is the memory pressure the governor follows in snap: a
// scoped daemon's own scopes' (their "some" and "full" totals summed), so
// that a stall elsewhere on a shared machine does not make it real-time;
// the system's when unscoped, or when a scope has no PSI of its own (a v1
// cgroup), since the daemon cannot tell its scopes' stalls apart then.
func loopPressure(snap *policy.Snapshot) policy.PressureFile {
	if len(snap.Scopes) == 0 {
		return snap.Pressure.Memory
	}
	p := policy.PressureFile{Valid: true, HasFull: true}
	for i := range snap.Scopes {
		sp := &snap.Scopes[i].Pressure.Memory
		if !sp.Valid {
			return snap.Pressure.Memory
		}
		p.Some.Total += sp.Some.Total
		p.Full.Total += sp.Full.Total
		p.HasFull = p.HasFull && sp.HasFull
	}
	return p
}
