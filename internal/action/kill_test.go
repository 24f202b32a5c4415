package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/lineage/procscan"
	"github.com/oomguard/oomguard/internal/sys"
	"github.com/oomguard/oomguard/internal/testbed"
)

// hogSource: "hog MIB SHARERS" maps MIB MiB of anonymous memory, then clones
// SHARERS processes with CLONE_VM but without CLONE_THREAD; the parent and
// every sharer touch their own slice of the mapping and then sleep.
const hogSource = `
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static char *mem;
static size_t slice;

static void touch(int i) {
	for (size_t off = 0; off < slice; off += 4096) mem[i * slice + off] = (char)(off >> 12) | 1;
}

static int sharer(void *arg) {
	touch((int)(long)arg);
	for (;;) pause();
	return 0;
}

int main(int argc, char **argv) {
	if (argc != 3) { fprintf(stderr, "usage: hog MIB SHARERS\n"); return 2; }
	size_t mib = strtoul(argv[1], 0, 10);
	int n = atoi(argv[2]);
	mem = mmap(0, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) { perror("mmap"); return 1; }
	slice = (mib << 20) / (n + 1);
	for (int i = 1; i <= n; i++) {
		size_t ss = 1 << 16;
		char *stack = malloc(ss);
		if (clone(sharer, stack + ss, CLONE_VM | SIGCHLD, (void *)(long)i) < 0) { perror("clone"); return 1; }
	}
	touch(0);
	for (;;) pause();
}
`

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func members(t *testing.T, pids []int) Victim {
	t.Helper()
	var v Victim
	for _, pid := range pids {
		m, err := MemberOf("", pid)
		if err != nil {
			t.Fatal(err)
		}
		v.Members = append(v.Members, m)
	}
	return v
}

// checkPartition asserts Result's promise: every member's PID is in exactly
// one of Killed, Gone, Mismatched and StillAlive.
func checkPartition(t *testing.T, v Victim, res Result) {
	t.Helper()
	seen := map[int]int{}
	for _, l := range [][]int{res.Killed, res.Gone, res.Mismatched, res.StillAlive} {
		for _, pid := range l {
			seen[pid]++
		}
	}
	for _, m := range v.Members {
		if seen[m.PID] != 1 {
			t.Errorf("pid %d is in %d of Killed %v, Gone %v, Mismatched %v, StillAlive %v", m.PID, seen[m.PID], res.Killed, res.Gone, res.Mismatched, res.StillAlive)
		}
		delete(seen, m.PID)
	}
	if len(seen) != 0 {
		t.Errorf("Result names pids that are not members: %v", seen)
	}
}

