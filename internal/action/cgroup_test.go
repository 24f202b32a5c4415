package action

import (
	"context"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/testbed"
)

// TestCgroupKillerMrelease: a cgroup kill reaps, as a Killer does, only the
// members still alive MreleaseAfter after their SIGKILL, and never with
// Mrelease off (kill.mrelease = false, which kill_cgroup ignored before).
// The killer is given no v1 freezer, so it stops with SIGSTOP and leaves
// the test's own freeze alone: a member frozen by the test cannot exit.
func TestCgroupKillerMrelease(t *testing.T) {
	hog := testbed.CompileC(t, hogSource)
	t.Run("a member that can run exits by itself", func(t *testing.T) {
		g, v := startLoneHog(t, hog, 96)
		k := &CgroupKiller{Log: testLogger(t), Mrelease: true, MreleaseAfter: 2 * time.Second, Deadline: 5 * time.Second}
		rep, err := k.Kill(context.Background(), g.Memory)
		if err != nil || !slices.Equal(rep.Killed, []int{int(v.Members[0].PID)}) || len(rep.Released) != 0 {
			t.Fatalf("Killed %v, Released %v, err %v: want the hog killed, not reaped", rep.Killed, rep.Released, err)
		}
	})
	for _, tc := range []struct {
		name string
		skip bool
	}{
		{"a frozen member is reaped after the wait", false},
		{"nothing is reaped without Mrelease", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, v := startLoneHog(t, hog, 96)
			if err := g.Freezer.Freeze(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			const after = 200 * time.Millisecond
			k := &CgroupKiller{Log: testLogger(t), Mrelease: !tc.skip, MreleaseAfter: after, Deadline: 600 * time.Millisecond}
			start := time.Now()
			rep, err := k.Kill(context.Background(), g.Memory)
			if err == nil {
				t.Fatalf("Kill of a frozen member returned no error: %+v", rep)
			}
			pid := int(v.Members[0].PID)
			if !slices.Equal(rep.Killed, []int{pid}) {
				t.Fatalf("Killed %v, want %d", rep.Killed, pid)
			}
			if tc.skip {
				if len(rep.Released) != 0 {
					t.Fatalf("Released %v without Mrelease", rep.Released)
				}
				// Its memory stays until it runs its own exit.
				if u, err := g.Memory.ReadUint("memory.usage_in_bytes"); err != nil || u < 64<<20 {
					t.Fatalf("usage %d MiB while frozen, unreaped: want the hog's 96 MiB", u>>20)
				}
			} else {
				if !slices.Equal(rep.Released, []int{pid}) || time.Since(start) < after {
					t.Fatalf("Released %v after %v: want %d reaped, after at least %v", rep.Released, time.Since(start), pid, after)
				}
				// Reaped while still frozen: its memory is back.
				waitUsage(t, g, func(u uint64) bool { return u < 32<<20 }, 5*time.Second)
			}
			if err := g.Freezer.Thaw(); err != nil {
				t.Fatal(err)
			}
			if !g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 0 }) {
				t.Fatalf("member did not die after thaw: %v", g.Procs())
			}
		})
	}
}

// TestCgroupKillerInBatches: a cgroup with more processes than descriptors
// to spare is signalled and killed whole, a round of pidfds at a time.
// Before, the pidfds of every member stayed open until the end, the opens
// past the limit failed, and those members were never signalled.
func TestCgroupKillerInBatches(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, PidsMax: 600})
	g.Start("sh", "-c", `trap "" TERM; for i in $(seq 300); do sleep 300 & done; wait`)
	var pids []int
	if !g.WaitProcs(20*time.Second, func(p []int) bool { pids = p; return len(p) == 301 }) {
		t.Fatalf("want the shell and its 300 sleeps, have %d", len(pids))
	}
	restore := limitDescriptors(t, 32)
	k := &CgroupKiller{Log: testLogger(t), Deadline: 10 * time.Second}
	sent, err := k.Signal(g.Memory, unix.SIGTERM)
	if err != nil || len(sent) != 301 {
		restore()
		t.Fatalf("SIGTERM sent to %d of 301, err %v", len(sent), err)
	}
	rep, err := k.Kill(context.Background(), g.Memory)
	restore()
	if err != nil || len(rep.Killed) != 301 {
		t.Fatalf("Killed %d of 301 via %q, err %v", len(rep.Killed), rep.Method, err)
	}
	if !g.WaitProcs(10*time.Second, func(p []int) bool { return len(p) == 0 }) {
		t.Fatalf("%d processes left after Kill", len(g.Procs()))
	}
}
