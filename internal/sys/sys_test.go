package sys

import (
	"errors"
	"os"
	"os/exec"
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
	if err := p.ProcessMrelease(); err != nil {
		t.Fatalf("process_mrelease after SIGKILL: %v", err)
	}
	exited, err := p.WaitExit(5 * time.Second)
	if err != nil || !exited {
		t.Fatalf("WaitExit = %v, %v; want exited", exited, err)
	}
	cmd.Wait()
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
	if err := p.ProcessMrelease(); !errors.Is(err, unix.EINVAL) {
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
