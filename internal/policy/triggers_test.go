package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// loadSeries reads a recorded sequence of snapshots from testdata.
func loadSeries(t *testing.T, name string) []*Snapshot {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var s []*Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("testdata/%s: %v", name, err)
	}
	return s
}

// only returns cfg with everything but the named trigger disabled.
func only(name string) Triggers {
	d := DefaultTriggers()
	var t Triggers
	switch name {
	case TriggerMemAvail:
		t.MemAvail = d.MemAvail
	case TriggerScope:
		t.Scope = d.Scope
	case TriggerPSI:
		t.PSI = d.PSI
	case TriggerThrash:
		t.Thrash = d.Thrash
	}
	return t
}

// verdictRow is the part of a Verdict the tables compare.
type verdictRow struct {
	Level   Level
	Trigger string
	Scope   int
}

func TestMemAvailTrigger(t *testing.T) {
	// 100 GiB of memory and 10 GiB of swap make percentages exact.
	mem := func(avail, swapFree uint64, swapTotal uint64) func(*Snapshot) {
		return func(s *Snapshot) {
			s.Memory = Memory{Total: 100 * giB, Available: avail, SwapTotal: swapTotal, SwapFree: swapFree}
		}
	}
	const swap = 10 * giB
	fired := func(l Level) verdictRow { return verdictRow{l, TriggerMemAvail, -1} }
	none := verdictRow{LevelNone, "", -1}
	tests := []struct {
		name   string
		cfg    func(*Triggers)
		mutate func(*Snapshot)
		want   verdictRow
		reason string
	}{
		{name: "recorded desktop: 6.25% and 3.1% swap is term", want: fired(LevelTerm),
			reason: "MemAvailable 6.25% <= 10% and SwapFree 3.13% <= 10%"},
		{name: "both exactly at term", mutate: mem(10*giB, 1*giB, swap), want: fired(LevelTerm)},
		{name: "memory just above term", mutate: mem(10*giB+100*miB, 1*giB, swap), want: none},
		{name: "swap just above term", mutate: mem(10*giB, 1*giB+10*miB, swap), want: none},
		{name: "memory low, swap plenty: earlyoom waits", mutate: mem(1*giB, 8*giB, swap), want: none},
		{name: "swap low, memory plenty", mutate: mem(50*giB, 0, swap), want: none},
		{name: "both exactly at kill", mutate: mem(5*giB, 512*miB, swap), want: fired(LevelKill)},
		{name: "memory at kill, swap between kill and term", mutate: mem(5*giB, 600*miB, swap), want: fired(LevelTerm)},
		{name: "memory just above kill", mutate: mem(5*giB+1*miB, 0, swap), want: fired(LevelTerm)},
		{name: "no swap counts as swap low (kill)", mutate: mem(4*giB, 0, 0), want: fired(LevelKill),
			reason: "MemAvailable 4% <= 5% and no swap (counts as SwapFree 0%)"},
		{name: "no swap, memory just above term", mutate: mem(10*giB+100*miB, 0, 0), want: none},
		{name: "memory-only ignores swap", mutate: mem(9*giB, 9*giB, swap),
			cfg: func(c *Triggers) { c.MemAvail.MemoryOnly = true }, want: fired(LevelTerm),
			reason: "MemAvailable 9% <= 10%"},
		{name: "disabled", mutate: mem(1*giB, 0, 0), cfg: func(c *Triggers) { c.MemAvail.Enabled = false }, want: none},
		{name: "missing meminfo is not evaluated", mutate: func(s *Snapshot) { s.Memory = Memory{} }, want: none},
		{name: "scoped snapshots do not measure the system", mutate: func(s *Snapshot) {
			mem(1*giB, 0, 0)(s)
			s.Scopes = []ScopeMemory{{Path: "/x", Usage: 1 * miB, Limit: 100 * miB}}
		}, want: none},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := loadSnap(t, "desktop.json")
			if tc.mutate != nil {
				tc.mutate(snap)
			}
			cfg := only(TriggerMemAvail)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			v := EvaluateTriggers(&TriggerState{}, snap, cfg)
			if diff := cmp.Diff(tc.want, verdictRow{v.Level, v.Trigger, v.Scope}); diff != "" {
				t.Errorf("verdict (-want +got):\n%s\nreason: %s", diff, v.Reason)
			}
			if tc.reason != "" && !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", v.Reason, tc.reason)
			}
			if v.Level != LevelNone && v.Numbers["mem_avail_percent"] == 0 && snap.Memory.Available != 0 {
				t.Errorf("numbers %v lack mem_avail_percent", v.Numbers)
			}
		})
	}
}

