package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/sys"
	"github.com/oomguard/oomguard/internal/testbed"
)

// TestHogAndBystander: a memory cgroup with oom_kill_disable=1 and a 256 MiB
// limit holds a bystander and a hog that grows past the limit. The scoped
// daemon kills the hog and only the hog; the memory comes back and the
// kernel's oom_kill count stays 0.
func TestHogAndBystander(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, OOMKillDisable: true})
	hogBin := testbed.CompileC(t, hogSource)

	byPID, byFD := startReady(t, g, "bystander", hogBin, "32", "0")

	d := startDaemon(t, "--scope", g.Memory.Path)

	hog := g.Command(hogBin, "600", "1000")
	hogOut, _ := hog.StdoutPipe()
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	// The hog never prints "ready": it cannot reach 600 MiB under 256 MiB.
	hogFD := waitForChildOf(t, g, hog.Process.Pid)
	hogPID := hogFD.PID()
	_ = hogOut
	if !waitDead(t, hogFD, 20*time.Second) {
		t.Fatalf("hog %d still alive; usage %d; log:\n%s", hogPID, usage(t, g), d.Log())
	}
	if !alive(t, byFD) {
		t.Fatalf("bystander %d was killed; log:\n%s", byPID, d.Log())
	}
	if !waitUsageBelow(t, g, 100<<20, 10*time.Second) {
		t.Fatalf("memory did not come back: usage %d", usage(t, g))
	}
	if n := g.OOMKills(); n != 0 {
		t.Fatalf("kernel oom_kill count is %d, want 0", n)
	}
	// The line was written before the kill, but the test reads the
	// daemon's stderr through a pipe: wait for it to come through.
	if !d.waitLog(5*time.Second, regexp.MustCompile(fmt.Sprintf(`(?m)^.*kill.*\b%d\b.*$`, hogPID))) {
		t.Errorf("the log does not name the victim %d:\n%s", hogPID, d.Log())
	}
}

// startReady starts hogSource's bin with args in g, waits for its "ready
// PID" line and returns the PID, pinned.
func startReady(t *testing.T, g *testbed.Group, what, bin string, args ...string) (int, *sys.PidFD) {
	t.Helper()
	cmd := g.Command(bin, args...)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := atoi(t, readLine(t, out, "ready ", 10*time.Second)[0])
	return pid, pin(t, pid, what)
}

// TestCloneVMSharersDieTogether: a hog that shares its mm with a sibling
// (clone(CLONE_VM) without CLONE_THREAD): both die, and process_mrelease is
// called only after both got SIGKILL.
func TestCloneVMSharersDieTogether(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, OOMKillDisable: true})
	bin := testbed.CompileC(t, cloneVMSource)
	// Reaped at once: by default a victim that nothing waits on is given
	// 100 ms to exit by itself, and these do.
	d := startDaemon(t, "--scope", g.Memory.Path, "--log-level", "debug", "--mrelease-after", "0s")
	cmd := g.Command(bin, "600", "1000")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := readLine(t, out, "pids ", 10*time.Second)
	parent, child := atoi(t, f[0]), atoi(t, f[1])
	// Pinned at once: they print their PIDs before they start growing
	// toward the limit, so both are alive here.
	for _, p := range []*sys.PidFD{pin(t, parent, "sharer"), pin(t, child, "sharer")} {
		if !waitDead(t, p, 20*time.Second) {
			t.Fatalf("sharer %d survived; log:\n%s", p.PID(), d.Log())
		}
	}
	// The kill's last line; everything before it has come through the pipe.
	if !d.waitLog(5*time.Second, regexp.MustCompile(`victim gone`)) {
		t.Fatalf("the kill did not end with \"victim gone\":\n%s", d.Log())
	}
	log := d.Log()
	lastKill := -1
	for _, pid := range []int{parent, child} {
		i := indexOfLine(log, fmt.Sprintf(`op=signal pid=%d .*signal=SIGKILL`, pid))
		if i < 0 {
			t.Fatalf("no SIGKILL logged for sharer %d:\n%s", pid, log)
		}
		lastKill = max(lastKill, i)
	}
	firstReap := indexOfLine(log, `op=mrelease`)
	if firstReap < 0 {
		t.Fatalf("no process_mrelease logged:\n%s", log)
	}
	if firstReap < lastKill {
		t.Fatalf("process_mrelease (line %d) came before the last SIGKILL (line %d):\n%s", firstReap, lastKill, log)
	}
}

