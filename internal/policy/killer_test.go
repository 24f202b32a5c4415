package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// decisionRow is the part of a Decision the tables compare.
type decisionRow struct {
	Kind    DecisionKind
	Victim  int
	PIDs    []int
	Signal  Signal
	Reap    bool
	Attempt int
}

func row0(d Decision) decisionRow {
	return decisionRow{d.Kind, d.Victim.Victim, d.Victim.PIDs, d.Signal, d.Reap, d.Attempt}
}

// killStep is one tick of a scenario: optional snapshot change and outcome,
// then Decide at At with a verdict of Level.
type killStep struct {
	At      time.Duration
	Mutate  func(*Snapshot)
	Observe *Outcome
	Level   Level
	Scope   int
	Want    decisionRow
	Reason  string // substring of Decision.Reason
	Skips   []int  // PIDs of Decision.Skipped
}

func kill(pids ...int) decisionRow {
	return decisionRow{Kind: DecideKill, Victim: pids[0], PIDs: pids, Signal: SIGKILL, Reap: true, Attempt: 1}
}

func retry(pids ...int) decisionRow {
	d := kill(pids...)
	d.Attempt = 2
	return d
}

func term(pids ...int) decisionRow {
	return decisionRow{Kind: DecideKill, Victim: pids[0], PIDs: pids, Signal: SIGTERM}
}

func wait(pids ...int) decisionRow {
	return decisionRow{Kind: DecideWait, Victim: pids[0], PIDs: pids}
}

var none = decisionRow{Kind: DecideNone}

// without removes processes from the snapshot (they died).
func without(pids ...int) func(*Snapshot) {
	return func(s *Snapshot) {
		out := s.Processes[:0]
		for _, p := range s.Processes {
			keep := true
			for _, pid := range pids {
				keep = keep && p.PID != pid
			}
			if keep {
				out = append(out, p)
			}
		}
		s.Processes = out
	}
}

// unread makes the command lines of pids unread (their reads blocked).
func unread(s *Snapshot, pids ...int) {
	for _, pid := range pids {
		p := proc(s, pid)
		p.Cmdline, p.CmdlineUnread = "", true
	}
}

// hogExe is the scanner reading the executable of clone_vm.json's hog
// group, its command line unread (scan.CmdlineHold).
func hogExe(s *Snapshot) {
	proc(s, 6000).Exe = "/opt/hog/clonevm-hog"
	proc(s, 6001).Exe = "/opt/hog/clonevm-hog"
}