func TestScopeTrigger(t *testing.T) {
	sc := func(usage, limit, high, recl uint64) ScopeMemory {
		return ScopeMemory{Path: "/sys/fs/cgroup/memory/t", Usage: usage, Limit: limit, High: high,
			ReclaimableFile: recl, RefaultFile: -1, OOMKills: -1}
	}
	fired := func(l Level, i int) verdictRow { return verdictRow{l, TriggerScope, i} }
	none := verdictRow{LevelNone, "", -1}
	tests := []struct {
		name   string
		scopes []ScopeMemory
		cfg    func(*Triggers)
		want   verdictRow
		reason string
	}{
		{name: "recorded hog: 2 MiB of 256 MiB available is kill", want: fired(LevelKill, 0),
			reason: "available 0.78% <= 5% (limit 268435456 − usage 267386880 + reclaimable file 1048576 bytes)"},
		{name: "exactly at term", scopes: []ScopeMemory{sc(900*miB, 1000*miB, 0, 0)}, want: fired(LevelTerm, 0)},
		{name: "just above term", scopes: []ScopeMemory{sc(899*miB, 1000*miB, 0, 0)}, want: none},
		{name: "exactly at kill", scopes: []ScopeMemory{sc(950*miB, 1000*miB, 0, 0)}, want: fired(LevelKill, 0)},
		{name: "just above kill", scopes: []ScopeMemory{sc(949*miB, 1000*miB, 0, 0)}, want: fired(LevelTerm, 0)},
		{name: "reclaimable file cache counts as available", scopes: []ScopeMemory{sc(990*miB, 1000*miB, 0, 100*miB)}, want: none},
		{name: "usage above the limit clamps to 0%", scopes: []ScopeMemory{sc(1010*miB, 1000*miB, 0, 0)}, want: fired(LevelKill, 0)},
		{name: "no limit is not evaluated", scopes: []ScopeMemory{sc(990*miB, 0, 0, 0)}, want: none},
		{name: "v1 unlimited is not evaluated", scopes: []ScopeMemory{sc(990*miB, 9223372036854771712, 0, 0)}, want: none},
		{name: "v2 memory.high below the limit", scopes: []ScopeMemory{sc(960*miB, 2000*miB, 1000*miB, 0)},
			want: fired(LevelKill, 0), reason: "(memory.high 1048576000"},
		{name: "v2 memory.high without a limit", scopes: []ScopeMemory{sc(920*miB, 0, 1000*miB, 0)}, want: fired(LevelTerm, 0)},
		{name: "memory.high ignored when UseHigh is off", scopes: []ScopeMemory{sc(960*miB, 2000*miB, 1000*miB, 0)},
			cfg: func(c *Triggers) { c.Scope.UseHigh = false }, want: none},
		{name: "each scope separately: the second fires",
			scopes: []ScopeMemory{sc(100*miB, 1000*miB, 0, 0), sc(960*miB, 1000*miB, 0, 0)}, want: fired(LevelKill, 1)},
		{name: "most severe scope wins",
			scopes: []ScopeMemory{sc(920*miB, 1000*miB, 0, 0), sc(960*miB, 1000*miB, 0, 0)}, want: fired(LevelKill, 1)},
		{name: "first scope wins on equal levels",
			scopes: []ScopeMemory{sc(960*miB, 1000*miB, 0, 0), sc(970*miB, 1000*miB, 0, 0)}, want: fired(LevelKill, 0)},
		{name: "disabled", cfg: func(c *Triggers) { c.Scope.Enabled = false }, want: none},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := loadSnap(t, "scope_hog.json")
			if tc.scopes != nil {
				snap.Scopes = tc.scopes
			}
			cfg := only(TriggerScope)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			v := EvaluateTriggers(&TriggerState{}, snap, cfg)
			if diff := cmp.Diff(tc.want, verdictRow{v.Level, v.Trigger, v.Scope}); diff != "" {
				t.Errorf("verdict (-want +got):\n%s\nreason: %s", diff, v.Reason)
			}
			if tc.reason != "" && !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", v.Reason, tc.reason)
			}
		})
	}
}

