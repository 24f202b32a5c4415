package procconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("proc connector needs CAP_NET_ADMIN")
	}
}

func TestForkExecExitOfChild(t *testing.T) {
	requireRoot(t)
	c, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := exec.Command("/bin/sh", "-c", "/bin/true & wait")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	sh := int32(cmd.Process.Pid)
	var grandchild int32
	var sawFork, sawExec, sawExit, sawGrandchild bool
	evs := make([]Event, 64)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !(sawFork && sawExec && sawExit && sawGrandchild) {
		n, err := c.Read(evs, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs[:n] {
			switch {
			case e.What == WhatFork && e.TGID == sh && !e.IsThread():
				sawFork = true
			case e.What == WhatExec && e.TGID == sh:
				sawExec = true
			case e.What == WhatFork && e.ParentTGID == sh && !e.IsThread():
				grandchild = e.TGID
				sawGrandchild = true
			case e.What == WhatExit && e.TGID == sh && e.PID == sh:
				sawExit = true
			}
			if e.Time <= 0 {
				t.Errorf("event %+v has no timestamp", e)
			}
		}
	}
	if !sawFork || !sawExec || !sawExit || !sawGrandchild {
		t.Fatalf("fork=%v exec=%v exit=%v grandchild=%v (%d) for sh %d; stats %+v",
			sawFork, sawExec, sawExit, sawGrandchild, grandchild, sh, c.Stats())
	}
}

func TestTinyBufferReportsLoss(t *testing.T) {
	requireRoot(t)
	c, err := Open(Options{RcvBuf: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 300 processes while nobody reads: far more than ~2 KiB holds.
	if err := exec.Command("/bin/sh", "-c", "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done").Run(); err != nil {
		t.Fatal(err)
	}
	evs := make([]Event, 64)
	var lost bool
	for i := 0; i < 1000; i++ {
		n, err := c.Read(evs, 50*time.Millisecond)
		if errors.Is(err, ErrLost) {
			lost = true
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if !lost || c.Stats().Overruns == 0 {
		t.Fatalf("no loss reported with a tiny buffer: %+v", c.Stats())
	}
}

func fakeEvent(b []byte, what What, cpu, seq uint32, pid int32) []byte {
	ne := binary.NativeEndian
	msg := make([]byte, unix.SizeofNlMsghdr+sizeofCnMsg+16+24)
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)
	cn := msg[unix.SizeofNlMsghdr:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint32(cn[8:], seq)
	ne.PutUint16(cn[16:], 16+24)
	d := cn[sizeofCnMsg:]
	ne.PutUint32(d[0:], uint32(what))
	ne.PutUint32(d[4:], cpu)
	ne.PutUint64(d[8:], 12345)
	ne.PutUint32(d[16:], 1)
	ne.PutUint32(d[20:], 1)
	ne.PutUint32(d[24:], uint32(pid))
	ne.PutUint32(d[28:], uint32(pid))
	return append(b, msg...)
}

func TestDecodeAndSequenceGaps(t *testing.T) {
	c := &Conn{next: make([]uint32, 4)}
	var b []byte
	b = fakeEvent(b, WhatFork, 0, 10, 100)
	b = fakeEvent(b, WhatFork, 1, 5, 101)
	b = fakeEvent(b, WhatFork, 0, 11, 102)
	b = fakeEvent(b, WhatFork, 0, 14, 103) // 12, 13 missing on CPU 0
	b = fakeEvent(b, WhatFork, 7, 0, 104)  // a CPU beyond the initial table
	evs := make([]Event, 8)
	n := c.decode(b, evs)
	if n != 5 {
		t.Fatalf("decoded %d events, want 5", n)
	}
	if evs[3].PID != 103 || evs[3].ParentTGID != 1 || evs[3].What != WhatFork || evs[3].Time != 12345 {
		t.Fatalf("bad decode: %+v", evs[3])
	}
	if g := c.Stats().Gaps; g != 2 {
		t.Fatalf("gaps = %d, want 2", g)
	}
	allocs := testing.AllocsPerRun(100, func() { c.decode(b, evs) })
	if allocs != 0 {
		t.Fatalf("decode allocates %v times per datagram", allocs)
	}
}

// WaitIdle parks until an event is queued, and Interrupt ends a long wait
// at once.
func TestWaitIdle(t *testing.T) {
	requireRoot(t)
	c, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Drain what the machine queued so far, then start a child: its fork
	// must end a wait long before the timeout.
	evs := make([]Event, 64)
	for {
		n, err := c.TryRead(evs)
		if err != nil && !errors.Is(err, ErrLost) {
			t.Fatal(err)
		}
		if n == 0 && err == nil {
			break
		}
	}
	done := make(chan error, 1)
	go func() { done <- exec.Command("/bin/true").Run() }()
	start := time.Now()
	queued, err := c.WaitIdle(10 * time.Second)
	if err != nil || !queued {
		t.Fatalf("WaitIdle = %v, %v; want an event", queued, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("WaitIdle took %v to see a fork", d)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Interrupt from another goroutine ends a wait that has nothing to see
	// and no deadline.
	for {
		if n, err := c.TryRead(evs); n == 0 && err == nil {
			break
		}
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		c.Interrupt()
	}()
	start = time.Now()
	for time.Since(start) < 10*time.Second {
		queued, err = c.WaitIdle(-1)
		if err != nil {
			t.Fatal(err)
		}
		if !queued {
			break
		}
		c.TryRead(evs) // another process of the machine forked: wait again
	}
	if d := time.Since(start); d > 5*time.Second || queued {
		t.Errorf("after Interrupt, WaitIdle returned %v after %v", queued, d)
	}
	// Later waits return at once.
	if queued, err := c.WaitIdle(10 * time.Second); queued || err != nil {
		t.Errorf("WaitIdle after Interrupt = %v, %v", queued, err)
	}
}

// TestWaitIdleOutOfDescriptors: with no descriptor left to duplicate (a
// kill holding a pidfd for each member of a huge group), WaitIdle waits in
// poll(2) instead of failing: its error stopped the whole daemon in the
// VM's 30,000-process scenario. It still sees an event, times out, and
// ends on Interrupt.
func TestWaitIdleOutOfDescriptors(t *testing.T) {
	requireRoot(t)
	c, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A shell that forks when told to through a pipe it already holds:
	// starting a process needs descriptors, writing to a pipe does not.
	sh := exec.Command("sh", "-c", "read x; /bin/true; read y")
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer sh.Wait()
	defer in.Close()
	evs := make([]Event, 64)
	drain := func() {
		for {
			if n, err := c.TryRead(evs); n == 0 && err == nil {
				return
			}
		}
	}
	time.Sleep(50 * time.Millisecond)
	drain()
	// No descriptor left: the soft limit at the highest one in use.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	top := 0
	for _, f := range fds {
		var n int
		if _, err := fmt.Sscan(f.Name(), &n); err == nil {
			top = max(top, n)
		}
	}
	low := lim
	low.Cur = uint64(top) + 8
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	// Then take every number left below it.
	var fillers []int
	restored := false
	restore := func() {
		if !restored {
			restored = true
			for _, fd := range fillers {
				unix.Close(fd)
			}
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fillers = append(fillers, fd)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_FCNTL, uintptr(c.fd), unix.F_DUPFD_CLOEXEC, 0); e != unix.EMFILE {
		restore()
		t.Fatalf("dup with the limit at %d: %v, want EMFILE", low.Cur, e)
	}
	// Nothing happens: a timeout, not an error. The connector reports the
	// whole machine's processes, and one of them may fork meanwhile (CI saw
	// an event after 39 ms): that is no error either, and the wait is tried
	// again.
	var queued bool
	for try := 0; ; try++ {
		start := time.Now()
		queued, err = c.WaitIdle(150 * time.Millisecond)
		took := time.Since(start)
		if err != nil || (!queued && took < 140*time.Millisecond) {
			restore()
			t.Fatalf("WaitIdle out of descriptors = %v, %v after %v; want a timeout", queued, err, took)
		}
		if !queued {
			break
		}
		if try == 20 {
			restore()
			t.Fatalf("WaitIdle out of descriptors saw an event in each of %d waits of 150 ms: the machine forks too often to see a timeout", try+1)
		}
		drain()
	}
	drain() // another process of the machine may have forked meanwhile
	// The shell forks: seen.
	if _, err := in.Write([]byte("go\n")); err != nil {
		restore()
		t.Fatal(err)
	}
	queued, err = c.WaitIdle(10 * time.Second)
	if err != nil || !queued {
		restore()
		t.Fatalf("WaitIdle out of descriptors = %v, %v; want the shell's fork", queued, err)
	}
	// Interrupt ends a wait without deadline within a poll slice.
	go func() {
		time.Sleep(50 * time.Millisecond)
		c.Interrupt()
	}()
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		drain()
		if queued, err = c.WaitIdle(-1); err != nil || !queued {
			break
		}
	}
	restore()
	if err != nil || queued || time.Since(start) > 5*time.Second {
		t.Fatalf("after Interrupt, WaitIdle out of descriptors = %v, %v after %v", queued, err, time.Since(start))
	}
	in.Write([]byte("end\n"))
}
