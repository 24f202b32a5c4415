package daemon

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/scan"
)

// countingScanner is a snapshotter whose System reports avail out of
// 100 units of memory (no swap), whose Processes counts its calls and
// returns procs, and whose Warm reads one of cold processes per call, as a
// slice too short for more would. It records the candidates of each
// ConfirmGroup call and counts KeepKernelThreads calls.
type countingScanner struct {
	avail     uint64
	processes int
	warms     int
	cold      int
	procs     []policy.Process
	confirmed [][]int
	kept      int
}

func (c *countingScanner) Warm(time.Time) (int, error) {
	c.warms++
	c.cold = max(c.cold-1, 0)
	return c.cold, nil
}

func (c *countingScanner) System(snap *policy.Snapshot) error {
	snap.Memory = policy.Memory{Total: 100, Available: c.avail}
	return nil
}
func (c *countingScanner) Processes(snap *policy.Snapshot) error {
	c.processes++
	snap.Processes = append(snap.Processes[:0], c.procs...)
	return nil
}
func (c *countingScanner) ConfirmGroup(pid int, candidates []int) ([]int, error) {
	c.confirmed = append(c.confirmed, candidates)
	return []int{pid}, nil
}
func (c *countingScanner) ReadRefaultsBelow(float64)          {}
func (c *countingScanner) LastPass() scan.PassStats           { return scan.PassStats{} }
func (c *countingScanner) CgroupKernel(snap *policy.Snapshot) {}
func (c *countingScanner) KeepKernelThreads()                 { c.kept++ }

// TestWarmBeforeTheLevel checks that a step with no trigger level warms
// the process cache while memory is within warmBand points of the SIGTERM
// level: a slice per step until no process is left cold, then again
// warmEvery after that; and that it leaves the cache alone above the band
// and never runs a whole pass.
func TestWarmBeforeTheLevel(t *testing.T) {
	sc := &countingScanner{cold: 3}
	m := &memoryKiller{
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		scan:     sc,
		triggers: policy.Triggers{MemAvail: policy.MemAvailTrigger{Enabled: true, MemTermPercent: 10, MemKillPercent: 5, MemoryOnly: true}},
		policy:   policy.NewKiller(policy.KillConfig{}, policy.Rules{}),
		interval: time.Second,
	}
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		name  string
		avail uint64
		at    time.Duration
		cold  int // processes that appeared since the last step, if any
		want  int // Warm calls so far
	}{
		{"far from the level", 60, 0, 0, 0},
		{"just outside the band", 20, 100 * time.Millisecond, 0, 0},
		{"inside the band: a slice, two left cold", 19, 200 * time.Millisecond, 0, 1},
		{"two left: another slice", 18, 210 * time.Millisecond, 0, 2},
		{"one left: the last slice", 17, 220 * time.Millisecond, 0, 3},
		{"none left, within warmEvery", 16, 230 * time.Millisecond, 2, 3},
		{"still within warmEvery", 15, 1100 * time.Millisecond, 0, 3},
		{"warmEvery after the last round", 15, 1230 * time.Millisecond, 0, 4},
		{"the new one left", 15, 1240 * time.Millisecond, 0, 5},
		{"round done", 15, 1250 * time.Millisecond, 0, 5},
		{"back above the band", 50, 2500 * time.Millisecond, 3, 5},
	} {
		sc.avail = c.avail
		next := m.step(context.Background(), t0.Add(c.at))
		sc.cold += c.cold
		if sc.warms != c.want {
			t.Errorf("%s: %d Warm calls, want %d", c.name, sc.warms, c.want)
		}
		if sc.processes != 0 {
			t.Errorf("%s: %d whole passes below the levels, want none", c.name, sc.processes)
		}
		if m.last.Level != policy.LevelNone {
			t.Fatalf("%s: level %v, want none (the test is about steps below the levels)", c.name, m.last.Level)
		}
		if next <= 0 {
			t.Errorf("%s: next poll in %v", c.name, next)
		}
	}
}

// TestRehearsalKillsNothing checks that the rehearsal before the loop runs
// a whole decision (a pass, a choice, the kcmp check of the victim, asking
// only processes with an mm), then empties the cache but for kernel
// threads, and leaves the killer as it was: no victim in flight, so the
// first real step decides afresh.
func TestRehearsalKillsNothing(t *testing.T) {
	sc := &countingScanner{avail: 90, procs: []policy.Process{
		{PID: 1, Comm: "init", State: 'S', RSS: 4 << 20, MMGroup: 1},
		{PID: 2, Comm: "kthreadd", State: 'S', KernelThread: true},
		{PID: 300, Comm: "hog", State: 'R', RSS: 400 << 20, MMGroup: 300},
		{PID: 301, Comm: "hog", State: 'S', RSS: 400 << 20, MMGroup: 300},
		{PID: 302, Comm: "zombie", State: 'Z', Exiting: true},
	}}
	m := &memoryKiller{
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		scan:   sc,
		policy: policy.NewKiller(policy.KillConfig{}, policy.Rules{}),
	}
	m.rehearse(time.Unix(1000, 0))
	if sc.processes != 1 || sc.kept != 1 {
		t.Errorf("rehearsal: %d passes, %d KeepKernelThreads calls, want 1 and 1", sc.processes, sc.kept)
	}
	if want := [][]int{{1, 300, 301}}; !slices.EqualFunc(sc.confirmed, want, slices.Equal[[]int]) {
		t.Errorf("rehearsal confirmed the victim's mm among %v, want %v (the processes with an mm)", sc.confirmed, want)
	}
	if _, inFlight := m.policy.InFlight(); inFlight {
		t.Error("the rehearsal left a victim in flight")
	}
}

