// Package e2e runs the oomguard binary against real workloads on this
// machine's kernel, each confined in cgroups the test creates.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/sys"
	"github.com/oomguard/oomguard/internal/testbed"
)

// binary is the oomguard binary built once for the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oomguard-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "oomguard")
	build := exec.Command("go", "build", "-o", binary, "../cmd/oomguard")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build oomguard:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running `oomguard daemon` whose log the test can search.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	socket string

	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

// startDaemon runs `oomguard daemon ARGS… --socket TMP` and waits until it
// logs that it is ready. The test's cleanup stops it with SIGTERM and checks
// that it exits 0.
func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, socket: filepath.Join(t.TempDir(), "oomguard.sock"), done: make(chan struct{})}
	d.cmd = exec.Command(binary, append(append([]string{"daemon"}, args...), "--socket", d.socket)...)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() { d.stop() })
	if !d.waitLog(15*time.Second, regexp.MustCompile(`msg="?daemon ready`)) {
		t.Fatalf("daemon did not become ready; log:\n%s", d.Log())
	}
	return d
}

// Log returns everything the daemon logged so far.
func (d *daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// waitLog waits until a log line matches re.
func (d *daemon) waitLog(timeout time.Duration, re *regexp.Regexp) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if re.MatchString(d.Log()) {
			return true
		}
		select {
		case <-d.done:
			return re.MatchString(d.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

func (d *daemon) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { <-d.done; exited <- d.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			d.t.Errorf("daemon exit on SIGTERM: %v; log:\n%s", err, d.Log())
		}
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		d.t.Errorf("daemon did not exit within 10s of SIGTERM; log:\n%s", d.Log())
	}
}

// oomguard runs the binary with args and returns stdout, stderr and the exit code.
func oomguard(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("oomguard %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// readLine reads lines from r until one starts with prefix, and returns its
// fields after the prefix.
func readLine(t *testing.T, r io.Reader, prefix string, timeout time.Duration) []string {
	t.Helper()
	type result struct {
		fields []string
		err    error
	}
	ch := make(chan result, 1)
	go func() {
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if strings.HasPrefix(line, prefix) {
				ch <- result{fields: strings.Fields(strings.TrimPrefix(line, prefix))}
				return
			}
			if err != nil {
				ch <- result{err: err}
				return
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("waiting for %q: %v", prefix, r.err)
		}
		return r.fields
	case <-time.After(timeout):
		t.Fatalf("no %q line within %v", prefix, timeout)
	}
	return nil
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// pin is testbed.Pin.
func pin(t *testing.T, pid int, what string) *sys.PidFD { return testbed.Pin(t, pid, what) }

// alive is testbed.Alive.
func alive(t *testing.T, p *sys.PidFD) bool { return testbed.Alive(t, p) }

// waitDead waits until the pinned process has exited (zombie or reaped).
func waitDead(t *testing.T, p *sys.PidFD, timeout time.Duration) bool {
	t.Helper()
	done, err := p.WaitExit(timeout)
	if err != nil {
		t.Fatalf("wait for %d to die: %v", p.PID(), err)
	}
	return done
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

func regexpOf(s string) *regexp.Regexp { return regexp.MustCompile(s) }
