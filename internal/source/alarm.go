package source

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Alarm is a one-shot CLOCK_MONOTONIC timer (a timerfd) that a goroutine
// waits on in Go's network poller. It exists for an idle daemon's sake.
// Go's runtime wakes its monitor thread (sysmon) at every Go timer, and
// sysmon then checks every 20 µs for as long as the woken goroutine runs.
// A system call made through package syscall (entersyscall) wakes it too,
// and resets it to that pace. An Alarm is invisible to sysmon: it is armed
// and read with raw system calls, and its expiry wakes only the poller.
// On a machine where a context switch is costly (a virtual machine), those
// wake-ups are a large part of what an idle daemon's poll costs.
//
// Set arms it; C receives once per expiry. Close ends it.
type Alarm struct {
	fd   int
	f    *os.File
	c    chan struct{}
	done chan struct{}
}

// NewAlarm returns a disarmed Alarm.
func NewAlarm() (*Alarm, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("alarm: timerfd_create: %w", err)
	}
	// Non-blocking, so os.NewFile registers it with the poller.
	f := os.NewFile(uintptr(fd), "alarm")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("alarm: %w", err)
	}
	a := &Alarm{fd: fd, f: f, c: make(chan struct{}, 1), done: make(chan struct{})}
	go a.run(raw)
	return a, nil
}

// C receives a value when the alarm goes off. Expiries not yet received
// merge into one.
func (a *Alarm) C() <-chan struct{} { return a.c }

// Set arms the alarm to go off d from now (at least 1 ns), replacing the
// previous setting and dropping an expiry of it not yet received from C
// (one already read from the timerfd but not yet passed to C can still
// arrive: a waiter then wakes early once).
func (a *Alarm) Set(d time.Duration) error {
	// Drop first: the new setting may go off before settime returns.
	select {
	case <-a.c:
	default:
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(d, 1).Nanoseconds())}
	_, _, e := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(a.fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("alarm: timerfd_settime %v: %w", d, e)
	}
	return nil
}

// Close stops the alarm and waits for its goroutine to end.
func (a *Alarm) Close() error {
	err := a.f.Close()
	<-a.done
	return err
}

// run reads expiries in the poller and forwards them to C.
func (a *Alarm) run(raw syscall.RawConn) {
	defer close(a.done)
	var buf [8]byte
	for {
		err := raw.Read(func(fd uintptr) bool {
			_, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			return e != unix.EAGAIN
		})
		if err != nil { // closed
			return
		}
		select {
		case a.c <- struct{}{}:
		default:
		}
	}
}