func TestKiller(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	const s = time.Second
	const ms = time.Millisecond
	tests := []struct {
		name    string
		fixture string
		cfg     KillConfig
		rules   Rules
		setup   func(*Snapshot)
		steps   []killStep
		after   func(t *testing.T, k *Killer, snap *Snapshot)
	}{
		{
			name: "a dying victim blocks a second victim until it is gone", fixture: "scope_hog.json",
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: kill(5002), Reason: "scope kill: scope test; victim PID 5002 (hog): badness 59000"},
				{At: 500 * ms, Level: LevelKill, Want: wait(5002),
					Reason: "PID 5002 is dying (SIGKILL attempt 1 500ms ago, deadline in 1.5s); no second victim"},
				{At: 1 * s, Level: LevelKill, Mutate: without(5002),
					Observe: &Outcome{Kind: OutcomeExited, PID: 5002, StartTime: 50020},
					Want:    kill(5001), Reason: "victim PID 5001 (bystander)"},
			},
		},
		{
			name: "a wait with no pressure stays a wait; the victim's exit ends it", fixture: "scope_hog.json",
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: kill(5002)},
				{At: 100 * ms, Level: LevelNone, Want: wait(5002)},
				{At: 200 * ms, Observe: &Outcome{Kind: OutcomeExited, PID: 5002, StartTime: 50020}, Want: none},
				{At: 300 * ms, Level: LevelKill, Want: kill(5002)}, // still in the snapshot: chosen again
			},
		},
		{
			name: "death seen in the snapshot without an outcome", fixture: "scope_hog.json",
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: kill(5002)},
				{At: 100 * ms, Level: LevelKill, Mutate: without(5002), Want: kill(5001),
					Reason: "previous victim PID 5002 is gone; "},
			},
		},
		{
			name: "a zombie victim counts as gone", fixture: "scope_hog.json",
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: kill(5002)},
				{At: 100 * ms, Level: LevelNone, Mutate: func(s *Snapshot) { proc(s, 5002).State = 'Z' },
					Want: none, Reason: "previous victim PID 5002 is gone"},
			},
		},
		{
			name: "an empty process list tells nothing: keep waiting", fixture: "scope_hog.json",
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: kill(5002)},
				{At: 100 * ms, Level: LevelKill, Mutate: func(s *Snapshot) { s.Processes = nil }, Want: wait(5002)},
			},
		},
		{
			name: "frozen victim: retried once, skipped, next candidate killed, mark expires after thaw", fixture: "scope_hog.json",
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: kill(5002)},
				{At: 1 * s, Level: LevelKill, Want: wait(5002)},
				{At: 2*s - 1, Level: LevelKill, Want: wait(5002)},
				{At: 2 * s, Level: LevelKill, Want: retry(5002), Reason: "PID 5002 still alive 2s after SIGKILL; retrying once"},
				{At: 3 * s, Level: LevelKill, Want: wait(5002), Reason: "SIGKILL attempt 2"},
				{At: 4 * s, Level: LevelKill, Want: kill(5001), Skips: []int{5002},
					Reason: "PID 5002 survived SIGKILL twice, 2s each (frozen or in D state); marked skipped at 2026-11-25T10:00:04Z; scope kill"},
				{At: 4*s + 500*ms, Level: LevelKill, Want: wait(5001)},
				// The bystander died; the hog is still frozen and skipped.
				{At: 5 * s, Level: LevelKill, Mutate: without(5001), Want: kill(5000)},
			},
			after: func(t *testing.T, k *Killer, snap *Snapshot) {
				ranked := k.Rank(snap)
				var hog *Candidate
				for i := range ranked {
					if ranked[i].Victim == 5002 {
						hog = &ranked[i]
					}
				}
				if hog == nil || !hog.Skipped || !hog.Unkillable || !strings.Contains(hog.Reason, "survived SIGKILL twice") {
					t.Errorf("hog as the killer ranks it: %+v", hog)
				}
				if hog != nil && ranked[len(ranked)-1].Victim != 5002 {
					t.Errorf("skipped hog is not ranked last: %v", rows(ranked))
				}
				if len(Rank(snap, Rules{})) == 0 || Rank(snap, Rules{})[0].Victim != 5002 {
					t.Errorf("plain Rank must not see the killer's marks")
				}
				if got := k.Skipped(); len(got) != 1 || got[0].PID != 5002 || got[0].StartTime != 50020 {
					t.Errorf("Skipped() = %+v, want the hog", got)
				}
				// Thawed, the hog dies: its mark expires with it.
				without(5002)(snap)
				k.Decide(snap, Verdict{Scope: -1}, t0.Add(10*s))
				if got := k.Skipped(); len(got) != 0 {
					t.Errorf("Skipped() after the hog died = %+v, want none", got)
				}
			},
		},
		{
			name: "two frozen victims in a row: marks are listed oldest first", fixture: "scope_hog.json",
			cfg: KillConfig{Deadline: 500 * ms},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: kill(5002)},
				{At: 500 * ms, Level: LevelKill, Want: retry(5002)},
				{At: 1 * s, Level: LevelKill, Want: kill(5001), Skips: []int{5002}},
				{At: 1500 * ms, Level: LevelKill, Want: retry(5001)},
				{At: 2 * s, Level: LevelKill, Want: kill(5000), Skips: []int{5001}},
			},
			after: func(t *testing.T, k *Killer, snap *Snapshot) {
				var got []int
				for _, m := range k.Skipped() {
					got = append(got, m.PID)
				}
				if diff := cmp.Diff([]int{5002, 5001}, got); diff != "" {
					t.Errorf("Skipped() (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "a mark is by PID and start time: a reused PID is a new process", fixture: "scope_hog.json",
			steps: []killStep{
				{At: 0, Level: LevelKill, Observe: &Outcome{Kind: OutcomeFailed, PID: 5002, StartTime: 50020, Err: "EPERM"},
					Want: kill(5001)},
				{At: 100 * ms, Level: LevelKill, Mutate: func(s *Snapshot) {
					without(5001)(s)
					proc(s, 5002).StartTime = 99999 // the hog died, its PID was reused
				}, Want: kill(5002)},
			},
		},
		{
			name: "a signal failure marks the victim skipped and moves on", fixture: "scope_hog.json",
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: kill(5002)},
				{At: 10 * ms, Level: LevelKill, Observe: &Outcome{Kind: OutcomeFailed, PID: 5002, StartTime: 50020, Err: "operation not permitted"},
					Want: kill(5001)},
			},
			after: func(t *testing.T, k *Killer, snap *Snapshot) {
				r := k.Rank(snap)
				if r[len(r)-1].Victim != 5002 || !strings.Contains(r[len(r)-1].Reason, "could not be signalled at 2026-11-25T10:00:00.01Z: operation not permitted") {
					t.Errorf("last = %+v", r[len(r)-1])
				}
			},
		},
		{
			name: "SIGTERM, then SIGKILL after the grace", fixture: "scope_hog.json", cfg: KillConfig{TermGrace: 1 * s},
			steps: []killStep{
				{At: 0, Level: LevelTerm, Want: term(5002), Reason: "SIGTERM first, SIGKILL after 1s"},
				{At: 500 * ms, Level: LevelTerm, Want: wait(5002), Reason: "PID 5002 got SIGTERM 500ms ago; grace ends in 500ms"},
				{At: 1 * s, Level: LevelTerm, Want: kill(5002), Reason: "escalating to SIGKILL for PID 5002 (grace of 1s over)"},
				{At: 2 * s, Level: LevelTerm, Want: wait(5002)},
				{At: 3 * s, Level: LevelTerm, Want: retry(5002)},
			},
		},
		{
			name: "SIGTERM escalates at once when the level reaches kill", fixture: "scope_hog.json", cfg: KillConfig{TermGrace: 5 * s},
			steps: []killStep{
				{At: 0, Level: LevelTerm, Want: term(5002)},
				{At: 300 * ms, Level: LevelKill, Want: kill(5002), Reason: "(level reached kill)"},
			},
		},
		{
			name: "SIGTERM worked: pressure gone, no escalation", fixture: "scope_hog.json", cfg: KillConfig{TermGrace: 5 * s},
			steps: []killStep{
				{At: 0, Level: LevelTerm, Want: term(5002)},
				{At: 300 * ms, Level: LevelNone, Want: none, Reason: "pressure relieved after SIGTERM to PID 5002; not escalating"},
				{At: 400 * ms, Level: LevelNone, Want: none},
			},
		},
		{
			name: "kill level skips SIGTERM even with a grace", fixture: "scope_hog.json", cfg: KillConfig{TermGrace: 5 * s},
			steps: []killStep{{At: 0, Level: LevelKill, Want: kill(5002)}},
		},
		{
			name: "term level without a grace sends SIGKILL", fixture: "scope_hog.json",
			steps: []killStep{{At: 0, Level: LevelTerm, Want: kill(5002)}},
		},
		{
			name: "a custom deadline", fixture: "scope_hog.json", cfg: KillConfig{Deadline: 500 * ms},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: kill(5002)},
				{At: 499 * ms, Level: LevelKill, Want: wait(5002)},
				{At: 500 * ms, Level: LevelKill, Want: retry(5002)},
				{At: 1 * s, Level: LevelKill, Want: kill(5001), Skips: []int{5002}},
			},
		},
		{
			name: "CLONE_VM group: all members signalled, victim is the leader", fixture: "clone_vm.json",
			setup: func(s *Snapshot) { proc(s, 6002).RSS = 100 * miB },
			steps: []killStep{{At: 0, Level: LevelKill, Want: kill(6000, 6001)}},
		},
		{
			name: "exiting group with all sharers exiting: wait instead of a second victim", fixture: "clone_vm.json",
			setup: func(s *Snapshot) {
				proc(s, 6000).Exiting = true
				proc(s, 6001).Exiting = true
				proc(s, 6002).RSS = 100 * miB
			},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: wait(6000, 6001),
					Reason: "PID 6000 (hog, badness 102600) and all its sharers are already exiting, and outweigh the best eligible PID 6002 (badness 25750); waiting for them instead of choosing another victim"},
				{At: 1 * s, Level: LevelKill, Want: wait(6000, 6001), Reason: "are exiting (waited 1s"},
				{At: 1500 * ms, Level: LevelKill, Mutate: without(6000, 6001), Want: kill(6002)},
			},
		},
		{
			// The hog's command line blocked (mmap_lock) while protect
			// names exist: the smaller worker is not killed in its place.
			// Once the scanner reads its executable, it is judged by it.
			name: "an unjudged hog is waited for, then judged by its executable", fixture: "clone_vm.json",
			rules: Rules{Protected: []string{"sshd"}},
			setup: func(s *Snapshot) {
				unread(s, 6000, 6001)
				proc(s, 6002).RSS = 100 * miB
			},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: wait(6000, 6001),
					Reason: "PID 6000 (hog, badness 102600) cannot be judged yet: skipped: PID 6000 (hog) has a command line that could not be read yet"},
				{At: 100 * ms, Level: LevelKill, Want: wait(6000, 6001), Reason: "it outranks the best eligible PID 6002"},
				{At: 1 * s, Level: LevelKill, Mutate: hogExe, Want: kill(6000, 6001), Reason: `the rules judged it by its comm and its executable "/opt/hog/clonevm-hog"`},
			},
		},
		{
			name: "an unjudged hog protected by its executable is never killed", fixture: "clone_vm.json",
			rules: Rules{Protected: []string{"clonevm-hog"}},
			setup: func(s *Snapshot) {
				unread(s, 6000, 6001)
				proc(s, 6002).RSS = 100 * miB
			},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: wait(6000, 6001)},
				{At: 1 * s, Level: LevelKill, Mutate: hogExe, Want: kill(6002)},
			},
		},
		{
			// A backstop: the scanner reads the executable after
			// scan.CmdlineHold, so a wait this long means it cannot.
			name: "an unjudged hog is waited for at most the deadline", fixture: "clone_vm.json",
			rules: Rules{Avoid: res(`^nothing$`)},
			setup: func(s *Snapshot) {
				unread(s, 6000, 6001)
				proc(s, 6002).RSS = 100 * miB
			},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: wait(6000, 6001), Reason: "waiting 2s more"},
				{At: 1500 * ms, Level: LevelKill, Want: wait(6000, 6001), Reason: "waiting 500ms more"},
				{At: 1600 * ms, Level: LevelNone, Want: none, Reason: "pressure relieved while waiting to judge PID 6000"},
				{At: 1700 * ms, Level: LevelKill, Want: wait(6000, 6001), Reason: "waiting 2s more"},
				{At: 3700 * ms, Level: LevelKill, Want: kill(6002),
					Reason: "PID 6000 could not be judged within 2s; passed over; "},
				// Passed over for that decision only, not marked: once
				// the worker is gone and its executable read, it is
				// judged and killed.
				{At: 3800 * ms, Level: LevelKill, Mutate: func(s *Snapshot) {
					without(6002)(s)
					proc(s, 6000).Exe = "/opt/hog/clonevm-hog"
					proc(s, 6001).Exe = "/opt/hog/clonevm-hog"
				}, Observe: &Outcome{Kind: OutcomeExited, PID: 6002, StartTime: 60020}, Want: kill(6000, 6001)},
			},
		},
		{
			// The kill deadline bounds dying victims, not this wait: a
			// short one does not pass over a hog before the scanner can
			// read its executable.
			name: "a short kill deadline does not cut the wait for an unjudged hog", fixture: "clone_vm.json",
			cfg:   KillConfig{Deadline: 100 * ms},
			rules: Rules{Protected: []string{"sshd"}},
			setup: func(s *Snapshot) {
				unread(s, 6000, 6001)
				proc(s, 6002).RSS = 100 * miB
			},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: wait(6000, 6001)},
				{At: 500 * ms, Level: LevelKill, Want: wait(6000, 6001)},
				{At: 1100 * ms, Level: LevelKill, Mutate: hogExe, Want: kill(6000, 6001)},
			},
		},
		{
			// Two unjudged groups take turns at the top: the bound is
			// the wait's, not each candidate's.
			name: "the wait for unjudged candidates is bounded when they alternate", fixture: "clone_vm.json",
			rules: Rules{Protected: []string{"sshd"}},
			setup: func(s *Snapshot) {
				unread(s, 6000, 6001, 6002)
			},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: wait(6002)},
				{At: 1 * s, Level: LevelKill, Mutate: func(s *Snapshot) { proc(s, 6002).RSS = 100 * miB }, Want: wait(6000, 6001)},
				{At: 1500 * ms, Level: LevelKill, Mutate: func(s *Snapshot) { proc(s, 6002).RSS = 900 * miB }, Want: wait(6002),
					Reason: "waiting 500ms more"},
				{At: 2 * s, Level: LevelKill, Want: none, Reason: "could not be judged within 2s; passed over"},
			},
		},
		{
			// The candidate waited for exits and another takes its
			// place: the bound is the wait's.
			name: "the wait for unjudged candidates is bounded when the one waited for exits", fixture: "clone_vm.json",
			rules: Rules{Protected: []string{"sshd"}},
			setup: func(s *Snapshot) {
				unread(s, 6000, 6001)
				proc(s, 6002).RSS = 100 * miB
			},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: wait(6000, 6001)},
				{At: 1500 * ms, Level: LevelKill, Mutate: func(s *Snapshot) {
					without(6000, 6001)(s)
					p := proc(s, 6002)
					p.Cmdline, p.CmdlineUnread = "", true
				}, Want: wait(6002), Reason: "waiting 500ms more"},
			},
		},
		{
			// Smaller than the pick: nothing to wait for.
			name: "an unjudged process smaller than the pick does not hold the kill", fixture: "clone_vm.json",
			rules: Rules{Ignore: res(`^nothing$`)},
			setup: func(s *Snapshot) {
				p := proc(s, 6002)
				p.Cmdline, p.CmdlineUnread, p.RSS = "", true, 100*miB
			},
			steps: []killStep{{At: 0, Level: LevelKill, Want: kill(6000, 6001)}},
		},
		{
			name: "exiting group stuck past the deadline is skipped", fixture: "clone_vm.json",
			setup: func(s *Snapshot) {
				proc(s, 6000).Exiting = true
				proc(s, 6001).Exiting = true
				proc(s, 6002).RSS = 100 * miB
			},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: wait(6000, 6001)},
				{At: 2 * s, Level: LevelKill, Want: kill(6002), Skips: []int{6000, 6001},
					Reason: "PID 6000 still exiting 2s later; marked skipped"},
			},
		},
		{
			// An unreaped zombie (its parent stalled, or never reaping) has
			// no memory left to free, whatever its badness from its
			// oom_score_adj: waiting for it waited for ever, since it
			// counted as gone at the next pass and was then chosen again.
			name: "a zombie never holds back the kill", fixture: "clone_vm.json",
			setup: func(s *Snapshot) {
				without(6001)(s)
				z := proc(s, 6000)
				z.State, z.RSS, z.Swap, z.PageTables, z.MMGroup, z.OOMScoreAdj = 'Z', 0, 0, 0, 0, 1000
				proc(s, 6002).RSS = 100 * miB
			},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: kill(6002)},
			},
		},
		{
			name: "a lighter exiting group does not hold back the kill", fixture: "clone_vm.json",
			setup: func(s *Snapshot) {
				proc(s, 6000).Exiting = true
				proc(s, 6001).Exiting = true
			},
			steps: []killStep{{At: 0, Level: LevelKill, Want: kill(6002)}},
		},
		{
			name: "vfork: the parent is the victim, the child dies as a sharer", fixture: "vfork.json",
			steps: []killStep{{At: 0, Level: LevelKill, Want: kill(7000, 7001),
				Reason: "vfork children 7001 are never chosen themselves but die with PID 7000 as sharers"}},
		},
		{
			name: "vfork child alone is never chosen", fixture: "vfork.json",
			setup: without(7000, 7200),
			steps: []killStep{{At: 0, Level: LevelKill, Want: none, Reason: "no eligible victim (0 protected, 2 skipped groups)"}},
		},
		{
			name: "protected groups are never chosen", fixture: "protected.json",
			rules: Rules{Protected: []string{"guard", "long-process-name-x"}},
			steps: []killStep{
				{At: 0, Level: LevelKill, Want: kill(8200)},
				{At: 1 * s, Level: LevelKill, Mutate: without(8200), Want: none,
					Reason: "no eligible victim (4 protected, 0 skipped groups)"},
			},
		},
		{
			name: "a scope verdict only kills in that scope", fixture: "scope_hog.json",
			setup: func(s *Snapshot) {
				s.Scopes = append(s.Scopes, ScopeMemory{Path: "/sys/fs/cgroup/memory/other", Usage: 99 * miB, Limit: 100 * miB})
				s.Processes = append(s.Processes, Process{PID: 5100, StartTime: 51000, Comm: "small",
					RSS: 10 * miB, MMGroup: 5100, Scope: 1, State: 'S'})
			},
			steps: []killStep{{At: 0, Level: LevelKill, Scope: 1, Want: kill(5100)}},
		},
		{
			name: "no verdict, nothing in flight", fixture: "scope_hog.json",
			steps: []killStep{{At: 0, Level: LevelNone, Want: none}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := loadSnap(t, tc.fixture)
			if tc.setup != nil {
				tc.setup(snap)
			}
			k := NewKiller(tc.cfg, tc.rules)
			for _, st := range tc.steps {
				now := t0.Add(st.At)
				if st.Mutate != nil {
					st.Mutate(snap)
				}
				if st.Observe != nil {
					k.Observe(*st.Observe, now)
				}
				snap.Time = now
				v := Verdict{Level: st.Level, Scope: -1}
				if st.Level != LevelNone {
					v.Trigger, v.Reason, v.Scope = TriggerScope, "scope test", st.Scope
				}
				d := k.Decide(snap, v, now)
				if diff := cmp.Diff(st.Want, row0(d)); diff != "" {
					t.Fatalf("at %v: decision (-want +got):\n%s\nreason: %s", st.At, diff, d.Reason)
				}
				if st.Reason != "" && !strings.Contains(d.Reason, st.Reason) {
					t.Fatalf("at %v: reason %q, want it to contain %q", st.At, d.Reason, st.Reason)
				}
				var skips []int
				for _, m := range d.Skipped {
					skips = append(skips, m.PID)
				}
				if diff := cmp.Diff(st.Skips, skips); diff != "" {
					t.Fatalf("at %v: new skip marks (-want +got):\n%s", st.At, diff)
				}
				if d.Kind == DecideKill && d.Victim.Victim == 0 {
					t.Fatalf("at %v: kill without a victim", st.At)
				}
				if d.Kind != DecideNone && d.Deadline.IsZero() {
					t.Fatalf("at %v: %v without a deadline", st.At, d.Kind)
				}
				_, busy := k.InFlight()
				if busy != (d.Kind != DecideNone) {
					t.Fatalf("at %v: InFlight %v after a %v decision", st.At, busy, d.Kind)
				}
			}
			if tc.after != nil {
				tc.after(t, k, snap)
			}
		})
	}
}