func waitUsage(t *testing.T, g *testbed.Group, cond func(uint64) bool, timeout time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		u, err := g.Memory.ReadUint("memory.usage_in_bytes")
		if err != nil {
			t.Fatal(err)
		}
		if cond(u) {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("memory.usage_in_bytes of %s stayed at %d for %v", g.Memory.Path, u, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestKillCloneVMSharers(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, PidsMax: 20})
	hog := testbed.CompileC(t, hogSource)
	g.Start(hog, "96", "1")
	var pids []int
	if !g.WaitProcs(5*time.Second, func(p []int) bool { pids = p; return len(p) == 2 }) {
		t.Fatalf("want the hog and its CLONE_VM sharer, have %v", pids)
	}
	waitUsage(t, g, func(u uint64) bool { return u >= 90<<20 }, 5*time.Second)
	if same, err := sys.SameMM(pids[0], pids[1]); err != nil || !same {
		t.Fatalf("SameMM(%d, %d) = %v, %v; the sharers do not share an mm", pids[0], pids[1], same, err)
	}
	k := &Killer{Log: testLogger(t), Mrelease: true, Deadline: 5 * time.Second}
	v := members(t, pids)
	v.Reason = "test: clone(CLONE_VM) sharers"
	res := k.Kill(context.Background(), v)
	checkPartition(t, v, res)
	if res.Err != nil {
		t.Fatalf("Kill: %v", res.Err)
	}
	slices.Sort(res.Killed)
	if !slices.Equal(res.Killed, pids) || len(res.StillAlive) != 0 {
		t.Fatalf("Killed %v, StillAlive %v; want both of %v killed", res.Killed, res.StillAlive, pids)
	}
	// Seed 004: every process_mrelease comes after every SIGKILL. (Whether
	// it released anything depends on whether the sharers had exited by
	// then; TestMreleaseReleasesMemory holds a victim frozen for that.)
	lastKill, firstRelease := -1, -1
	kills := 0
	for i, s := range res.Steps {
		switch {
		case s.Op == OpSignal && s.Signal == unix.SIGKILL && s.Err == nil:
			lastKill = i
			kills++
		case s.Op == OpMrelease && firstRelease < 0:
			firstRelease = i
		}
	}
	if kills != 2 || firstRelease < 0 || firstRelease < lastKill {
		t.Fatalf("steps out of order (%d SIGKILLs, last at %d; first mrelease at %d): %+v", kills, lastKill, firstRelease, res.Steps)
	}
	if !res.Steps[firstRelease].Time.After(res.Steps[lastKill].Time) && res.Steps[firstRelease].Time != res.Steps[lastKill].Time {
		t.Fatalf("mrelease timestamp %v before last SIGKILL %v", res.Steps[firstRelease].Time, res.Steps[lastKill].Time)
	}
	if !g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 0 }) {
		t.Fatalf("processes left after Kill: %v", g.Procs())
	}
}

func TestKillFrozenVictimStaysAliveUntilThaw(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 20})
	g.Start("sleep", "60")
	var pids []int
	if !g.WaitProcs(5*time.Second, func(p []int) bool { pids = p; return len(p) == 1 }) {
		t.Fatalf("sleep did not start: %v", pids)
	}
	v := members(t, pids)
	if err := g.Freezer.Freeze(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	k := &Killer{Log: testLogger(t), Mrelease: true, Deadline: 300 * time.Millisecond}
	begin := time.Now()
	res := k.Kill(context.Background(), v)
	checkPartition(t, v, res)
	took := time.Since(begin)
	if !slices.Equal(res.StillAlive, pids) || len(res.Killed) != 0 || !slices.Equal(res.Signalled, pids) {
		t.Fatalf("frozen victim: Killed %v, StillAlive %v, Signalled %v; want StillAlive %v", res.Killed, res.StillAlive, res.Signalled, pids)
	}
	if took < 300*time.Millisecond || took > 3*time.Second {
		t.Fatalf("Kill returned after %v with a 300ms deadline", took)
	}
	if last := res.Steps[len(res.Steps)-1]; last.Op != OpTimeout || last.PID != pids[0] {
		t.Fatalf("last step %+v, want a timeout for %d", last, pids[0])
	}
	if err := g.Freezer.Thaw(); err != nil {
		t.Fatal(err)
	}
	if !g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 0 }) {
		t.Fatalf("victim %v did not die after thaw: %v", pids, g.Procs())
	}
}

