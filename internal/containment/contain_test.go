package containment

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/lineage"
	"github.com/oomguard/oomguard/internal/lineage/procscan"
	"github.com/oomguard/oomguard/internal/sys"
	"github.com/oomguard/oomguard/internal/testbed"
)

// realKernel skips the test unless the testbed can run, and returns the
// machine's mounts (with a v1 freezer) and its MonoMinusBoot.
func realKernel(t *testing.T) (Mounts, time.Duration) {
	t.Helper()
	testbed.Require(t)
	mounts, err := FindMounts("/proc/self/mountinfo")
	if err != nil || mounts.V1Freezer == "" {
		t.Fatalf("mounts %+v, %v", mounts, err)
	}
	return mounts, monoMinusBoot()
}

func monoMinusBoot() time.Duration {
	var m, b unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &m)
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &b)
	return time.Duration(m.Nano() - b.Nano())
}

func stat(t *testing.T, pid int) lineage.Proc {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := procscan.ParseStat(b)
	if !ok {
		t.Fatalf("bad stat of %d", pid)
	}
	return p
}

// family returns a Family of the live descendants of root (by /proc
// parent links), root included.
func family(t *testing.T, root int, off time.Duration) Family {
	return func(out []Target) []Target {
		procs, _ := procscan.Scan("/proc", off)
		in := map[int32]bool{int32(root): true}
		for changed := true; changed; {
			changed = false
			for _, p := range procs {
				if !in[p.PID] && in[p.PPID] {
					in[p.PID] = true
					changed = true
				}
			}
		}
		for _, p := range procs {
			if in[p.PID] {
				out = append(out, Target{PID: p.PID, Born: p.Born})
			}
		}
		return out
	}
}

// pinAll opens a pidfd on each member, closed when the test ends.
func pinAll(t *testing.T, members []Target) []*sys.PidFD {
	var fds []*sys.PidFD
	for _, m := range members {
		fd, err := sys.PidfdOpen(int(m.PID))
		if err != nil {
			t.Fatalf("pin member %d: %v", m.PID, err)
		}
		t.Cleanup(func() { fd.Close() })
		fds = append(fds, fd)
	}
	return fds
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ") && !strings.Contains(string(b), ") X ")
}

// startPinnedFamily starts a family of a shell and n children (see
// startFamily) and pins every member with a pidfd, so that checks after
// Contain ask about these processes, not about a PID a busy machine (other
// packages' bombs run beside these tests) reused after they were reaped.
func startPinnedFamily(t *testing.T, g *testbed.Group, n int, off time.Duration) (root int, members []Target, pinned []*sys.PidFD) {
	t.Helper()
	root = startFamily(t, g, n)
	members = family(t, root, off)(nil)
	if len(members) != n+1 {
		t.Fatalf("family of %d has %d members, want %d", root, len(members), n+1)
	}
	return root, members, pinAll(t, members)
}

// startFamily starts a shell and n sleeping children in g, the shell run
// through prefix when given (a command that execs the rest, such as chrt),
// and returns the shell's PID.
func startFamily(t *testing.T, g *testbed.Group, n int, prefix ...string) int {
	before := g.Procs()
	argv := append(prefix, "sh", "-c", fmt.Sprintf("i=0; while [ $i -lt %d ]; do sleep 60 & i=$((i+1)); done; wait", n))
	g.Start(argv[0], argv[1:]...)
	var root int
	if !g.WaitProcs(10*time.Second, func(p []int) bool {
		var fresh []int
		for _, x := range p {
			if !slices.Contains(before, x) {
				fresh = append(fresh, x)
			}
		}
		if len(fresh) < n+1 {
			return false
		}
		slices.Sort(fresh)
		for _, x := range fresh {
			if stat(t, x).PPID != 0 && !slices.Contains(fresh, int(stat(t, x).PPID)) {
				root = x
			}
		}
		return root != 0
	}) {
		t.Fatal("family did not start")
	}
	return root
}