func TestKillerKillCgroup(t *testing.T) {
	snap := loadSnap(t, "scope_hog.json")
	k := NewKiller(KillConfig{}, Rules{KillCgroup: true})
	d := k.Decide(snap, Verdict{Level: LevelKill, Trigger: TriggerScope, Scope: 0}, snap.Time)
	if d.Kind != DecideKill || !d.KillCgroup || d.Victim.Cgroup != "/oomguard-test/hog" {
		t.Errorf("decision %+v, want a cgroup kill of /oomguard-test/hog", d)
	}
}

func TestKillerIdleDoesNotAllocate(t *testing.T) {
	snap := loadSnap(t, "desktop.json")
	k := NewKiller(KillConfig{}, Rules{})
	k.addMark(procKey{3100, 31000}, "test mark") // a mark to expire-check every time
	allocs := testing.AllocsPerRun(100, func() {
		k.Decide(snap, Verdict{Scope: -1}, snap.Time)
	})
	if allocs != 0 {
		t.Errorf("Decide allocates %v times with nothing to do, want 0", allocs)
	}
	if len(k.Skipped()) != 1 {
		t.Errorf("the mark of a live process expired")
	}
}

// A victim's memory is reaped at once when some task waits for memory, and
// after ReapAfter when none does; the retry of a victim that outlived its
// deadline is reaped at once whatever the pressure.
func TestKillerReapAfter(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name    string
		waiting bool
		retry   bool
		want    time.Duration
	}{
		{name: "nothing waits for memory: the victim exits by itself first", want: 100 * ms},
		{name: "a task stalls on memory: reaped at once", waiting: true, want: 0},
		{name: "the retry after the deadline: reaped at once", retry: true, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := loadSnap(t, "scope_hog.json")
			k := NewKiller(KillConfig{Deadline: time.Second, ReapAfter: 100 * ms}, Rules{})
			v := Verdict{Level: LevelKill, Trigger: TriggerScope, Scope: 0, MemoryWaiting: tc.waiting}
			now := snap.Time
			d := k.Decide(snap, v, now)
			if tc.retry {
				d = k.Decide(snap, v, now.Add(time.Second))
				if d.Attempt != 2 {
					t.Fatalf("decision %v attempt %d after the deadline, want the retry", d.Kind, d.Attempt)
				}
			}
			if d.Kind != DecideKill || !d.Reap {
				t.Fatalf("decision %v (reap %v), want a kill with a reap", d.Kind, d.Reap)
			}
			if d.ReapAfter != tc.want {
				t.Errorf("ReapAfter %v, want %v", d.ReapAfter, tc.want)
			}
		})
	}
}

