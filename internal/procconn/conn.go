// Package procconn reads process events (fork, exec, exit) from the kernel's
// proc connector (NETLINK_CONNECTOR, CN_IDX_PROC) without allocating per
// event, and tells when events were lost.
//
// It uses raw x/sys sockets rather than mdlayher/netlink: netlink.Conn.Receive
// allocates a []netlink.Message and a data slice per datagram, and the proc
// connector sends one datagram per event, so at the 10,000+ events a second a
// fork bomb produces that would be tens of thousands of allocations a second
// on the daemon's hot path. read(2) into one reused buffer allocates nothing.
package procconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Connector constants from <linux/connector.h> and <linux/cn_proc.h>.
const (
	cnIdxProc = 1
	cnValProc = 1

	mcastListen = 1
	mcastIgnore = 2

	sizeofCnMsg = 20
)

// What is a proc connector event type (enum proc_cn_event).
type What uint32

// The event types oomguard uses. The kernel's values are bit flags, which is
// also how the kernel-side filter selects them.
const (
	WhatNone     What = 0x00000000
	WhatFork     What = 0x00000001
	WhatExec     What = 0x00000002
	WhatUID      What = 0x00000004
	WhatGID      What = 0x00000040
	WhatSID      What = 0x00000080
	WhatPtrace   What = 0x00000100
	WhatComm     What = 0x00000200
	WhatCoredump What = 0x40000000
	WhatExit     What = 0x80000000
)

// String returns the event kind's name ("fork", "exec", "exit", ...).
func (w What) String() string {
	switch w {
	case WhatNone:
		return "none"
	case WhatFork:
		return "fork"
	case WhatExec:
		return "exec"
	case WhatExit:
		return "exit"
	case WhatComm:
		return "comm"
	}
	return "event(" + strconv.FormatUint(uint64(w), 16) + ")"
}

// Event is one decoded proc connector event. For fork, PID/TGID are the
// child's and ParentPID/ParentTGID the forking task's; for exec and exit they
// are the process's own. Thread events have PID != TGID.
type Event struct {
	What What
	// CPU is the CPU the kernel sent the event from; Seq its per-CPU number.
	CPU uint32
	Seq uint32
	// Time is the kernel's CLOCK_MONOTONIC timestamp of the event.
	Time time.Duration

	PID, TGID             int32
	ParentPID, ParentTGID int32
	ExitCode              uint32
}

// IsThread reports whether the event concerns a thread rather than a
// process: thread creation (pid != tgid) is not a new process.
func (e *Event) IsThread() bool { return e.PID != e.TGID }

// ErrLost is returned by Read when the kernel dropped events for this socket
// (ENOBUFS). The connection stays usable; the caller must resynchronise.
var ErrLost = errors.New("proc connector: events lost (ENOBUFS)")

// Options configures a Conn. The zero value is usable.
type Options struct {
	// RcvBuf is the socket receive buffer in bytes, set with SO_RCVBUFFORCE
	// (SO_RCVBUF when that is not permitted). 0 means DefaultRcvBuf. Tests
	// set a tiny one to force event loss.
	RcvBuf int
	// NoFilter disables the kernel-side event filter (Linux 6.6+), which
	// otherwise limits delivery to fork, exec and exit.
	NoFilter bool
}

// DefaultRcvBuf is the receive buffer used when Options.RcvBuf is 0: about
// 10,000 queued events, a second of the fastest fork bomb this kernel runs.
const DefaultRcvBuf = 16 << 20

// Stats counts what a Conn has seen. Read it with Conn.Stats.
type Stats struct {
	// Events is the number of events decoded.
	Events uint64
	// Gaps is the number of events missing from per-CPU sequence numbers.
	// With the kernel filter on, events filtered out by the kernel (uid,
	// comm, …) also leave gaps, so a gap means "maybe lost".
	Gaps uint64
	// Overruns counts ENOBUFS errors: the kernel dropped events for us.
	Overruns uint64
}