func TestPSITrigger(t *testing.T) {
	withMemFull := func(avg10 float64) func(*Snapshot) {
		return func(s *Snapshot) { s.Pressure.Memory.Full.Avg10 = avg10 }
	}
	scopePSI := func(memFull float64, valid bool) func(*Snapshot) {
		return func(s *Snapshot) {
			s.Pressure.Memory.Full.Avg10 = 99 // must not count when scoped
			s.Scopes = []ScopeMemory{{Path: "/sys/fs/cgroup/unified/t", RefaultFile: -1,
				Pressure: Pressures{Memory: PressureFile{Valid: valid, Full: Pressure{Avg10: memFull}}}}}
		}
	}
	fired := func(l Level, i int) verdictRow { return verdictRow{l, TriggerPSI, i} }
	none := verdictRow{LevelNone, "", -1}
	tests := []struct {
		name   string
		mutate func(*Snapshot)
		cfg    func(*Triggers)
		want   verdictRow
		reason string
	}{
		{name: "recorded desktop: memory full 4.1% is calm", want: none},
		{name: "just below term", mutate: withMemFull(49.99), want: none},
		{name: "exactly at term", mutate: withMemFull(50), want: fired(LevelTerm, -1),
			reason: "system: memory full avg10 50% >= 50%"},
		{name: "just below kill", mutate: withMemFull(79.99), want: fired(LevelTerm, -1)},
		{name: "exactly at kill", mutate: withMemFull(80), want: fired(LevelKill, -1)},
		{name: "missing PSI is not evaluated", mutate: func(s *Snapshot) {
			s.Pressure.Memory = PressureFile{Full: Pressure{Avg10: 99}}
		}, want: none},
		{name: "scope PSI fires for its scope", mutate: scopePSI(85, true), want: fired(LevelKill, 0),
			reason: "scope /sys/fs/cgroup/unified/t: memory full avg10 85% >= 80%"},
		{name: "scope without PSI (v1) is not evaluated, system PSI is not used", mutate: scopePSI(85, false), want: none},
		{name: "scope PSI below term", mutate: scopePSI(49, true), want: none},
		{name: "io some trigger", mutate: func(s *Snapshot) { s.Pressure.IO.Some.Avg10 = 60 },
			cfg: func(c *Triggers) {
				c.PSI = []PSITrigger{{Resource: PSIIO, System: true, TermPercent: 60}}
			}, want: fired(LevelTerm, -1), reason: "io some avg10 60% >= 60%"},
		{name: "kill level alone", mutate: withMemFull(90),
			cfg: func(c *Triggers) { c.PSI[0].TermPercent = 0 }, want: fired(LevelKill, -1)},
		{name: "both levels 0 never fire", mutate: withMemFull(100),
			cfg: func(c *Triggers) { c.PSI[0].TermPercent, c.PSI[0].KillPercent = 0, 0 }, want: none},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := loadSnap(t, "desktop.json")
			if tc.mutate != nil {
				tc.mutate(snap)
			}
			cfg := only(TriggerPSI)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			v := EvaluateTriggers(&TriggerState{}, snap, cfg)
			if diff := cmp.Diff(tc.want, verdictRow{v.Level, v.Trigger, v.Scope}); diff != "" {
				t.Errorf("verdict (-want +got):\n%s\nreason: %s", diff, v.Reason)
			}
			if tc.reason != "" && !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", v.Reason, tc.reason)
			}
		})
	}
}

// TestPSIWindow steps the stall-delta measure over snapshots.
func TestPSIWindow(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	cfg := Triggers{PSI: []PSITrigger{{Resource: PSIMemory, Full: true, System: true,
		TermPercent: 50, KillPercent: 80, Window: 2 * time.Second}}}
	steps := []struct {
		at    time.Duration
		total uint64 // cumulative full stall, µs
		avg10 float64
		want  Level
	}{
		{0, 10_000_000, 0, LevelNone},                // first sample: base
		{1 * time.Second, 10_900_000, 0, LevelNone},  // window incomplete: avg10 (0) used
		{2 * time.Second, 11_100_000, 0, LevelTerm},  // 1.1 s stalled over 2 s: 55%
		{3 * time.Second, 12_000_000, 0, LevelTerm},  // holds the last window's 55%
		{4 * time.Second, 12_800_000, 0, LevelKill},  // 1.7 s over 2 s: 85%
		{6 * time.Second, 13_000_000, 90, LevelNone}, // 0.2 s over 2 s: 10%; avg10 ignored
		{7 * time.Second, 1_000, 0, LevelNone},       // counter went back: new base
	}
	var st TriggerState
	snap := loadSnap(t, "desktop.json")
	for _, s := range steps {
		snap.Time = t0.Add(s.at)
		snap.Pressure.Memory.Full = Pressure{Avg10: s.avg10, Total: s.total}
		v := EvaluateTriggers(&st, snap, cfg)
		if v.Level != s.want {
			t.Errorf("at %v: level %v, want %v (%s)", s.at, v.Level, s.want, v.Reason)
		}
	}
}

// thrashCase builds a snapshot sequence 1 s apart.
type thrashStep struct {
	avail      float64 // MemAvailable %
	io, mem    float64 // some avg10 %
	refaultInc int64   // refaults since the previous step (-1: counter unknown)
	ioStall    float64 // io "some" stall % of wall time since the previous step
}