// TestKillerLeavesLoneKernelThreadsUnranked: the killer's choice ranks
// without the kernel threads that have no mm, and chooses as if it had
// ranked them: they count among the protected groups, a kernel thread
// that borrowed a process's mm still protects that process, and in
// kill-cgroup mode a kernel thread's cgroup still protects the processes
// beside it.
func TestKillerLeavesLoneKernelThreadsUnranked(t *testing.T) {
	kthread := func(pid int, cgroup string) Process {
		return Process{PID: pid, PPID: 2, Comm: "kworker", State: 'I', KernelThread: true, Cgroup: cgroup}
	}
	user := func(pid int, rss uint64, cgroup string) Process {
		return Process{PID: pid, PPID: 1, Comm: "app", State: 'S', RSS: rss * miB, MMGroup: pid, Cgroup: cgroup}
	}
	tests := []struct {
		name   string
		procs  []Process
		rules  Rules
		want   decisionRow
		reason string
	}{
		{"the largest process, kernel threads beside it", []Process{kthread(2, "/"), kthread(3, "/"), user(100, 10, "/a"), user(101, 20, "/b")},
			Rules{}, kill(101), "victim PID 101"},
		{"kernel threads count as protected groups", []Process{kthread(2, "/"), kthread(3, "/"), {PID: 1, Comm: "init", State: 'S', RSS: miB, MMGroup: 1}},
			Rules{}, none, "no eligible victim (3 protected, 0 skipped groups)"},
		{"a kernel thread with a borrowed mm protects its sharer", []Process{
			{PID: 5, PPID: 2, Comm: "vhost-100", State: 'S', KernelThread: true, MMGroup: 100}, user(100, 50, "/a"), user(101, 20, "/b")},
			Rules{}, kill(101), "victim PID 101"},
		{"kill-cgroup mode: a kernel thread's cgroup protects the processes in it", []Process{kthread(2, "/"), user(100, 50, "/"), user(101, 20, "/b")},
			Rules{KillCgroup: true}, kill(101), "victim PID 101"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := &Snapshot{Memory: Memory{Total: giB}, Processes: tc.procs}
			d := NewKiller(KillConfig{}, tc.rules).Decide(snap, Verdict{Level: LevelKill, Trigger: TriggerMemAvail, Scope: -1}, time.Unix(0, 0))
			if diff := cmp.Diff(tc.want, row0(d)); diff != "" {
				t.Errorf("decision (-want +got):\n%s\nreason: %s", diff, d.Reason)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tc.reason)
			}
		})
	}
}