func TestContain(t *testing.T) {
	mounts, off := realKernel(t)
	for _, tc := range []struct {
		name     string
		shared   bool
		noFreeze bool
		want     string
	}{
		{name: "own cgroup is frozen", want: "freeze-v1"},
		{name: "shared cgroup: SIGSTOP", shared: true, want: "sigstop"},
		{name: "forced SIGSTOP", noFreeze: true, want: "sigstop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testbed.New(t, testbed.Options{PidsMax: 100})
			var by int
			if tc.shared {
				g.Start("sleep", "60")
				g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 1 })
				by = g.Procs()[0]
			}
			root, _, pinned := startPinnedFamily(t, g, 20, off)
			rep, err := Contain(context.Background(), family(t, root, off), Options{Mounts: mounts, Self: os.Getpid(),
				MonoMinusBoot: off, NoFreeze: tc.noFreeze})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Method != tc.want || len(rep.PIDs) != 21 || rep.Survivors != 0 {
				t.Fatalf("report %+v, want %s with 21 killed", rep, tc.want)
			}
			for _, fd := range pinned {
				if done, err := fd.Exited(); err != nil || !done {
					t.Fatalf("member %d survived (%v)", fd.PID(), err)
				}
			}
			if tc.shared && !alive(by) {
				t.Fatal("bystander in the shared cgroup was killed")
			}
			if !tc.shared && tc.want == "freeze-v1" {
				if st, _ := g.Freezer.ReadFile("freezer.state"); !strings.HasPrefix(string(st), "THAWED") {
					t.Fatalf("freezer left %q", st)
				}
			}
		})
	}
}

func TestContainSkipsReusedPIDAndProtected(t *testing.T) {
	testbed.Require(t)
	g := testbed.New(t, testbed.Options{PidsMax: 10})
	g.Start("sleep", "60")
	g.WaitProcs(5*time.Second, func(p []int) bool { return len(p) == 1 })
	pid := g.Procs()[0]
	off := monoMinusBoot()
	born := stat(t, pid).Born + off
	fam := func(out []Target) []Target {
		// The lineage remembers an older process under this PID, plus
		// PID 1 and ourselves.
		return append(out, Target{PID: int32(pid), Born: born - time.Second}, Target{PID: 1}, Target{PID: int32(os.Getpid())})
	}
	rep, err := Contain(context.Background(), fam, Options{Self: os.Getpid(), MonoMinusBoot: off})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.PIDs) != 0 || len(rep.Skipped) != 3 {
		t.Fatalf("report %+v: want nothing killed, 3 skipped", rep)
	}
	if !alive(pid) {
		t.Fatal("process with a reused PID was killed")
	}
}

func TestFindMounts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(p, []byte(`30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`), 0o644)
	m, err := FindMounts(p)
	if err != nil || m != (Mounts{V1Freezer: "/sys/fs/cgroup/freezer", V2: "/sys/fs/cgroup/unified"}) {
		t.Fatalf("FindMounts = %+v, %v", m, err)
	}
}

// TestContainBeyondDescriptorLimit: a family with more members than
// oomguard may open descriptors is contained whole. Members beyond the
// limit are held by PID and start time (Report.Unpinned) instead of being
// taken for gone and left running.
func TestContainBeyondDescriptorLimit(t *testing.T) {
	testbed.Require(t)
	off := monoMinusBoot()
	g := testbed.New(t, testbed.Options{PidsMax: 100})
	_, members, pinned := startPinnedFamily(t, g, 40, off)
	// Reading /proc/self/fd takes a descriptor too; leave room for 15
	// pidfds and the reserve.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(len(entries) + 15 + fdReserve)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	// The family is fixed (its members only sleep): hand Contain the list
	// read above, since scanning /proc needs descriptors too.
	rep, err := Contain(context.Background(), func(out []Target) []Target { return append(out, members...) },
		Options{Self: os.Getpid(), MonoMinusBoot: off, NoFreeze: true})
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.PIDs) != 41 || rep.Survivors != 0 || rep.Unpinned < 20 {
		t.Fatalf("report %+v: want 41 killed, at least 20 of them unpinned, no survivor", rep)
	}
	for _, fd := range pinned {
		if done, err := fd.Exited(); err != nil || !done {
			t.Fatalf("member %d survived (%v)", fd.PID(), err)
		}
	}
}

