package notify

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// dialUser connects to a user's session bus as that user. A session bus
// (dbus-daemon, dbus-broker) only admits connections whose SO_PEERCRED uid
// is its owner's, and the kernel records the connecting thread's effective
// uid. So one locked OS thread switches its own effective uid (a raw
// setresuid, which unlike syscall.Setuid affects that thread only),
// connects, and is then discarded: the goroutine exits still locked, so the
// runtime destroys the thread and no other goroutine ever runs with the
// user's identity. Needs CAP_SETUID when uid differs from ours.
func dialUser(address string, uid uint32, timeout time.Duration) (*dbus.Conn, error) {
	path, ok := strings.CutPrefix(address, "unix:path=")
	if !ok {
		return nil, fmt.Errorf("user bus address %q: only unix:path= addresses are supported", address)
	}
	path, _, _ = strings.Cut(path, ",") // ",guid=..."
	type result struct {
		conn *dbus.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: see above.
		if uint32(os.Geteuid()) != uid {
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
				ch <- result{nil, fmt.Errorf("switch this thread to uid %d: %w", uid, e)}
				return
			}
		}
		conn, err := authUser(path, uid, timeout)
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// authUser connects and authenticates on the calling thread: the bus reads
// the credentials both of connect (SO_PEERCRED) and of the first byte sent
// (SCM_CREDENTIALS), so both must come from the user's thread.
func authUser(path string, uid uint32, timeout time.Duration) (*dbus.Conn, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("connect to %s as uid %d: %w", path, uid, err)
	}
	c.SetDeadline(time.Now().Add(timeout))
	conn, err := dbus.NewConn(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("D-Bus on %s: %w", path, err)
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.FormatUint(uint64(uid), 10))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("D-Bus auth on %s as uid %d: %w", path, uid, err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("D-Bus hello on %s: %w", path, err)
	}
	c.SetDeadline(time.Time{})
	return conn, nil
}
