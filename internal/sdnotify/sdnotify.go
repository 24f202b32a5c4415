// Package sdnotify speaks systemd's service notification protocol: READY,
// STATUS, RELOADING, STOPPING and a watchdog that only pings while the
// daemon's main loop is alive.
package sdnotify

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends datagrams to the service manager's socket. A Notifier with
// no socket (not started by systemd) accepts every call and sends nothing.
// Safe for concurrent use.
type Notifier struct {
	socket string
}

// New returns a Notifier for the socket path (NOTIFY_SOCKET's value; a
// leading '@' names an abstract socket). "" gives a no-op Notifier.
func New(socket string) *Notifier { return &Notifier{socket: socket} }

// FromEnv returns a Notifier for NOTIFY_SOCKET as getenv reports it
// (os.Getenv in the daemon).
func FromEnv(getenv func(string) string) *Notifier { return New(getenv("NOTIFY_SOCKET")) }

// Enabled reports whether a service manager listens.
func (n *Notifier) Enabled() bool { return n.socket != "" }

// Send sends the assignments ("READY=1", "STATUS=...") in one datagram.
func (n *Notifier) Send(assignments ...string) error {
	if n.socket == "" {
		return nil
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	if strings.HasPrefix(n.socket, "@") {
		addr.Name = "\x00" + n.socket[1:]
	}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(assignments, "\n"))); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	return nil
}

// Ready tells the manager start-up is complete, with a status line.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", "STATUS="+oneLine(status), "MAINPID="+strconv.Itoa(unix.Getpid()))
}

// Status updates the status line shown by systemctl status.
func (n *Notifier) Status(status string) error { return n.Send("STATUS=" + oneLine(status)) }

// Reloading tells the manager a configuration reload starts (Type=notify
// and Type=notify-reload); send Ready when it is done.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(ts.Nano()/1000, 10))
}

// Stopping tells the manager the daemon is shutting down.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// WatchdogInterval returns the watchdog timeout the manager expects
// (WATCHDOG_USEC), if it is meant for this process (WATCHDOG_PID absent or
// equal to pid).
func WatchdogInterval(getenv func(string) string, pid int) (time.Duration, bool) {
	us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0, false
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return 0, false
	}
	return time.Duration(us) * time.Microsecond, true
}

// RunWatchdog pings the manager (WATCHDOG=1) every timeout/2 until ctx is
// done, but only when alive reports that the daemon's main loop has made
// progress since the last ping. A stuck main loop thus stops the pings, and
// systemd restarts the service after timeout (WatchdogSec=).
func (n *Notifier) RunWatchdog(ctx context.Context, timeout time.Duration, alive func() bool) {
	if timeout <= 0 || n.socket == "" {
		return
	}
	t := time.NewTicker(timeout / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive() {
				n.Send("WATCHDOG=1")
			}
		}
	}
}
