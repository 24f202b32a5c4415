package scan

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/sys"
)

// procFixture is procfs's recorded /proc: 15042 a sleep named "a b) (c",
// 15088 a zombie, 2 kthreadd.
const procFixture = "../procfs/testdata/proc"

func TestSystemFixture(t *testing.T) {
	root, _ := filepath.Abs(procFixture)
	v2, _ := filepath.Abs("../cgroupfs/testdata/memory/v2/app")
	v1, _ := filepath.Abs("../cgroupfs/testdata/memory/v1/hog")
	s := New(Config{ProcRoot: root, SelfPID: 42, Scopes: []cgroupfs.Cgroup{{Path: v2, Version: cgroupfs.V2}}})
	var snap policy.Snapshot
	if err := s.System(&snap); err != nil {
		t.Fatal(err)
	}
	if snap.Memory != (policy.Memory{Total: 24683620 << 10, Available: 24277492 << 10}) {
		t.Errorf("memory = %+v", snap.Memory)
	}
	if !snap.Pressure.IO.Valid || snap.Pressure.IO.Some.Total != 3705307 || snap.Pressure.CPU.Some.Avg60 != 32.28 {
		t.Errorf("pressure = %+v", snap.Pressure)
	}
	if snap.SelfPID != 42 || len(snap.Scopes) != 1 || snap.Scopes[0].Usage != 201326592 {
		t.Errorf("self %d scopes %+v", snap.SelfPID, snap.Scopes)
	}
	// Scoped: the refault counter is the scope's, not the machine's.
	if snap.RefaultFile != 81234 {
		t.Errorf("RefaultFile = %d, want the scope's 81234", snap.RefaultFile)
	}
	// Two scopes: the sum.
	s = New(Config{ProcRoot: root, Scopes: []cgroupfs.Cgroup{{Path: v2, Version: cgroupfs.V2}, {Path: v1, Version: cgroupfs.V1}}})
	if err := s.System(&snap); err != nil || snap.RefaultFile != 81234 || len(snap.Scopes) != 2 || snap.Scopes[1].Limit != 64<<20 {
		t.Errorf("two scopes: refaults %d scopes %+v err %v", snap.RefaultFile, snap.Scopes, err)
	}
	// Unscoped: /proc/vmstat's.
	s = New(Config{ProcRoot: root})
	if err := s.System(&snap); err != nil || snap.RefaultFile != 145130 || len(snap.Scopes) != 0 {
		t.Errorf("unscoped: refaults %d, scopes %d, err %v", snap.RefaultFile, len(snap.Scopes), err)
	}
}

func TestProcessesFixture(t *testing.T) {
	root, _ := filepath.Abs(procFixture)
	s := New(Config{ProcRoot: root})
	var snap policy.Snapshot
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Processes) != 3 {
		t.Fatalf("got %d processes: %+v", len(snap.Processes), snap.Processes)
	}
	k, sl, z := snap.Processes[0], snap.Processes[1], snap.Processes[2]
	if k.PID != 2 || !k.KernelThread || k.MMGroup != 0 || k.Comm != "kthreadd" {
		t.Errorf("kthreadd = %+v", k)
	}
	if sl.PID != 15042 || sl.Comm != "a b) (c" || sl.Cmdline != "/tmp/tmp.FZX0M39yUL/a b) (c 30" || sl.RSS != 1820<<10 ||
		sl.MMGroup != 15042 || sl.Exiting || sl.State != 'S' || sl.StartTime != 82472 ||
		sl.Cgroup != "/process_api/1cfda9e66eecee3e3c23a1cfa47e5531" {
		t.Errorf("sleep = %+v", sl)
	}
	if z.PID != 15088 || !z.Exiting || z.MMGroup != 0 || z.KernelThread {
		t.Errorf("zombie = %+v", z)
	}
}