// TestRehearseTriggersReachesALevel: the rehearsal of the triggers reaches
// the kill level with the default triggers, for an unscoped daemon (with
// and without swap) and for a scoped one, so that the code that builds a
// verdict's reason has run; the snapshot it was given is not modified.
func TestRehearseTriggersReachesALevel(t *testing.T) {
	tests := []struct {
		name string
		snap policy.Snapshot
	}{
		{"machine without swap", policy.Snapshot{Memory: policy.Memory{Total: 512 << 20, Available: 400 << 20}}},
		{"machine with swap", policy.Snapshot{Memory: policy.Memory{Total: 512 << 20, Available: 400 << 20, SwapTotal: 256 << 20, SwapFree: 256 << 20}}},
		{"scope with a limit", policy.Snapshot{Memory: policy.Memory{Total: 8 << 30, Available: 6 << 30},
			Scopes: []policy.ScopeMemory{{Path: "/sys/fs/cgroup/app", Usage: 10 << 20, Limit: 100 << 20, RefaultFile: -1, OOMKills: -1}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.snap.Time = time.Unix(1000, 0)
			before := tc.snap
			before.Scopes = slices.Clone(tc.snap.Scopes)
			v := rehearseTriggers(&tc.snap, policy.DefaultTriggers())
			if v.Level != policy.LevelKill || v.Reason == "" {
				t.Errorf("rehearsal verdict %+v, want the kill level with a reason", v)
			}
			if diff := cmp.Diff(before, tc.snap); diff != "" {
				t.Errorf("the rehearsal modified the snapshot (-before +after):\n%s", diff)
			}
		})
	}
}

// TestRehearseChoiceChoosesItsOwnProcess: with no eligible process (only
// init and a kernel thread), the rehearsal's decision is a kill of the
// process it added, which no process can be, and the snapshot is not
// modified.
func TestRehearseChoiceChoosesItsOwnProcess(t *testing.T) {
	snap := &policy.Snapshot{Time: time.Unix(1000, 0), Memory: policy.Memory{Total: 512 << 20}, Processes: []policy.Process{
		{PID: 1, Comm: "init", State: 'S', RSS: 4 << 20, MMGroup: 1},
		{PID: 2, Comm: "kthreadd", State: 'S', KernelThread: true},
	}}
	before := slices.Clone(snap.Processes)
	v := policy.Verdict{Level: policy.LevelKill, Trigger: "rehearsal", Scope: -1, Reason: "rehearsal"}
	// A user's rules that would shield the added process's name do not
	// keep the choice from being rehearsed.
	for _, tc := range []struct {
		name  string
		rules policy.Rules
	}{
		{"no rules", policy.Rules{}},
		{"protected by name", policy.Rules{Protected: []string{"rehearsal"}}},
		{"ignored by pattern", policy.Rules{Ignore: []*regexp.Regexp{regexp.MustCompile("^re")}}},
		{"avoided", policy.Rules{Avoid: []*regexp.Regexp{regexp.MustCompile(".*")}}},
	} {
		d := rehearseChoice(snap, v, policy.KillConfig{}, tc.rules)
		if d.Kind != policy.DecideKill || d.Victim.Victim != rehearsalPID || d.Reason == "" {
			t.Errorf("%s: rehearsal decision %v victim %d reason %q, want a kill of PID %d with a reason", tc.name, d.Kind, d.Victim.Victim, d.Reason, rehearsalPID)
		}
	}
	if diff := cmp.Diff(before, snap.Processes); diff != "" {
		t.Errorf("the rehearsal modified the snapshot (-before +after):\n%s", diff)
	}
}

// sharersScanner is a countingScanner whose ConfirmGroup finds, beside
// pid, the tasks in sharers.
type sharersScanner struct {
	countingScanner
	sharers []int
}

func (c *sharersScanner) ConfirmGroup(pid int, candidates []int) ([]int, error) {
	c.confirmed = append(c.confirmed, candidates)
	return append([]int{pid}, c.sharers...), nil
}

// TestConfirmSharersThroughThreads: the check before a kill compares each
// process through the task the snapshot read it by, a live thread for a
// process whose leader exited (its own mm is gone), and adds a sharer the
// grouping missed by its PID, once.
func TestConfirmSharersThroughThreads(t *testing.T) {
	sc := &sharersScanner{sharers: []int{21, 21}}
	m := &memoryKiller{log: slog.New(slog.NewTextHandler(io.Discard, nil)), scan: sc}
	m.snap.Processes = []policy.Process{
		{PID: 10, Comm: "hog", State: 'R', MMGroup: 10},
		{PID: 20, Comm: "holder", State: 'Z', MMTask: 21, MMGroup: 20},
		{PID: 30, Comm: "kworker", KernelThread: true},
	}
	dec := policy.Decision{Kind: policy.DecideKill, Victim: policy.Candidate{Victim: 10, PIDs: []int{10},
		Members: []policy.Member{{PID: 10, Comm: "hog"}}}}
	m.confirmSharers(&dec)
	if diff := cmp.Diff([][]int{{10, 21}}, sc.confirmed); diff != "" {
		t.Errorf("ConfirmGroup candidates (-want +got):\n%s", diff)
	}
	if !slices.Equal(dec.Victim.PIDs, []int{10, 20}) || len(dec.Victim.Members) != 2 || dec.Victim.Members[1].PID != 20 {
		t.Errorf("victim PIDs %v, members %+v; want 10 and 20, the sharer added once by its PID", dec.Victim.PIDs, dec.Victim.Members)
	}
}