// TestKillerChoiceCostIgnoresKernelThreads: a kill decision beside 500
// kernel threads allocates about as often as one beside none (a few
// allocations more for the larger per-process tables), where ranking them
// cost two or more allocations each.
func TestKillerChoiceCostIgnoresKernelThreads(t *testing.T) {
	allocs := func(kernelThreads int) float64 {
		snap := &Snapshot{Memory: Memory{Total: 480 * miB}, PageSize: 4096}
		for i := range kernelThreads {
			snap.Processes = append(snap.Processes, Process{PID: 2 + i, PPID: 2, Comm: "kworker", State: 'I', KernelThread: true})
		}
		for i := range 8 {
			snap.Processes = append(snap.Processes, Process{PID: 10000 + i, PPID: 1, Comm: "app", State: 'S',
				RSS: uint64(i+1) * miB, MMGroup: 10000 + i})
		}
		v := Verdict{Level: LevelKill, Trigger: TriggerMemAvail, Scope: -1, Reason: "test"}
		return testing.AllocsPerRun(20, func() {
			if d := NewKiller(KillConfig{}, Rules{}).Decide(snap, v, time.Unix(0, 0)); d.Victim.Victim != 10007 {
				t.Fatalf("victim %d, want 10007", d.Victim.Victim)
			}
		})
	}
	none, many := allocs(0), allocs(500)
	if many > none+8 {
		t.Errorf("a decision beside 500 kernel threads allocates %v times, beside none %v", many, none)
	}
}