// A PID listed in cgroup.procs whose /proc directory is gone (it exited
// between the listing and the read) is skipped, not an error.
func TestProcessesSkipsExited(t *testing.T) {
	root, _ := filepath.Abs(procFixture)
	cg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte("15042\n999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := New(Config{ProcRoot: root, Scopes: []cgroupfs.Cgroup{{Path: cg, Version: cgroupfs.V2}}})
	var snap policy.Snapshot
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range snap.Processes {
		pids = append(pids, p.PID)
	}
	if !slices.Equal(pids, []int{15042}) {
		t.Errorf("pids = %v, want [15042]", pids)
	}
}

func TestSystemAllocs(t *testing.T) {
	own := ownMemoryCgroup(t)
	s := New(Config{Scopes: []cgroupfs.Cgroup{own}, SelfPID: os.Getpid()})
	var snap policy.Snapshot
	if err := s.System(&snap); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(50, func() {
		if err := s.System(&snap); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("System allocates %v times per call, want 0", n)
	}
	if snap.Memory.Total == 0 || !snap.Pressure.Memory.Valid || snap.Scopes[0].Usage == 0 {
		t.Errorf("live snapshot: %+v", snap)
	}
}

func ownMemoryCgroup(t *testing.T) cgroupfs.Cgroup {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skip(err)
	}
	var dir string
	for _, line := range splitLines(string(b)) {
		var id, ctrl, path string
		if n := splitN3(line, &id, &ctrl, &path); n && ctrl == "memory" {
			dir = filepath.Join("/sys/fs/cgroup/memory", path)
		}
	}
	c, err := cgroupfs.Open(dir)
	if dir == "" || err != nil {
		t.Skipf("no v1 memory cgroup: %v", err)
	}
	return c
}

// A process that exits while its bucket is sorted by kcmp loses its group
// (MMGroup 0, Exiting); the others are still grouped right.
func TestGroupBucketDeadProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kcmp on other processes needs root")
	}
	dead := 1 << 22 // above any pid_max default: never a live PID
	procs := []policy.Process{
		{PID: os.Getpid(), MMGroup: -1},
		{PID: dead, MMGroup: -1},
		{PID: os.Getppid(), MMGroup: -1},
		{PID: dead + 1, MMGroup: -1},
	}
	s := New(Config{})
	s.groupBucket(procs, []mmKey{{0, 0}, {0, 1}, {0, 2}, {0, 3}})
	want := []int{os.Getpid(), 0, os.Getppid(), 0}
	for i, p := range procs {
		if p.MMGroup != want[i] {
			t.Errorf("pid %d: MMGroup %d, want %d", p.PID, p.MMGroup, want[i])
		}
		if p.Exiting != (want[i] == 0) {
			t.Errorf("pid %d: Exiting %v", p.PID, p.Exiting)
		}
	}
}

func TestConfirmGroupEdges(t *testing.T) {
	s := New(Config{})
	if _, err := s.ConfirmGroup(1<<22, []int{1}); err == nil {
		t.Error("ConfirmGroup of a PID that does not exist succeeded")
	}
	// A kernel thread has no mm, so nothing shares it (kcmp would call two
	// mm-less tasks equal).
	got, err := s.ConfirmGroup(2, []int{1, 2, os.Getpid()})
	if err != nil || !slices.Equal(got, []int{2}) {
		t.Errorf("ConfirmGroup(kthreadd) = %v, %v; want [2]", got, err)
	}
	if os.Geteuid() == 0 {
		got, err = s.ConfirmGroup(os.Getpid(), []int{1, os.Getppid(), os.Getpid(), 1 << 22})
		if err != nil || !slices.Equal(got, []int{os.Getpid()}) {
			t.Errorf("ConfirmGroup(self) = %v, %v; want only itself", got, err)
		}
	}
}