// TestMreleaseAfter: with MreleaseAfter, a victim that can run exits by
// itself within the wait and is not reaped; a frozen one (it cannot run
// its exit path) is reaped once the wait is over, its memory coming back
// while it is still frozen.
func TestMreleaseAfter(t *testing.T) {
	hog := testbed.CompileC(t, hogSource)
	start := func(t *testing.T) (*testbed.Group, Victim) { return startLoneHog(t, hog, 96) }
	t.Run("a victim that can run exits by itself", func(t *testing.T) {
		g, v := start(t)
		k := &Killer{Log: testLogger(t), Mrelease: true, MreleaseAfter: 2 * time.Second, Deadline: 5 * time.Second}
		res := k.Kill(context.Background(), v)
		checkPartition(t, v, res)
		if res.Err != nil || len(res.Killed) != 1 || len(res.Released) != 0 {
			t.Fatalf("Killed %v, Released %v, Err %v: want it killed, not reaped", res.Killed, res.Released, res.Err)
		}
		for _, s := range res.Steps {
			if s.Op == OpMrelease {
				t.Fatalf("reaped a victim that exited within the wait: %+v", res.Steps)
			}
		}
		if !g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 0 }) {
			t.Fatalf("processes left after Kill: %v", g.Procs())
		}
	})
	t.Run("a frozen victim is reaped after the wait", func(t *testing.T) {
		g, v := start(t)
		if err := g.Freezer.Freeze(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		const after = 200 * time.Millisecond
		k := &Killer{Log: testLogger(t), Mrelease: true, MreleaseAfter: after, Deadline: 300 * time.Millisecond}
		res := k.Kill(context.Background(), v)
		checkPartition(t, v, res)
		if len(res.Released) != 1 || len(res.StillAlive) != 1 {
			t.Fatalf("Released %v, StillAlive %v: want the frozen victim reaped, and alive until thawed", res.Released, res.StillAlive)
		}
		var killed, reaped time.Time
		for _, s := range res.Steps {
			switch {
			case s.Op == OpSignal && s.Signal == unix.SIGKILL:
				killed = s.Time
			case s.Op == OpMrelease:
				reaped = s.Time
			}
		}
		if gap := reaped.Sub(killed); killed.IsZero() || gap < after {
			t.Fatalf("reaped %v after SIGKILL, want at least %v: %+v", gap, after, res.Steps)
		}
		// Reaped while still frozen: its memory is back.
		waitUsage(t, g, func(u uint64) bool { return u < 32<<20 }, 5*time.Second)
		if err := g.Freezer.Thaw(); err != nil {
			t.Fatal(err)
		}
		if !g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 0 }) {
			t.Fatalf("victim did not die after thaw: %v", g.Procs())
		}
	})
}

// startLoneHog starts hog holding mib MiB, without sharers, in a testbed
// group of its own, and returns once its memory is in.
func startLoneHog(t *testing.T, hog string, mib uint64) (*testbed.Group, Victim) {
	t.Helper()
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, PidsMax: 20})
	g.Start(hog, strconv.FormatUint(mib, 10), "0")
	var pids []int
	if !g.WaitProcs(5*time.Second, func(p []int) bool { pids = p; return len(p) == 1 }) {
		t.Fatalf("want the hog alone in its group, have %v", pids)
	}
	waitUsage(t, g, func(u uint64) bool { return u >= (mib-5)<<20 }, 10*time.Second)
	return g, members(t, pids)
}

func TestKillNeverHitsAReusedPID(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 20})
	g.Start("sleep", "60")
	g.Start("sleep", "60")
	var pids []int
	if !g.WaitProcs(5*time.Second, func(p []int) bool { pids = p; return len(p) == 2 }) {
		t.Fatalf("sleeps did not start: %v", pids)
	}
	v := members(t, pids)
	wrong := v.Members[0]
	v.Members[0].StartTime++ // as if pids[0] were a new process reusing the PID
	res := (&Killer{Log: testLogger(t), Mrelease: true}).Kill(context.Background(), v)
	checkPartition(t, v, res)
	if !slices.Equal(res.Mismatched, pids[:1]) || !slices.Equal(res.Killed, pids[1:]) || res.Err != nil {
		t.Fatalf("Mismatched %v, Killed %v, Err %v; want %v mismatched and %v killed", res.Mismatched, res.Killed, res.Err, pids[:1], pids[1:])
	}
	for _, s := range res.Steps {
		if s.PID == wrong.PID && s.Op == OpSignal {
			t.Fatalf("signalled the mismatched pid: %+v", s)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if st, err := ReadStartTime("/proc", wrong.PID); err != nil || st != wrong.StartTime {
		t.Fatalf("the process behind the mismatched pid is gone: %d, %v", st, err)
	}
	if got := g.Procs(); !slices.Equal(got, pids[:1]) {
		t.Fatalf("procs after Kill: %v, want only %v", got, pids[:1])
	}
}

func TestKillGoneMember(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 20})
	g.Start("sleep", "60")
	var pids []int
	if !g.WaitProcs(5*time.Second, func(p []int) bool { pids = p; return len(p) == 1 }) {
		t.Fatalf("sleep did not start: %v", pids)
	}
	v := members(t, pids)
	if err := g.KillAll(); err != nil {
		t.Fatal(err)
	}
	res := (&Killer{Log: testLogger(t)}).Kill(context.Background(), v)
	checkPartition(t, v, res)
	if !slices.Equal(res.Gone, pids) || len(res.Killed)+len(res.StillAlive)+len(res.Signalled) != 0 {
		t.Fatalf("dead member: Gone %v Killed %v StillAlive %v Signalled %v", res.Gone, res.Killed, res.StillAlive, res.Signalled)
	}
}