// TestLeaderExitedHogIsTheVictim: the largest process of the scope is one
// whose main thread exited (pthread_exit) while another thread holds its
// memory, so its /proc/PID files read as a memoryless zombie's. The daemon
// reads it through that thread and kills it first, not the smaller hog
// that pushes the scope to its limit; the bystander lives.
func TestLeaderExitedHogIsTheVictim(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, OOMKillDisable: true})
	hogBin := testbed.CompileC(t, hogSource)
	_, byFD := startReady(t, g, "bystander", hogBin, "32", "0")
	big, _ := g.StartLeaderExited(150, false)
	bigFD := pin(t, big, "process whose leader exited")

	d := startDaemon(t, "--scope", g.Memory.Path)
	pusher := g.Command(hogBin, "600", "1000")
	if err := pusher.Start(); err != nil {
		t.Fatal(err)
	}
	pusherFD := waitForChildOf(t, g, pusher.Process.Pid)
	if !waitDead(t, bigFD, 20*time.Second) {
		t.Fatalf("the 150 MiB process %d whose leader exited survived; log:\n%s", big, d.Log())
	}
	if !d.waitLog(5*time.Second, regexp.MustCompile(`msg=kill `)) {
		t.Fatalf("no kill logged:\n%s", d.Log())
	}
	log := d.Log()
	first := regexp.MustCompile(`msg=kill .*?victim=(\d+)`).FindStringSubmatch(log)
	if first == nil || first[1] != strconv.Itoa(big) {
		t.Fatalf("first victim %v, want %d (the pusher is %d); log:\n%s", first, big, pusherFD.PID(), log)
	}
	if !alive(t, byFD) {
		t.Fatalf("bystander was killed; log:\n%s", log)
	}
}

// TestVforkChildIsNeverTheVictim: a vfork child in the scope shares the mm
// of a parent outside the scope. It has the largest RSS in the scope, but
// killing it would free nothing: the daemon kills the hog beside it instead.
func TestVforkChildIsNeverTheVictim(t *testing.T) {
	outside := testbed.New(t, testbed.Options{MemoryLimit: 512 << 20})
	scope := testbed.New(t, testbed.Options{MemoryLimit: 128 << 20, OOMKillDisable: true})
	vb := testbed.CompileC(t, vforkSource)
	var procs []string
	for _, c := range scope.Cgroups() {
		procs = append(procs, c.File("cgroup.procs"))
	}
	vf := outside.Command(vb, append([]string{"200"}, procs...)...)
	stderr, _ := vf.StderrPipe()
	if err := vf.Start(); err != nil {
		t.Fatal(err)
	}
	f := readLine(t, stderr, "pids ", 10*time.Second)
	parent, child := atoi(t, f[0]), atoi(t, f[1])
	parentFD, childFD := pin(t, parent, "vfork parent"), pin(t, child, "vfork child")

	d := startDaemon(t, "--scope", scope.Memory.Path)
	hog := scope.Command(testbed.CompileC(t, hogSource), "400", "2000")
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	hogFD := waitForChildOf(t, scope, hog.Process.Pid)
	if !waitDead(t, hogFD, 20*time.Second) {
		t.Fatalf("hog %d survived; log:\n%s", hogFD.PID(), d.Log())
	}
	if !alive(t, childFD) || !alive(t, parentFD) {
		t.Fatalf("vfork child %d (alive %v) or its parent %d (alive %v) was killed; log:\n%s",
			child, alive(t, childFD), parent, alive(t, parentFD), d.Log())
	}
}