func thrashSeries(steps []thrashStep) []*Snapshot {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	out := make([]*Snapshot, len(steps))
	refault := int64(1_000_000)
	ioTotal := uint64(5_000_000)
	for i, s := range steps {
		ioTotal += uint64(s.ioStall / 100 * 1e6)
		r := refault
		if s.refaultInc < 0 {
			r = -1
		} else {
			refault += s.refaultInc
			r = refault
		}
		out[i] = &Snapshot{
			Time:   t0.Add(time.Duration(i) * time.Second),
			Memory: Memory{Total: 100 * giB, Available: uint64(s.avail * float64(giB))},
			Pressure: Pressures{
				Memory: PressureFile{Valid: true, Some: Pressure{Avg10: s.mem}},
				IO:     PressureFile{Valid: true, Some: Pressure{Avg10: s.io, Total: ioTotal}},
			},
			RefaultFile: r,
		}
	}
	return out
}

func levels(t *testing.T, snaps []*Snapshot, cfg Triggers) ([]Level, Verdict) {
	t.Helper()
	var st TriggerState
	out := make([]Level, len(snaps))
	var last Verdict
	for i, s := range snaps {
		v := EvaluateTriggers(&st, s, cfg)
		out[i] = v.Level
		if v.Level != LevelNone {
			last = v
		}
	}
	return out, last
}

func rep(n int, s thrashStep) []thrashStep {
	out := make([]thrashStep, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestThrashTrigger(t *testing.T) {
	N, T := LevelNone, LevelTerm
	measured := thrashStep{avail: 13, io: 75, mem: 3.5, refaultInc: 8000}
	tests := []struct {
		name  string
		steps []thrashStep
		cfg   func(*Triggers)
		want  []Level
	}{
		// Sample 0 has no rate; the condition holds from sample 1 and
		// fires once it has held 2 s.
		{name: "sustained thrashing fires after 2 s", steps: rep(6, measured), want: []Level{N, N, N, T, T, T}},
		{name: "refault rate exactly at the level", steps: rep(5, thrashStep{13, 75, 0, 2000, 0}), want: []Level{N, N, N, T, T}},
		{name: "refault rate just below", steps: rep(5, thrashStep{13, 75, 0, 1999, 0}), want: []Level{N, N, N, N, N}},
		{name: "pressure exactly at the level (memory)", steps: rep(5, thrashStep{13, 0, 20, 8000, 0}), want: []Level{N, N, N, T, T}},
		{name: "pressure just below on both", steps: rep(5, thrashStep{13, 19.9, 19.9, 8000, 0}), want: []Level{N, N, N, N, N}},
		// avg10 lags a thrash that just began; the stall share of the
		// refault window sees it.
		{name: "io stall share over the window, avg10 still low", steps: rep(5, thrashStep{13, 5, 1, 8000, 30}), want: []Level{N, N, N, T, T}},
		{name: "io stall share just below", steps: rep(5, thrashStep{13, 5, 1, 8000, 19.9}), want: []Level{N, N, N, N, N}},
		{name: "available exactly at the soft level does not fire", steps: rep(5, thrashStep{20, 75, 0, 8000, 0}), want: []Level{N, N, N, N, N}},
		{name: "available just below the soft level", steps: rep(5, thrashStep{19.9, 75, 0, 8000, 0}), want: []Level{N, N, N, T, T}},
		{name: "an interruption restarts the sustain clock",
			steps: append(append(rep(3, measured), thrashStep{13, 10, 1, 8000, 0}), rep(5, measured)...),
			want:  []Level{N, N, N, N, N, N, T, T, T}},
		{name: "unknown refault counter never fires", steps: rep(6, thrashStep{13, 75, 3.5, -1, 0}), want: []Level{N, N, N, N, N, N}},
		{name: "sustain 0 fires on the first rate", steps: rep(3, measured),
			cfg: func(c *Triggers) { c.Thrash.Sustain = 0 }, want: []Level{N, T, T}},
		{name: "configured level kill", steps: rep(5, measured),
			cfg: func(c *Triggers) { c.Thrash.Level = LevelKill }, want: []Level{N, N, N, LevelKill, LevelKill}},
		{name: "disabled", steps: rep(6, measured), cfg: func(c *Triggers) { c.Thrash.Enabled = false },
			want: []Level{N, N, N, N, N, N}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := only(TriggerThrash)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			got, _ := levels(t, thrashSeries(tc.steps), cfg)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("levels (-want +got):\n%s", diff)
			}
		})
	}
}

