package sys

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// PidFD is an owned process file descriptor from pidfd_open(2). Signals sent
// through it can never reach a process that merely reuses the PID.
//
// A PidFD is safe for concurrent use. Close releases it; a finaliser closes a
// forgotten one as a backstop.
type PidFD struct {
	pid int

	mu sync.Mutex
	fd int // -1 once closed
}

// PidfdOpen opens a pidfd for pid. It returns an error wrapping ESRCH when the
// process does not exist.
func PidfdOpen(pid int) (*PidFD, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	p := &PidFD{pid: pid, fd: fd}
	runtime.SetFinalizer(p, (*PidFD).Close)
	return p, nil
}

// PID returns the process ID the descriptor was opened for.
func (p *PidFD) PID() int { return p.pid }

// FD returns the raw descriptor, or -1 once closed. It stays owned by p.
func (p *PidFD) FD() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fd
}

// Close releases the descriptor. Closing twice is harmless.
func (p *PidFD) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd < 0 {
		return nil
	}
	err := unix.Close(p.fd)
	p.fd = -1
	runtime.SetFinalizer(p, nil)
	return err
}

// ErrClosed is returned by operations on a closed PidFD.
var ErrClosed = errors.New("pidfd already closed")

// SendSignal sends sig through pidfd_send_signal(2). A process that has
// already exited (but is not yet reaped) yields an error wrapping ESRCH.
func (p *PidFD) SendSignal(sig unix.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd < 0 {
		return fmt.Errorf("pidfd_send_signal(pid %d, %v): %w", p.pid, sig, ErrClosed)
	}
	if err := unix.PidfdSendSignal(p.fd, sig, nil, 0); err != nil {
		return fmt.Errorf("pidfd_send_signal(pid %d, %v): %w", p.pid, sig, err)
	}
	return nil
}

// Exited reports, without blocking, whether the process has exited. A pidfd
// becomes readable when its process exits.
func (p *PidFD) Exited() (bool, error) {
	return p.WaitExit(0)
}

// WaitExit waits up to timeout for the process to exit and reports whether
// it did. A zero timeout polls once.
func (p *PidFD) WaitExit(timeout time.Duration) (bool, error) {
	fd := p.FD()
	if fd < 0 {
		return false, fmt.Errorf("wait for pid %d: %w", p.pid, ErrClosed)
	}
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms < 0 {
			ms = 0
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("poll pidfd of pid %d: %w", p.pid, err)
		}
		return n > 0, nil
	}
}

// ProcessMrelease asks the kernel to release the memory of the dying process
// behind p now, through process_mrelease(2), instead of waiting for its exit
// path. The process must already have a fatal signal pending, or EINVAL
// results. It reports whether it released anything: false, with a nil
// error, when the process had already exited (the kernel returns success
// then too, with nothing left to release, so p is asked first). A process
// that exits between that question and the call is reported released.
func (p *PidFD) ProcessMrelease() (bool, error) {
	fd := p.FD()
	if fd < 0 {
		return false, fmt.Errorf("process_mrelease(pid %d): %w", p.pid, ErrClosed)
	}
	if exited, err := p.Exited(); err == nil && exited {
		return false, nil
	}
	_, _, e := unix.Syscall(unix.SYS_PROCESS_MRELEASE, uintptr(fd), 0, 0)
	switch e {
	case 0:
		return true, nil
	case unix.ESRCH:
		return false, nil
	default:
		return false, fmt.Errorf("process_mrelease(pid %d): %w", p.pid, e)
	}
}