// Conn is a subscribed proc connector socket. Read and Drain must be called
// from one goroutine at a time; Stats and Close are safe from any goroutine.
type Conn struct {
	fd       int
	filtered bool
	buf      []byte
	pfd      []unix.PollFd

	// waitFile is the descriptor a WaitIdle in progress waits on;
	// interrupted is set by Interrupt. waitMu guards both.
	waitMu      sync.Mutex
	waitFile    *os.File
	interrupted bool

	// per-CPU next expected sequence number (+1, so 0 means unknown)
	next []uint32

	events, gaps, overruns atomic.Uint64
	closed                 atomic.Bool
}

// Open creates the socket, sizes its receive buffer, binds it to the
// CN_IDX_PROC multicast group and subscribes with PROC_CN_MCAST_LISTEN. It
// needs CAP_NET_ADMIN.
func Open(o Options) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("proc connector: socket(AF_NETLINK, NETLINK_CONNECTOR): %w", err)
	}
	c := &Conn{fd: fd, buf: make([]byte, 64<<10), pfd: make([]unix.PollFd, 1), next: make([]uint32, 256)}
	size := o.RcvBuf
	if size <= 0 {
		size = DefaultRcvBuf
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("proc connector: set receive buffer to %d bytes: %w", size, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("proc connector: bind to CN_IDX_PROC: %w", err)
	}
	c.filtered = !o.NoFilter && kernelAtLeast(6, 6)
	if err := c.control(mcastListen); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

// Filtered reports whether the kernel-side event filter is in use.
func (c *Conn) Filtered() bool { return c.filtered }

// control sends a PROC_CN_MCAST_* operation. With the filter, the payload is
// struct proc_input {op, event_type}; without it, the bare 4-byte op that
// every kernel since 2.6.15 accepts.
func (c *Conn) control(op uint32) error {
	payload := 4
	if c.filtered {
		payload = 8
	}
	msg := make([]byte, unix.SizeofNlMsghdr+sizeofCnMsg+payload)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)
	ne.PutUint32(msg[12:], uint32(unix.Getpid()))
	cn := msg[unix.SizeofNlMsghdr:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint16(cn[16:], uint16(payload))
	ne.PutUint32(cn[sizeofCnMsg:], op)
	if c.filtered {
		ne.PutUint32(cn[sizeofCnMsg+4:], uint32(WhatFork|WhatExec|WhatExit))
	}
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil && err != unix.EAGAIN {
		return fmt.Errorf("proc connector: send PROC_CN_MCAST op %d: %w", op, err)
	}
	return nil
}

// Read waits up to timeout for one datagram and decodes its events into
// evs, returning how many it stored. It returns 0, nil on timeout, and
// ErrLost (after counting an overrun) when the kernel dropped events. It does
// not allocate.
func (c *Conn) Read(evs []Event, timeout time.Duration) (int, error) {
	if c.closed.Load() {
		return 0, fmt.Errorf("proc connector: read: %w", unix.EBADF)
	}
	c.pfd[0] = unix.PollFd{Fd: int32(c.fd), Events: unix.POLLIN}
	n, err := unix.Poll(c.pfd, int(timeout/time.Millisecond))
	if err != nil {
		if err == unix.EINTR {
			return 0, nil
		}
		return 0, fmt.Errorf("proc connector: poll: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	return c.recv(evs)
}

// WaitIdle waits up to timeout for an event (or an error such as an
// overrun) to be queued, and reports whether something is. A negative
// timeout waits with no deadline, and so sets no timer. The calling
// goroutine is parked in Go's network poller, so no thread sits in a
// system call (which would keep the runtime's monitor thread polling every
// few milliseconds). Interrupt ends the wait early, from any goroutine.
//
// The socket is registered with the poller only for the wait, through a
// duplicate descriptor closed at the end: registered for good, every
// datagram the kernel queues would wake the poller's thread, even while
// nobody waits, which on a busy machine costs each fork and exec a
// cross-CPU wake-up. A busy caller should therefore sleep and drain with
// TryRead, and wait here only when nothing has come for a while. Each call
// costs a few system calls and allocations.
func (c *Conn) WaitIdle(timeout time.Duration) (bool, error) {
	if c.closed.Load() {
		return false, fmt.Errorf("proc connector: wait: %w", unix.EBADF)
	}
	// Raw system calls here and in the check below: one made through
	// package syscall wakes Go's monitor thread when it sleeps, and sets it
	// polling every 20 µs for a while.
	r, _, e := unix.RawSyscall(unix.SYS_FCNTL, uintptr(c.fd), unix.F_DUPFD_CLOEXEC, 0)
	if e == unix.EMFILE || e == unix.ENFILE {
		// Out of descriptors (a kill holding a pidfd per member of a
		// huge group): wait in poll(2) on this thread instead of failing,
		// which would stop the caller.
		return c.pollWait(timeout)
	}
	if e != 0 {
		return false, fmt.Errorf("proc connector: dup for wait: %w", e)
	}
	dup := int(r)
	// The descriptor is non-blocking (the flag belongs to the open file
	// both share), so os.NewFile registers it with the poller.
	f := os.NewFile(uintptr(dup), "proc-connector")
	defer f.Close() // unregisters, then closes the duplicate
	raw, err := f.SyscallConn()
	if err != nil {
		return false, fmt.Errorf("proc connector: wait: %w", err)
	}
	if timeout >= 0 {
		if err := f.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return false, fmt.Errorf("proc connector: wait deadline: %w", err)
		}
	}
	c.waitMu.Lock()
	if c.interrupted {
		c.waitMu.Unlock()
		return false, nil
	}
	c.waitFile = f
	c.waitMu.Unlock()
	defer func() {
		c.waitMu.Lock()
		c.waitFile = nil
		c.waitMu.Unlock()
	}()
	err = raw.Read(func(fd uintptr) bool {
		c.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		var zero unix.Timespec
		n, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&c.pfd[0])), 1, uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
		return e == 0 && n > 0
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false, nil
	}
	return false, fmt.Errorf("proc connector: wait: %w", err)
}

// pollWaitSlice bounds each poll(2) of pollWait, so that an Interrupt is
// seen within it.
const pollWaitSlice = 100 * time.Millisecond

// pollWait is WaitIdle without the network poller, for when no descriptor
// is left to duplicate: the calling thread sleeps in poll(2), in slices of
// pollWaitSlice, checking for an Interrupt between them.
func (c *Conn) pollWait(timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		c.waitMu.Lock()
		interrupted := c.interrupted
		c.waitMu.Unlock()
		if interrupted {
			return false, nil
		}
		slice := pollWaitSlice
		if timeout >= 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return false, nil
			}
			slice = min(slice, left)
		}
		c.pfd[0] = unix.PollFd{Fd: int32(c.fd), Events: unix.POLLIN}
		n, err := unix.Poll(c.pfd, int((slice+time.Millisecond-1)/time.Millisecond))
		switch {
		case err == unix.EINTR:
		case err != nil:
			return false, fmt.Errorf("proc connector: poll: %w", err)
		case n > 0:
			return true, nil
		}
	}
}

