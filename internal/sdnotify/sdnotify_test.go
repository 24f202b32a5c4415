package sdnotify

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func listen(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, p
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestSend(t *testing.T) {
	c, p := listen(t)
	n := New(p)
	if err := n.Ready("watching 3 triggers\nsecond line"); err != nil {
		t.Fatal(err)
	}
	got := recv(t, c)
	if !strings.HasPrefix(got, "READY=1\nSTATUS=watching 3 triggers second line\nMAINPID=") {
		t.Errorf("ready datagram %q", got)
	}
	n.Reloading()
	if got := recv(t, c); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("reloading datagram %q", got)
	}
	n.Stopping()
	if got := recv(t, c); got != "STOPPING=1" {
		t.Errorf("stopping datagram %q", got)
	}
}

func TestDisabled(t *testing.T) {
	n := FromEnv(func(string) string { return "" })
	if n.Enabled() || n.Ready("x") != nil || n.Status("y") != nil {
		t.Error("a Notifier without socket must be a silent no-op")
	}
}

func TestWatchdogInterval(t *testing.T) {
	env := map[string]string{"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "42"}
	if d, ok := WatchdogInterval(func(k string) string { return env[k] }, 42); !ok || d != 4*time.Second {
		t.Errorf("got %v %v", d, ok)
	}
	if _, ok := WatchdogInterval(func(k string) string { return env[k] }, 43); ok {
		t.Error("watchdog meant for another PID accepted")
	}
	if _, ok := WatchdogInterval(func(string) string { return "" }, 42); ok {
		t.Error("no watchdog accepted")
	}
}

// The watchdog pings only while the main loop reports progress.
func TestWatchdogHonoursLiveness(t *testing.T) {
	c, p := listen(t)
	var alive atomic.Bool
	alive.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go New(p).RunWatchdog(ctx, 100*time.Millisecond, alive.Load)
	if got := recv(t, c); got != "WATCHDOG=1" {
		t.Fatalf("got %q", got)
	}
	alive.Store(false)
	// Drain a ping that may have raced with the switch, then expect none.
	c.SetReadDeadline(time.Now().Add(60 * time.Millisecond))
	c.Read(make([]byte, 64))
	c.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Errorf("watchdog pinged (%d bytes) while the main loop was stuck", n)
	}
}
