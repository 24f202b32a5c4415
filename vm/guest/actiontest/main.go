// Command actiontest drives oomguard's killer (internal/action) through
// faults that need root and a kernel of the test bed's own: a PID reused
// between choosing and killing, a frozen victim, a victim stuck in D state,
// and process_mrelease on a large victim. Each case prints PASS or FAIL
// lines; the exit status is the number of failed cases.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/oomguard/oomguard/internal/action"
)

func main() {
	cases := map[string]func() error{
		"pid-reuse": pidReuse,
		"frozen":    frozen,
		"dstate":    dstate,
		"mrelease":  mrelease,
	}
	failed := 0
	for _, name := range os.Args[1:] {
		f, ok := cases[name]
		if !ok {
			fmt.Printf("FAIL %s: unknown case\n", name)
			failed++
			continue
		}
		start := time.Now()
		if err := f(); err != nil {
			fmt.Printf("FAIL %s: %v\n", name, err)
			failed++
			continue
		}
		fmt.Printf("PASS %s (%v)\n", name, time.Since(start).Round(time.Millisecond))
	}
	os.Exit(failed)
}

func start(name string, args ...string) (*exec.Cmd, error) {
	c := exec.Command(name, args...)
	c.Stderr = os.Stderr
	return c, c.Start()
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// pidReuse: the victim is chosen (PID and start time), then dies and its PID
// is handed to a new process (forced with ns_last_pid). Killing the chosen
// victim must not touch the newcomer, and must report the PID as
// mismatched.
func pidReuse() error {
	a, err := start("/bin/sleep", "1000")
	if err != nil {
		return err
	}
	pid := a.Process.Pid
	time.Sleep(100 * time.Millisecond)
	m, err := action.MemberOf("", pid)
	if err != nil {
		return err
	}
	a.Process.Kill()
	a.Wait()
	time.Sleep(50 * time.Millisecond) // another clock tick: start times differ
	var b *exec.Cmd
	for try := 0; try < 20; try++ {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			return fmt.Errorf("force PID reuse through ns_last_pid: %w", err)
		}
		c, err := start("/bin/sleep", "1000")
		if err != nil {
			return err
		}
		if c.Process.Pid == pid {
			b = c
			break
		}
		c.Process.Kill()
		c.Wait()
	}
	if b == nil {
		return fmt.Errorf("could not get PID %d reused", pid)
	}
	defer func() { b.Process.Kill(); b.Wait() }()
	k := action.Killer{Deadline: time.Second}
	res := k.Kill(context.Background(), action.Victim{Members: []action.Member{m}, Reason: "pid-reuse test"})
	fmt.Printf("pid-reuse: victim %d (start %d) reused by a newcomer; result killed=%v gone=%v mismatched=%v signalled=%v err=%v\n",
		pid, m.StartTime, res.Killed, res.Gone, res.Mismatched, res.Signalled, res.Err)
	if !alive(pid) {
		return fmt.Errorf("the newcomer holding the reused PID %d was killed", pid)
	}
	if len(res.Signalled) != 0 {
		return fmt.Errorf("signalled %v although the PID was reused", res.Signalled)
	}
	if len(res.Mismatched) != 1 || res.Mismatched[0] != pid {
		return fmt.Errorf("mismatched = %v, want [%d]", res.Mismatched, pid)
	}
	return nil
}

// inCgroup starts argv inside the v2 cgroup dir.
func inCgroup(dir string, argv ...string) (*exec.Cmd, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	c := exec.Command(argv[0], argv[1:]...)
	c.Stderr = os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	return c, c.Start()
}

func memCurrent(dir string) int64 {
	b, _ := os.ReadFile(dir + "/memory.current")
	v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v
}

// frozen: a victim in a frozen v2 cgroup still dies of SIGKILL, and the
// killer reports it killed within its deadline.
func frozen() error {
	dir := "/sys/fs/cgroup/actiontest-frozen"
	c, err := inCgroup(dir, "/test/bin/vmtool", "hog", "-mb", "64")
	if err != nil {
		return err
	}
	defer func() { c.Process.Kill(); c.Wait(); syscall.Rmdir(dir) }()
	time.Sleep(2 * time.Second)
	if err := os.WriteFile(dir+"/cgroup.freeze", []byte("1"), 0); err != nil {
		return err
	}
	for i := 0; ; i++ {
		b, _ := os.ReadFile(dir + "/cgroup.events")
		if strings.Contains(string(b), "frozen 1") {
			break
		}
		if i > 100 {
			return fmt.Errorf("victim not frozen")
		}
		time.Sleep(50 * time.Millisecond)
	}
	m, err := action.MemberOf("", c.Process.Pid)
	if err != nil {
		return err
	}
	before := memCurrent(dir)
	k := action.Killer{Deadline: 5 * time.Second, Mrelease: true}
	t0 := time.Now()
	res := k.Kill(context.Background(), action.Victim{Members: []action.Member{m}, Reason: "frozen test"})
	fmt.Printf("frozen: killed=%v released=%v stillalive=%v in %v; memory.current %d -> %d\n",
		res.Killed, res.Released, res.StillAlive, time.Since(t0).Round(time.Millisecond), before, memCurrent(dir))
	if len(res.Killed) != 1 {
		return fmt.Errorf("the frozen victim was not reported killed (still alive: %v, err %v)", res.StillAlive, res.Err)
	}
	return nil
}

