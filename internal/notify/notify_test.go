package notify

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

// startBus starts a private dbus-daemon for the test and returns its
// address. With cred it runs as that user (a user's session bus), with a
// configuration that listens in a directory the test creates.
func startBus(t *testing.T, cred *syscall.Credential) string {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon not installed (apt package dbus-daemon): cannot start a private bus")
	}
	// In the test's temporary directory: the session default, /tmp, keeps
	// the socket file after the daemon is killed.
	args := []string{"--session", "--nofork", "--nopidfile", "--print-address=1", "--address=unix:dir=" + t.TempDir()}
	if cred != nil {
		if os.Geteuid() != 0 {
			t.Skip("running a bus as another user needs root")
		}
		dir, err := os.MkdirTemp("", "oomguard-userbus")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		os.Chmod(dir, 0o755)
		os.Chown(dir, int(cred.Uid), int(cred.Gid))
		conf := filepath.Join(dir, "bus.conf")
		os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=`+filepath.Join(dir, "bus")+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o644)
		args = []string{"--config-file=" + conf, "--nofork", "--nopidfile", "--print-address=1"}
	}
	cmd := exec.Command(bin, args...)
	// No Pdeathsig: it fires when the forking thread exits, and dialUser
	// ends threads on purpose.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dbus-daemon stderr:\n%s", stderr.String())
		}
	})
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			t.Fatal("dbus-daemon printed no address")
		}
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("dbus-daemon did not start")
	}
	return ""
}

func TestKilledSignal(t *testing.T) {
	addr := startBus(t, nil)
	sub, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.AddMatchSignal(dbus.WithMatchInterface(Interface), dbus.WithMatchMember(Member), dbus.WithMatchObjectPath(Path)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 4)
	sub.Signal(ch)

	n, err := New(Options{Address: addr, Signal: true})
	if err != nil {
		t.Fatal(err)
	}
	k := Kill{Cgroup: "/sys/fs/cgroup/user.slice/hog", Reason: "MemAvailable 3.1% < 5%", PIDs: []uint32{4242, 4243}, Comm: "hog", Trigger: "memory"}
	n.Killed(k)
	select {
	case s := <-ch:
		if s.Path != Path || s.Name != Interface+"."+Member {
			t.Errorf("signal %s %s", s.Path, s.Name)
		}
		want := []any{k.Cgroup, k.Reason, k.PIDs, k.Comm, k.Trigger}
		if diff := cmp.Diff(want, s.Body); diff != "" {
			t.Errorf("signal body (-want +got):\n%s", diff)
		}
		var owner string
		if err := sub.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, BusName).Store(&owner); err != nil || owner != s.Sender {
			t.Errorf("%s owned by %q (%v), signal from %q", BusName, owner, err, s.Sender)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no Killed signal received")
	}
	if err := n.Close(); err != nil {
		t.Error(err)
	}
}

func TestNoBus(t *testing.T) {
	_, err := New(Options{Address: "unix:path=" + filepath.Join(t.TempDir(), "none"), Signal: true, Timeout: time.Second})
	if err == nil {
		t.Fatal("New succeeded without a bus")
	}
}

type fakeNotifications struct {
	mu  sync.Mutex
	got [][]any
	ch  chan struct{}
}

func (f *fakeNotifications) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	f.mu.Lock()
	f.got = append(f.got, []any{app, summary, body, hints["urgency"].Value()})
	f.mu.Unlock()
	f.ch <- struct{}{}
	return 1, nil
}

// TestDesktopNotification sends a notification to a user's session bus, run
// as that user (nobody), from this root process, to a fake notification
// server; root's connection to another user's dbus-daemon is what the
// daemon relies on.
func TestDesktopNotification(t *testing.T) {
	addr := startBus(t, &syscall.Credential{Uid: 65534, Gid: 65534})
	if _, err := dbus.Connect(addr); err == nil {
		t.Log("note: this bus admits root directly")
	}
	srv, err := dialUser(addr, 65534, 5*time.Second)
	if err != nil {
		t.Fatalf("connect to the user's session bus as the user: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the test's own credentials changed")
	}
	defer srv.Close()
	fake := &fakeNotifications{ch: make(chan struct{}, 4)}
	if err := srv.Export(fake, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		t.Fatal(err)
	}
	if r, err := srv.RequestName("org.freedesktop.Notifications", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName: %v %v", r, err)
	}
	var asked []uint32
	var mu sync.Mutex
	n, err := New(Options{Desktop: true, UserBus: func(uid uint32) string {
		mu.Lock()
		asked = append(asked, uid)
		mu.Unlock()
		if uid == 65534 {
			return addr
		}
		return "unix:path=/nonexistent"
	}})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	n.OnError(func(err error) { errs <- err })
	n.Killed(Kill{Comm: "hog", Reason: "PSI memory full 12% > 10%", PIDs: []uint32{1, 2}, UIDs: []uint32{65534, 0, 65534}})
	select {
	case <-fake.ch:
	case err := <-errs:
		t.Fatalf("notification failed: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no notification arrived")
	}
	n.Close()
	want := [][]any{{"oomguard", "oomguard killed hog", "PSI memory full 12% > 10% (2 processes)", byte(2)}}
	if diff := cmp.Diff(want, fake.got); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint32{65534}, asked); diff != "" {
		t.Errorf("users notified (-want +got): %s (root and duplicates are skipped)", diff)
	}
}

// A bus that accepts connections and never answers must not hold up
// Killed: kills queue, then are dropped and reported.
func TestKilledNeverBlocks(t *testing.T) {
	dir, err := os.MkdirTemp("", "oomguard-stuckbus")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "stuck")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(sock, 0o777)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	n, err := New(Options{Desktop: true, Queue: 1, Timeout: 300 * time.Millisecond, UserBus: func(uint32) string { return "unix:path=" + sock }})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var errs []error
	n.OnError(func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
	start := time.Now()
	for i := range 10 {
		n.Killed(Kill{Comm: fmt.Sprint(i), UIDs: []uint32{1000}})
	}
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Errorf("10 Killed calls took %v with a stuck bus", took)
	}
	n.Close()
	mu.Lock()
	defer mu.Unlock()
	var full, timeouts int
	for _, e := range errs {
		switch {
		case errors.Is(e, ErrQueueFull):
			full++
		case strings.Contains(e.Error(), "timeout"):
			timeouts++
		}
	}
	if full < 7 || timeouts < 1 || full+timeouts != 10 {
		t.Errorf("%d dropped, %d timed out, errors %v", full, timeouts, errs)
	}
}