// TestFrozenVictimIsSkipped: a frozen victim (v1 freezer) holding memory
// the reaper cannot release is retried, skipped after the deadline, and the
// next candidate is killed. After thaw the first one dies.
func TestFrozenVictimIsSkipped(t *testing.T) {
	scope := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, OOMKillDisable: true})
	frozenGroup := testbed.New(t, testbed.Options{MemoryLimit: 512 << 20})
	hogBin := testbed.CompileC(t, hogSource)

	// The big one lives in the scope's memory cgroup but in a freezer of its
	// own, so it can be frozen alone. Its memory is shared anonymous memory,
	// which only its exit frees.
	big := frozenGroup.Command(hogBin, "190", "0", "shared", "wait")
	bigIn, _ := big.StdinPipe()
	bigOut, _ := big.StdoutPipe()
	if err := big.Start(); err != nil {
		t.Fatal(err)
	}
	bigFD := waitForChildOf(t, frozenGroup, big.Process.Pid)
	bigPID := bigFD.PID()
	if err := scope.Memory.AddProc(bigPID); err != nil {
		t.Fatal(err)
	}
	bigIn.Write([]byte{'\n'})
	readLine(t, bigOut, "ready ", 10*time.Second)
	if err := frozenGroup.Freezer.Freeze(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	d := startDaemon(t, "--scope", scope.Memory.Path, "--kill-deadline", "500ms")
	small := scope.Command(hogBin, "120", "2000")
	if err := small.Start(); err != nil {
		t.Fatal(err)
	}
	smallFD := waitForChildOf(t, scope, small.Process.Pid)
	smallPID := smallFD.PID()
	if !waitDead(t, smallFD, 30*time.Second) {
		t.Fatalf("next candidate %d was not killed after the frozen victim was skipped; log:\n%s", smallPID, d.Log())
	}
	if !d.waitLog(5*time.Second, regexp.MustCompile(fmt.Sprintf(`skip.*\b%d\b`, bigPID))) {
		t.Errorf("the log does not say the frozen victim %d was skipped:\n%s", bigPID, d.Log())
	}
	if !alive(t, bigFD) {
		t.Fatalf("frozen victim %d died while frozen", bigPID)
	}
	if err := frozenGroup.Freezer.Thaw(); err != nil {
		t.Fatal(err)
	}
	if !waitDead(t, bigFD, 10*time.Second) {
		t.Fatalf("frozen victim %d did not die after thaw", bigPID)
	}
}

// TestDryRunKillsNothing: with --dry-run the daemon names the victim it
// would have chosen and kills nothing.
func TestDryRunKillsNothing(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, OOMKillDisable: true})
	hogBin := testbed.CompileC(t, hogSource)
	d := startDaemon(t, "--scope", g.Memory.Path, "--dry-run")
	hog := g.Command(hogBin, "250", "0")
	out, _ := hog.StdoutPipe()
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	hogPID := atoi(t, readLine(t, out, "ready ", 20*time.Second)[0])
	hogFD := pin(t, hogPID, "hog")
	re := regexp.MustCompile(fmt.Sprintf(`dry-run.*\b%d\b`, hogPID))
	if !d.waitLog(10*time.Second, re) {
		t.Fatalf("dry-run did not name the victim %d:\n%s", hogPID, d.Log())
	}
	time.Sleep(500 * time.Millisecond)
	if !alive(t, hogFD) {
		t.Fatalf("dry-run killed %d", hogPID)
	}
}

