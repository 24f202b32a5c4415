package daemon

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/sys"
)

// TestRealtimeOnlyWhileMemoryStalls walks the governor through a run: idle,
// a stall, the hold after it, a second stall, and a kernel without PSI.
func TestRealtimeOnlyWhileMemoryStalls(t *testing.T) {
	psi := func(total uint64) policy.PressureFile {
		return policy.PressureFile{Valid: true, HasFull: true, Some: policy.Pressure{Total: total}}
	}
	t0 := time.Unix(5000, 0)
	var g realtimeGovernor
	for _, c := range []struct {
		name string
		at   time.Duration
		p    policy.PressureFile
		want bool
	}{
		{"first step: nothing to compare with", 0, psi(7000), false},
		{"no task stalled since", 100 * time.Millisecond, psi(7000), false},
		{"a task stalled on memory", 200 * time.Millisecond, psi(7040), true},
		{"still stalling", 300 * time.Millisecond, psi(9000), true},
		{"no growth, within the hold", 2200 * time.Millisecond, psi(9000), true},
		{"the hold has passed", 2300 * time.Millisecond, psi(9000), false},
		{"a later stall", 8 * time.Second, psi(9001), true},
		{"the hold after it", 10*time.Second + time.Millisecond, psi(9001), false},
		{"no PSI: always", 11 * time.Second, policy.PressureFile{}, true},
		{"PSI back, total unchanged", 14 * time.Second, psi(9001), false},
	} {
		if got := g.want(c.p, t0.Add(c.at)); got != c.want {
			t.Errorf("%s: want(%d at %v) = %v, want %v", c.name, c.p.Some.Total, c.at, got, c.want)
		}
	}
}

// TestSchedulerMovesTheThread runs a loopScheduler on a locked thread of
// the test and reads the thread's policy back from the kernel after each
// step: SCHED_FIFO while the memory stall total grows or acting is
// urgent, SCHED_OTHER once the hold has passed and nothing is urgent.
func TestSchedulerMovesTheThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := sys.SetFIFO(loopPriority); err != nil {
		t.Skipf("cannot test: %v", err)
	}
	defer sys.SetNormal()
	s := &loopScheduler{priority: loopPriority, realtime: true,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	policyOf := func() uint32 {
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			t.Fatalf("sched_getattr: %v", err)
		}
		return attr.Policy
	}
	psi := func(total uint64) policy.PressureFile {
		return policy.PressureFile{Valid: true, Some: policy.Pressure{Total: total}}
	}
	t0 := time.Now()
	for _, c := range []struct {
		name   string
		at     time.Duration
		p      policy.PressureFile
		urgent bool
		want   uint32
	}{
		{"no stall seen", 0, psi(100), false, unix.SCHED_NORMAL},
		{"a stall", 50 * time.Millisecond, psi(150), false, unix.SCHED_FIFO},
		{"within the hold", time.Second, psi(150), false, unix.SCHED_FIFO},
		{"after the hold", 3 * time.Second, psi(150), false, unix.SCHED_NORMAL},
		{"a level reached without a stall", 3100 * time.Millisecond, psi(150), true, unix.SCHED_FIFO},
		{"the kill done", 3200 * time.Millisecond, psi(150), false, unix.SCHED_NORMAL},
	} {
		s.apply(c.p, t0.Add(c.at), c.urgent)
		if got := policyOf(); got != c.want {
			t.Errorf("%s: thread policy %d, want %d", c.name, got, c.want)
		}
		if s.realtime != (c.want == unix.SCHED_FIFO) {
			t.Errorf("%s: scheduler records realtime=%v", c.name, s.realtime)
		}
	}
	// A nil scheduler (tests calling step, a daemon refused SCHED_FIFO)
	// leaves the thread alone.
	var none *loopScheduler
	none.apply(psi(999), t0.Add(4*time.Second), true)
	if got := policyOf(); got != unix.SCHED_NORMAL {
		t.Errorf("nil scheduler: thread policy %d, want SCHED_NORMAL", got)
	}
}

// TestLoopPressureIsTheScopes: a scoped daemon's governor follows its
// scopes' own memory stall, summed, and the system's only when unscoped or
// when a scope has no PSI of its own (v1).
func TestLoopPressureIsTheScopes(t *testing.T) {
	psi := func(some, full uint64) policy.PressureFile {
		return policy.PressureFile{Valid: true, HasFull: true, Some: policy.Pressure{Total: some}, Full: policy.Pressure{Total: full}}
	}
	scope := func(p policy.PressureFile) policy.ScopeMemory {
		return policy.ScopeMemory{Pressure: policy.Pressures{Memory: p}}
	}
	system := psi(900000, 800000)
	for _, c := range []struct {
		name   string
		scopes []policy.ScopeMemory
		want   policy.PressureFile
	}{
		{"unscoped: the system's", nil, system},
		{"one v2 scope: its own", []policy.ScopeMemory{scope(psi(70, 30))}, psi(70, 30)},
		{"two v2 scopes: summed", []policy.ScopeMemory{scope(psi(70, 30)), scope(psi(5, 1))}, psi(75, 31)},
		{"a v1 scope among them: the system's", []policy.ScopeMemory{scope(psi(70, 30)), scope(policy.PressureFile{})}, system},
	} {
		snap := &policy.Snapshot{Scopes: c.scopes}
		snap.Pressure.Memory = system
		if got := loopPressure(snap); got != c.want {
			t.Errorf("%s: loopPressure = %+v, want %+v", c.name, got, c.want)
		}
	}
	// The governor, fed the scope's, stays at normal priority while only
	// the system stalls.
	var g realtimeGovernor
	t0 := time.Unix(5000, 0)
	for i, total := range []uint64{1000, 5000, 9000} {
		snap := &policy.Snapshot{Scopes: []policy.ScopeMemory{scope(psi(70, 30))}}
		snap.Pressure.Memory = psi(total, total)
		if g.want(loopPressure(snap), t0.Add(time.Duration(i)*100*time.Millisecond)) {
			t.Fatalf("step %d: real-time on the system's stall, with the scope's unchanged", i)
		}
	}
}