// TestKillerReconfiguredKeepsItsVictim: a reload rebuilds the killer with
// the new rules (Reconfigured) while a victim is dying. Its memory already
// reaped, the victim no longer ranks first, and a killer built afresh
// would choose a second victim at once; the reconfigured one waits for the
// first, as before the reload, and keeps its skip marks.
func TestKillerReconfiguredKeepsItsVictim(t *testing.T) {
	snap := loadSnap(t, "clone_vm.json")
	proc(snap, 6002).RSS = 100 * miB
	k := NewKiller(KillConfig{}, Rules{})
	v := Verdict{Level: LevelKill, Trigger: TriggerScope, Scope: -1}
	at := snap.Time
	if d := row0(k.Decide(snap, v, at)); !cmp.Equal(d, kill(6000, 6001)) {
		t.Fatalf("first decision %+v, want %+v", d, kill(6000, 6001))
	}
	// Reaped by process_mrelease, still alive (frozen, say).
	proc(snap, 6000).RSS, proc(snap, 6001).RSS = miB, miB
	at = at.Add(100 * time.Millisecond)
	if d := row0(NewKiller(KillConfig{}, Rules{}).Decide(snap, v, at)); cmp.Equal(d, wait(6000, 6001)) {
		t.Fatalf("a fresh killer waits too (%+v): the test proves nothing", d)
	}
	k.addMark(procKey{6002, proc(snap, 6002).StartTime}, "test mark")
	r := k.Reconfigured(KillConfig{Deadline: 3 * time.Second}, Rules{})
	if d := row0(r.Decide(snap, v, at)); !cmp.Equal(d, wait(6000, 6001)) {
		t.Errorf("after the reload: %+v, want to wait for the victim in flight %+v", d, wait(6000, 6001))
	}
	if got := r.Skipped(); len(got) != 1 || got[0].Reason != "test mark" {
		t.Errorf("skip marks after the reload: %+v, want the one made before", got)
	}

	// A victim that has had only SIGTERM is judged afresh: protected by
	// the new rules, it is not SIGKILLed when its grace ends.
	snap = loadSnap(t, "clone_vm.json")
	proc(snap, 6002).RSS = 100 * miB
	k = NewKiller(KillConfig{TermGrace: time.Second}, Rules{})
	term := Verdict{Level: LevelTerm, Trigger: TriggerScope, Scope: -1}
	if d := row0(k.Decide(snap, term, snap.Time)); !cmp.Equal(d, decisionRow{Kind: DecideKill, Victim: 6000, PIDs: []int{6000, 6001}, Signal: SIGTERM}) {
		t.Fatalf("term decision %+v", d)
	}
	r = k.Reconfigured(KillConfig{TermGrace: time.Second}, Rules{Protected: []string{proc(snap, 6000).Comm}})
	if d := row0(r.Decide(snap, v, snap.Time.Add(2*time.Second))); d.Victim == 6000 {
		t.Errorf("after a reload that protects it, the SIGTERMed victim got %+v", d)
	}
}
