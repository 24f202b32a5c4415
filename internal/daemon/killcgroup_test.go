package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/action"
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
