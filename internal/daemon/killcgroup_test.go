package daemon

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/action"
	"github.com/oomguard/oomguard/internal/actionlog"
	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/kmemguard"
	"github.com/oomguard/oomguard/internal/testbed"
)

// TestStillInRefusesAMovedVictim: the snapshot's cgroup of a process is
// read when it is first seen, so a victim moved since would have its old
// cgroup, another workload, killed whole; stillIn, checked before the
// whole-cgroup kill, refuses that, and a reused PID too.
func TestStillInRefusesAMovedVictim(t *testing.T) {
	old := testbed.New(t, testbed.Options{})
	moved := testbed.New(t, testbed.Options{})
	old.Start("sleep", "600")
	old.Start("sleep", "600")
	var pids []int
	if !old.WaitProcs(5*time.Second, func(p []int) bool { pids = p; return len(p) == 2 }) {
		t.Fatal("sleepers did not start")
	}
	victim := pids[0]
	start, err := action.ReadStartTime("/proc", victim)
	if err != nil {
		t.Fatal(err)
	}
	if err := stillIn(old.Memory, victim, start); err != nil {
		t.Fatalf("victim %d in %s: %v", victim, old.Memory.Path, err)
	}
	if err := stillIn(old.Memory, victim, start+1); err == nil || !strings.Contains(err.Error(), "reused") {
		t.Errorf("a start time other than the victim's: %v, want a refusal naming reuse", err)
	}
	if err := moved.Memory.AddProc(victim); err != nil {
		t.Fatal(err)
	}
	// Back home before the groups go: each kills only what its freezer
	// cgroup holds.
	defer old.Memory.AddProc(victim)
	if err := stillIn(old.Memory, victim, start); err == nil || !strings.Contains(err.Error(), "no longer in cgroup "+old.Memory.Path) {
		t.Errorf("victim moved to %s: %v, want a refusal naming %s", moved.Memory.Path, err, old.Memory.Path)
	}
}

// TestKmemProtectedFollowsReload: the kernel-memory guard judges
// rules.protect by the configuration in force, so a reload that adds or
// drops a name counts at once, as it does for the memory killer.
func TestKmemProtectedFollowsReload(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	g.Start("sleep", "600")
	var pids []int
	if !g.WaitProcs(5*time.Second, func(p []int) bool { pids = p; return len(p) == 1 }) {
		t.Fatal("sleeper did not start")
	}
	withBudget := func(protect ...string) *config.Config {
		c := config.Default()
		c.Kmem.Budget = []config.KmemBudget{{Path: g.Memory.Path, Max: 1 << 30, Action: "kill-heaviest"}}
		c.Rules.Protect = protect
		return c
	}
	d := &Daemon{cfg: withBudget(), actions: actionlog.New(8), log: slog.New(slog.DiscardHandler), components: map[string]component{}}
	if err := d.addComponents(withBudget()); err != nil {
		t.Fatal(err)
	}
	guard := d.components["kmem budgets"].(*kmemguard.Guard)
	if why := guard.Protected(pids[0]); why != "" {
		t.Fatalf("sleep spared without rules.protect: %q", why)
	}
	if err := d.Reload(withBudget("sleep")); err != nil {
		t.Fatal(err)
	}
	if why := guard.Protected(pids[0]); why != "protected name sleep" {
		t.Errorf("after a reload protecting sleep: %q, want %q", why, "protected name sleep")
	}
	if err := d.Reload(withBudget()); err != nil {
		t.Fatal(err)
	}
	if why := guard.Protected(pids[0]); why != "" {
		t.Errorf("after a reload dropping the name: %q, want none", why)
	}
}
