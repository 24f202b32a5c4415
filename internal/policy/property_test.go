package policy

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// randomSnapshot builds a small random machine: processes in a few mm
// groups, some vfork children, exiting members, kernel threads and
// protected processes.
func randomSnapshot(r *rand.Rand) *Snapshot {
	s := &Snapshot{Memory: Memory{Total: 8 * giB, SwapTotal: uint64(r.IntN(2)) * giB}, SelfPID: 100 + r.IntN(20)}
	n := 1 + r.IntN(25)
	for i := range n {
		pid := 100 + i
		p := Process{PID: pid, PPID: 1, StartTime: uint64(r.IntN(5)), Comm: []string{"a", "b", "sshd", "hog"}[r.IntN(4)],
			State: "SRDZ"[r.IntN(4)], RSS: uint64(r.IntN(4)) * miB, Swap: uint64(r.IntN(2)) * miB,
			OOMScoreAdj: []int{0, 0, 0, 500, -500, -1000}[r.IntN(6)], MMGroup: pid}
		if i > 0 && r.IntN(3) == 0 {
			prev := &s.Processes[r.IntN(i)]
			if prev.MMGroup != 0 {
				p.MMGroup, p.PPID = prev.MMGroup, prev.PID
				p.VforkChild = r.IntN(2) == 0
			}
		}
		if r.IntN(10) == 0 {
			p.KernelThread, p.MMGroup, p.VforkChild = true, 0, false
		}
		if r.IntN(8) == 0 {
			p.PID = 1
		}
		p.Exiting = r.IntN(6) == 0
		s.Processes = append(s.Processes, p)
	}
	// PID 1 may have been drawn more than once: keep PIDs unique.
	seen := map[int]bool{}
	out := s.Processes[:0]
	for _, p := range s.Processes {
		if !seen[p.PID] {
			seen[p.PID] = true
			out = append(out, p)
		}
	}
	s.Processes = out
	return s
}

// TestRankProperties checks invariants of Rank on random snapshots.
func TestRankProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rules := Rules{Prefer: res(`^a$`), Avoid: res(`^b$`), Protected: []string{"sshd"}}
	for iter := range 2000 {
		snap := randomSnapshot(r)
		got := Rank(snap, rules)
		count := map[int]int{}
		prevClass := 0
		for i := range got {
			c := &got[i]
			if len(c.PIDs) != len(c.Members) || len(c.PIDs) == 0 {
				t.Fatalf("iter %d: PIDs %v vs %d members", iter, c.PIDs, len(c.Members))
			}
			anyProtected := false
			for j, m := range c.Members {
				count[m.PID]++
				if c.PIDs[j] != m.PID {
					t.Fatalf("iter %d: PIDs %v not in member order", iter, c.PIDs)
				}
				if m.Protected != "" {
					anyProtected = true
				}
				if m.PID == c.Victim && m.VforkChild {
					t.Fatalf("iter %d: vfork child %d is the victim", iter, m.PID)
				}
				if c.MMGroup != 0 {
					for _, p := range snap.Processes {
						if p.PID == m.PID && p.MMGroup != c.MMGroup {
							t.Fatalf("iter %d: PID %d of mm %d in group %d", iter, m.PID, p.MMGroup, c.MMGroup)
						}
					}
				}
			}
			if anyProtected != c.Protected {
				t.Fatalf("iter %d: group %v protected=%v but a member protected=%v", iter, c.PIDs, c.Protected, anyProtected)
			}
			if c.Eligible() && c.Victim == 0 {
				t.Fatalf("iter %d: eligible group %v without a victim", iter, c.PIDs)
			}
			if cl := class(c); cl < prevClass {
				t.Fatalf("iter %d: class order broken at %d", iter, i)
			} else {
				prevClass = cl
			}
			if i > 0 && killOrder(&got[i-1], c) >= 0 {
				t.Fatalf("iter %d: candidates %d and %d out of order", iter, i-1, i)
			}
			if c.Reason == "" {
				t.Fatalf("iter %d: no reason for %v", iter, c.PIDs)
			}
		}
		for _, p := range snap.Processes {
			if count[p.PID] != 1 {
				t.Fatalf("iter %d: PID %d appears %d times", iter, p.PID, count[p.PID])
			}
		}
	}
}

