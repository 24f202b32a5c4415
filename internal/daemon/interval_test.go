package daemon

import (
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/policy"
)

// TestFillInterval: the poll is the time the fastest hog (6,000 MiB/s)
// needs to fill the headroom above the SIGTERM level, between 100 ms (or
// the interval, if shorter) and four intervals.
func TestFillInterval(t *testing.T) {
	const gib = 1 << 30
	trig := policy.Triggers{
		MemAvail: policy.MemAvailTrigger{Enabled: true, MemTermPercent: 10},
		Scope:    policy.ScopeTrigger{Enabled: true, TermPercent: 10},
		Thrash:   policy.ThrashTrigger{Enabled: true, AvailPercent: 20},
	}
	machine := func(total, avail uint64, memSome float64) *policy.Snapshot {
		s := &policy.Snapshot{Memory: policy.Memory{Total: total, Available: avail}}
		s.Pressure.Memory = policy.PressureFile{Valid: true, Some: policy.Pressure{Avg10: memSome}}
		return s
	}
	scoped := func(limit, usage uint64) *policy.Snapshot {
		s := machine(24*gib, 23*gib, 0)
		s.Scopes = []policy.ScopeMemory{{Path: "/cg", Limit: limit, Usage: usage}}
		return s
	}
	for _, c := range []struct {
		name string
		snap *policy.Snapshot
		trig policy.Triggers
		// watched is the usage threshold armed on /cg, 0 for none.
		watched uint64
		// interval is the configured poll, 1 s when 0.
		interval time.Duration
		want     time.Duration
	}{
		// 23 GiB available, term level 2.4 GiB: 20.6 GiB of headroom is
		// 3.5 s at 6,000 MiB/s.
		{"large idle machine", machine(24*gib, 23*gib, 0), trig, 0, 0, 3515733333 * time.Nanosecond},
		// 64 GiB of headroom would be 10 s: capped at 4 intervals.
		{"capped", machine(128*gib, 120*gib, 0), trig, 0, 0, 4 * time.Second},
		// 4 GiB of headroom is filled in 683 ms: a shorter poll.
		{"small headroom", machine(8*gib, 4*gib+819*(1<<20), 0), trig, 0, 0, 682633333 * time.Nanosecond},
		// A guest of 512 MiB at 30 % available: 102 MiB of headroom, 17 ms
		// at the fill rate, is polled at the floor of 100 ms; at 90 %,
		// likewise (the fill takes 68 ms).
		{"small machine", machine(512<<20, 512<<20/10*3, 0), trig, 0, 0, 100 * time.Millisecond},
		{"small idle machine", machine(512<<20, 512<<20/10*9, 0), trig, 0, 0, 100 * time.Millisecond},
		// A configured interval shorter than the floor is kept.
		{"small machine, short interval", machine(512<<20, 512<<20/10*3, 0), trig, 0, 20 * time.Millisecond, 20 * time.Millisecond},
		// Under pressure the poll is never stretched past the interval.
		{"memory pressure", machine(24*gib, 23*gib, 2), trig, 0, 0, time.Second},
		{"memory pressure, small headroom", machine(8*gib, 4*gib+819*(1<<20), 2), trig, 0, 0, 682633333 * time.Nanosecond},
		{"MemAvailable trigger off", machine(24*gib, 23*gib, 0), policy.Triggers{}, 0, 0, time.Second},
		// Scoped: the scope's headroom counts, not the machine's.
		// 1 GiB less 100 MiB used and the 10 % level: 822 MiB, 137 ms.
		{"scope of 1 GiB", scoped(gib, 100<<20), trig, 0, 0, 136933333 * time.Nanosecond},
		{"scope of 64 GiB", scoped(64*gib, gib), trig, 0, 0, 4 * time.Second},
		{"scope without limit", scoped(^uint64(0), gib), trig, 0, 0, time.Second},
		// A usage threshold at the SIGTERM level (90 % of 1 GiB) wakes the
		// loop before the scope can get there: the poll need not size by
		// its headroom while usage is under the thrash soft level (80 %).
		{"watched scope", scoped(gib, 100<<20), trig, gib / 10 * 9, 0, 4 * time.Second},
		{"watched scope in the thrash band", scoped(gib, gib/100*85), trig, gib / 10 * 9, 0, 100 * time.Millisecond},
		{"watched scope, thrash off", scoped(gib, gib/100*85), policy.Triggers{Scope: trig.Scope}, gib / 10 * 9, 0, 4 * time.Second},
		{"watched scope past the threshold", scoped(gib, gib/100*95), policy.Triggers{Scope: trig.Scope}, gib / 10 * 9, 0, time.Second},
		// A threshold above the SIGTERM level (the limit was lowered, or
		// the level raised, after it was armed) would fire too late.
		{"stale threshold", scoped(gib, 100<<20), trig, gib / 100 * 95, 0, 136933333 * time.Nanosecond},
	} {
		var watched map[string]uint64
		if c.watched > 0 {
			watched = map[string]uint64{"/cg": c.watched}
		}
		interval := c.interval
		if interval == 0 {
			interval = time.Second
		}
		got := fillInterval(interval, c.snap, &c.trig, watched)
		if d := got - c.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