// startSleepers starts two sleeps in a group of their own, the second
// ignoring SIGTERM (ignored signals stay ignored across exec), and returns
// the group and their PIDs once both run sleep.
func startSleepers(t *testing.T) (*testbed.Group, []int) {
	t.Helper()
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 20})
	g.Start("sleep", "60")
	g.Start("sh", "-c", "trap '' TERM; exec sleep 60")
	var pids []int
	if !g.WaitProcs(5*time.Second, func(p []int) bool {
		pids = p
		if len(p) != 2 {
			return false
		}
		for _, pid := range p {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
			if string(b) != "sleep\n" {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("sleeps did not start: %v", pids)
	}
	return g, pids
}

func TestKillTermGrace(t *testing.T) {
	_, pids := startSleepers(t)
	k := &Killer{Log: testLogger(t), TermGrace: 300 * time.Millisecond}
	res := k.Kill(context.Background(), members(t, pids))
	slices.Sort(res.Killed)
	if !slices.Equal(res.Killed, pids) {
		t.Fatalf("Killed %v, want %v", res.Killed, pids)
	}
	// Exactly one of them (the one ignoring SIGTERM) needed SIGKILL.
	if len(res.Signalled) != 1 {
		t.Fatalf("SIGKILL went to %v; want only the SIGTERM-ignoring sleep", res.Signalled)
	}
	terms := 0
	for _, s := range res.Steps {
		if s.Op == OpSignal && s.Signal == unix.SIGTERM && s.Err == nil {
			terms++
		}
	}
	if terms != 2 {
		t.Fatalf("%d SIGTERMs, want 2: %+v", terms, res.Steps)
	}
}

// TestMreleaseReleasesMemory: process_mrelease gives a killed victim's
// memory back before the victim exits. The victim is held frozen after its
// SIGKILL (a victim stuck in D state, say), so it cannot exit by itself:
// with Mrelease, its memory comes back while it is still frozen, and it is
// reported released; without, nothing comes back until it is thawed.
// (Unfrozen, a lone hog exits within milliseconds, before process_mrelease
// is called; it is then not reported released, since its own exit freed
// its memory.)
func TestMreleaseReleasesMemory(t *testing.T) {
	hog := testbed.CompileC(t, hogSource)
	for _, mrelease := range []bool{true, false} {
		t.Run("mrelease="+strconv.FormatBool(mrelease), func(t *testing.T) {
			g, v := startLoneHog(t, hog, 200)
			pids := []int{v.Members[0].PID}
			if err := g.Freezer.Freeze(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			k := &Killer{Log: testLogger(t), Mrelease: mrelease, Deadline: 300 * time.Millisecond}
			begin := time.Now()
			res := k.Kill(context.Background(), v)
			checkPartition(t, v, res)
			if !slices.Equal(res.StillAlive, pids) {
				t.Fatalf("StillAlive %v, want the frozen hog %v", res.StillAlive, pids)
			}
			if mrelease != slices.Equal(res.Released, pids) || (!mrelease && len(res.Released) > 0) {
				t.Fatalf("Mrelease %v but Released %v", mrelease, res.Released)
			}
			if mrelease {
				u := waitUsage(t, g, func(u uint64) bool { return u < 16<<20 }, 5*time.Second)
				t.Logf("kill to usage %d bytes, the hog still frozen, took %v", u, time.Since(begin))
			} else if u, err := g.Memory.ReadUint("memory.usage_in_bytes"); err != nil || u < 150<<20 {
				t.Fatalf("usage %d bytes (%v) with the hog frozen and not reaped, want its 200 MiB", u, err)
			}
			if st, err := g.Freezer.ReadFile("freezer.state"); err != nil || !strings.HasPrefix(string(st), "FROZEN") {
				t.Fatalf("freezer.state %q, %v: want the hog still frozen", st, err)
			}
			if err := g.Freezer.Thaw(); err != nil {
				t.Fatal(err)
			}
			if !g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 0 }) {
				t.Fatal("the hog outlived its thaw")
			}
		})
	}
}

func TestApplyOOMScoreAdj(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 20})
	hog := testbed.CompileC(t, hogSource)
	g.Start(hog, "4", "1")
	var pids []int
	if !g.WaitProcs(5*time.Second, func(p []int) bool { pids = p; return len(p) == 2 }) {
		t.Fatalf("hog and sharer did not start: %v", pids)
	}
	k := &Killer{Log: testLogger(t)}
	read := func(pid int) string {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/oom_score_adj")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if err := k.ApplyOOMScoreAdj(pids, 300); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if got := read(pid); got != "300" {
			t.Fatalf("oom_score_adj of %d = %s, want 300", pid, got)
		}
	}
	if err := k.ApplyOOMScoreAdj(pids, 1001); err == nil {
		t.Fatal("adj 1001 accepted")
	}
	err := k.ApplyOOMScoreAdj(pids, -100)
	hasCap := unix.Prctl(unix.PR_CAPBSET_READ, unix.CAP_SYS_RESOURCE, 0, 0, 0) == nil && capEffective(t, unix.CAP_SYS_RESOURCE)
	if hasCap {
		if err != nil {
			t.Fatalf("with CAP_SYS_RESOURCE: %v", err)
		}
		return
	}
	if !errors.Is(err, ErrNeedCapSysResource) || !errors.Is(err, unix.EACCES) || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
		t.Fatalf("negative adj without CAP_SYS_RESOURCE: %v; want EACCES wrapping ErrNeedCapSysResource", err)
	}
	for _, pid := range pids {
		if got := read(pid); got != "300" {
			t.Fatalf("after the refused write oom_score_adj of %d = %s, want 300 kept", pid, got)
		}
	}
}

