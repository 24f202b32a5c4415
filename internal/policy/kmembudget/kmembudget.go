// Package kmembudget decides when a cgroup's kernel memory breaks its
// budget and what to do about it; it is pure: no I/O, time comes in as a
// value.
package kmembudget

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Action is what to do when a cgroup breaks its budget.
type Action string

// The actions a budget can name.
const (
	// KillHeaviest kills the process inside the cgroup that holds the most
	// kernel memory by oomguard's attribution.
	KillHeaviest Action = "kill-heaviest"
	// KillCgroup freezes, then kills every process in the cgroup.
	KillCgroup Action = "kill-cgroup"
	// Report only logs and counts the breach.
	Report Action = "report"
)

// ParseAction parses the name of an action.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case KillHeaviest, KillCgroup, Report:
		return a, nil
	}
	return "", fmt.Errorf("unknown kmem budget action %q (want kill-heaviest, kill-cgroup or report)", s)
}

// DefaultCooldown is the least time between two actions on one cgroup when
// a Budget leaves Cooldown zero.
const DefaultCooldown = 5 * time.Second

// Budget is a kernel-memory budget for the cgroups a pattern names.
type Budget struct {
	// Pattern is a cgroup directory, or a glob of directories in path.Match
	// syntax ("/sys/fs/cgroup/memory/jobs/*").
	Pattern string `json:"pattern"`
	// Max is the budget in bytes: usage above it is a breach.
	Max uint64 `json:"max"`
	// Low is the re-arm mark: after a breach the budget does not act again
	// on the cgroup until its usage has fallen below Low. Zero means 90% of
	// Max.
	Low uint64 `json:"low,omitempty"`
	// Action is what a breach triggers.
	Action Action `json:"action"`
	// Cooldown is the least time between two actions on one cgroup. Zero
	// means DefaultCooldown.
	Cooldown time.Duration `json:"cooldown,omitempty"`
}

// LowMark returns Low, or its default of 90% of Max.
func (b Budget) LowMark() uint64 {
	if b.Low != 0 {
		return b.Low
	}
	return b.Max / 10 * 9
}

func (b Budget) cooldown() time.Duration {
	if b.Cooldown != 0 {
		return b.Cooldown
	}
	return DefaultCooldown
}

// Validate reports what is wrong with b, if anything.
func (b Budget) Validate() error {
	if b.Pattern == "" || !path.IsAbs(b.Pattern) {
		return fmt.Errorf("kmem budget %q: the cgroup must be an absolute directory or glob", b.Pattern)
	}
	if _, err := path.Match(b.Pattern, "/"); err != nil {
		return fmt.Errorf("kmem budget %q: bad glob: %w", b.Pattern, err)
	}
	if b.Max == 0 {
		return fmt.Errorf("kmem budget %q: max must be above 0", b.Pattern)
	}
	if b.Low > b.Max {
		return fmt.Errorf("kmem budget %q: low mark %d is above max %d", b.Pattern, b.Low, b.Max)
	}
	if b.Cooldown < 0 {
		return fmt.Errorf("kmem budget %q: negative cooldown", b.Pattern)
	}
	if _, err := ParseAction(string(b.Action)); err != nil {
		return fmt.Errorf("kmem budget %q: %w", b.Pattern, err)
	}
	return nil
}

// Matches reports whether the cgroup directory dir falls under b's pattern.
func (b Budget) Matches(dir string) bool {
	dir = path.Clean(dir)
	if dir == path.Clean(b.Pattern) {
		return true
	}
	ok, err := path.Match(b.Pattern, dir)
	return err == nil && ok
}

// Observation is one reading of a cgroup's kernel memory with the budget
// that applies to it.
type Observation struct {
	Cgroup string
	Budget Budget
	// Usage is the kernel memory in bytes.
	Usage uint64
	// Breakdown is the kernel memory by kind, in bytes, where read; it is
	// copied into a Decision.
	Breakdown map[string]uint64
}

// Decision says a cgroup broke its budget and what to do.
type Decision struct {
	// Time is the observation time that found the breach.
	Time   time.Time
	Cgroup string
	Budget Budget
	Action Action
	// Usage is the kernel memory that broke the budget.
	Usage uint64
	// Failcnt is the number of breaches of this cgroup, this one included.
	Failcnt uint64
	// Breakdown is the Observation's.
	Breakdown map[string]uint64
	// Reason is a sentence for logs.
	Reason string
}

// State is what a Tracker remembers of one cgroup.
type State struct {
	Cgroup string
	Budget Budget
	// Usage is the latest reading; Peak the highest seen.
	Usage, Peak uint64
	// Failcnt counts breaches.
	Failcnt uint64
	// Armed is false from a breach until usage falls below the low mark.
	Armed bool
	// LastAction is when the last decision was made; zero if never.
	LastAction time.Time
	// ActedAt is the usage that made the last decision.
	ActedAt uint64
}

// Tracker applies budgets with hysteresis: a breach yields one decision;
// the cgroup re-arms only once its usage has fallen below the budget's low
// mark, and two decisions on one cgroup are at least the budget's cooldown
// apart (a breach during the cooldown waits for its end, then acts if the
// usage is still above the budget). A breach that goes on growing after
// its decision, by the width of the band between the low mark and the
// budget, yields another once the cooldown is over: the process killed was
// not the cause. One that only stays above does not: kernel memory such as
// dentries stays charged to a cgroup after the processes that made it are
// gone, and acting again would kill whatever starts there next. The zero
// value is ready to use. A Tracker is not safe for concurrent use.
type Tracker struct {
	states map[string]*State
}