// TestThrashRecorded runs the defaults on the recorded cases of issue 3.
func TestThrashRecorded(t *testing.T) {
	N, T := LevelNone, LevelTerm
	t.Run("measured case fires with the defaults", func(t *testing.T) {
		snaps := loadSeries(t, "thrash_measured.json")
		for _, s := range snaps {
			if s.Pressure.Memory.Some.Avg10 >= 4 || s.Pressure.IO.Some.Avg10 < 70 {
				t.Fatalf("fixture is not the measured case: %+v", s.Pressure)
			}
		}
		got, v := levels(t, snaps, DefaultTriggers())
		if diff := cmp.Diff([]Level{N, N, N, T, T, T, T}, got); diff != "" {
			t.Errorf("levels (-want +got):\n%s", diff)
		}
		if v.Trigger != TriggerThrash || v.Numbers["refaults_per_sec"] < 7900 || v.Numbers["sustained_seconds"] < 2 {
			t.Errorf("verdict %+v", v)
		}
		if !strings.Contains(v.Reason, "system: thrashing for 5s: file refaults 8050/s >= 2000/s") {
			t.Errorf("reason %q", v.Reason)
		}
	})
	t.Run("a memory-only PSI trigger misses the measured case", func(t *testing.T) {
		cfg := only(TriggerPSI)
		cfg.PSI = append(cfg.PSI, PSITrigger{Resource: PSIMemory, System: true, TermPercent: 10, KillPercent: 40})
		got, _ := levels(t, loadSeries(t, "thrash_measured.json"), cfg)
		if diff := cmp.Diff([]Level{N, N, N, N, N, N, N}, got); diff != "" {
			t.Errorf("levels (-want +got):\n%s", diff)
		}
	})
	t.Run("big sequential read with plenty of memory does not fire", func(t *testing.T) {
		got, _ := levels(t, loadSeries(t, "seqread.json"), DefaultTriggers())
		if diff := cmp.Diff([]Level{N, N, N, N, N, N, N}, got); diff != "" {
			t.Errorf("levels (-want +got):\n%s", diff)
		}
	})
	t.Run("sequential read under the soft level still does not fire: no refaults", func(t *testing.T) {
		snaps := loadSeries(t, "seqread.json")
		for _, s := range snaps {
			s.Memory.Available = s.Memory.Total * 15 / 100
		}
		got, _ := levels(t, snaps, DefaultTriggers())
		if diff := cmp.Diff([]Level{N, N, N, N, N, N, N}, got); diff != "" {
			t.Errorf("levels (-want +got):\n%s", diff)
		}
	})
}

// TestThrashScope checks the per-scope thrash trigger, which falls back on
// the system's pressure when the scope has none (cgroup v1).
func TestThrashScope(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var st TriggerState
	cfg := only(TriggerThrash)
	var got []verdictRow
	for i := range 6 {
		snap := &Snapshot{
			Time:        t0.Add(time.Duration(i) * time.Second),
			Memory:      Memory{Total: 100 * giB, Available: 90 * giB},
			Pressure:    Pressures{IO: PressureFile{Valid: true, Some: Pressure{Avg10: 60}}},
			RefaultFile: 5, // the system does not thrash
			Scopes: []ScopeMemory{
				{Path: "/calm", Usage: 100 * miB, Limit: 1 * giB, RefaultFile: int64(i * 5000)},
				{Path: "/thrash", Usage: 900 * miB, Limit: 1 * giB, ReclaimableFile: 50 * miB, RefaultFile: int64(i * 5000)},
			},
		}
		v := EvaluateTriggers(&st, snap, cfg)
		got = append(got, verdictRow{v.Level, v.Trigger, v.Scope})
	}
	none := verdictRow{LevelNone, "", -1}
	fired := verdictRow{LevelTerm, TriggerThrash, 1}
	if diff := cmp.Diff([]verdictRow{none, none, none, fired, fired, fired}, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

func TestEvaluateTriggersPicksMostSevere(t *testing.T) {
	snap := loadSnap(t, "desktop.json") // memavail term
	snap.Pressure.Memory.Full.Avg10 = 85
	v := EvaluateTriggers(&TriggerState{}, snap, DefaultTriggers())
	if v.Level != LevelKill || v.Trigger != TriggerPSI {
		t.Errorf("got %v %s, want kill psi", v.Level, v.Trigger)
	}
	snap.Pressure.Memory.Full.Avg10 = 55 // psi term: memavail term comes first
	v = EvaluateTriggers(&TriggerState{}, snap, DefaultTriggers())
	if v.Level != LevelTerm || v.Trigger != TriggerMemAvail {
		t.Errorf("got %v %s, want term memavail", v.Level, v.Trigger)
	}
}

func TestEvaluateTriggersIdleDoesNotAllocate(t *testing.T) {
	snaps := loadSeries(t, "seqread.json")
	cfg := DefaultTriggers()
	cfg.PSI = append(cfg.PSI, PSITrigger{Resource: PSIIO, System: true, TermPercent: 95, Window: 2 * time.Second})
	var st TriggerState
	EvaluateTriggers(&st, snaps[0], cfg)
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		i++
		s := *snaps[1+i%(len(snaps)-1)]
		s.Time = snaps[0].Time.Add(time.Duration(i) * time.Second)
		s.RefaultFile += int64(i) * 100
		EvaluateTriggers(&st, &s, cfg)
	})
	if allocs != 0 {
		t.Errorf("EvaluateTriggers allocates %v times per calm evaluation, want 0", allocs)
	}
}