func capEffective(t *testing.T, c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return mask&(1<<c) != 0
		}
	}
	return false
}

func TestParseStartTime(t *testing.T) {
	line := "1234 (a) b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200\n"
	got, err := parseStartTime([]byte(line))
	if err != nil || got != 987654 {
		t.Fatalf("parseStartTime = %d, %v; want 987654", got, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 1 1 1 1 1 1 1 1 1 1 1 1 1 zz 5"} {
		if _, err := parseStartTime([]byte(bad)); err == nil {
			t.Errorf("parseStartTime(%q) accepted", bad)
		}
	}
	self, err := ReadStartTime("/proc", os.Getpid())
	if err != nil || self == 0 {
		t.Fatalf("ReadStartTime(self) = %d, %v", self, err)
	}
}

func FuzzParseStartTime(f *testing.F) {
	f.Add([]byte("1 (x) S 1 1 1 0 -1 1 1 1 1 1 1 1 1 1 1 1 1 1 42 5\n"))
	f.Add([]byte("1 ((()) S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStartTime(b)
	})
}

// A frozen victim cannot run its exit path, so only process_mrelease gets
// its memory back before it thaws: the case where reaping matters most.
func TestMreleaseReapsFrozenVictim(t *testing.T) {
	hog := testbed.CompileC(t, hogSource)
	for _, mrelease := range []bool{true, false} {
		t.Run("mrelease="+strconv.FormatBool(mrelease), func(t *testing.T) {
			g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, PidsMax: 20})
			g.Start(hog, "128", "0")
			var pids []int
			if !g.WaitProcs(5*time.Second, func(p []int) bool { pids = p; return len(p) == 1 }) {
				t.Fatalf("hog did not start: %v", pids)
			}
			waitUsage(t, g, func(u uint64) bool { return u >= 125<<20 }, 20*time.Second)
			if err := g.Freezer.Freeze(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			k := &Killer{Log: testLogger(t), Mrelease: mrelease, Deadline: 200 * time.Millisecond}
			res := k.Kill(context.Background(), members(t, pids))
			if !slices.Equal(res.StillAlive, pids) {
				t.Fatalf("frozen hog: StillAlive %v, want %v", res.StillAlive, pids)
			}
			u, err := g.Memory.ReadUint("memory.usage_in_bytes")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("mrelease=%v: usage of the frozen, SIGKILLed hog after Kill: %d MiB", mrelease, u>>20)
			if mrelease && u > 32<<20 {
				t.Fatalf("process_mrelease left %d MiB charged to the frozen victim", u>>20)
			}
			if !mrelease && u < 100<<20 {
				t.Fatalf("without process_mrelease the frozen victim's memory went away anyway (%d MiB left)", u>>20)
			}
			g.Freezer.Thaw()
			if !g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 0 }) {
				t.Fatalf("hog did not die after thaw")
			}
		})
	}
}