// TestContainWaitsWhileMembersExit: killed members that take longer than
// ExitTimeout in all to die, but never that long between one exit and the
// next, are waited for (members of a memory cgroup at its limit die slowly,
// all of them reclaiming: a CI run saw 105 of 1,218 still alive after 5 s).
// Here three groups of members are held frozen after the SIGKILL, and
// thawed one at a time. The wait ends ExitTimeout after the last exit, and
// at ExitDeadline in any case. Other packages' fork bombs run beside this
// test, and starved of CPU, thaws came late and killed members took
// seconds to die: the containment and the thawing run on real-time
// threads, as the daemon's containment does, and so do the members
// (chrt), so that they die as soon as they are thawed. Times are measured
// from when the thaws were scheduled.
func TestContainWaitsWhileMembersExit(t *testing.T) {
	mounts, off := realKernel(t)
	const exitTimeout = 3 * time.Second
	for _, tc := range []struct {
		name      string
		thaw      []time.Duration // when each group is thawed; < 0: never
		deadline  time.Duration
		survivors int // groups left
		// When the wait ends, from when the thaws were scheduled.
		minDone, maxDone time.Duration
	}{
		// Past ExitTimeout after the SIGKILL, until the last group dies.
		{name: "exits keep coming", thaw: []time.Duration{500 * time.Millisecond, 3 * time.Second, 5500 * time.Millisecond},
			minDone: 5500 * time.Millisecond, maxDone: 8 * time.Second},
		// ExitTimeout after the second group died.
		{name: "the last group never exits", thaw: []time.Duration{500 * time.Millisecond, 3 * time.Second, -1},
			survivors: 1, minDone: 6 * time.Second, maxDone: 9 * time.Second},
		// At the bound, 4 s after the SIGKILL (checked below).
		{name: "the deadline comes first", thaw: []time.Duration{500 * time.Millisecond, 3 * time.Second, 5500 * time.Millisecond},
			deadline: 4 * time.Second, survivors: 1, minDone: 3 * time.Second, maxDone: 5500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var groups []*testbed.Group
			var fams []Family
			for range tc.thaw {
				g := testbed.New(t, testbed.Options{PidsMax: 20})
				fams = append(fams, family(t, startFamily(t, g, 3, "chrt", "-f", "1"), off))
				if err := g.Freezer.Freeze(10 * time.Second); err != nil {
					t.Fatal(err)
				}
				groups = append(groups, g)
			}
			all := func(out []Target) []Target {
				for _, f := range fams {
					out = f(out)
				}
				return out
			}
			if n := len(all(nil)); n != 4*len(groups) {
				t.Fatalf("%d members, want %d", n, 4*len(groups))
			}
			start := time.Now()
			thawed := make(chan error, 1)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				if err := sys.SetFIFO(10); err != nil {
					thawed <- err
					return
				}
				defer sys.SetNormal()
				for i, at := range tc.thaw {
					if at < 0 {
						continue
					}
					sys.SleepThread(time.Until(start.Add(at)))
					if err := groups[i].Freezer.Thaw(); err != nil {
						thawed <- fmt.Errorf("thaw group %d: %w", i, err)
						return
					}
				}
				thawed <- nil
			}()
			runtime.LockOSThread()
			if err := sys.SetFIFO(10); err != nil {
				t.Fatal(err)
			}
			rep, err := Contain(context.Background(), all, Options{Mounts: mounts, Self: os.Getpid(), MonoMinusBoot: off,
				NoFreeze: true, ExitTimeout: exitTimeout, ExitDeadline: tc.deadline})
			sys.SetNormal()
			runtime.UnlockOSThread()
			if err := <-thawed; err != nil {
				t.Fatal(err)
			}
			waited := rep.Done.Sub(rep.Killed)
			t.Logf("waited %v after SIGKILL (%v after the thaws were scheduled): %+v, %v", waited, time.Since(start), rep.Survivors, err)
			if len(rep.PIDs) != 4*len(groups) || rep.Survivors != 4*tc.survivors {
				t.Fatalf("killed %d with %d survivors, want %d killed and %d survivors", len(rep.PIDs), rep.Survivors, 4*len(groups), 4*tc.survivors)
			}
			if (err != nil) != (tc.survivors > 0) {
				t.Fatalf("error %v with %d survivors", err, rep.Survivors)
			}
			done := rep.Done.Sub(start)
			if done < tc.minDone || done > tc.maxDone {
				t.Errorf("the wait ended %v after the thaws were scheduled, want %v to %v", done, tc.minDone, tc.maxDone)
			}
			switch {
			case tc.deadline > 0 && (waited < tc.deadline || waited > tc.deadline+time.Second):
				t.Errorf("waited %v after SIGKILL, want the bound, %v", waited, tc.deadline)
			case tc.deadline == 0 && tc.survivors == 0 && waited <= exitTimeout:
				t.Errorf("waited %v after SIGKILL: no longer than ExitTimeout (%v), so this proves nothing", waited, exitTimeout)
			}
		})
	}
}