func TestValidate(t *testing.T) {
	d := DefaultTriggers()
	if err := d.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Triggers)
		want   string
	}{
		{"percent above 100", func(c *Triggers) { c.MemAvail.MemTermPercent = 101 }, "memavail mem term is 101, want 0..100"},
		{"kill above term", func(c *Triggers) { c.Scope.KillPercent = 20 }, "scope kill (20) is above scope term (10)"},
		{"psi kill below term", func(c *Triggers) { c.PSI[0].KillPercent = 40 }, "psi[0] kill (40) is below term (50)"},
		{"psi bad resource", func(c *Triggers) { c.PSI[0].Resource = 7 }, "psi[0] has an unknown resource"},
		{"thrash without rate", func(c *Triggers) { c.Thrash.RefaultsPerSec = 0 }, "thrash needs a positive refault rate"},
		{"negative turnover", func(c *Triggers) { c.Thrash.Turnover = -1 }, "thrash turnover is -1"},
		{"stall without window", func(c *Triggers) { c.MemAvail.StallWindow = 0 }, "memavail stall needs a positive window"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultTriggers()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTextEncodings(t *testing.T) {
	for _, l := range []Level{LevelNone, LevelTerm, LevelKill} {
		b, _ := l.MarshalText()
		var back Level
		if err := back.UnmarshalText(b); err != nil || back != l {
			t.Errorf("level %v round trip: %v %v", l, back, err)
		}
	}
	for _, r := range []PSIResource{PSIMemory, PSIIO, PSICPU} {
		b, _ := r.MarshalText()
		var back PSIResource
		if err := back.UnmarshalText(b); err != nil || back != r {
			t.Errorf("resource %v round trip: %v %v", r, back, err)
		}
	}
	var l Level
	if err := l.UnmarshalText([]byte("murder")); err == nil || !strings.Contains(err.Error(), `unknown level "murder"`) {
		t.Errorf("bad level: %v", err)
	}
	var r PSIResource
	if err := r.UnmarshalText([]byte("disk")); err == nil || !strings.Contains(err.Error(), `unknown PSI resource "disk"`) {
		t.Errorf("bad resource: %v", err)
	}
}

// TestThrashBurstyFastSnapshots feeds snapshots every 100 ms with refaults
// arriving in bursts: the rate is measured over 1 s windows, so the trigger
// neither flaps nor fires early.
func TestThrashBurstyFastSnapshots(t *testing.T) {
	var steps []thrashStep
	for i := range 60 {
		inc := int64(0)
		if i%10 == 5 {
			inc = 8000 // one burst a second
		}
		steps = append(steps, thrashStep{avail: 13, io: 75, mem: 3.5, refaultInc: inc, ioStall: 0})
	}
	snaps := thrashSeries(steps)
	t0 := snaps[0].Time
	for i, s := range snaps {
		s.Time = t0.Add(time.Duration(i) * 100 * time.Millisecond)
	}
	got, v := levels(t, snaps, only(TriggerThrash))
	first := -1
	for i, l := range got {
		if l != LevelNone && first < 0 {
			first = i
		}
		if first >= 0 && l == LevelNone {
			t.Errorf("trigger flapped off at %v", time.Duration(i)*100*time.Millisecond)
		}
	}
	// Rates exist from 1 s on; 2 s later it fires.
	if first != 30 {
		t.Errorf("fired first at %v, want 3s (levels %v)", time.Duration(first)*100*time.Millisecond, got)
	}
	if v.Numbers["refaults_per_sec"] != 8000 {
		t.Errorf("rate %v, want 8000/s", v.Numbers["refaults_per_sec"])
	}
}

func TestEvaluateTriggersScopedIdleDoesNotAllocate(t *testing.T) {
	snap := loadSnap(t, "scope_hog.json")
	snap.Scopes[0].Usage = 100 * miB // calm
	snap.Scopes = append(snap.Scopes, ScopeMemory{Path: "/v2", Usage: 10 * miB, Limit: 1 * giB, High: 512 * miB,
		RefaultFile: 10, Pressure: Pressures{Memory: PressureFile{Valid: true}, IO: PressureFile{Valid: true}}})
	cfg := DefaultTriggers()
	var st TriggerState
	EvaluateTriggers(&st, snap, cfg)
	t0 := snap.Time
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		i++
		snap.Time = t0.Add(time.Duration(i) * time.Second)
		snap.Scopes[0].RefaultFile += 10
		EvaluateTriggers(&st, snap, cfg)
	})
	if allocs != 0 {
		t.Errorf("EvaluateTriggers allocates %v times per calm scoped evaluation, want 0", allocs)
	}
}

