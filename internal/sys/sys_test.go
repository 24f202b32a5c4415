package sys

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPidFDKillAndWait(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := PidfdOpen(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if exited, err := p.Exited(); err != nil || exited {
		t.Fatalf("Exited() = %v, %v before any signal", exited, err)
	}
	if err := p.SendSignal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ProcessMrelease(); err != nil {
		t.Fatalf("process_mrelease after SIGKILL: %v", err)
	}
	exited, err := p.WaitExit(5 * time.Second)
	if err != nil || !exited {
		t.Fatalf("WaitExit = %v, %v; want exited", exited, err)
	}
	if released, err := p.ProcessMrelease(); released || err != nil {
		t.Fatalf("process_mrelease of an exited process: released %v, %v; want nothing released and no error", released, err)
	}
	cmd.Wait()
	if released, err := p.ProcessMrelease(); released || err != nil {
		t.Fatalf("process_mrelease of a reaped process: released %v, %v; want nothing released and no error", released, err)
	}
	if err := p.SendSignal(unix.SIGKILL); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("signal to a reaped process: %v, want ESRCH", err)
	}
}

func TestProcessMreleaseNeedsPendingKill(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	p, err := PidfdOpen(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.ProcessMrelease(); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("process_mrelease on a live process: %v, want EINVAL", err)
	}
}

func TestSameMM(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	self := os.Getpid()
	if same, err := SameMM(self, self); err != nil || !same {
		t.Fatalf("SameMM(self, self) = %v, %v", same, err)
	}
	if same, err := SameMM(self, cmd.Process.Pid); err != nil || same {
		t.Fatalf("SameMM(self, child) = %v, %v", same, err)
	}
}

func TestClosedPidFD(t *testing.T) {
	p, err := PidfdOpen(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := p.SendSignal(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("SendSignal on closed: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestSetFIFO moves a locked thread to SCHED_FIFO and back, and checks
// that a child forked meanwhile does not inherit the real-time policy.
func TestSetFIFO(t *testing.T) {
	// Locked and never unlocked: the thread, whose scheduling this test
	// changes, ends with the test's goroutine.
	runtime.LockOSThread()
	policyOf := func(tid int) uint32 {
		t.Helper()
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			t.Fatalf("sched_getattr(%d): %v", tid, err)
		}
		return a.Policy
	}
	// Start from a nice value of our own, which SetNormal must keep.
	nice := 3
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, nice); err != nil {
		t.Fatal(err)
	}
	if err := SetFIFO(1); err != nil {
		t.Skipf("no SCHED_FIFO here: %v", err)
	}
	if p := policyOf(0); p != unix.SCHED_FIFO {
		SetNormal()
		t.Fatalf("policy %d after SetFIFO, want SCHED_FIFO (%d)", p, unix.SCHED_FIFO)
	}
	// A child forked by this thread starts at SCHED_OTHER
	// (SCHED_RESET_ON_FORK); its policy is read from outside.
	cmd := exec.Command("sleep", "5")
	err := cmd.Start()
	if err == nil {
		defer cmd.Wait()
		defer cmd.Process.Kill()
	}
	if errN := SetNormal(); errN != nil {
		t.Fatal(errN)
	}
	if err != nil {
		t.Fatal(err)
	}
	if p := policyOf(0); p != unix.SCHED_NORMAL {
		t.Errorf("policy %d after SetNormal, want SCHED_OTHER", p)
	}
	if a, err := unix.SchedGetAttr(0, 0); err == nil && a.Nice != int32(nice) {
		t.Errorf("nice %d after SetNormal, want the %d it had before SetFIFO", a.Nice, nice)
	}
	if p := policyOf(cmd.Process.Pid); p != unix.SCHED_NORMAL {
		t.Errorf("child forked at SCHED_FIFO has policy %d, want SCHED_OTHER", p)
	}
}
