package action

import (
	"context"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/testbed"
)

// limitDescriptors lowers this process's soft RLIMIT_NOFILE so that about
// spare descriptors are left beyond fdReserve, and returns the function
// that restores it (also called when the test ends).
func limitDescriptors(t *testing.T, spare int) func() {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(len(open) + fdReserve + spare)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	done := false
	restore := func() {
		if !done {
			done = true
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(restore)
	return restore
}

// TestKillInBatches: a victim with more members than descriptors left (in
// the VM's scenario, an mm shared by 30,000 clones, with a limit of a few
// thousand) is killed whole, a batch of verified pidfds at a time. Before,
// Kill opened a pidfd for every member first, failed with EMFILE part way
// and signalled none of them; the daemon then stopped, out of descriptors.
func TestKillInBatches(t *testing.T) {
	hog := testbed.CompileC(t, hogSource)
	waitGone := func(t *testing.T, g *testbed.Group) {
		t.Helper()
		if !g.WaitProcs(10*time.Second, func(p []int) bool { return len(p) == 0 }) {
			t.Fatalf("%d processes left after Kill", len(g.Procs()))
		}
	}
	t.Run("an mm shared by 400 processes, 32 descriptors to spare", func(t *testing.T) {
		g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, PidsMax: 600})
		g.Start(hog, "64", "400")
		var pids []int
		if !g.WaitProcs(20*time.Second, func(p []int) bool { pids = p; return len(p) == 401 }) {
			t.Fatalf("want the hog and its 400 sharers, have %d", len(pids))
		}
		waitUsage(t, g, func(u uint64) bool { return u >= 59<<20 }, 20*time.Second)
		v := members(t, pids)
		restore := limitDescriptors(t, 32)
		if budget := fdBudget(); budget >= len(v.Members) || budget < 0 {
			restore()
			t.Fatalf("descriptor budget %d, want fewer than the %d members", budget, len(v.Members))
		}
		res := (&Killer{Log: testLogger(t), Mrelease: true, Deadline: 10 * time.Second}).Kill(context.Background(), v)
		restore()
		checkPartition(t, v, res)
		// One process_mrelease for the one mm, unless its holders had all
		// exited by then (nothing left to release).
		if res.Err != nil || len(res.Killed) != 401 || len(res.Signalled) != 401 || len(res.Released) > 1 {
			t.Fatalf("Killed %d, Signalled %d, Released %v, StillAlive %v, Err %v: want all 401 killed, at most one reaped",
				len(res.Killed), len(res.Signalled), res.Released, res.StillAlive, res.Err)
		}
		waitGone(t, g)
	})
	t.Run("SIGTERM ignored, then SIGKILL through pidfds opened again", func(t *testing.T) {
		g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, PidsMax: 600})
		g.Start("sh", "-c", `trap "" TERM; for i in $(seq 300); do sleep 300 & done; wait`)
		var pids []int
		if !g.WaitProcs(20*time.Second, func(p []int) bool { pids = p; return len(p) == 301 }) {
			t.Fatalf("want the shell and its 300 sleeps, have %d", len(pids))
		}
		v := members(t, pids)
		restore := limitDescriptors(t, 32)
		start := time.Now()
		res := (&Killer{Log: testLogger(t), TermGrace: 300 * time.Millisecond, Deadline: 10 * time.Second}).Kill(context.Background(), v)
		restore()
		checkPartition(t, v, res)
		if res.Err != nil || len(res.Killed) != 301 || len(res.Signalled) != 301 || time.Since(start) < 300*time.Millisecond {
			t.Fatalf("Killed %d, Signalled %d, StillAlive %v, Err %v after %v: want all 301 killed by SIGKILL after the grace",
				len(res.Killed), len(res.Signalled), res.StillAlive, res.Err, time.Since(start))
		}
		waitGone(t, g)
	})
}

// TestKillInBatchesCancelled: a kill in batches whose context ends part
// way (the daemon stopping) still accounts for every member: those it
// never reached are StillAlive, not lost from the result.
func TestKillInBatchesCancelled(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, PidsMax: 600})
	g.Start("sh", "-c", `for i in $(seq 300); do sleep 300 & done; wait`)
	var pids []int
	if !g.WaitProcs(20*time.Second, func(p []int) bool { pids = p; return len(p) == 301 }) {
		t.Fatalf("want the shell and its 300 sleeps, have %d", len(pids))
	}
	v := members(t, pids)
	restore := limitDescriptors(t, 32)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := (&Killer{Log: testLogger(t), Deadline: time.Second}).Kill(ctx, v)
	restore()
	checkPartition(t, v, res)
	if len(res.StillAlive) != 301 || len(res.Signalled) != 0 || res.Err == nil {
		t.Fatalf("StillAlive %d, Signalled %d, Err %v: want every member reported alive and unsignalled, and the error", len(res.StillAlive), len(res.Signalled), res.Err)
	}
}