// vforkExecSource: the parent vforks; the child, sharing the parent's
// address space, waits for the file named by argv[1] to appear and then
// execs "sleep 60", leaving the address space. The parent, blocked in
// vfork until then, sleeps after.
const vforkExecSource = `
#define _GNU_SOURCE
#include <unistd.h>
int main(int argc, char **argv) {
	if (argc != 2) return 2;
	if (vfork() == 0) {
		while (access(argv[1], F_OK) != 0) usleep(10000);
		execl("/bin/sleep", "sleep", "60", (char *)0);
		_exit(127);
	}
	for (;;) pause();
}
`

// TestKillDropsAMemberThatLeftTheMM: a vfork child is a member of its
// parent's group when the victim is chosen; if it execs before the kill,
// it is another program (perhaps a protected one) whose death frees
// nothing of the victim's. With Victim.SameMM, Kill drops it unsignalled
// (Mismatched) and kills the rest.
func TestKillDropsAMemberThatLeftTheMM(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 20})
	prog := testbed.CompileC(t, vforkExecSource)
	cue := filepath.Join(t.TempDir(), "exec")
	g.Start(prog, cue)
	var pids []int
	if !g.WaitProcs(5*time.Second, func(p []int) bool { pids = p; return len(p) == 2 }) {
		t.Fatalf("want the parent and its vfork child, have %v", pids)
	}
	parent, child := pids[0], pids[1]
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child)); err == nil {
		if st, ok := procscan.ParseStat(b); ok && int(st.PPID) != parent {
			parent, child = child, parent // PIDs wrapped around: the child has the lower
		}
	}
	if same, err := sys.SameMM(parent, child); err != nil || !same {
		t.Fatalf("SameMM(%d, %d) = %v, %v; the vfork child does not share its parent's mm", parent, child, same, err)
	}
	v := members(t, pids) // chosen now, while they share the mm
	v.SameMM = parent
	v.Reason = "test: a vfork child that exec'd after the choice"
	if err := os.WriteFile(cue, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child))
		if strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the vfork child %d did not exec: comm %q", child, comm)
		}
		time.Sleep(10 * time.Millisecond)
	}
	res := (&Killer{Log: testLogger(t), Mrelease: true}).Kill(context.Background(), v)
	checkPartition(t, v, res)
	if !slices.Equal(res.Mismatched, []int{child}) || !slices.Equal(res.Killed, []int{parent}) || res.Err != nil {
		t.Fatalf("Mismatched %v, Killed %v, Err %v; want the exec'd child %d mismatched and the parent %d killed",
			res.Mismatched, res.Killed, res.Err, child, parent)
	}
	for _, s := range res.Steps {
		if s.PID == child && s.Op == OpSignal {
			t.Fatalf("signalled the child that left the mm: %+v", s)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if got := g.Procs(); !slices.Equal(got, []int{child}) {
		t.Fatalf("procs after Kill: %v, want the exec'd child %d alone", got, child)
	}
	// The pinned identity alone (PID and start time, which exec keeps)
	// would have let the SIGKILL through: the mm check is what spares it.
	if now := members(t, []int{child}); now.Members[0] != v.Members[1] {
		t.Fatalf("exec changed the child's identity: %+v, chosen as %+v", now.Members[0], v.Members[1])
	}
}

// TestTermReturnsAtOnce: Term sends SIGTERM to every member and returns
// without waiting or escalating: the member that ignores SIGTERM is left
// alive for the caller's next decision, and no SIGKILL is sent.
func TestTermReturnsAtOnce(t *testing.T) {
	g, pids := startSleepers(t)
	v := members(t, pids)
	start := time.Now()
	res := (&Killer{Log: testLogger(t)}).Term(v)
	took := time.Since(start)
	checkPartition(t, v, res)
	slices.Sort(res.StillAlive)
	if !slices.Equal(res.StillAlive, pids) || len(res.Signalled) != 0 || res.Err != nil {
		t.Fatalf("StillAlive %v, Signalled %v, Err %v; want both %v reached by SIGTERM alone", res.StillAlive, res.Signalled, res.Err, pids)
	}
	if slices.Sort(res.Termed); !slices.Equal(res.Termed, pids) {
		t.Errorf("Termed %v, want both %v", res.Termed, pids)
	}
	if took > 500*time.Millisecond {
		t.Errorf("Term took %v: it must not wait", took)
	}
	if !g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 1 }) {
		t.Fatalf("the sleep that takes SIGTERM did not die: %v", g.Procs())
	}
	time.Sleep(300 * time.Millisecond)
	if left := g.Procs(); len(left) != 1 {
		t.Fatalf("procs %v, want the SIGTERM-ignoring sleep alone, alive", left)
	}
}

