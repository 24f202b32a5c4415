package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/action"
	"github.com/oomguard/oomguard/internal/actionlog"
	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/kmemguard"
	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/procfs"
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

// readWithin gives up on a read that blocks (FIFOs nobody writes here;
// /proc/PID/cmdline behind a held mmap_lock in the kernel), makes one read
// at most per path, and leaves at most maxBlockedReads reads out.
func TestReadWithinGivesUpOnABlockedRead(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("sleep\x00600\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, ok := readWithin(plain, time.Second); !ok || string(b) != "sleep\x00600\x00" {
		t.Fatalf("plain file: %q, %v", b, ok)
	}
	out := func() int {
		blockedReads.Lock()
		defer blockedReads.Unlock()
		return len(blockedReads.m)
	}
	var fifos []string
	// One read per path: asked twice before it ends, the path is read
	// once.
	first := filepath.Join(dir, "first")
	if err := unix.Mkfifo(first, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, ok := readWithin(first, 10*time.Millisecond); ok {
			t.Fatal("blocked read: ok, want a timeout")
		}
	}
	if n := out(); n != 1 {
		t.Fatalf("%d reads out for one path asked twice, want 1", n)
	}
	fifos = append(fifos, first)
	for i := 1; i < maxBlockedReads; i++ {
		fifo := filepath.Join(dir, "cmdline"+strconv.Itoa(i))
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		fifos = append(fifos, fifo)
		if _, ok := readWithin(fifo, 10*time.Millisecond); ok {
			t.Fatalf("blocked read %d: ok, want a timeout", i)
		}
	}
	// Asked again, a path whose read is out and was given up on does not
	// make another read, nor wait for that one again.
	start := time.Now()
	if _, ok := readWithin(fifos[0], time.Minute); ok || out() != maxBlockedReads {
		t.Fatalf("the same path again: ok %v, %d reads out, want no read and still %d", ok, out(), maxBlockedReads)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the same path again waited %v, want no wait", took)
	}
	// Every read is out: another path is not read at all.
	start = time.Now()
	if _, ok := readWithin(plain, time.Minute); ok {
		t.Fatal("with every read out, readWithin read anyway")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("with every read out, readWithin waited %v, want no wait", took)
	}
	// A writer ends each blocked read. Opened without blocking, it fails
	// (ENXIO) until the reader is in its open.
	deadline := time.Now().Add(10 * time.Second)
	for _, fifo := range fifos {
		for {
			fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("open %s for writing: %v", fifo, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for out() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d reads still out after the writers", out())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b, ok := readWithin(plain, time.Second); !ok || len(b) == 0 {
		t.Error("after the blocked reads ended, readWithin still gives up")
	}
}

// protectedNow finds a protected name by comm, by the executable's base
// name (without reading the command line) or by argv[0].
func TestProtectedNow(t *testing.T) {
	// An executable whose name is longer than a comm's 15 bytes.
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(t.TempDir(), "a-long-program-name")
	if err := os.WriteFile(long, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(long, "0").Run(); err != nil {
		t.Skipf("cannot run a program from the test's temporary directory (noexec?): %v", err)
	}
	tb := testbed.New(t, testbed.Options{})
	// comm "a-long-program-", executable a-long-program-name, argv[0]
	// "/usr/local/bin/keeper".
	tb.Start("bash", "-c", "exec -a /usr/local/bin/keeper "+long+" 600")
	var pid int
	if !tb.WaitProcs(5*time.Second, func(p []int) bool {
		if len(p) != 1 {
			return false
		}
		pid = p[0]
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		return string(b) == "a-long-program-\n"
	}) {
		t.Fatal("the program did not start")
	}
	for _, c := range []struct {
		names []string
		want  string
	}{
		{nil, ""},
		{[]string{"sshd"}, ""},
		{[]string{"a-long-program-"}, "protected name a-long-program-"},
		{[]string{"a-long-program-name"}, "protected name a-long-program-name"},
		{[]string{"keeper"}, "protected name keeper"},
	} {
		if got := protectedNow(pid, policy.Rules{Protected: c.names}); got != c.want {
			t.Errorf("protect %v: protectedNow = %q, want %q", c.names, got, c.want)
		}
	}
	// A process whose leader exited has no executable of its own: the
	// process's is read through a live thread. (The testbed's program
	// is named by a 16-character hash, longer than a comm.)
	leader, _ := tb.StartLeaderExited(8, false)
	tid, ok := procfs.LiveThread("/proc", leader)
	if !ok {
		t.Fatalf("no live thread in %d", leader)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/task/%d/exe", leader, tid))
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(exe)
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", leader)); strings.TrimSpace(string(comm)) == name {
		t.Fatalf("comm %q is the executable's whole name: nothing to tell apart", comm)
	}
	if got := protectedNow(leader, policy.Rules{Protected: []string{name}}); got != "protected name "+name {
		t.Errorf("leader exited: protectedNow = %q, want protected by its executable %q", got, name)
	}
}
