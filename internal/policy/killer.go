package policy

import (
	"slices"
	"strconv"
	"time"
)

// Signal is a signal a Decision sends.
type Signal int

// Signals a Decision sends (Linux numbers).
const (
	SignalNone Signal = 0
	SIGKILL    Signal = 9
	SIGTERM    Signal = 15
)

// String returns "SIGKILL", "SIGTERM" or "none".
func (s Signal) String() string {
	switch s {
	case SIGKILL:
		return "SIGKILL"
	case SIGTERM:
		return "SIGTERM"
	case SignalNone:
		return "none"
	}
	return "signal(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText encodes the signal as its String.
func (s Signal) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// DecisionKind says what the daemon must do.
type DecisionKind int

// Decision kinds.
const (
	// DecideNone: nothing to do.
	DecideNone DecisionKind = iota
	// DecideWait: a victim is dying (or already exiting) within its
	// deadline; choose no other victim, act on nothing.
	DecideWait
	// DecideKill: send Signal to every PID of Victim (and reap when Reap).
	DecideKill
)

// String returns "none", "wait" or "kill".
func (k DecisionKind) String() string {
	switch k {
	case DecideNone:
		return "none"
	case DecideWait:
		return "wait"
	case DecideKill:
		return "kill"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText encodes the kind as its String.
func (k DecisionKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Decision is what Killer.Decide tells the daemon to do.
type Decision struct {
	Kind DecisionKind `json:"kind"`
	// Victim is the group to signal (DecideKill) or being waited for
	// (DecideWait); zero otherwise. Signals go to every PID of Victim.PIDs.
	Victim Candidate `json:"victim"`
	// Signal is SIGTERM or SIGKILL for DecideKill.
	Signal Signal `json:"signal"`
	// Reap asks for process_mrelease once SIGKILL has been delivered to
	// every member of Victim (never before: seed 004).
	Reap bool `json:"reap"`
	// ReapAfter is how long to let the victim exit by itself first; zero
	// reaps at once (KillConfig.ReapAfter says when).
	ReapAfter time.Duration `json:"reap_after"`
	// KillCgroup asks to kill Victim.Cgroup as a whole (Rules.KillCgroup).
	KillCgroup bool `json:"kill_cgroup,omitempty"`
	// Attempt is 1 for the first SIGKILL and 2 for the retry; 0 for SIGTERM.
	Attempt int `json:"attempt"`
	// Deadline is when the current wait ends: the SIGTERM grace or the
	// death deadline. Zero for DecideNone.
	Deadline time.Time `json:"deadline"`
	// Verdict is the trigger verdict the decision was made on.
	Verdict Verdict `json:"verdict"`
	// Reason explains the decision with its numbers.
	Reason string `json:"reason"`
	// Skipped are the skip marks this call made (a victim given up on),
	// for the daemon to log.
	Skipped []SkipMark `json:"skipped,omitempty"`
}

// OutcomeKind is what happened to a signalled victim.
type OutcomeKind int

// Outcome kinds.
const (
	// OutcomeExited: every member of the victim is gone (its pidfds became
	// readable, or the signal found no process).
	OutcomeExited OutcomeKind = iota
	// OutcomeFailed: the signal could not be sent (for example EPERM); the
	// process is marked skipped so that selection moves on.
	OutcomeFailed
)

// Outcome reports to Killer.Observe what the actuator saw.
type Outcome struct {
	Kind OutcomeKind
	// PID and StartTime name the process: for OutcomeExited the victim
	// (Decision.Victim.Victim, or its first PID), for OutcomeFailed the
	// member the signal failed on.
	PID       int
	StartTime uint64
	// Err says why a signal failed.
	Err string
}

// DefaultDeadline is KillConfig.Deadline's default.
const DefaultDeadline = 2 * time.Second

// KillConfig configures a Killer.
type KillConfig struct {
	// TermGrace > 0 makes a term-level verdict send SIGTERM first, and
	// SIGKILL after TermGrace or as soon as the level reaches kill. Zero
	// sends SIGKILL at once.
	TermGrace time.Duration
	// Deadline is how long a victim may take to die after SIGKILL before it
	// is retried once, and after the retry before it is marked skipped.
	// Zero means DefaultDeadline.
	Deadline time.Duration
	// ReapAfter is how long a SIGKILLed victim is given to exit by itself
	// before its memory is reaped, while no task stalls on memory
	// (Verdict.MemoryWaiting false). Reaping takes a CPU at the daemon's
	// priority; a victim that can run frees the same memory by itself, a
	// few milliseconds later, and when nobody waits for memory those
	// milliseconds help no one while the CPU taken delays others. When a
	// task stalls on memory, or on the SIGKILL retry, the victim is reaped
	// at once.
	ReapAfter time.Duration
	// UnjudgedWait is the longest the Killer waits for candidates it
	// cannot judge (Candidate.Unjudged) that outrank its pick, counted
	// from the first pass of the wait, before it passes over them for
	// one decision. The scanner judges such a process by its executable
	// after scan.CmdlineHold, so this is a backstop. Zero means
	// DefaultUnjudgedWait.
	UnjudgedWait time.Duration
}

// DefaultUnjudgedWait is KillConfig.UnjudgedWait's default: scan.CmdlineHold
// (1 s) and a second for the passes that read the executable.
const DefaultUnjudgedWait = 2 * time.Second

// phase is where the in-flight victim is.
type phase int

const (
	phaseTerm     phase = iota + 1 // SIGTERM sent, grace running
	phaseKill                      // SIGKILL sent, deadline running
	phaseExiting                   // already exiting on its own, deadline running
	phaseUnjudged                  // waited for while it cannot be judged (Candidate.Unjudged)
)

// flight is the victim being handled.
type flight struct {
	active  bool
	victim  Candidate
	phase   phase
	since   time.Time
	attempt int
}

// Killer is the pure kill state machine of seed 001: one victim at a time,
// SIGTERM then SIGKILL, a death deadline, one retry, then a skip mark so
// selection moves on. The daemon calls Decide with every snapshot and
// verdict while a trigger fires or a victim is in flight (InFlight), carries
// out the decision, and reports deaths and failures with Observe. Time comes
// only from the now arguments. A Killer is not safe for concurrent use.
type Killer struct {
	cfg   KillConfig
	rules Rules
	cur   flight
	marks map[procKey]mark
	seq   uint64     // numbers marks in the order they were made
	made  []SkipMark // marks made by the current Decide call
}

// mark is one skip mark.
type mark struct {
	seq    uint64
	reason string
}

// NewKiller returns a Killer choosing victims by rules.
func NewKiller(cfg KillConfig, rules Rules) *Killer {
	if cfg.Deadline <= 0 {
		cfg.Deadline = DefaultDeadline
	}
	if cfg.UnjudgedWait <= 0 {
		cfg.UnjudgedWait = DefaultUnjudgedWait
	}
	return &Killer{cfg: cfg, rules: rules, marks: map[procKey]mark{}}
}

// Reconfigured returns a Killer with cfg and rules that goes on where k
// is: the victim in flight once SIGKILLed (still waited for and not
// doubled by a second victim: one that has SIGKILL pending but is frozen
// or in D state does not look exiting), and the skip marks. A victim that
// has had only SIGTERM is judged afresh under the new rules, which may
// protect it now. k must not be used afterwards.
func (k *Killer) Reconfigured(cfg KillConfig, rules Rules) *Killer {
	n := NewKiller(cfg, rules)
	n.marks, n.seq = k.marks, k.seq
	if k.cur.phase != phaseTerm {
		n.cur = k.cur
	}
	return n
}

// Rank is Rank with the killer's skip marks: the ranking as the killer
// sees it. (Its choice ranks without the kernel threads that have no mm,
// which only ever rank last: see loneKernelThread.)
func (k *Killer) Rank(snap *Snapshot) []Candidate {
	return rank(snap, k.rules, k.markReasons(), true)
}

// markReasons returns the marks as rank wants them, or nil when there are
// none.
func (k *Killer) markReasons() map[procKey]string {
	if len(k.marks) == 0 {
		return nil
	}
	out := make(map[procKey]string, len(k.marks))
	for key, m := range k.marks {
		out[key] = m.reason
	}
	return out
}

// addMark marks a process skipped.
func (k *Killer) addMark(key procKey, reason string) {
	k.seq++
	k.marks[key] = mark{seq: k.seq, reason: reason}
	k.made = append(k.made, SkipMark{PID: key.pid, StartTime: key.start, Reason: reason})
}

// InFlight returns the victim being signalled or waited for, if any.
func (k *Killer) InFlight() (Candidate, bool) {
	return k.cur.victim, k.cur.active
}

// SkipMark is a process the killer gave up on.
type SkipMark struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	Reason    string `json:"reason"`
}

// Skipped returns the current skip marks, oldest first.
func (k *Killer) Skipped() []SkipMark {
	type seqMark struct {
		seq uint64
		m   SkipMark
	}
	all := make([]seqMark, 0, len(k.marks))
	for key, m := range k.marks {
		all = append(all, seqMark{m.seq, SkipMark{PID: key.pid, StartTime: key.start, Reason: m.reason}})
	}
	slices.SortFunc(all, func(a, b seqMark) int { return cmp3(a.seq, b.seq) })
	out := make([]SkipMark, len(all))
	for i := range all {
		out[i] = all[i].m
	}
	return out
}

// Observe records what happened to a victim. Outcomes about another process
// than the one in flight are ignored, except failures, which always mark the
// process skipped.
func (k *Killer) Observe(o Outcome, now time.Time) {
	switch o.Kind {
	case OutcomeExited:
		if k.cur.active && victimKey(&k.cur.victim) == (procKey{o.PID, o.StartTime}) {
			k.cur = flight{}
		}
	case OutcomeFailed:
		k.addMark(procKey{o.PID, o.StartTime}, "could not be signalled at "+stamp(now)+": "+o.Err)
		k.made = k.made[:0] // reported by the caller, who saw the failure
		if k.cur.active && hasMember(&k.cur.victim, o.PID, o.StartTime) {
			k.cur = flight{}
		}
	}
}

// Decide returns what to do now, given the latest snapshot and verdict.
// Skip marks of processes no longer in snap expire (when snap has
// processes at all).
func (k *Killer) Decide(snap *Snapshot, v Verdict, now time.Time) Decision {
	d := k.decide(snap, v, now)
	if len(k.made) > 0 {
		d.Skipped = slices.Clone(k.made)
		k.made = k.made[:0]
	}
	return d
}

// decide is Decide without the report of new marks.
func (k *Killer) decide(snap *Snapshot, v Verdict, now time.Time) Decision {
	k.expireMarks(snap)
	note := ""
	if k.cur.active {
		if gone(snap, &k.cur.victim) {
			note = "previous victim PID " + strconv.Itoa(victimPID(&k.cur.victim)) + " is gone; "
			if k.cur.phase != phaseUnjudged {
				k.cur = flight{} // an unjudged wait's bound holds on (choose)
			}
		} else if d, done := k.progress(v, now); done {
			return d
		} else if d.Reason != "" {
			note = d.Reason + "; "
		}
	}
	if v.Level == LevelNone {
		return Decision{Kind: DecideNone, Verdict: v, Reason: trimNote(note)}
	}
	return k.choose(snap, v, now, note)
}

// progress advances the in-flight victim. done false means it was given up
// and a new victim may be chosen (d.Reason says why).
func (k *Killer) progress(v Verdict, now time.Time) (d Decision, done bool) {
	c := &k.cur
	pid := strconv.Itoa(victimPID(&c.victim))
	switch c.phase {
	case phaseTerm:
		if v.Level == LevelNone {
			k.cur = flight{}
			return Decision{Kind: DecideNone, Verdict: v,
				Reason: "pressure relieved after SIGTERM to PID " + pid + "; not escalating"}, true
		}
		end := c.since.Add(k.cfg.TermGrace)
		if v.Level < LevelKill && now.Before(end) {
			return Decision{Kind: DecideWait, Victim: c.victim, Deadline: end, Verdict: v,
				Reason: "PID " + pid + " got SIGTERM " + now.Sub(c.since).String() + " ago; grace ends in " +
					end.Sub(now).String() + "; no second victim"}, true
		}
		why := "grace of " + k.cfg.TermGrace.String() + " over"
		if v.Level >= LevelKill {
			why = "level reached kill"
		}
		c.phase, c.since, c.attempt = phaseKill, now, 1
		return k.killDecision(v, now, "escalating to SIGKILL for PID "+pid+" ("+why+")"), true
	case phaseKill:
		end := c.since.Add(k.cfg.Deadline)
		if now.Before(end) {
			return Decision{Kind: DecideWait, Victim: c.victim, Deadline: end, Verdict: v,
				Reason: "PID " + pid + " is dying (SIGKILL attempt " + strconv.Itoa(c.attempt) + " " +
					now.Sub(c.since).String() + " ago, deadline in " + end.Sub(now).String() + "); no second victim"}, true
		}
		if c.attempt < 2 {
			c.since, c.attempt = now, 2
			return k.killDecision(v, now, "PID "+pid+" still alive "+k.cfg.Deadline.String()+
				" after SIGKILL; retrying once"), true
		}
		reason := "survived SIGKILL twice, " + k.cfg.Deadline.String() + " each (frozen or in D state); marked skipped at " + stamp(now)
		k.markVictim(reason)
		return Decision{Reason: "PID " + pid + " " + reason}, false
	case phaseExiting:
		end := c.since.Add(k.cfg.Deadline)
		if now.Before(end) {
			return Decision{Kind: DecideWait, Victim: c.victim, Deadline: end, Verdict: v,
				Reason: "PID " + pid + " and all its sharers are exiting (waited " + now.Sub(c.since).String() +
					", deadline in " + end.Sub(now).String() + "); no second victim"}, true
		}
		reason := "still exiting " + k.cfg.Deadline.String() + " later; marked skipped at " + stamp(now)
		k.markVictim(reason)
		return Decision{Reason: "PID " + pid + " " + reason}, false
	case phaseUnjudged:
		if v.Level == LevelNone {
			k.cur = flight{}
			return Decision{Kind: DecideNone, Verdict: v,
				Reason: "pressure relieved while waiting to judge PID " + pid}, true
		}
		// choose looks again, on this snapshot, and keeps the wait's
		// start if it waits for the same process.
		return Decision{}, false
	}
	k.cur = flight{}
	return Decision{}, false
}

// killDecision is a SIGKILL decision on the in-flight victim.
func (k *Killer) killDecision(v Verdict, now time.Time, reason string) Decision {
	d := Decision{Kind: DecideKill, Victim: k.cur.victim, Signal: SIGKILL, Reap: true,
		KillCgroup: k.rules.KillCgroup, Attempt: k.cur.attempt,
		Deadline: now.Add(k.cfg.Deadline), Verdict: v, Reason: reason}
	if !v.MemoryWaiting && k.cur.attempt < 2 {
		d.ReapAfter = k.cfg.ReapAfter
	}
	return d
}

// markVictim marks every live member of the in-flight victim skipped.
func (k *Killer) markVictim(reason string) {
	for i := range k.cur.victim.Members {
		m := &k.cur.victim.Members[i]
		k.addMark(procKey{m.PID, m.StartTime}, reason)
	}
	k.cur = flight{}
}

// choose picks a new victim for v.
func (k *Killer) choose(snap *Snapshot, v Verdict, now time.Time, note string) Decision {
	prev := k.cur
	if prev.phase == phaseUnjudged {
		k.cur = flight{} // looked at afresh below
	}
	// Kernel threads are not ranked, only counted as the protected groups
	// Rank would show them as.
	cands := rank(snap, k.rules, k.markReasons(), false)
	var pick, exiting, unjudged *Candidate
	protected, skipped := 0, 0
	for i := range snap.Processes {
		p := &snap.Processes[i]
		if loneKernelThread(p, k.rules) && (v.Scope < 0 || p.Scope == v.Scope) {
			protected++
		}
	}
	for i := range cands {
		c := &cands[i]
		if v.Scope >= 0 && !inScope(c, v.Scope) {
			continue
		}
		switch {
		case c.Eligible():
			if pick == nil {
				pick = c
			}
		case c.Protected:
			protected++
		default:
			skipped++
			if c.Exiting && freeing(c) && !c.Ignored && !c.Unkillable && (exiting == nil || c.Badness > exiting.Badness) {
				exiting = c
			}
			if c.Unjudged && !c.Ignored && !c.Unkillable && !c.Exiting && !c.VforkOnly && (unjudged == nil || c.Badness > unjudged.Badness) {
				unjudged = c
			}
		}
	}
	trig := v.Trigger + " " + v.Level.String() + ": " + v.Reason + "; "
	if exiting != nil && (pick == nil || exiting.Badness >= pick.Badness) {
		k.cur = flight{active: true, victim: *exiting, phase: phaseExiting, since: now}
		reason := note + trig + "PID " + strconv.Itoa(victimPID(exiting)) + " (" + exiting.Comm +
			", badness " + strconv.FormatInt(exiting.Badness, 10) + ") and all its sharers are already exiting"
		if pick != nil {
			reason += ", and outweigh the best eligible PID " + strconv.Itoa(pick.Victim) +
				" (badness " + strconv.FormatInt(pick.Badness, 10) + ")"
		}
		return Decision{Kind: DecideWait, Victim: *exiting, Deadline: now.Add(k.cfg.Deadline), Verdict: v,
			Reason: reason + "; waiting for them instead of choosing another victim"}
	}
	if unjudged != nil && (pick == nil || outranks(unjudged, pick) < 0) {
		// Its rules are unknown for a moment (the scanner reads its
		// executable after scan.CmdlineHold): killing the best eligible
		// in its place would likely kill the wrong process. The wait is
		// bounded by UnjudgedWait from its first pass, whichever
		// candidates it waits for meanwhile.
		since := now
		if prev.phase == phaseUnjudged {
			since = prev.since
		}
		end := since.Add(k.cfg.UnjudgedWait)
		if now.Before(end) {
			k.cur = flight{active: true, victim: *unjudged, phase: phaseUnjudged, since: since}
			reason := note + trig + "PID " + strconv.Itoa(unjudged.Victim) + " (" + unjudged.Comm +
				", badness " + strconv.FormatInt(unjudged.Badness, 10) + ") cannot be judged yet: " + unjudged.Reason
			if pick != nil {
				reason += "; it outranks the best eligible PID " + strconv.Itoa(pick.Victim) +
					" (badness " + strconv.FormatInt(pick.Badness, 10) + ")"
			}
			return Decision{Kind: DecideWait, Victim: *unjudged, Deadline: end, Verdict: v,
				Reason: reason + "; waiting " + end.Sub(now).String() + " more for its command line or executable instead of choosing another victim"}
		}
		// Passed over for this decision only: no mark, so that it is
		// judged as soon as it can be.
		note += "PID " + strconv.Itoa(unjudged.Victim) + " could not be judged within " + k.cfg.UnjudgedWait.String() + "; passed over; "
	}
	if pick == nil {
		return Decision{Kind: DecideNone, Verdict: v, Reason: note + trig + "no eligible victim (" +
			strconv.Itoa(protected) + " protected, " + strconv.Itoa(skipped) + " skipped groups)"}
	}
	k.cur = flight{active: true, victim: *pick, since: now}
	reason := note + trig + "victim PID " + strconv.Itoa(pick.Victim) + " (" + pick.Comm + "): " + pick.Reason
	if v.Level == LevelTerm && k.cfg.TermGrace > 0 {
		k.cur.phase = phaseTerm
		end := now.Add(k.cfg.TermGrace)
		return Decision{Kind: DecideKill, Victim: *pick, Signal: SIGTERM, KillCgroup: k.rules.KillCgroup,
			Deadline: end, Verdict: v, Reason: reason + "; SIGTERM first, SIGKILL after " + k.cfg.TermGrace.String()}
	}
	k.cur.phase, k.cur.attempt = phaseKill, 1
	return k.killDecision(v, now, reason)
}

// outranks orders a and b as Rank does, by what is known of them:
// preference, avoidance, then badness (negative puts a first).
var outranks = orderedBy(byPrefer, byAvoid, byBadness)

// expireMarks drops the marks of processes no longer in snap.
func (k *Killer) expireMarks(snap *Snapshot) {
	if len(k.marks) == 0 || len(snap.Processes) == 0 {
		return
	}
	for key := range k.marks {
		if !alive(snap, key.pid, key.start) {
			delete(k.marks, key)
		}
	}
}

// alive reports whether snap holds the process, not yet a zombie.
func alive(snap *Snapshot, pid int, start uint64) bool {
	for i := range snap.Processes {
		p := &snap.Processes[i]
		if p.PID == pid && p.StartTime == start {
			return p.State != 'Z' && p.State != 'X'
		}
	}
	return false
}

// gone reports whether every member of c has left snap. A snapshot without
// processes tells nothing.
func gone(snap *Snapshot, c *Candidate) bool {
	if len(snap.Processes) == 0 {
		return false
	}
	for i := range c.Members {
		if alive(snap, c.Members[i].PID, c.Members[i].StartTime) {
			return false
		}
	}
	return true
}

// freeing reports whether some member of c is not yet a zombie: an exiting
// process still tearing down its address space, which is worth waiting
// for. Zombies have freed theirs: waiting for them frees nothing (and one
// left unreaped would be waited for again at every pass, since gone counts
// it as gone). A member whose state is unknown counts as freeing.
func freeing(c *Candidate) bool {
	for i := range c.Members {
		if s := c.Members[i].State; s != "Z" && s != "X" {
			return true
		}
	}
	return false
}

// inScope reports whether any member of c is in scope.
func inScope(c *Candidate, scope int) bool {
	for i := range c.Members {
		if c.Members[i].Scope == scope {
			return true
		}
	}
	return false
}

// hasMember reports whether c has the process.
func hasMember(c *Candidate, pid int, start uint64) bool {
	for i := range c.Members {
		if c.Members[i].PID == pid && c.Members[i].StartTime == start {
			return true
		}
	}
	return false
}

// victimPID is c.Victim, or its first PID when it has no victim.
func victimPID(c *Candidate) int { return pidKey(c) }

// victimKey identifies c's victim process.
func victimKey(c *Candidate) procKey {
	pid := victimPID(c)
	for i := range c.Members {
		if c.Members[i].PID == pid {
			return procKey{pid, c.Members[i].StartTime}
		}
	}
	return procKey{pid, c.StartTime}
}

// trimNote drops the "; " a note ends with.
func trimNote(s string) string {
	if len(s) >= 2 && s[len(s)-2:] == "; " {
		return s[:len(s)-2]
	}
	return s
}

// stamp formats a time for reasons.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