// TestKillALeaderThatExited: a process whose main thread exited while
// another thread runs on shares its mm with a sibling. Whichever of the two
// is the reference (Victim.SameMM), the other is not taken for one that
// left the mm (the exited leader has no mm of its own to compare), and
// both die.
func TestKillALeaderThatExited(t *testing.T) {
	for _, refIsLeader := range []bool{true, false} {
		t.Run(fmt.Sprintf("reference is the exited leader: %v", refIsLeader), func(t *testing.T) {
			g := testbed.New(t, testbed.Options{MemoryLimit: 128 << 20, PidsMax: 10})
			pid, sib := g.StartLeaderExited(16, true)
			v := members(t, []int{pid, sib})
			v.SameMM = sib
			if refIsLeader {
				v.SameMM = pid
			}
			v.Reason = "test: a process whose leader exited, and its mm's sibling"
			res := (&Killer{Log: testLogger(t), Mrelease: true}).Kill(context.Background(), v)
			checkPartition(t, v, res)
			slices.Sort(res.Killed)
			if want := []int{min(pid, sib), max(pid, sib)}; !slices.Equal(res.Killed, want) || len(res.Mismatched) != 0 || res.Err != nil {
				t.Fatalf("Killed %v, Mismatched %v, Err %v; want both %v killed", res.Killed, res.Mismatched, res.Err, want)
			}
			if !g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 0 }) {
				t.Fatalf("processes left after Kill: %v", g.Procs())
			}
		})
	}
}

// A leader that exited before the other threads of its process is no
// exited member: exitedByProc, the fallback wait, goes on waiting for it.
func TestExitedByProcWaitsForALeaderThatExited(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 10})
	pid, _ := g.StartLeaderExited(1, false)
	m := members(t, []int{pid}).Members[0]
	if exitedByProc("/proc", m) {
		t.Fatalf("exitedByProc(%d) = true for a process whose other thread runs", pid)
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !exitedByProc("/proc", m) {
		if time.Now().After(deadline) {
			t.Fatalf("exitedByProc(%d) still false 5 s after SIGKILL", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