// TestMemAvailStall: with swap still free, memory alone decides once the
// machine stalls on it (memory "full" stall over StallWindow), as measured
// in the VM test bed: a hog paging through zram left MemAvailable at 1 to
// 2.5 % with 50 to 70 % full stall for 6 s before swap ran out.
func TestMemAvailStall(t *testing.T) {
	N, T, K := LevelNone, LevelTerm, LevelKill
	type step struct {
		avail, swapFree float64 // % of MemTotal, of SwapTotal
		stall           float64 // memory full stall % since the previous step
	}
	series := func(n int, s step) []step {
		out := make([]step, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	tests := []struct {
		name  string
		steps []step // 100 ms apart
		cfg   func(*MemAvailTrigger)
		valid bool // pressure file present
		want  []Level
	}{
		// The first 500 ms window completes at the sixth snapshot.
		{"zram hog: kill level once a window shows the stall", series(7, step{2, 80, 60}), nil, true, []Level{N, N, N, N, N, K, K}},
		{"term level between the levels", series(7, step{8, 80, 60}), nil, true, []Level{N, N, N, N, N, T, T}},
		{"stall exactly at the level", series(6, step{2, 80, 20}), nil, true, []Level{N, N, N, N, N, K}},
		{"stall just below", series(6, step{2, 80, 19.9}), nil, true, []Level{N, N, N, N, N, N}},
		{"memory above the term level: no stall makes it fire", series(7, step{10.5, 80, 90}), nil, true, []Level{N, N, N, N, N, N, N}},
		{"disabled: earlyoom's rule, swap must run low too", series(7, step{2, 80, 60}),
			func(m *MemAvailTrigger) { m.StallPercent = 0 }, true, []Level{N, N, N, N, N, N, N}},
		{"no pressure file (kernel without PSI)", series(7, step{2, 80, 60}), nil, false, []Level{N, N, N, N, N, N, N}},
		{"swap low anyway: fires at once, as before", series(3, step{2, 4, 0}), nil, true, []Level{K, K, K}},
		// The window slides: 900 ms in, it holds 100 ms of the stall (12 %).
		{"stall ends: the window slides past it",
			append(series(6, step{2, 80, 60}), series(5, step{2, 80, 0})...), nil, true,
			[]Level{N, N, N, N, N, K, K, K, K, N, N}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := only(TriggerMemAvail)
			if tc.cfg != nil {
				tc.cfg(&cfg.MemAvail)
			}
			t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			total := uint64(1e9)
			var snaps []*Snapshot
			for i, s := range tc.steps {
				total += uint64(s.stall / 100 * 100e3)
				snaps = append(snaps, &Snapshot{
					Time: t0.Add(time.Duration(i) * 100 * time.Millisecond),
					Memory: Memory{Total: 100 * giB, Available: uint64(s.avail * float64(giB)),
						SwapTotal: 10 * giB, SwapFree: uint64(s.swapFree / 10 * float64(giB))},
					Pressure: Pressures{Memory: PressureFile{Valid: tc.valid, Full: Pressure{Total: total}}},
				})
			}
			got, v := levels(t, snaps, cfg)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("levels (-want +got):\n%s", diff)
			}
			if v.Level != N && tc.steps[0].swapFree > 10 && !strings.Contains(v.Reason, "memory full stall") {
				t.Errorf("reason %q does not name the stall", v.Reason)
			}
		})
	}
}

// TestThrashTurnover: the thrash measured in the VM test bed (512 MiB
// guest, a hog holding MemAvailable at 13 %, a reader looping over a 130
// MiB file from a 32 MiB/s disk): 8,000 refaults/s, but readahead kept io
// "some" at 3 to 46 % and memory "some" at 2 to 7 %. Refaults that re-read
// half the available memory a second count by themselves; the same rate on
// a big machine, or a lower one here, does not.
func TestThrashTurnover(t *testing.T) {
	N, T := LevelNone, LevelTerm
	series := func(totalMiB float64, refaults int64) []*Snapshot {
		snaps := thrashSeries(rep(5, thrashStep{avail: 13, io: 10, mem: 4, refaultInc: refaults}))
		for _, s := range snaps {
			s.Memory.Total = uint64(totalMiB * miB)
			s.Memory.Available = uint64(0.13 * totalMiB * miB)
		}
		return snaps
	}
	for _, tc := range []struct {
		name  string
		snaps []*Snapshot
		cfg   func(*ThrashTrigger)
		want  []Level
	}{
		{"measured guest: 0.53 of the available memory a second", series(457, 8000), nil, []Level{N, N, N, T, T}},
		{"a third of the rate: 0.18 a second", series(457, 2700), nil, []Level{N, N, N, N, N}},
		{"same rate on a 16 GiB machine", series(16384, 8000), nil, []Level{N, N, N, N, N}},
		{"turnover disabled", series(457, 8000), func(c *ThrashTrigger) { c.Turnover = 0 }, []Level{N, N, N, N, N}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := only(TriggerThrash)
			if tc.cfg != nil {
				tc.cfg(&cfg.Thrash)
			}
			got, v := levels(t, tc.snaps, cfg)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("levels (-want +got):\n%s", diff)
			}
			if v.Level != N && v.Numbers["turnover_per_sec"] < 0.25 {
				t.Errorf("fired with turnover %v", v.Numbers["turnover_per_sec"])
			}
		})
	}
}