// TestKillerProperties walks the killer through random verdicts, deaths and
// failures, and checks seed 001's rule: no second victim while one is dying
// within its deadline.
func TestKillerProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for iter := range 300 {
		snap := randomSnapshot(r)
		cfg := KillConfig{Deadline: time.Second}
		if r.IntN(2) == 0 {
			cfg.TermGrace = 500 * time.Millisecond
		}
		k := NewKiller(cfg, Rules{})
		now := t0
		var cur *Decision // last kill decision whose victim is still around
		for range 40 {
			now = now.Add(time.Duration(r.IntN(700)) * time.Millisecond)
			if cur != nil && r.IntN(4) == 0 {
				// The victim dies.
				v := &cur.Victim
				dead := map[int]bool{}
				for _, m := range v.Members {
					dead[m.PID] = true
				}
				out := snap.Processes[:0]
				for _, p := range snap.Processes {
					if !dead[p.PID] {
						out = append(out, p)
					}
				}
				snap.Processes = out
				k.Observe(Outcome{Kind: OutcomeExited, PID: v.Victim, StartTime: v.StartTime}, now)
				cur = nil
			}
			v := Verdict{Level: Level(r.IntN(3)), Scope: -1, Trigger: TriggerMemAvail}
			d := k.Decide(snap, v, now)
			if d.Kind == DecideKill {
				if d.Victim.Victim == 0 || !d.Victim.Eligible() {
					t.Fatalf("iter %d: killing a non-eligible group %+v", iter, d.Victim)
				}
				// A different victim while the previous one lives is only
				// allowed once the previous one was given up (marked).
				if cur != nil && cur.Victim.Victim != d.Victim.Victim && len(d.Skipped) == 0 {
					t.Fatalf("iter %d: second victim %d while %d is alive and not skipped (now %v)",
						iter, d.Victim.Victim, cur.Victim.Victim, now)
				}
				if len(d.Skipped) > 0 && cur != nil && now.Before(cur.Deadline) {
					t.Fatalf("iter %d: %d given up before its deadline %v (now %v)", iter, cur.Victim.Victim, cur.Deadline, now)
				}
				dd := d
				cur = &dd
			}
			if d.Kind == DecideNone {
				cur = nil
			}
		}
	}
}

// TestRankWithoutKernelThreads: the killer's ranking (rank without lone
// kernel threads) is Rank's with those kernel threads removed, in the
// same order and with the same reasons, on random snapshots where some
// kernel threads borrow a process's mm, with and without kill-cgroup
// mode.
func TestRankWithoutKernelThreads(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for iter := range 2000 {
		snap := randomSnapshot(r)
		for i := range snap.Processes {
			p := &snap.Processes[i]
			p.Cgroup = []string{"/", "/a", "/b"}[r.IntN(3)]
			if p.KernelThread && r.IntN(4) == 0 && i > 0 && snap.Processes[i-1].MMGroup != 0 {
				p.MMGroup = snap.Processes[i-1].MMGroup // kthread_use_mm
			}
		}
		rules := Rules{Protected: []string{"sshd"}, KillCgroup: r.IntN(2) == 0}
		var want []Candidate
		for _, c := range rank(snap, rules, nil, true) {
			if len(c.Members) == 1 && c.Members[0].KernelThread && c.MMGroup == 0 && !rules.KillCgroup {
				continue
			}
			want = append(want, c)
		}
		got := rank(snap, rules, nil, false)
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("iter %d (kill cgroup %v): ranking without kernel threads (-want +got):\n%s", iter, rules.KillCgroup, diff)
		}
	}
}
