package memlock

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/testbed"
)

// openPty returns the master and slave ends of a new pseudo-terminal.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// startOnTerminal runs the helper with script in the foreground of a new
// terminal (its session leader's group is the terminal's foreground
// group). It returns the terminal's master side, the command, and a channel
// that receives its exit.
func startOnTerminal(t *testing.T, g *testbed.Group, h helperOptions, script string) (*os.File, *exec.Cmd, <-chan error) {
	t.Helper()
	master, slave := openPty(t)
	cmd := helperCmd(t, g, h, "sh", "-c", script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return master, cmd, done
}

// TestTerminalCtrlC runs the helper in the foreground of a terminal: a
// Ctrl-C reaches the command exactly once (the terminal sends it to both
// oomguard and the command; oomguard must not send it again).
func TestTerminalCtrlC(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	for _, h := range []helperOptions{{}, {Lock: LockAll, Scope: ScopeRecursive}} {
		t.Run(fmt.Sprintf("lock=%v", h.Lock), func(t *testing.T) {
			master, _, done := startOnTerminal(t, g, h,
				`n=0; trap 'n=$((n+1))' INT; echo ready; while [ $n -eq 0 ]; do sleep 0.05; done; sleep 0.5; echo "ints $n"`)
			var out strings.Builder
			buf := make([]byte, 4096)
			read := func(want string) {
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(out.String(), want) {
					if time.Now().After(deadline) {
						t.Fatalf("no %q on the terminal: %q", want, out.String())
					}
					master.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
					n, _ := master.Read(buf)
					out.Write(buf[:n])
				}
			}
			read("ready")
			master.Write([]byte{3}) // Ctrl-C
			read("ints ")
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("run did not end")
			}
			if m := regexp.MustCompile(`ints (\d+)`).FindStringSubmatch(out.String()); m == nil || m[1] != "1" {
				t.Errorf("the command got %v SIGINTs for one Ctrl-C: %q", m, out.String())
			}
		})
	}
}

// TestTerminalCtrlZDuringExecs suspends and resumes, from a terminal, a
// loop of execs under the notifier, many times over: every process ends up
// running again after each resume, including one that oomguard held seized
// (at an exec) when Ctrl-Z came, so the loop finishes.
func TestTerminalCtrlZDuringExecs(t *testing.T) {
	g := testbed.New(t, testbed.Options{})
	master, cmd, done := startOnTerminal(t, g, helperOptions{Lock: LockAll, Scope: ScopeRecursive},
		`echo ready; i=0; while [ $i -lt 1500 ]; do /bin/true; i=$((i+1)); done; echo finished`)
	var out strings.Builder
	buf := make([]byte, 4096)
	drain := func() {
		master.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		n, _ := master.Read(buf)
		out.Write(buf[:n])
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "ready"); drain() {
		if time.Now().After(deadline) {
			t.Fatalf("no ready on the terminal: %q", out.String())
		}
	}
	pgrp := cmd.Process.Pid // the session leader's group is the foreground one
	for i := 0; i < 25 && !strings.Contains(out.String(), "finished"); i++ {
		master.Write([]byte{0x1a}) // Ctrl-Z
		time.Sleep(time.Duration(20+i%4*10) * time.Millisecond)
		syscall.Kill(-pgrp, syscall.SIGCONT)
		time.Sleep(time.Duration(15+i%3*10) * time.Millisecond)
		drain()
	}
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(out.String(), "finished"); drain() {
		if time.Now().After(deadline) {
			t.Fatalf("the loop never finished after the last resume: %q", out.String())
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not end")
	}
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(out.String(), "ENGINE") && time.Now().Before(deadline); {
		drain()
	}
	if !strings.Contains(out.String(), "ENGINE notifier") {
		t.Errorf("want the notifier: %q", out.String())
	}
}