// TestMemAvailLead: a hog filling a 457 MiB machine (the VM test bed's) at
// 150 MiB/s, polled every 10 ms near the level, is acted on while
// MemAvailable is still above the term level, so that the kill lands at
// it; without the lead, or with memory flat or rising, only the level
// itself counts.
func TestMemAvailLead(t *testing.T) {
	const total = 457 * miB
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	run := func(lead time.Duration, ratePerSec float64, startPct float64) (int, Verdict, []*Snapshot) {
		cfg := only(TriggerMemAvail)
		cfg.MemAvail.Lead = lead
		var st TriggerState
		for i := 0; i < 100; i++ {
			now := time.Duration(i) * 10 * time.Millisecond
			avail := startPct/100*total - ratePerSec*now.Seconds()
			snap := &Snapshot{Time: t0.Add(now), Memory: Memory{Total: total, Available: uint64(max(avail, 0))}}
			if v := EvaluateTriggers(&st, snap, cfg); v.Level != LevelNone {
				return i, v, nil
			}
		}
		return -1, Verdict{}, nil
	}
	pctAt := func(i int, rate, start float64) float64 {
		return start - 100*rate*(time.Duration(i)*10*time.Millisecond).Seconds()/total
	}
	const hog = 150 * miB
	i, v, _ := run(100*time.Millisecond, hog, 14)
	if i < 0 {
		t.Fatal("the hog was never acted on")
	}
	if at := pctAt(i, hog, 14); at <= 10 || at > 10+100*0.1*hog/total+0.5 {
		t.Errorf("acted at %.2f%% available, want above 10%% by at most the lead's 3.3 points", at)
	}
	if !strings.Contains(v.Reason, "falling 150 MiB/s") || v.Numbers["mem_avail_projected_percent"] > 10 {
		t.Errorf("verdict %q %v", v.Reason, v.Numbers)
	}
	i, _, _ = run(0, hog, 14)
	if at := pctAt(i, hog, 14); at > 10 {
		t.Errorf("without lead acted at %.2f%%, above the level", at)
	}
	// Flat at 10.5 %: nothing to project.
	if i, v, _ := run(100*time.Millisecond, 0, 10.5); i >= 0 {
		t.Errorf("flat memory at 10.5%% fired: %s", v.Reason)
	}
	// Rising (memory being freed) at 10.5 %: nothing either.
	if i, v, _ := run(100*time.Millisecond, -50*miB, 10.5); i >= 0 {
		t.Errorf("rising memory fired: %s", v.Reason)
	}
	// One burst from 14 % to 11 % between two polls, then flat: not a
	// trend, so nothing is projected and 11 % stays above the level.
	cfg := only(TriggerMemAvail)
	var st TriggerState
	for i := 0; i < 100; i++ {
		pct := 14.0
		if i >= 20 {
			pct = 11
		}
		snap := &Snapshot{Time: t0.Add(time.Duration(i) * 10 * time.Millisecond), Memory: Memory{Total: total, Available: uint64(pct / 100 * total)}}
		if v := EvaluateTriggers(&st, snap, cfg); v.Level != LevelNone {
			t.Fatalf("a one-off burst fired at poll %d: %s", i, v.Reason)
		}
	}
}

// MemoryWaiting follows the system's memory "some" total from one snapshot
// to the next, and is true whenever it cannot tell.
func TestMemoryWaiting(t *testing.T) {
	snap := loadSnap(t, "desktop.json")
	var st TriggerState
	for i, step := range []struct {
		valid bool
		some  uint64
		want  bool
	}{
		{valid: false, want: true},             // no PSI: cannot tell
		{valid: true, some: 5000, want: true},  // no previous total
		{valid: true, some: 5000, want: false}, // nobody stalled since
		{valid: true, some: 5001, want: true},  // a microsecond of stall
		{valid: true, some: 5001, want: false}, // calm again
		{valid: false, some: 5001, want: true}, // PSI gone
		{valid: true, some: 5001, want: true},  // back, but no previous total
		{valid: true, some: 5001, want: false},
	} {
		s := *snap
		s.Time = snap.Time.Add(time.Duration(i) * 100 * time.Millisecond)
		s.Pressure.Memory.Valid = step.valid
		s.Pressure.Memory.Some.Total = step.some
		if got := EvaluateTriggers(&st, &s, DefaultTriggers()).MemoryWaiting; got != step.want {
			t.Errorf("step %d (valid %v, some %d): MemoryWaiting %v, want %v", i, step.valid, step.some, got, step.want)
		}
	}
}