// Interrupt ends a WaitIdle in progress, and makes every later one return
// at once. It is safe from any goroutine; Read is not affected.
func (c *Conn) Interrupt() {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	c.interrupted = true
	if c.waitFile != nil {
		c.waitFile.SetReadDeadline(time.Unix(1, 0))
	}
}

// TryRead is Read without waiting: 0, nil when nothing is queued.
func (c *Conn) TryRead(evs []Event) (int, error) {
	return c.recv(evs)
}

func (c *Conn) recv(evs []Event) (int, error) {
	// The socket is non-blocking, so the read cannot block; it is made raw
	// so that it does not wake Go's monitor thread (see WaitIdle).
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(c.fd), uintptr(unsafe.Pointer(&c.buf[0])), uintptr(len(c.buf)))
	n := int(r)
	if e != 0 {
		switch e {
		case unix.EAGAIN, unix.EINTR:
			return 0, nil
		case unix.ENOBUFS:
			c.overruns.Add(1)
			// Sequence numbers restart being trustworthy only from the
			// next event of each CPU.
			clear(c.next)
			return 0, ErrLost
		}
		return 0, fmt.Errorf("proc connector: recv: %w", e)
	}
	return c.decode(c.buf[:n], evs), nil
}

// decode parses the netlink messages in b into evs.
func (c *Conn) decode(b []byte, evs []Event) int {
	ne := binary.NativeEndian
	out := 0
	for len(b) >= unix.SizeofNlMsghdr && out < len(evs) {
		l := int(ne.Uint32(b[0:]))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			break
		}
		msg := b[unix.SizeofNlMsghdr:l]
		typ := ne.Uint16(b[4:])
		b = b[nlmsgAlign(l):]
		if typ == unix.NLMSG_ERROR || typ == unix.NLMSG_NOOP || len(msg) < sizeofCnMsg+16 {
			continue
		}
		if ne.Uint32(msg[0:]) != cnIdxProc || ne.Uint32(msg[4:]) != cnValProc {
			continue
		}
		seq := ne.Uint32(msg[8:])
		data := msg[sizeofCnMsg:]
		if dl := int(ne.Uint16(msg[16:])); dl < len(data) {
			data = data[:dl]
		}
		e := &evs[out]
		*e = Event{
			What: What(ne.Uint32(data[0:])),
			CPU:  ne.Uint32(data[4:]),
			Seq:  seq,
			Time: time.Duration(ne.Uint64(data[8:])),
		}
		if e.What == WhatNone { // subscription ack, carries our own seq
			continue
		}
		c.checkSeq(e.CPU, seq)
		d := data[16:]
		switch e.What {
		case WhatFork:
			if len(d) < 16 {
				continue
			}
			e.ParentPID = int32(ne.Uint32(d[0:]))
			e.ParentTGID = int32(ne.Uint32(d[4:]))
			e.PID = int32(ne.Uint32(d[8:]))
			e.TGID = int32(ne.Uint32(d[12:]))
		case WhatExec, WhatComm, WhatUID, WhatGID, WhatSID, WhatPtrace, WhatCoredump:
			if len(d) < 8 {
				continue
			}
			e.PID = int32(ne.Uint32(d[0:]))
			e.TGID = int32(ne.Uint32(d[4:]))
		case WhatExit:
			if len(d) < 12 {
				continue
			}
			e.PID = int32(ne.Uint32(d[0:]))
			e.TGID = int32(ne.Uint32(d[4:]))
			e.ExitCode = ne.Uint32(d[8:])
			if len(d) >= 24 {
				e.ParentPID = int32(ne.Uint32(d[16:]))
				e.ParentTGID = int32(ne.Uint32(d[20:]))
			}
		default:
			continue
		}
		c.events.Add(1)
		out++
	}
	return out
}

