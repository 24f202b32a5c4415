package policy

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"time"
)

// Level is how hard a verdict says to act.
type Level int

// Levels, in increasing severity.
const (
	// LevelNone: nothing to do.
	LevelNone Level = iota
	// LevelTerm: ask the victim to exit (SIGTERM when a term grace is
	// configured, else SIGKILL).
	LevelTerm
	// LevelKill: SIGKILL now.
	LevelKill
)

// String returns "none", "term" or "kill".
func (l Level) String() string {
	switch l {
	case LevelNone:
		return "none"
	case LevelTerm:
		return "term"
	case LevelKill:
		return "kill"
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// MarshalText encodes the level as its String.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText parses "none", "term" or "kill".
func (l *Level) UnmarshalText(b []byte) error {
	for c := LevelNone; c <= LevelKill; c++ {
		if string(b) == c.String() {
			*l = c
			return nil
		}
	}
	return errors.New("policy: unknown level " + strconv.Quote(string(b)) + ", want none, term or kill")
}

// Trigger names as they appear in Verdict.Trigger.
const (
	TriggerMemAvail = "memavail"
	TriggerPSI      = "psi"
	TriggerScope    = "scope"
	TriggerThrash   = "thrash"
)

// Verdict is the outcome of EvaluateTriggers: the most severe trigger that
// fired (the first in the order memavail, scope, psi, thrash on equal
// levels), or Level None.
type Verdict struct {
	Level Level `json:"level"`
	// Trigger is one of the Trigger* names; empty for LevelNone.
	Trigger string `json:"trigger,omitempty"`
	// Scope is the index in Snapshot.Scopes of the scope that fired, or -1
	// for a system-wide trigger (and for LevelNone).
	Scope int `json:"scope"`
	// Reason says what crossed which level, with the numbers.
	Reason string `json:"reason,omitempty"`
	// Numbers are the measured values and the levels they were compared to,
	// for logs and metrics.
	Numbers map[string]float64 `json:"numbers,omitempty"`
	// MemoryWaiting is true when some task stalled on memory since the
	// previous snapshot (the system's memory "some" PSI total grew), or
	// when that cannot be told (no PSI, or no previous snapshot). It
	// decides how soon a victim's memory is reaped (KillConfig.ReapAfter).
	MemoryWaiting bool `json:"memory_waiting"`
}

// Triggers configures every trigger. Each is independent; the zero value
// disables all of them, DefaultTriggers gives the documented defaults.
//
// When the snapshot has scopes (--scope), only what is measured inside them
// is evaluated: the memavail trigger, system-wide PSI and system-wide
// thrashing are skipped, and the scope, per-scope PSI and per-scope thrash
// triggers run for each scope separately.
type Triggers struct {
	MemAvail MemAvailTrigger
	Scope    ScopeTrigger
	PSI      []PSITrigger
	Thrash   ThrashTrigger
}

// MemAvailTrigger watches system-wide MemAvailable% and SwapFree%, with
// earlyoom's semantics: a level is reached only when memory AND swap are at
// or below their percentages; a machine without swap counts as swap 0 %.
type MemAvailTrigger struct {
	Enabled bool
	// MemTermPercent and MemKillPercent are MemAvailable as a percentage of
	// MemTotal at or below which the term and kill levels are reached.
	MemTermPercent, MemKillPercent float64
	// SwapTermPercent and SwapKillPercent are SwapFree as a percentage of
	// SwapTotal, same meaning.
	SwapTermPercent, SwapKillPercent float64
	// MemoryOnly ignores swap: memory alone decides.
	MemoryOnly bool
	// StallPercent and StallWindow let memory alone decide while swap is
	// still free, once the kernel stalls on it: a level of MemAvailable is
	// reached, whatever SwapFree says, when the memory "full" stall (every
	// runnable task waiting for memory) took at least StallPercent of the
	// last StallWindow. Swapping that costs nothing is left alone; swapping
	// that freezes the machine (a hog paging through zram or a disk) is
	// acted on seconds before swap runs out. 0 disables.
	StallPercent float64
	StallWindow  time.Duration
	// Lead compares MemAvailable as it will be Lead from now at the rate
	// it is falling, measured over the last 50 to 200 ms: the time it takes
	// to choose, signal and reap a victim. A hog filling memory at 150
	// MiB/s takes 15 MiB more while that happens; without the lead the
	// kill lands that far below the level, with it, at the level. A flat
	// or rising MemAvailable projects nothing, and neither does a fall
	// that does not go on (see fallHist). 0 disables.
	Lead time.Duration
}

// ScopeTrigger watches each scope cgroup: available = limit − usage +
// reclaimable file cache, as a percentage of the limit. A scope without a
// limit is not evaluated.
type ScopeTrigger struct {
	Enabled bool
	// TermPercent and KillPercent are the available percentages at or below
	// which the levels are reached.
	TermPercent, KillPercent float64
	// UseHigh measures against v2 memory.high instead of the limit when it
	// is set and lower (so a scope with only memory.high is evaluated too).
	UseHigh bool
}

// PSIResource names a pressure file.
type PSIResource int

// PSI resources.
const (
	PSIMemory PSIResource = iota
	PSIIO
	PSICPU
)

// String returns "memory", "io" or "cpu".
func (r PSIResource) String() string {
	switch r {
	case PSIMemory:
		return "memory"
	case PSIIO:
		return "io"
	case PSICPU:
		return "cpu"
	}
	return "psi(" + strconv.Itoa(int(r)) + ")"
}

// MarshalText encodes the resource as its String.
func (r PSIResource) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses "memory", "io" or "cpu".
func (r *PSIResource) UnmarshalText(b []byte) error {
	for c := PSIMemory; c <= PSICPU; c++ {
		if string(b) == c.String() {
			*r = c
			return nil
		}
	}
	return errors.New("policy: unknown PSI resource " + strconv.Quote(string(b)) + ", want memory, io or cpu")
}

// PSITrigger fires on one PSI line, system-wide and/or in each scope. A
// pressure file the kernel does not provide (PressureFile.Valid false) is not
// evaluated.
type PSITrigger struct {
	Resource PSIResource
	// Full selects the "full" line; otherwise "some".
	Full bool
	// System evaluates /proc/pressure (unscoped only); Scopes evaluates each
	// scope's own pressure file.
	System, Scopes bool
	// TermPercent and KillPercent are stall percentages at or above which
	// the levels are reached; 0 disables a level.
	TermPercent, KillPercent float64
	// Window 0 measures avg10. A positive Window measures the stall share of
	// wall time from the Total counter over the last Window (sliding, from
	// the newest snapshot at least Window old: faster and exact, like a
	// kernel PSI trigger with that window); until the history spans a
	// window, avg10 is used.
	Window time.Duration
}

// ThrashTrigger fires on thrashing that never reaches OOM: the file refault
// rate and io or memory pressure stay high for Sustain while available
// memory is under a soft level. Pressure is the larger of the "some" avg10
// and the "some" stall share over the refault rate's window: avg10 rides
// over the dips of a steady thrash, the window sees its start seconds
// before avg10 has risen. System-wide it uses Snapshot.RefaultFile,
// Pressure and MemAvailable; per scope, the scope's RefaultFile, its
// available percentage (see ScopeTrigger) and its pressure, or the system's
// pressure when the scope has none (cgroup v1).
type ThrashTrigger struct {
	Enabled bool
	// RefaultsPerSec is the workingset_refault_file rate at or above which
	// refaults count as high.
	RefaultsPerSec float64
	// PressurePercent is the "some" pressure of io or of memory (either
	// one; avg10 or the stall share of the last window, whichever is
	// higher) at or above which pressure counts as high.
	PressurePercent float64
	// AvailPercent is the soft level: available memory must be below it.
	AvailPercent float64
	// Turnover lets the refault rate stand in for pressure: refaults count
	// as thrashing by themselves when each second they re-read at least
	// Turnover times the memory still available (0.25: the working set
	// churns through it every 4 s). Readahead hides such a thrash from
	// PSI, since the reader rarely waits on a page, but the cache holds
	// nothing long enough to be reused and the disk does nothing else. A
	// busy build on a big machine refaults a small fraction of its cache a
	// second and does not qualify. 0 disables.
	Turnover float64
	// Sustain is how long all three must hold, across snapshots.
	Sustain time.Duration
	// Level is the level the trigger fires at.
	Level Level
}

// DefaultTriggers returns the defaults: memavail at earlyoom's 10 %/10 %
// (term) and 5 %/5 % (kill), or memory alone with a memory "full" stall of
// 20 % over 500 ms; scope at 10 % and 5 % available; PSI memory "full"
// avg10 at 50 % (term) and 80 % (kill), system-wide and per scope; thrash
// at 2,000 refaults/s with io or memory "some" pressure at 20 % for 2 s
// under 20 % available, at the term level.
func DefaultTriggers() Triggers {
	return Triggers{
		MemAvail: MemAvailTrigger{Enabled: true, MemTermPercent: 10, MemKillPercent: 5,
			SwapTermPercent: 10, SwapKillPercent: 5, StallPercent: 20, StallWindow: 500 * time.Millisecond,
			Lead: 100 * time.Millisecond},
		Scope: ScopeTrigger{Enabled: true, TermPercent: 10, KillPercent: 5, UseHigh: true},
		PSI: []PSITrigger{{Resource: PSIMemory, Full: true, System: true, Scopes: true,
			TermPercent: 50, KillPercent: 80}},
		Thrash: ThrashTrigger{Enabled: true, RefaultsPerSec: 2000, PressurePercent: 20,
			AvailPercent: 20, Turnover: 0.25, Sustain: 2 * time.Second, Level: LevelTerm},
	}
}

// Validate reports the first inconsistency in t, naming the field.
func (t *Triggers) Validate() error {
	pct := func(name string, v float64) error {
		if v < 0 || v > 100 || v != v {
			return errors.New("triggers: " + name + " is " + ftoa(v) + ", want 0..100")
		}
		return nil
	}
	order := func(term, kill string, tv, kv float64) error {
		if kv > tv && tv != 0 {
			return errors.New("triggers: " + kill + " (" + ftoa(kv) + ") is above " + term + " (" + ftoa(tv) + ")")
		}
		return nil
	}
	m, s, th := &t.MemAvail, &t.Scope, &t.Thrash
	for _, err := range []error{
		pct("memavail mem term", m.MemTermPercent), pct("memavail mem kill", m.MemKillPercent),
		pct("memavail swap term", m.SwapTermPercent), pct("memavail swap kill", m.SwapKillPercent),
		order("memavail mem term", "memavail mem kill", m.MemTermPercent, m.MemKillPercent),
		order("memavail swap term", "memavail swap kill", m.SwapTermPercent, m.SwapKillPercent),
		pct("scope term", s.TermPercent), pct("scope kill", s.KillPercent),
		order("scope term", "scope kill", s.TermPercent, s.KillPercent),
		pct("thrash pressure", th.PressurePercent), pct("thrash available", th.AvailPercent),
		pct("memavail stall", m.StallPercent),
	} {
		if err != nil {
			return err
		}
	}
	if m.Lead < 0 || m.Lead > 10*time.Second {
		return errors.New("triggers: memavail lead is " + m.Lead.String() + ", want 0 to 10s")
	}
	if m.StallPercent > 0 && m.StallWindow <= 0 {
		return errors.New("triggers: memavail stall needs a positive window")
	}
	if th.Turnover < 0 || th.Turnover != th.Turnover {
		return errors.New("triggers: thrash turnover is " + ftoa(th.Turnover) + ", want >= 0")
	}
	if th.Enabled && (th.RefaultsPerSec <= 0 || th.Sustain < 0 || th.Level <= LevelNone || th.Level > LevelKill) {
		return errors.New("triggers: thrash needs a positive refault rate, a sustain >= 0 and level term or kill")
	}
	for i := range t.PSI {
		p := &t.PSI[i]
		name := "psi[" + strconv.Itoa(i) + "]"
		if p.Resource < PSIMemory || p.Resource > PSICPU {
			return errors.New("triggers: " + name + " has an unknown resource")
		}
		if err := pct(name+" term", p.TermPercent); err != nil {
			return err
		}
		if err := pct(name+" kill", p.KillPercent); err != nil {
			return err
		}
		if p.KillPercent != 0 && p.TermPercent != 0 && p.KillPercent < p.TermPercent {
			return errors.New("triggers: " + name + " kill (" + ftoa(p.KillPercent) + ") is below term (" + ftoa(p.TermPercent) + ")")
		}
		if p.Window < 0 {
			return errors.New("triggers: " + name + " window is negative")
		}
	}
	return nil
}

// TriggerState is the history EvaluateTriggers needs between snapshots:
// previous refault counters and times, when a thrashing condition started,
// and PSI windows. The zero value is ready to use. It is not safe for
// concurrent use.
type TriggerState struct {
	sys      targetHist
	scopes   []targetHist
	psi      []psiHist
	memStall psiHist  // the memavail trigger's memory "full" window
	memFall  fallHist // the memavail trigger's fill rate
	// memSome is the system's memory "some" total (µs) at the previous
	// snapshot, when haveSome.
	memSome  uint64
	haveSome bool
}

// fallHist measures how fast MemAvailable falls: over tumbling windows of
// fallWindow, or over the current one once it spans minFallSpan; and
// between each of the last fallSteps+1 samples, so that a fall that does
// not go on (one allocation burst) is not read as a trend.
type fallHist struct {
	have      bool
	baseTime  time.Time
	baseAvail uint64
	rate      float64 // bytes per second, positive when falling
	// last holds the latest samples, n of them valid, newest at
	// last[(next+len-1)%len].
	last [fallSteps + 1]fallSample
	n    int
	next int
}

type fallSample struct {
	t     time.Time
	avail uint64
}

// Fall rate windows: short enough to follow a hog. The window's rate only
// counts as far as the median of the last fallSteps steps between samples
// confirms it: a hog falls at every step, a burst in one.
const (
	minFallSpan = 50 * time.Millisecond
	fallWindow  = 200 * time.Millisecond
	fallSteps   = 3
)

// fallRate updates h with avail at now and returns the rate MemAvailable is
// falling at, in bytes per second (0 when not falling or not yet known).
func fallRate(h *fallHist, avail uint64, now time.Time) float64 {
	if !h.have || now.Before(h.baseTime) || now.Sub(h.baseTime) > 5*fallWindow {
		// First sample, a clock going back, or a gap in polling (the poll
		// was stretched): start over.
		*h = fallHist{have: true, baseTime: now, baseAvail: avail}
		h.push(now, avail)
		return 0
	}
	dt := now.Sub(h.baseTime)
	if dt >= minFallSpan {
		h.rate = (float64(h.baseAvail) - float64(avail)) / dt.Seconds()
	}
	if dt >= fallWindow {
		h.baseTime, h.baseAvail = now, avail
	}
	h.push(now, avail)
	return max(min(h.rate, h.stepMedian()), 0)
}

// push records a sample.
func (h *fallHist) push(now time.Time, avail uint64) {
	h.last[h.next] = fallSample{t: now, avail: avail}
	h.next = (h.next + 1) % len(h.last)
	h.n = min(h.n+1, len(h.last))
}

// stepMedian is the median fall rate over the steps between the recorded
// samples; 0 until there are fallSteps of them.
func (h *fallHist) stepMedian() float64 {
	if h.n < len(h.last) {
		return 0
	}
	var r [fallSteps]float64
	for i := range r {
		a := h.last[(h.next+i)%len(h.last)]
		b := h.last[(h.next+i+1)%len(h.last)]
		if dt := b.t.Sub(a.t).Seconds(); dt > 0 {
			r[i] = (float64(a.avail) - float64(b.avail)) / dt
		}
	}
	slices.Sort(r[:])
	return r[fallSteps/2]
}

// targetHist is the history of the system or of one scope.
type targetHist struct {
	path        string
	have        bool
	prevTime    time.Time
	prevRefault int64
	thrashSince time.Time // zero when not thrashing
	rate        float64   // refaults per second over the last window
	haveRate    bool
	// prevIO and prevMem are the "some" stall totals (µs) at prevTime;
	// ioShare and memShare the stall percentages over the last window.
	prevIO, prevMem   uint64
	ioShare, memShare float64
}

// refaultWindow is the shortest interval a refault rate is measured over.
const refaultWindow = time.Second

// psiHist is one PSI trigger's sliding window on one target: the stall
// counter sampled window/8 or more apart, enough samples to look one
// window back.
type psiHist struct {
	path     string
	ring     [psiRing]psiSample
	n, head  int     // samples kept; index of the newest
	rate     float64 // percent, valid when haveRate
	haveRate bool
}

// psiSample is one reading of a PSI total counter.
type psiSample struct {
	t     time.Time
	total uint64
}

// psiRing is how many samples a psiHist keeps.
const psiRing = 16

// EvaluateTriggers evaluates every enabled trigger of cfg on snap, at
// snap.Time, and updates state. It returns the most severe verdict.
func EvaluateTriggers(state *TriggerState, snap *Snapshot, cfg Triggers) Verdict {
	now := snap.Time
	v := Verdict{Scope: -1}
	scoped := len(snap.Scopes) > 0
	if len(state.scopes) != len(snap.Scopes) {
		state.scopes = make([]targetHist, len(snap.Scopes))
	}
	targets := 1 + len(snap.Scopes)
	if n := len(cfg.PSI) * targets; len(state.psi) != n {
		state.psi = make([]psiHist, n)
	}

	if !scoped && cfg.MemAvail.Enabled {
		v = worse(v, memAvail(&state.memStall, &state.memFall, snap, &cfg.MemAvail))
	}
	if cfg.Scope.Enabled {
		for i := range snap.Scopes {
			v = worse(v, scopeLevel(&snap.Scopes[i], i, &cfg.Scope))
		}
	}
	for ti := range cfg.PSI {
		t := &cfg.PSI[ti]
		if t.System && !scoped {
			v = worse(v, psiLevel(&state.psi[ti*targets], "", &snap.Pressure, -1, t, now))
		}
		if t.Scopes {
			for i := range snap.Scopes {
				sc := &snap.Scopes[i]
				v = worse(v, psiLevel(&state.psi[ti*targets+1+i], sc.Path, &sc.Pressure, i, t, now))
			}
		}
	}
	// Thrash histories are updated on every snapshot, enabled or not, so
	// that rates are ready when it is turned on.
	if !scoped {
		avail, ok := memAvailPercent(&snap.Memory)
		tv := thrash(&state.sys, "", now, snap.RefaultFile, avail, ok, float64(snap.Memory.Available), pageSize(snap), &snap.Pressure, -1, &cfg.Thrash)
		v = worse(v, tv)
	}
	for i := range snap.Scopes {
		sc := &snap.Scopes[i]
		avail, limit, ok := scopeAvailPercent(sc, cfg.Scope.UseHigh)
		pr := &sc.Pressure
		if !pr.IO.Valid && !pr.Memory.Valid {
			pr = &snap.Pressure
		}
		tv := thrash(&state.scopes[i], sc.Path, now, sc.RefaultFile, avail, ok, avail/100*float64(limit), pageSize(snap), pr, i, &cfg.Thrash)
		v = worse(v, tv)
	}
	v.MemoryWaiting = memoryWaiting(state, &snap.Pressure.Memory)
	return v
}

// memoryWaiting reports whether some task stalled on memory between the
// previous snapshot and this one, by the system-wide memory "some" total
// (which counts the stalls inside every cgroup, scoped or not); true when
// it cannot tell.
func memoryWaiting(state *TriggerState, f *PressureFile) bool {
	if !f.Valid {
		state.haveSome = false
		return true
	}
	waiting := !state.haveSome || f.Some.Total != state.memSome
	state.memSome, state.haveSome = f.Some.Total, true
	return waiting
}

// worse returns b when it is strictly more severe than a.
func worse(a, b Verdict) Verdict {
	if b.Level > a.Level {
		return b
	}
	return a
}

// memAvailPercent is MemAvailable as a percentage of MemTotal.
func memAvailPercent(m *Memory) (float64, bool) {
	if m.Total == 0 {
		return 0, false
	}
	return 100 * float64(m.Available) / float64(m.Total), true
}

// memAvail evaluates the memavail trigger; h is the memory "full" stall
// window (see MemAvailTrigger.StallPercent), fall the fill rate (see Lead).
func memAvail(h *psiHist, fall *fallHist, snap *Snapshot, t *MemAvailTrigger) Verdict {
	mem, ok := memAvailPercent(&snap.Memory)
	if !ok {
		return Verdict{Scope: -1}
	}
	rate := fallRate(fall, snap.Memory.Available, snap.Time)
	current, projected := mem, false
	if lead := rate * t.Lead.Seconds(); t.Lead > 0 && lead > 0 {
		mem = 100 * max(float64(snap.Memory.Available)-lead, 0) / float64(snap.Memory.Total)
		projected = true
	}
	swap := 0.0
	if snap.Memory.SwapTotal > 0 {
		swap = 100 * float64(snap.Memory.SwapFree) / float64(snap.Memory.SwapTotal)
	}
	stall, stalled := 0.0, false
	if t.StallPercent > 0 {
		if f := &snap.Pressure.Memory; f.Valid {
			stall, stalled = windowShare(h, "", f.Full.Total, snap.Time, t.StallWindow)
			stalled = stalled && stall >= t.StallPercent
		} else {
			*h = psiHist{}
		}
	}
	swapLow := func(level float64) bool { return t.MemoryOnly || swap <= level || stalled }
	level := LevelNone
	switch {
	case mem <= t.MemKillPercent && swapLow(t.SwapKillPercent):
		level = LevelKill
	case mem <= t.MemTermPercent && swapLow(t.SwapTermPercent):
		level = LevelTerm
	}
	if level == LevelNone {
		return Verdict{Scope: -1}
	}
	memLevel, swapLevel := t.MemTermPercent, t.SwapTermPercent
	if level == LevelKill {
		memLevel, swapLevel = t.MemKillPercent, t.SwapKillPercent
	}
	reason := "MemAvailable " + ftoa(mem) + "% <= " + ftoa(memLevel) + "%"
	if projected {
		reason = "MemAvailable " + ftoa(current) + "% falling " + ftoa(rate/(1<<20)) + " MiB/s: " +
			ftoa(mem) + "% in " + t.Lead.String() + " <= " + ftoa(memLevel) + "%"
	}
	numbers := map[string]float64{
		"mem_avail_percent": current, "mem_avail_projected_percent": mem, "fall_bytes_per_second": rate,
		"swap_free_percent": swap,
		"mem_level_percent": memLevel, "swap_level_percent": swapLevel,
		"mem_available_bytes": float64(snap.Memory.Available),
		"swap_free_bytes":     float64(snap.Memory.SwapFree),
	}
	switch {
	case t.MemoryOnly:
	case stalled && swap > swapLevel:
		reason += " and memory full stall " + ftoa(stall) + "% >= " + ftoa(t.StallPercent) + "% over " +
			t.StallWindow.String() + ", with SwapFree at " + ftoa(swap) + "%: the machine stalls on swap"
		numbers["memory_full_stall_percent"], numbers["stall_level_percent"] = stall, t.StallPercent
	case snap.Memory.SwapTotal == 0:
		reason += " and no swap (counts as SwapFree 0%)"
	default:
		reason += " and SwapFree " + ftoa(swap) + "% <= " + ftoa(swapLevel) + "%"
	}
	return Verdict{Level: level, Trigger: TriggerMemAvail, Scope: -1, Reason: reason, Numbers: numbers}
}

// noLimit is the smallest value treated as "no limit" (v1 reports
// PAGE_COUNTER_MAX pages, about 2^63 bytes).
const noLimit = 1 << 62

// scopeAvailPercent is the available percentage of a scope: limit − usage +
// reclaimable file cache over the limit (memory.high when useHigh and lower).
func scopeAvailPercent(sc *ScopeMemory, useHigh bool) (pct float64, limit uint64, ok bool) {
	limit = sc.Limit
	if limit >= noLimit {
		limit = 0
	}
	if useHigh && sc.High > 0 && sc.High < noLimit && (limit == 0 || sc.High < limit) {
		limit = sc.High
	}
	if limit == 0 {
		return 0, 0, false
	}
	avail := float64(limit) - float64(sc.Usage) + float64(sc.ReclaimableFile)
	avail = min(max(avail, 0), float64(limit))
	return 100 * avail / float64(limit), limit, true
}

// scopeLevel evaluates the scope trigger on scope i.
func scopeLevel(sc *ScopeMemory, i int, t *ScopeTrigger) Verdict {
	pct, limit, ok := scopeAvailPercent(sc, t.UseHigh)
	if !ok {
		return Verdict{Scope: -1}
	}
	level, at := LevelNone, 0.0
	switch {
	case pct <= t.KillPercent:
		level, at = LevelKill, t.KillPercent
	case pct <= t.TermPercent:
		level, at = LevelTerm, t.TermPercent
	default:
		return Verdict{Scope: -1}
	}
	what := "limit"
	if limit != sc.Limit {
		what = "memory.high"
	}
	return Verdict{Level: level, Trigger: TriggerScope, Scope: i,
		Reason: "scope " + sc.Path + ": available " + ftoa(pct) + "% <= " + ftoa(at) +
			"% (" + what + " " + utoa(limit) + " − usage " + utoa(sc.Usage) +
			" + reclaimable file " + utoa(sc.ReclaimableFile) + " bytes)",
		Numbers: map[string]float64{
			"avail_percent": pct, "level_percent": at, "limit_bytes": float64(limit),
			"usage_bytes": float64(sc.Usage), "reclaimable_file_bytes": float64(sc.ReclaimableFile),
		}}
}

// psiLevel evaluates one PSI trigger on one pressure file.
func psiLevel(h *psiHist, path string, pf *Pressures, scope int, t *PSITrigger, now time.Time) Verdict {
	file := &pf.Memory
	switch t.Resource {
	case PSIIO:
		file = &pf.IO
	case PSICPU:
		file = &pf.CPU
	}
	if !file.Valid {
		*h = psiHist{}
		return Verdict{Scope: -1}
	}
	line, lineName := &file.Some, "some"
	if t.Full {
		line, lineName = &file.Full, "full"
	}
	value, measure := line.Avg10, "avg10"
	if t.Window > 0 {
		if share, ok := windowShare(h, path, line.Total, now, t.Window); ok {
			value, measure = share, "stall over "+t.Window.String()
		}
	}
	level, at := LevelNone, 0.0
	switch {
	case t.KillPercent > 0 && value >= t.KillPercent:
		level, at = LevelKill, t.KillPercent
	case t.TermPercent > 0 && value >= t.TermPercent:
		level, at = LevelTerm, t.TermPercent
	default:
		return Verdict{Scope: -1}
	}
	where := "system"
	if scope >= 0 {
		where = "scope " + path
	}
	return Verdict{Level: level, Trigger: TriggerPSI, Scope: scope,
		Reason: where + ": " + t.Resource.String() + " " + lineName + " " + measure + " " +
			ftoa(value) + "% >= " + ftoa(at) + "%",
		Numbers: map[string]float64{"pressure_percent": value, "level_percent": at}}
}

// windowShare measures a PSI total counter (µs stalled) over a sliding
// window: from the newest sample at least window old to now. It returns
// that stall percentage; false until the history spans a window. Samples
// are kept window/8 or more apart. A new path, a counter going back or a
// clock going back starts over.
func windowShare(h *psiHist, path string, total uint64, now time.Time, window time.Duration) (float64, bool) {
	newest := &h.ring[h.head]
	if h.n == 0 || h.path != path || total < newest.total || now.Before(newest.t) {
		*h = psiHist{path: path, n: 1}
		h.ring[0] = psiSample{now, total}
		return 0, false
	}
	// The newest sample at least a window old, walking back from the newest.
	for i := 0; i < h.n; i++ {
		s := &h.ring[(h.head-i+psiRing)%psiRing]
		if dt := now.Sub(s.t); dt >= window {
			h.rate = min(100*float64(total-s.total)/float64(dt.Microseconds()), 100)
			h.haveRate = true
			break
		}
	}
	if now.Sub(newest.t) >= window/8 {
		h.head = (h.head + 1) % psiRing
		h.ring[h.head] = psiSample{now, total}
		h.n = min(h.n+1, psiRing)
	}
	return h.rate, h.haveRate
}

// thrash evaluates the thrash trigger on one target and updates its history.
func thrash(h *targetHist, path string, now time.Time, refault int64, avail float64, availOK bool,
	availBytes float64, page uint64, pr *Pressures, scope int, t *ThrashTrigger) Verdict {
	if h.path != path || !h.have || refault < 0 || refault < h.prevRefault || now.Before(h.prevTime) {
		// First sample, a new scope, a counter reset, an unknown counter or
		// a clock going back: start over.
		*h = targetHist{path: path, have: refault >= 0, prevTime: now, prevRefault: refault,
			prevIO: pr.IO.Some.Total, prevMem: pr.Memory.Some.Total}
		return Verdict{Scope: -1}
	}
	// The rate is measured over at least refaultWindow, so that snapshots
	// taken in quick succession (while a victim dies) do not see bursts.
	// The stall shares are measured over the same window.
	if dt := now.Sub(h.prevTime); dt >= refaultWindow {
		h.rate = float64(refault-h.prevRefault) / dt.Seconds()
		h.haveRate = true
		share := func(total, prev uint64) float64 {
			if total < prev {
				return 0
			}
			return min(100*float64(total-prev)/float64(dt.Microseconds()), 100)
		}
		h.ioShare, h.memShare = share(pr.IO.Some.Total, h.prevIO), share(pr.Memory.Some.Total, h.prevMem)
		h.prevTime, h.prevRefault = now, refault
		h.prevIO, h.prevMem = pr.IO.Some.Total, pr.Memory.Some.Total
	}
	if !h.haveRate {
		return Verdict{Scope: -1}
	}
	rate := h.rate
	if !t.Enabled {
		h.thrashSince = time.Time{}
		return Verdict{Scope: -1}
	}
	ioP, memP := 0.0, 0.0
	if pr.IO.Valid {
		ioP = max(pr.IO.Some.Avg10, h.ioShare)
	}
	if pr.Memory.Valid {
		memP = max(pr.Memory.Some.Avg10, h.memShare)
	}
	turnover := 0.0
	if availBytes > 0 {
		turnover = rate * float64(page) / availBytes
	}
	pressed := ioP >= t.PressurePercent || memP >= t.PressurePercent
	churned := t.Turnover > 0 && turnover >= t.Turnover
	high := availOK && avail < t.AvailPercent && rate >= t.RefaultsPerSec && (pressed || churned)
	if !high {
		h.thrashSince = time.Time{}
		return Verdict{Scope: -1}
	}
	if h.thrashSince.IsZero() {
		h.thrashSince = now
	}
	held := now.Sub(h.thrashSince)
	if held < t.Sustain {
		return Verdict{Scope: -1}
	}
	where := "system"
	if scope >= 0 {
		where = "scope " + path
	}
	return Verdict{Level: t.Level, Trigger: TriggerThrash, Scope: scope,
		Reason: where + ": thrashing for " + held.String() + ": file refaults " + ftoa(rate) +
			"/s >= " + ftoa(t.RefaultsPerSec) + "/s, io some " + ftoa(ioP) + "% / memory some " +
			ftoa(memP) + "% (level " + ftoa(t.PressurePercent) + "%), available " + ftoa(avail) +
			"% < " + ftoa(t.AvailPercent) + "%, re-reading " + ftoa(turnover) + " of the available memory a second (level " +
			ftoa(t.Turnover) + ")",
		Numbers: map[string]float64{
			"refaults_per_sec": rate, "io_some_avg10": ioP, "memory_some_avg10": memP,
			"avail_percent": avail, "sustained_seconds": held.Seconds(), "turnover_per_sec": turnover,
		}}
}

// pageSize is snap's page size, 4096 when unknown.
func pageSize(snap *Snapshot) uint64 {
	if snap.PageSize == 0 {
		return 4096
	}
	return snap.PageSize
}

// ftoa formats a percentage or rate with at most two decimals.
func ftoa(f float64) string { return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64) }

// utoa formats a byte count.
func utoa(n uint64) string { return strconv.FormatUint(n, 10) }