// TestPsRanksTheScope: `oomguard ps --scope DIR --json` lists the scope's
// processes in kill order.
func TestPsRanksTheScope(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20})
	hogBin := testbed.CompileC(t, hogSource)
	var pids []int
	for _, mb := range []string{"20", "90"} {
		c := g.Command(hogBin, mb, "0")
		out, _ := c.StdoutPipe()
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, atoi(t, readLine(t, out, "ready ", 10*time.Second)[0]))
	}
	stdout, stderr, code := oomguard(t, "ps", "--scope", g.Memory.Path, "--json")
	if code != 0 {
		t.Fatalf("ps exit %d: %s", code, stderr)
	}
	var got struct {
		Candidates []struct {
			PIDs      []int   `json:"pids"`
			Badness   float64 `json:"badness"`
			Protected bool    `json:"protected"`
			Reason    string  `json:"reason"`
		} `json:"candidates"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("ps --json: %v\n%s", err, stdout)
	}
	if len(got.Candidates) != 2 {
		t.Fatalf("want 2 candidates (the two hogs), got %s", stdout)
	}
	if got.Candidates[0].PIDs[0] != pids[1] || got.Candidates[1].PIDs[0] != pids[0] {
		t.Fatalf("want the 90 MiB hog %d first, then %d; got %s", pids[1], pids[0], stdout)
	}
	if !(got.Candidates[0].Badness > got.Candidates[1].Badness) || got.Candidates[0].Reason == "" {
		t.Fatalf("badness not decreasing or reason empty: %s", stdout)
	}
}

// waitForChildOf returns the workload the testbed reaper started, pinned
// by a pidfd (see pin) while it is alive; the pidfd is closed when the test
// ends. Its PID is the pidfd's PID().
func waitForChildOf(t *testing.T, g *testbed.Group, reaper int) *sys.PidFD {
	t.Helper()
	var pinned *sys.PidFD
	ok := g.WaitProcs(10*time.Second, func(pids []int) bool {
		for _, p := range pids {
			if ppidOf(p) != reaper {
				continue
			}
			// Pin, then look again: if the pinned process has still not
			// exited after its parent was read, that parent was its own,
			// not that of a process reusing its PID.
			fd, err := sys.PidfdOpen(p)
			if err != nil {
				continue
			}
			if ppidOf(p) == reaper {
				if done, err := fd.Exited(); err == nil && !done {
					pinned = fd
					return true
				}
			}
			fd.Close()
		}
		return false
	})
	if !ok {
		t.Fatalf("no live child of %d appeared in %s", reaper, g.Freezer.Path)
	}
	t.Cleanup(func() { pinned.Close() })
	return pinned
}

func ppidOf(pid int) int {
	b, err := readFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	i := strings.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(b[i+1:])
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func usage(t *testing.T, g *testbed.Group) uint64 {
	v, err := g.Memory.ReadUint("memory.usage_in_bytes")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func waitUsageBelow(t *testing.T, g *testbed.Group, limit uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if usage(t, g) < limit {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func indexOfLine(log, pattern string) int {
	re := regexp.MustCompile(pattern)
	for i, l := range strings.Split(log, "\n") {
		if re.MatchString(l) {
			return i
		}
	}
	return -1
}

// childCgroup creates a cgroup below parent for the test and removes it at
// the end, moving whatever is still in it back to parent first.
func childCgroup(t *testing.T, parent cgroupfs.Cgroup, name string) cgroupfs.Cgroup {
	t.Helper()
	dir := filepath.Join(parent.Path, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cg, err := cgroupfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 200; i++ {
			pids, _ := cg.Procs()
			for _, p := range pids {
				parent.AddProc(p)
			}
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("remove %s: still busy", dir)
	})
	return cg
}

// TestKillCgroupTakesTheVictimsCgroup: with --kill-cgroup, the hog's death
// takes the other process of its memory cgroup with it, and a bystander in
// a sibling cgroup of the same scope lives.
func TestKillCgroupTakesTheVictimsCgroup(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, OOMKillDisable: true})
	hogBin := testbed.CompileC(t, hogSource)
	victimCg := childCgroup(t, g.Memory, "victim")
	otherCg := childCgroup(t, g.Memory, "other")

	start := func(cg cgroupfs.Cgroup, mib string) (p *sys.PidFD, release func()) {
		cmd := g.Command(hogBin, mib, "1000", "wait")
		in, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p = waitForChildOf(t, g, cmd.Process.Pid)
		if err := cg.AddProc(p.PID()); err != nil {
			t.Fatal(err)
		}
		return p, func() { in.Write([]byte{1}) }
	}
	by, goBy := start(otherCg, "32")
	goBy()
	comp, goComp := start(victimCg, "8")
	goComp()
	hog, goHog := start(victimCg, "600")

	d := startDaemon(t, "--scope", g.Memory.Path, "--kill-cgroup")
	goHog()
	if !waitDead(t, hog, 20*time.Second) {
		t.Fatalf("hog %d still alive; log:\n%s", hog.PID(), d.Log())
	}
	if !waitDead(t, comp, 10*time.Second) {
		t.Fatalf("the hog's cgroup companion %d still alive; log:\n%s", comp.PID(), d.Log())
	}
	if !alive(t, by) {
		t.Fatalf("bystander %d in the sibling cgroup was killed; log:\n%s", by.PID(), d.Log())
	}
	if !d.waitLog(5*time.Second, regexpOf(`kill-cgroup: killed the victim's cgroup`)) {
		t.Errorf("the log does not report the cgroup kill:\n%s", d.Log())
	}
}

// startIn starts cmd (a command of g) and moves its workload, the child of
// g's subreaper, into cg; it returns the workload pinned.
func startIn(t *testing.T, g *testbed.Group, cg cgroupfs.Cgroup, cmd *exec.Cmd) *sys.PidFD {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := waitForChildOf(t, g, cmd.Process.Pid)
	if err := cg.AddProc(p.PID()); err != nil {
		t.Fatal(err)
	}
	return p
}