// checkSeq tracks the per-CPU sequence numbers: the kernel numbers the events
// it sends from each CPU consecutively, so a jump means missed events.
func (c *Conn) checkSeq(cpu, seq uint32) {
	if int(cpu) >= len(c.next) {
		if cpu > 1<<16 {
			return
		}
		grown := make([]uint32, int(cpu)*2)
		copy(grown, c.next)
		c.next = grown
	}
	if want := c.next[cpu]; want != 0 && seq != want-1 {
		if d := seq - (want - 1); d < 1<<30 {
			c.gaps.Add(uint64(d))
		}
	}
	c.next[cpu] = seq + 2
}

func nlmsgAlign(l int) int { return (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// Stats returns the counters so far.
func (c *Conn) Stats() Stats {
	return Stats{Events: c.events.Load(), Gaps: c.gaps.Load(), Overruns: c.overruns.Load()}
}

// Pending returns the number of bytes queued on the socket (FIONREAD).
func (c *Conn) Pending() int {
	n, err := unix.IoctlGetInt(c.fd, unix.SIOCINQ)
	if err != nil {
		return 0
	}
	return n
}

// Close unsubscribes and closes the socket. It must not race with Read.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.control(mcastIgnore)
	return unix.Close(c.fd)
}

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	rel := unix.ByteSliceToString(u.Release[:])
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}
