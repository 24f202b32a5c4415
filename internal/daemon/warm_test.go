package daemon

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/policy"
)

// countingScanner is a snapshotter whose System reports avail out of
// 100 units of memory (no swap) and whose Processes counts its calls.
type countingScanner struct {
	avail     uint64
	processes int
}

func (c *countingScanner) System(snap *policy.Snapshot) error {
	snap.Memory = policy.Memory{Total: 100, Available: c.avail}
	return nil
}
func (c *countingScanner) Processes(snap *policy.Snapshot) error { c.processes++; return nil }
func (c *countingScanner) ConfirmGroup(pid int, _ []int) ([]int, error) {
	return []int{pid}, nil
}
func (c *countingScanner) ReadRefaultsBelow(float64)          {}
func (c *countingScanner) CgroupKernel(snap *policy.Snapshot) {}

// TestWarmBeforeTheLevel checks that a step with no trigger level keeps
// the process cache warm while memory is within warmBand points of the
// SIGTERM level, at most once per warmEvery, and leaves it alone above.
func TestWarmBeforeTheLevel(t *testing.T) {
	sc := &countingScanner{}
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
		want  int // Processes calls so far
	}{
		{"far from the level", 60, 0, 0},
		{"just outside the band", 20, 100 * time.Millisecond, 0},
		{"inside the band", 19, 200 * time.Millisecond, 1},
		{"again within warmEvery", 15, 300 * time.Millisecond, 1},
		{"warmEvery later", 15, 1200 * time.Millisecond, 2},
		{"back above the band", 50, 2500 * time.Millisecond, 2},
	} {
		sc.avail = c.avail
		next := m.step(context.Background(), t0.Add(c.at))
		if sc.processes != c.want {
			t.Errorf("%s: %d Processes passes, want %d", c.name, sc.processes, c.want)
		}
		if m.last.Level != policy.LevelNone {
			t.Fatalf("%s: level %v, want none (the test is about steps below the levels)", c.name, m.last.Level)
		}
		if next <= 0 {
			t.Errorf("%s: next poll in %v", c.name, next)
		}
	}
}