// startHogIn starts hogBin in cg, waiting to allocate mib MiB at 1 ms per
// MiB until the returned function is called.
func startHogIn(t *testing.T, g *testbed.Group, cg cgroupfs.Cgroup, hogBin, mib string) (*sys.PidFD, func()) {
	t.Helper()
	cmd := g.Command(hogBin, mib, "1000", "wait")
	in, _ := cmd.StdinPipe()
	return startIn(t, g, cg, cmd), func() { in.Write([]byte{1}) }
}

// TestKillCgroupWithTermGrace: with --kill-cgroup and --term-grace, the
// hog's whole cgroup gets SIGTERM first (a companion that traps it says
// so), and what ignores SIGTERM is killed once the grace is over.
func TestKillCgroupWithTermGrace(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, OOMKillDisable: true})
	hogBin := testbed.CompileC(t, hogSource)
	victimCg := childCgroup(t, g.Memory, "victim")
	dir := t.TempDir()
	termed := filepath.Join(dir, "termed")

	join := func(cmd *exec.Cmd) *sys.PidFD { t.Helper(); return startIn(t, g, victimCg, cmd) }
	// The trap runs as soon as SIGTERM comes (a shell runs traps when the
	// wait builtin returns, but only after a foreground command ends): the
	// loop is no longer blocked for the grace, and a SIGKILL may follow
	// within milliseconds when the level reaches kill.
	polite := join(g.Command("sh", "-c", "trap 'echo term > "+termed+"; exit 0' TERM; while :; do sleep 1 & wait $!; done"))
	stubborn := join(g.Command("sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"))
	hog, goHog := startHogIn(t, g, victimCg, hogBin, "600")

	d := startDaemon(t, "--scope", g.Memory.Path, "--kill-cgroup", "--term-grace", "500ms")
	goHog()
	for _, p := range []struct {
		name string
		fd   *sys.PidFD
	}{{"hog", hog}, {"SIGTERM-trapping companion", polite}, {"SIGTERM-ignoring companion", stubborn}} {
		if !waitDead(t, p.fd, 20*time.Second) {
			t.Fatalf("%s %d still alive; log:\n%s", p.name, p.fd.PID(), d.Log())
		}
	}
	if b, err := os.ReadFile(termed); err != nil || strings.TrimSpace(string(b)) != "term" {
		t.Fatalf("the trapping companion never saw SIGTERM (%q, %v); log:\n%s", b, err, d.Log())
	}
}

// TestKillCgroupGraceSparesANewcomer: with --kill-cgroup and
// --term-grace, a workload whose every process exits on SIGTERM has ended
// by itself; a process that joins its cgroup during the grace (a service
// restarted by its manager, say) got no SIGTERM and is not killed when the
// grace ends.
func TestKillCgroupGraceSparesANewcomer(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, OOMKillDisable: true})
	hogBin := testbed.CompileC(t, hogSource)
	victimCg := childCgroup(t, g.Memory, "victim")
	join := func(cmd *exec.Cmd) *sys.PidFD { t.Helper(); return startIn(t, g, victimCg, cmd) }
	polite := join(g.Command("sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"))
	hog, goHog := startHogIn(t, g, victimCg, hogBin, "600")
	d := startDaemon(t, "--scope", g.Memory.Path, "--kill-cgroup", "--term-grace", "2s")
	goHog()
	if !waitDead(t, hog, 20*time.Second) || !waitDead(t, polite, 5*time.Second) {
		t.Fatalf("the hog or its companion still alive; log:\n%s", d.Log())
	}
	if !d.waitLog(time.Second, regexpOf(`signal=SIGTERM`)) {
		t.Skipf("the level went straight to kill (no SIGTERM): the grace was not put to the test; log:\n%s", d.Log())
	}
	newcomer := join(g.Command("sleep", "60"))
	time.Sleep(3 * time.Second) // past the grace
	if !alive(t, newcomer) {
		t.Fatalf("the newcomer %d, which joined the cgroup during the grace, was killed; log:\n%s", newcomer.PID(), d.Log())
	}
	if !d.waitLog(time.Second, regexpOf(`every process the SIGTERM reached has exited; the cgroup is not killed`)) {
		t.Errorf("the log does not say why the cgroup was spared:\n%s", d.Log())
	}
}