// dstate: a victim stuck in uninterruptible sleep (O_DIRECT writes to a
// scratch disk throttled to a trickle) cannot die before its I/O ends. The
// killer must return at its deadline, report it still alive, not fail
// otherwise, and a second call must see it die once the I/O completes.
func dstate() error {
	dev := os.Getenv("SCRATCH_DEV")
	if dev == "" {
		return fmt.Errorf("no scratch disk (SCRATCH_DEV unset)")
	}
	c, err := start("/test/bin/vmtool", "dwrite", "-dev", dev, "-kb", "4096")
	if err != nil {
		return err
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	pid := c.Process.Pid
	// The first request passes the throttle at once; the next ones wait
	// about 8 s each.
	time.Sleep(1500 * time.Millisecond)
	var state string
	for i := 0; i < 100; i++ {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		s := string(b)
		if j := strings.LastIndexByte(s, ')'); j > 0 && j+2 < len(s) {
			state = s[j+2 : j+3]
		}
		if state == "D" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if state != "D" {
		return fmt.Errorf("could not get the victim into D state (state %q)", state)
	}
	m, err := action.MemberOf("", pid)
	if err != nil {
		return err
	}
	k := action.Killer{Deadline: time.Second, Mrelease: true}
	t0 := time.Now()
	res := k.Kill(context.Background(), action.Victim{Members: []action.Member{m}, Reason: "D-state test"})
	took := time.Since(t0)
	fmt.Printf("dstate: first kill took %v: killed=%v signalled=%v stillalive=%v err=%v\n", took.Round(time.Millisecond), res.Killed, res.Signalled, res.StillAlive, res.Err)
	if took > 3*time.Second {
		return fmt.Errorf("Kill blocked %v on a D-state victim (deadline 1 s)", took)
	}
	if len(res.Signalled) != 1 {
		return fmt.Errorf("the D-state victim was not signalled")
	}
	if len(res.StillAlive) != 1 {
		return fmt.Errorf("still alive = %v, want [%d]", res.StillAlive, pid)
	}
	k.Deadline = 30 * time.Second
	res = k.Kill(context.Background(), action.Victim{Members: []action.Member{m}, Reason: "D-state retry"})
	fmt.Printf("dstate: retry: killed=%v gone=%v stillalive=%v\n", res.Killed, res.Gone, res.StillAlive)
	if len(res.Killed)+len(res.Gone) != 1 {
		return fmt.Errorf("the victim did not die after its I/O ended")
	}
	return nil
}

// mrelease: killing a 200 MiB victim with process_mrelease gives the memory
// back, and the killer reports the release.
func mrelease() error {
	dir := "/sys/fs/cgroup/actiontest-mrelease"
	c, err := inCgroup(dir, "/test/bin/vmtool", "hog", "-mb", "200")
	if err != nil {
		return err
	}
	defer func() { c.Process.Kill(); c.Wait(); syscall.Rmdir(dir) }()
	for i := 0; memCurrent(dir) < 190<<20; i++ {
		if i > 400 {
			return fmt.Errorf("victim never reached 190 MiB")
		}
		time.Sleep(50 * time.Millisecond)
	}
	m, err := action.MemberOf("", c.Process.Pid)
	if err != nil {
		return err
	}
	k := action.Killer{Deadline: 5 * time.Second, Mrelease: true}
	t0 := time.Now()
	res := k.Kill(context.Background(), action.Victim{Members: []action.Member{m}, Reason: "mrelease test"})
	fmt.Printf("mrelease: killed=%v released=%v in %v; memory.current now %d\n", res.Killed, res.Released, time.Since(t0).Round(time.Millisecond), memCurrent(dir))
	if len(res.Killed) != 1 {
		return fmt.Errorf("victim not killed: %+v", res)
	}
	if len(res.Released) != 1 {
		// A victim that exited before process_mrelease came has nothing
		// left to release, and is not reported released.
		exited := false
		for _, s := range res.Steps {
			exited = exited || (s.Op == action.OpMrelease && s.Err == nil && s.PID == m.PID)
		}
		if !exited {
			return fmt.Errorf("process_mrelease did not succeed on the victim: %+v", res.Steps)
		}
		fmt.Printf("mrelease: the victim exited before process_mrelease; nothing to release\n")
	}
	if cur := memCurrent(dir); cur > 32<<20 {
		return fmt.Errorf("memory not back: memory.current %d", cur)
	}
	return nil
}