// A cached process's status is read again when its RSS (from stat) moves,
// and at least every statusRefreshPasses passes; in between, swap and page
// tables come from the last read.
func TestStatusRefresh(t *testing.T) {
	root, statPath, statusPath, stat0, status0 := writableFixture(t)
	setSwap := func(kB string) {
		b := strings.Replace(string(status0), "VmSwap:\t       0 kB", "VmSwap:\t"+kB+" kB", 1)
		if b == string(status0) {
			t.Fatal("fixture has no VmSwap line to change")
		}
		if err := os.WriteFile(statusPath, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := New(Config{ProcRoot: root, KeepOpen: KeepNone})
	var snap policy.Snapshot
	pass := func() policy.Process {
		t.Helper()
		if err := s.Processes(&snap); err != nil {
			t.Fatal(err)
		}
		for _, p := range snap.Processes {
			if p.PID == 15042 {
				return p
			}
		}
		t.Fatal("15042 missing")
		return policy.Process{}
	}
	if p := pass(); p.Swap != 0 || p.PageTables != 52<<10 || p.RSS != 1820<<10 {
		t.Fatalf("first pass: %+v", p)
	}
	setSwap("4096")
	// Pass 2: RSS unchanged, not its refresh slot: cached swap, RSS from stat.
	if p := pass(); p.Swap != 0 || p.RSS != 411*uint64(os.Getpagesize()) {
		t.Errorf("pass 2 (cached): swap %d rss %d", p.Swap, p.RSS)
	}
	// RSS moves by 300 pages (> 411/16 + 256): status is read again.
	if err := os.WriteFile(statPath, []byte(strings.Replace(string(stat0), " 411 ", " 711 ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if p := pass(); p.Swap != 4096<<10 {
		t.Errorf("pass 3 (RSS moved): swap %d, want %d", p.Swap, 4096<<10)
	}
	setSwap("8192")
	// Its refresh slot comes within statusRefreshPasses passes, not before
	// (gen + PID divisible by 16: pass 14 here).
	for gen := 4; gen <= 3+statusRefreshPasses; gen++ {
		p := pass()
		want := uint64(4096 << 10)
		if gen >= 14 {
			want = 8192 << 10
		}
		if p.Swap != want {
			t.Errorf("pass %d: swap %d, want %d", gen, p.Swap, want)
		}
		if gen == 14 && s.LastPass().StatusRead == 0 {
			t.Errorf("pass %d read no status", gen)
		}
	}
}

// With ReadRefaultsBelow, /proc/vmstat is read only while MemAvailable is
// under the level (the fixture has 98% available).
func TestReadRefaultsBelow(t *testing.T) {
	root, _ := filepath.Abs(procFixture)
	s := New(Config{ProcRoot: root})
	var snap policy.Snapshot
	for _, c := range []struct {
		pct  float64
		read bool
	}{{0, true}, {30, false}, {99, true}, {-1, false}} {
		s.ReadRefaultsBelow(c.pct)
		if err := s.System(&snap); err != nil {
			t.Fatal(err)
		}
		if got := snap.RefaultFile >= 0; got != c.read {
			t.Errorf("ReadRefaultsBelow(%v): RefaultFile %d, want read=%v", c.pct, snap.RefaultFile, c.read)
		}
	}
}

// A PID taken by another process (another start time) whose status then
// cannot be read (it exited too) is dropped from the cache with its kept
// files: the next pass reads it afresh, not through descriptors already
// closed (EBADF, or another file's once the numbers are reused). Seen in
// TestKernelExitMidScan as "read /proc/N/oom_score_adj: bad file
// descriptor": the end-of-pass sweep closed the stale entry's descriptors
// a second time, and by then they were a new process's.
func TestReusedPIDGoneMidReadLeavesNoClosedFiles(t *testing.T) {
	root, statPath, statusPath, stat0, status0 := writableFixture(t)
	s := New(Config{ProcRoot: root, KeepOpen: KeepAll})
	defer s.Close()
	var snap policy.Snapshot
	find := func() (policy.Process, bool) {
		for _, p := range snap.Processes {
			if p.PID == 15042 {
				return p, true
			}
		}
		return policy.Process{}, false
	}
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	if p, ok := find(); !ok || p.StartTime != 82472 {
		t.Fatalf("pass 1: %+v, %v", p, ok)
	}
	// Another process under the PID, gone before its status is read.
	reused := strings.Replace(string(stat0), " 82472 ", " 99999 ", 1)
	if reused == string(stat0) {
		t.Fatal("fixture has no start time 82472 to change")
	}
	if err := os.WriteFile(statPath, []byte(reused), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(statusPath); err != nil {
		t.Fatal(err)
	}
	// A new process, read after 15042 in the same pass: its kept files
	// take the lowest free descriptors, the ones just closed.
	if err := os.CopyFS(filepath.Join(root, "15050"), os.DirFS(filepath.Join(procFixture, "15042"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Processes(&snap); err != nil {
		t.Fatalf("pass 2: %v", err)
	}
	if _, ok := find(); ok {
		t.Fatal("pass 2: 15042 listed without a status")
	}
	// Each kept entry is counted once: a second close of the old entry's
	// files shows as one kept set too few (and closes the new process's).
	kept := 0
	for _, e := range s.cache {
		if e.kept {
			kept++
		}
	}
	if kept != s.kept {
		t.Fatalf("pass 2: %d entries keep files open, the scanner counts %d: a kept set was closed twice", kept, s.kept)
	}
	// It is readable again: read afresh.
	if err := os.WriteFile(statusPath, status0, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Processes(&snap); err != nil {
		t.Fatalf("pass 3: %v", err)
	}
	if p, ok := find(); !ok || p.StartTime != 99999 {
		t.Fatalf("pass 3: %+v, %v", p, ok)
	}
	n := 0
	for _, p := range snap.Processes {
		if p.PID == 15050 {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("pass 3: 15050 listed %d times", n)
	}
}

// writableFixture copies the /proc fixture where a test may change it, and
// returns the copy with the paths and first contents of 15042's stat and
// status.
func writableFixture(t *testing.T) (root, statPath, statusPath string, stat0, status0 []byte) {
	t.Helper()
	root = t.TempDir()
	if err := os.CopyFS(root, os.DirFS(procFixture)); err != nil {
		t.Fatal(err)
	}
	statPath = filepath.Join(root, "15042", "stat")
	statusPath = filepath.Join(root, "15042", "status")
	var err error
	if stat0, err = os.ReadFile(statPath); err != nil {
		t.Fatal(err)
	}
	if status0, err = os.ReadFile(statusPath); err != nil {
		t.Fatal(err)
	}
	return root, statPath, statusPath, stat0, status0
}

// fifoCmdlineFixture is writableFixture's tree, in which the command line
// of 15042 is a FIFO: a read of it blocks until a writer comes, as one of
// /proc/PID/cmdline does while a writer holds the process's mmap_lock.
func fifoCmdlineFixture(t *testing.T) (root, cmdline string) {
	t.Helper()
	root, _, _, _, _ = writableFixture(t)
	cmdline = filepath.Join(root, "15042", "cmdline")
	if err := os.Remove(cmdline); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(cmdline, 0o600); err != nil {
		t.Fatal(err)
	}
	return root, cmdline
}

// A command line whose read blocks (here a FIFO nobody writes, in the
// kernel a writer holding the process's mmap_lock) does not hold the pass:
// the process is taken without it, that one read stays out, not repeated;
// past the hold, the pass reads the executable's path instead; and the
// blocked read's reply is taken once it comes.
func TestCmdlineReadThatBlocks(t *testing.T) {
	root, fifo := fifoCmdlineFixture(t)
	if err := os.Symlink("/usr/bin/sleep", filepath.Join(root, "15042", "exe")); err != nil {
		t.Fatal(err)
	}
	const hold = 300 * time.Millisecond
	const wait = 500 * time.Millisecond
	s := New(Config{ProcRoot: root, CmdlineWait: wait, CmdlineHold: hold, KeepOpen: KeepNone})
	defer s.Close()
	sleeper := func(pass string) (policy.Process, time.Duration) {
		t.Helper()
		var snap policy.Snapshot
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- s.Processes(&snap) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", pass, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the pass is still blocked after 10 s", pass)
		}
		took := time.Since(start)
		for _, p := range snap.Processes {
			if p.PID == 15042 {
				return p, took
			}
		}
		t.Fatalf("%s: 15042 not in the snapshot", pass)
		return policy.Process{}, took
	}
	// The first pass waits for the read, at most CmdlineWait; the second
	// does not wait for it again.
	for _, pass := range []string{"first pass", "second pass"} {
		p, took := sleeper(pass)
		if !p.CmdlineUnread || p.Cmdline != "" || p.Exe != "" || p.Comm != "a b) (c" || p.RSS == 0 || p.MMGroup == 0 {
			t.Errorf("%s: 15042 = %+v, want it read, in an mm group, but for its command line", pass, p)
		}
		if got := s.LastPass(); got.CmdlineUnread != 1 || got.Exe != 0 || (pass == "second pass" && got.New != 0) {
			t.Errorf("%s: LastPass() = %+v, want 1 unread, none by its executable, and no new process in the second", pass, got)
		}
		if pass == "first pass" && took < wait {
			t.Errorf("first pass took %v, want it to wait CmdlineWait (%v) for the read", took, wait)
		}
		if pass == "second pass" && took >= wait {
			t.Errorf("second pass took %v: it waited again for the read the first one left out", took)
		}
	}
	out := 0
	for _, c := range s.cmdlines {
		if c.out {
			out++
			if c.key.pid != 15042 {
				t.Errorf("a read of %d is out, want only 15042's", c.key.pid)
			}
		}
	}
	if out != 1 {
		t.Fatalf("%d reads are out, want the one blocked read, not another", out)
	}
	// Past the hold, counted from the first pass: judged by its
	// executable meanwhile.
	pending := s.cache[15042].pendingSince
	deadline := time.Now().Add(hold + 10*time.Second)
	for {
		p, _ := sleeper("until the hold")
		if p.Exe != "" {
			if since := time.Since(pending); since < hold || p.Exe != "/usr/bin/sleep" || !p.CmdlineUnread || s.LastPass().Exe != 1 {
				t.Errorf("%v after the first pass: 15042 = %+v, stats %+v; want its executable /usr/bin/sleep, after the %v hold", since, p, s.LastPass(), hold)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no executable read long past the hold")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The writer comes: the blocked read ends, and the next pass files it.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("sleep\x0030\x00"))
	w.Close()
	deadline = time.Now().Add(10 * time.Second)
	for {
		p, _ := sleeper("after the write")
		if !p.CmdlineUnread {
			if p.Cmdline != "sleep 30" || p.Exe != "" {
				t.Errorf("cmdline %q, exe %q: want the blocked read's \"sleep 30\", and no executable", p.Cmdline, p.Exe)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command line is still unread 10 s after the write")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p, _ := sleeper("cached"); p.CmdlineUnread || p.Cmdline != "sleep 30" || s.LastPass().New != 0 || s.LastPass().CmdlineUnread != 0 {
		t.Errorf("cached: %+v, stats %+v", p, s.LastPass())
	}
}

// A reply read before an exec is not the new image's command line: a read
// for the new image (another layout) does not take it, and it is not filed
// in an entry that holds the new image.
func TestCmdlineReplyOfAnOldImageIsDropped(t *testing.T) {
	root, fifo := fifoCmdlineFixture(t)
	s := New(Config{ProcRoot: root, CmdlineWait: 20 * time.Millisecond, KeepOpen: KeepNone})
	defer s.Close()
	var snap policy.Snapshot
	if err := s.Processes(&snap); err != nil {
		t.Fatal(err)
	}
	if s.LastPass().CmdlineUnread != 1 || len(s.cmdlines) == 0 || !s.cmdlines[0].out {
		t.Fatalf("stats %+v, want 15042 unread, its read out", s.LastPass())
	}
	old := s.cmdlines[0].key
	// The blocked read returns the old image's arguments...
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("old\x00image\x00"))
	w.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.cmdlines[0].reply) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the blocked read did not return")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// ... after an exec: the new image's command line is a plain file.
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fifo, []byte("new\x00image\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	exec := old
	exec.layout++
	// The exec as the next pass would see it: the entry holds the new
	// image (whatever reader the read below finds free).
	e := s.cache[15042]
	e.layout = exec.layout
	s.cache[15042] = e
	raw, done, err := s.readCmdline(exec, 0)
	if !done || err != nil || string(raw) != "new\x00image\x00" {
		t.Fatalf("read for the new image: %q, done %v, err %v; want the new image's", raw, done, err)
	}
	// The old reply, still in, is not filed in the new image's entry.
	s.collectCmdlines()
	if e := s.cache[15042]; !e.cmdlinePending || e.cmdline != "" {
		t.Errorf("the new image's entry took the old reply: %+v", e)
	}
	if s.cmdlines[0].out {
		t.Error("the old image's reader was not freed")
	}
}

// A process judged by its executable whose read is no longer out (it ended
// in an error, or none was sent while every reader was out) is read again,
// without waiting, and its command line is taken once it comes.
func TestCmdlineJudgedByExecutableIsReadAgain(t *testing.T) {
	root, cmdline := fifoCmdlineFixture(t)
	s := New(Config{ProcRoot: root, CmdlineWait: 20 * time.Millisecond, CmdlineHold: time.Nanosecond, KeepOpen: KeepNone})
	defer s.Close()
	pass := func() policy.Process {
		t.Helper()
		var snap policy.Snapshot
		if err := s.Processes(&snap); err != nil {
			t.Fatal(err)
		}
		for _, p := range snap.Processes {
			if p.PID == 15042 {
				return p
			}
		}
		t.Fatal("15042 not in the snapshot")
		return policy.Process{}
	}
	pass() // its read blocks
	if p := pass(); !p.CmdlineUnread || p.Exe == "" {
		t.Fatalf("past the hold: %+v, want it judged by its executable", p)
	}
	// The blocked read ends and its reply is lost to the entry (as if it
	// had failed): no read of it is out any more.
	w, err := os.OpenFile(cmdline, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	for _, c := range s.cmdlines {
		if c.out && c.key.pid == 15042 {
			<-c.reply
			c.out = false
		}
	}
	if err := os.Remove(cmdline); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cmdline, []byte("sleep\x0030\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := pass()
		if !p.CmdlineUnread {
			if p.Cmdline != "sleep 30" || p.Exe != "" {
				t.Errorf("read again: cmdline %q, exe %q; want \"sleep 30\" and no executable", p.Cmdline, p.Exe)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("judged by its executable for good: its command line was never read again")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With CmdlinePriority, a reader reads at SCHED_FIFO for a pass that runs
// at SCHED_FIFO (the daemon's loop under pressure), and at normal priority
// for one that does not (Warm, at rest); between reads it waits at normal
// priority. The blocked read shows the priority it reads at.
func TestCmdlineReaderFollowsThePassPriority(t *testing.T) {
	root, fifo := fifoCmdlineFixture(t)
	s := New(Config{ProcRoot: root, CmdlineWait: 20 * time.Millisecond, CmdlinePriority: 1, KeepOpen: KeepNone})
	defer s.Close()
	policyOf := func(c *cmdlineReader) string {
		t.Helper()
		b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", c.tid.Load()))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		return f[38] // field 41, policy: 0 normal, 1 FIFO
	}
	// pass runs a pass, at SCHED_FIFO or not, and returns the reader
	// blocked on 15042's command line.
	pass := func(fifo bool) *cmdlineReader {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if fifo {
				if err := sys.SetFIFO(1); err != nil {
					done <- err
					return
				}
				defer sys.SetNormal()
			}
			var snap policy.Snapshot
			done <- s.Processes(&snap)
		}()
		if err := <-done; err != nil {
			t.Skipf("cannot run a pass at SCHED_FIFO here: %v", err)
		}
		for _, c := range s.cmdlines {
			if c.out && c.key.pid == 15042 && c.tid.Load() != 0 {
				return c
			}
		}
		t.Fatal("no reader blocked on 15042")
		return nil
	}
	unblock := func(c *cmdlineReader) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(c.reply) == 0 {
			if fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
			if time.Now().After(deadline) {
				t.Fatal("the blocked read did not end")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	c := pass(true)
	if got := policyOf(c); got != "1" {
		t.Errorf("reading for a real-time pass, the reader's policy is %s, want 1 (SCHED_FIFO)", got)
	}
	unblock(c)
	if got := policyOf(c); got != "0" {
		t.Errorf("between reads, the reader's policy is %s, want 0", got)
	}
	s.Close() // 15042 new again: its command line is read anew
	c = pass(false)
	if got := policyOf(c); got != "0" {
		t.Errorf("reading for a pass at normal priority, the reader's policy is %s, want 0", got)
	}
	unblock(c)
}