// TestTermGraceDoesNotBlindTheLoop: with --term-grace, the victim gets
// SIGTERM and the loop goes on deciding during the grace: a victim that
// ignores SIGTERM is SIGKILLed as soon as the level reaches kill, long
// before a grace of 30 s is over. (The actuator used to wait the grace
// out, blind, and SIGKILL after it whatever happened.)
func TestTermGraceDoesNotBlindTheLoop(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, OOMKillDisable: true})
	hogBin := testbed.CompileC(t, hogSource)
	start := func(argv ...string) (*sys.PidFD, func()) {
		cmd := g.Command(argv[0], argv[1:]...)
		in, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return waitForChildOf(t, g, cmd.Process.Pid), func() { in.Write([]byte{1}) }
	}
	// The term level is under 10 % of the limit available, the kill level
	// under 5 %: 236 MiB of 256 sits between them, at 50 MiB/s (the
	// daemon looks 100 ms ahead at the rate memory falls).
	stubborn, goStubborn := start("sh", "-c", "trap '' TERM; exec "+hogBin+" 236 20000 wait")
	d := startDaemon(t, "--scope", g.Memory.Path, "--term-grace", "30s")
	goStubborn()
	if !d.waitLog(20*time.Second, regexpOf(`signal=SIGTERM`)) {
		t.Fatalf("no SIGTERM at the term level; log:\n%s", d.Log())
	}
	time.Sleep(300 * time.Millisecond)
	if !alive(t, stubborn) {
		t.Fatalf("the SIGTERM-ignoring hog %d died at the term level; log:\n%s", stubborn.PID(), d.Log())
	}
	_, goMore := start(hogBin, "16", "1000", "wait")
	began := time.Now()
	goMore()
	if !waitDead(t, stubborn, 10*time.Second) {
		t.Fatalf("the SIGTERM-ignoring hog %d still alive %v after the level reached kill, inside its grace; log:\n%s",
			stubborn.PID(), time.Since(began), d.Log())
	}
	t.Logf("SIGKILLed %v after the second hog started, inside a grace of 30 s", time.Since(began))
	if !d.waitLog(5*time.Second, regexpOf(`escalating to SIGKILL for PID [0-9]+ \(level reached kill\)`)) {
		t.Errorf("the log does not say why SIGKILL came early:\n%s", d.Log())
	}
}

// TestDaemonThreadsRunRealTime: the fork-bomb guard's event thread runs at
// SCHED_FIFO always, so that a bomb cannot starve it; the memory loop runs
// at SCHED_FIFO while a trigger level is reached (or tasks stall on
// memory), so that a thrash cannot delay the kill (in a guest thrashing on
// zram it took 150 to 320 ms from trigger to kill at nice -10, 40 to 45 ms
// at SCHED_FIFO), and at normal priority otherwise, so that its polls and
// cache warming take no CPU whole from others.
func TestDaemonThreadsRunRealTime(t *testing.T) {
	if err := canRunRealTime(); err != nil {
		t.Skipf("this machine grants no SCHED_FIFO, so the daemon only warns: %v", err)
	}
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, OOMKillDisable: true})
	d := startDaemon(t, "--scope", g.Memory.Path, "--dry-run")
	if !d.waitLog(10*time.Second, regexp.MustCompile(`forkguard: watching`)) {
		t.Fatalf("forkguard did not start; log:\n%s", d.Log())
	}
	pid := d.cmd.Process.Pid
	fifoThreads := func() []int {
		var fifo []int
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			tid := atoi(t, task.Name())
			if a, err := unix.SchedGetAttr(tid, 0); err == nil && a.Policy == unix.SCHED_FIFO {
				fifo = append(fifo, tid)
			}
		}
		return fifo
	}
	waitFIFO := func(n int, timeout time.Duration) []int {
		var fifo []int
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if fifo = fifoThreads(); len(fifo) == n {
				break
			}
		}
		return fifo
	}
	// Idle: the event thread only. (Memory stalls elsewhere on the machine
	// raise the loop for 2 s at a time; the wait outlasts them.)
	idle := waitFIFO(1, 15*time.Second)
	if len(idle) != 1 {
		t.Fatalf("idle threads at SCHED_FIFO: %v, want 1 (the event thread); log:\n%s", idle, d.Log())
	}
	// A hog at the scope's limit keeps the trigger level reached (the
	// daemon only names its victim, in dry-run): the loop joins it.
	hog := g.Command(testbed.CompileC(t, hogSource), "60", "0")
	out, _ := hog.StdoutPipe()
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	readLine(t, out, "ready ", 20*time.Second)
	if !d.waitLog(10*time.Second, regexp.MustCompile(`dry-run`)) {
		t.Fatalf("the daemon saw no trigger level with the scope at its limit; log:\n%s", d.Log())
	}
	busy := waitFIFO(2, 10*time.Second)
	if len(busy) != 2 || !slices.Contains(busy, idle[0]) {
		t.Fatalf("threads at SCHED_FIFO at a trigger level: %v, want the event thread %d and the memory loop; log:\n%s",
			busy, idle[0], d.Log())
	}
	if strings.Contains(d.Log(), "SCHED_FIFO") || strings.Contains(d.Log(), "scheduling policy") {
		t.Errorf("the daemon warned about its scheduling:\n%s", d.Log())
	}
}