// Observe records o, taken at now, and returns a decision when it is a
// breach to act on.
func (t *Tracker) Observe(now time.Time, o Observation) (Decision, bool) {
	if t.states == nil {
		t.states = map[string]*State{}
	}
	s := t.states[o.Cgroup]
	if s == nil {
		s = &State{Cgroup: o.Cgroup, Armed: true}
		t.states[o.Cgroup] = s
	}
	s.Budget = o.Budget
	s.Usage = o.Usage
	if o.Usage > s.Peak {
		s.Peak = o.Usage
	}
	b := o.Budget
	if o.Usage < b.LowMark() {
		s.Armed = true
		return Decision{}, false
	}
	growing := !s.Armed && o.Usage >= s.ActedAt+(b.Max-b.LowMark())
	if o.Usage <= b.Max || (!s.Armed && !growing) {
		return Decision{}, false
	}
	if !s.LastAction.IsZero() && now.Sub(s.LastAction) < b.cooldown() {
		return Decision{}, false
	}
	s.Armed = false
	s.Failcnt++
	s.LastAction, s.ActedAt = now, o.Usage
	d := Decision{
		Time: now, Cgroup: o.Cgroup, Budget: b, Action: b.Action, Usage: o.Usage, Failcnt: s.Failcnt,
		Breakdown: o.Breakdown,
	}
	d.Reason = fmt.Sprintf("kernel memory of %s is %s, above its budget of %s (breach %d); action %s%s",
		o.Cgroup, FormatBytes(o.Usage), FormatBytes(b.Max), s.Failcnt, b.Action, DescribeBreakdown(o.Breakdown))
	return d, true
}

// DescribeBreakdown renders a breakdown for logs, largest kind first, as
// "; breakdown: kind=size …"; it is empty for an empty breakdown.
func DescribeBreakdown(bd map[string]uint64) string {
	if len(bd) == 0 {
		return ""
	}
	names := make([]string, 0, len(bd))
	for k := range bd {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if bd[names[i]] != bd[names[j]] {
			return bd[names[i]] > bd[names[j]]
		}
		return names[i] < names[j]
	})
	var sb strings.Builder
	sb.WriteString("; breakdown:")
	for _, n := range names {
		fmt.Fprintf(&sb, " %s=%s", n, FormatBytes(bd[n]))
	}
	return sb.String()
}

// State returns what t remembers of cgroup.
func (t *Tracker) State(cgroup string) (State, bool) {
	s, ok := t.states[cgroup]
	if !ok {
		return State{}, false
	}
	return *s, true
}

// States returns every tracked cgroup's state, by path.
func (t *Tracker) States() []State {
	out := make([]State, 0, len(t.states))
	for _, s := range t.states {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cgroup < out[j].Cgroup })
	return out
}

// Forget drops a cgroup that no longer exists.
func (t *Tracker) Forget(cgroup string) { delete(t.states, cgroup) }

// Candidate is a process that kill-heaviest may choose.
type Candidate struct {
	PID       int
	StartTime uint64
	Comm      string
	// OOMScoreAdj of -1000 protects the process.
	OOMScoreAdj int
	// KernelMemory is the process's attributed kernel memory in bytes; a
	// lower bound when UpperBound is above it.
	KernelMemory uint64
	// UpperBound is the most kernel memory the process can hold by what was
	// read (for example pipes counted but their data not read); 0 means
	// KernelMemory is the whole figure.
	UpperBound uint64
	// KernelThread and Exiting processes are never chosen.
	KernelThread, Exiting bool
	// ProtectedBy, when not "", is why the configuration protects the
	// process (a protected name): it is never chosen.
	ProtectedBy string
}

// Protected reports why c may never be killed, or "" when it may: PID 1,
// oomguard itself (selfPID), oom_score_adj -1000, kernel threads, and what
// the configuration protects (ProtectedBy).
func Protected(c Candidate, selfPID int) string {
	switch {
	case c.ProtectedBy != "":
		return c.ProtectedBy
	case c.PID == 1:
		return "PID 1"
	case c.PID == selfPID:
		return "oomguard itself"
	case c.OOMScoreAdj == -1000:
		return "oom_score_adj -1000"
	case c.KernelThread:
		return "kernel thread"
	}
	return ""
}

// ErrNoVictim says no process may be chosen.
var ErrNoVictim = errors.New("no killable process holds kernel memory in the cgroup")

// Heaviest returns the unprotected, not exiting candidate with the most
// kernel memory (ties go to the lower PID).
func Heaviest(cs []Candidate, selfPID int) (Candidate, error) {
	var best Candidate
	found := false
	for _, c := range cs {
		if !eligible(c, selfPID) {
			continue
		}
		if !found || c.KernelMemory > best.KernelMemory || c.KernelMemory == best.KernelMemory && c.PID < best.PID {
			best, found = c, true
		}
	}
	if !found {
		return Candidate{}, ErrNoVictim
	}
	return best, nil
}

func (c Candidate) upper() uint64 { return max(c.UpperBound, c.KernelMemory) }

func eligible(c Candidate, selfPID int) bool { return Protected(c, selfPID) == "" && !c.Exiting }

// Contenders returns the eligible candidates that may be the heaviest: the
// one with the largest lower bound and every other whose upper bound
// reaches it. When only one is returned, Heaviest's choice is certain
// without measuring further; otherwise measure the contenders exactly and
// choose again.
func Contenders(cs []Candidate, selfPID int) []Candidate {
	var best uint64
	for _, c := range cs {
		if eligible(c, selfPID) && c.KernelMemory > best {
			best = c.KernelMemory
		}
	}
	var out []Candidate
	for _, c := range cs {
		if eligible(c, selfPID) && c.upper() >= best {
			out = append(out, c)
		}
	}
	return out
}

// FormatBytes renders n with a binary unit: "512 B", "1.5 KiB", "64.0 MiB".
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTP"[exp]) + "iB"
}