// TestContainAdoptsChildrenTheFamilyMissed: a family that lost events (a
// bomb overflowing the proc connector) does not list some members. Those
// children of stopped members are found in /proc and killed with the rest,
// whether stopped by SIGSTOP or frozen with their cgroup.
func TestContainAdoptsChildrenTheFamilyMissed(t *testing.T) {
	mounts, off := realKernel(t)
	for _, noFreeze := range []bool{true, false} {
		t.Run(fmt.Sprintf("noFreeze=%v", noFreeze), func(t *testing.T) {
			g := testbed.New(t, testbed.Options{PidsMax: 100})
			root, _, pinned := startPinnedFamily(t, g, 20, off)
			// The family knows the root and half its children.
			known := func(out []Target) []Target {
				for _, m := range family(t, root, off)(nil) {
					if m.PID == int32(root) || m.PID%2 == 0 {
						out = append(out, m)
					}
				}
				return out
			}
			rep, err := Contain(context.Background(), known, Options{Mounts: mounts, Self: os.Getpid(), MonoMinusBoot: off,
				NoFreeze: noFreeze})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("report: method %s, %d killed, %d adopted", rep.Method, len(rep.PIDs), rep.Adopted)
			if len(rep.PIDs) != 21 {
				t.Errorf("killed %d, want all 21", len(rep.PIDs))
			}
			if noFreeze && rep.Adopted == 0 {
				t.Errorf("nothing adopted with %d of 21 known", len(known(nil)))
			}
			for _, fd := range pinned {
				if done, err := fd.Exited(); err != nil || !done {
					t.Errorf("member %d survived (%v)", fd.PID(), err)
				}
			}
		})
	}
}

// TestKillReturnsBeforeTheWait: Kill returns once SIGKILL is sent, with
// the members' report so far, while they may still live (here they are
// held frozen, where SIGKILL cannot end them); Wait then waits for them,
// and a ctx that ends calls the wait off, with the survivors counted and
// the error saying so.
func TestKillReturnsBeforeTheWait(t *testing.T) {
	mounts, off := realKernel(t)
	g := testbed.New(t, testbed.Options{PidsMax: 20})
	root, members, pinned := startPinnedFamily(t, g, 3, off)
	if err := g.Freezer.Freeze(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	k := Kill(context.Background(), family(t, root, off), Options{Mounts: mounts, Self: os.Getpid(), MonoMinusBoot: off, NoFreeze: true})
	rep := k.Report()
	if len(rep.PIDs) != len(members) || rep.Killed.IsZero() || !rep.Done.IsZero() {
		t.Fatalf("report after Kill: %d members killed at %v, done at %v; want %d killed and not done", len(rep.PIDs), rep.Killed, rep.Done, len(members))
	}
	if got := k.Targets(nil); len(got) != len(members) {
		t.Fatalf("Targets: %v, want the %d members %v", got, len(members), members)
	}
	for i, fd := range pinned {
		if !testbed.Alive(t, fd) {
			t.Fatalf("member %d died while frozen", members[i].PID)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	rep, err := k.Wait(ctx)
	t.Logf("waited %v: %v", rep.Done.Sub(rep.Killed), err)
	if rep.Survivors != len(members) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "called off") {
		t.Fatalf("Wait called off: %d survivors, error %v; want %d and the context's error", rep.Survivors, err, len(members))
	}
	if w := rep.Done.Sub(rep.Killed); w > 3*time.Second {
		t.Errorf("the wait went on %v after its context ended, past ExitTimeout", w)
	}
	if err := g.Freezer.Thaw(); err != nil {
		t.Fatal(err)
	}
	for i, fd := range pinned {
		if done, err := fd.WaitExit(10 * time.Second); err != nil || !done {
			t.Errorf("member %d did not die of its SIGKILL once thawed: %v", members[i].PID, err)
		}
	}
}