// canRunRealTime tries SCHED_FIFO on a thread of the test and undoes it.
func canRunRealTime() error {
	errc := make(chan error)
	go func() {
		// The thread ends with the goroutine, whatever its policy.
		runtime.LockOSThread()
		err := sys.SetFIFO(1)
		if err == nil {
			err = sys.SetNormal()
		}
		errc <- err
	}()
	return <-errc
}

// TestDaemonRehearsesAKill: at start, before its loop, the daemon starts
// its own hidden "rehearsal-victim" child and kills it through the kill
// path a victim takes (pidfd, SIGKILL, the wait, process_mrelease), so that
// the first real kill does not run that code for the first time. The child
// is dead and reaped afterwards. A dry-run daemon, which kills nothing,
// does not rehearse.
func TestDaemonRehearsesAKill(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20})
	d := startDaemon(t, "--scope", g.Memory.Path, "--log-level", "debug")
	re := regexp.MustCompile(`msg="rehearsed a kill" .*pid=(\d+) killed=\[(\d+)\] released=\[[0-9 ]*\] still_alive=\[\] err=<nil>`)
	if !d.waitLog(15*time.Second, re) {
		t.Fatalf("no successful kill rehearsal logged; log:\n%s", d.Log())
	}
	m := re.FindStringSubmatch(d.Log())
	if m[1] != m[2] {
		t.Fatalf("rehearsal killed %s, not its child %s", m[2], m[1])
	}
	t.Log(re.FindString(d.Log()))
	// Reaped by the daemon: no process of that PID is its child any more.
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", d.cmd.Process.Pid, d.cmd.Process.Pid))
	if slices.Contains(strings.Fields(string(children)), m[1]) {
		t.Errorf("the rehearsal's child %s is still the daemon's child (children %q)", m[1], children)
	}
	if strings.Contains(d.Log(), "kill step") {
		t.Errorf("the rehearsal logged its kill steps as a real kill's:\n%s", d.Log())
	}

	// With a grace, a SIGTERM decision's path (action.Killer.Term) is
	// rehearsed too, on the same child.
	graced := startDaemon(t, "--scope", g.Memory.Path, "--log-level", "debug", "--term-grace", "1s")
	reTerm := regexp.MustCompile(`msg="rehearsed a kill" .*pid=(\d+) killed=\[(\d+)\] .* termed=\[(\d+)\]`)
	if !graced.waitLog(15*time.Second, reTerm) {
		t.Fatalf("no rehearsal of SIGTERM logged with --term-grace; log:\n%s", graced.Log())
	}
	if m := reTerm.FindStringSubmatch(graced.Log()); m[1] != m[2] || m[1] != m[3] {
		t.Fatalf("the rehearsal sent SIGKILL to %s and SIGTERM to %s, not to its child %s", m[2], m[3], m[1])
	}

	dry := startDaemon(t, "--scope", g.Memory.Path, "--log-level", "debug", "--dry-run")
	if !dry.waitLog(15*time.Second, regexp.MustCompile(`msg="rehearsed a decision"`)) {
		t.Fatalf("the dry-run daemon logged no rehearsed decision; log:\n%s", dry.Log())
	}
	time.Sleep(200 * time.Millisecond)
	if strings.Contains(dry.Log(), "rehearsed a kill") {
		t.Errorf("a dry-run daemon rehearsed a kill:\n%s", dry.Log())
	}
}
