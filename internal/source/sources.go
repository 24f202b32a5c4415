package source

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/cgroupfs"
)

// ErrNotAvailable is wrapped when the kernel or the cgroup lacks the file a
// source needs (for example memory.events on a v2 cgroup without the
// memory controller, or memory.oom_control on v2).
var ErrNotAvailable = errors.New("not available here")

// Ticker fires every Interval: the polling fallback and the periodic look.
type Ticker struct {
	fd       int
	interval time.Duration
	buf      [8]byte
}

// NewTicker returns a Ticker firing every interval (from a CLOCK_MONOTONIC
// timerfd; missed ticks are merged into one wake).
func NewTicker(interval time.Duration) (*Ticker, error) {
	if interval <= 0 {
		return nil, fmt.Errorf("ticker: interval %v must be positive", interval)
	}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("ticker: timerfd_create: %w", err)
	}
	ts := unix.NsecToTimespec(interval.Nanoseconds())
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ticker: timerfd_settime %v: %w", interval, err)
	}
	return &Ticker{fd: fd, interval: interval}, nil
}

// Name implements Source.
func (t *Ticker) Name() string { return "tick " + t.interval.String() }

// Close implements Source.
func (t *Ticker) Close() error { return closeFD(&t.fd) }

func (t *Ticker) pollFD() (int, uint32) { return t.fd, unix.EPOLLIN }

func (t *Ticker) ready() (bool, error) { return drainCounter(t.fd, t.buf[:]) }

// drainCounter reads an eventfd or timerfd counter; EAGAIN means another
// reader got there first, which is no wake.
func drainCounter(fd int, buf []byte) (bool, error) {
	_, err := unix.Read(fd, buf)
	if errors.Is(err, unix.EAGAIN) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

func closeFD(fd *int) error {
	if *fd < 0 {
		return nil
	}
	err := unix.Close(*fd)
	*fd = -1
	return err
}

// CgroupEvent is a cgroup v1 notification registered through
// cgroup.event_control with an eventfd: a memory usage threshold or OOM
// notification. It fires each time the kernel signals the eventfd, and also
// once when the cgroup is removed.
type CgroupEvent struct {
	name   string
	efd    int
	target int // the watched control file, kept open for the event's life
	buf    [8]byte
}

// OpenUsageThreshold registers a threshold of bytes on the v1 memory cgroup
// cg's memory.usage_in_bytes. It fires whenever usage crosses bytes, upward
// or downward. The kernel checks thresholds every few hundred KiB of
// charging per CPU, not on every page.
func OpenUsageThreshold(cg cgroupfs.Cgroup, bytes uint64) (*CgroupEvent, error) {
	name := fmt.Sprintf("threshold %s memory.usage_in_bytes %d", cg.Path, bytes)
	return openCgroupEvent(cg, "memory.usage_in_bytes", " "+strconv.FormatUint(bytes, 10), name)
}

// OpenOOMNotifier registers for OOM notifications of the v1 memory cgroup
// cg (memory.oom_control). It fires when the cgroup hits its limit and
// reclaim fails, whether the kernel then kills (oom_kill_disable 0) or
// pauses the cgroup's tasks (oom_kill_disable 1).
func OpenOOMNotifier(cg cgroupfs.Cgroup) (*CgroupEvent, error) {
	return openCgroupEvent(cg, "memory.oom_control", "", "oom "+cg.Path)
}

func openCgroupEvent(cg cgroupfs.Cgroup, file, arg, name string) (*CgroupEvent, error) {
	if cg.Version != cgroupfs.V1 {
		return nil, fmt.Errorf("%s: cgroup.event_control is cgroup v1 only: %w", name, ErrNotAvailable)
	}
	target, err := unix.Open(cg.File(file), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w (%w)", ErrNotAvailable, err)
		}
		return nil, fmt.Errorf("%s: open %s: %w", name, cg.File(file), err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(target)
		return nil, fmt.Errorf("%s: eventfd: %w", name, err)
	}
	line := strconv.Itoa(efd) + " " + strconv.Itoa(target) + arg
	if err := writeFile(cg.File("cgroup.event_control"), line); err != nil {
		unix.Close(target)
		unix.Close(efd)
		return nil, fmt.Errorf("%s: register: %w", name, err)
	}
	return &CgroupEvent{name: name, efd: efd, target: target}, nil
}

// Name implements Source.
func (e *CgroupEvent) Name() string { return e.name }

// Close implements Source. Closing the eventfd unregisters the event.
func (e *CgroupEvent) Close() error {
	err := closeFD(&e.efd)
	closeFD(&e.target)
	return err
}

func (e *CgroupEvent) pollFD() (int, uint32) { return e.efd, unix.EPOLLIN }

func (e *CgroupEvent) ready() (bool, error) { return drainCounter(e.efd, e.buf[:]) }

func writeFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(s))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", s, path, err)
	}
	return nil
}

// FileWatch fires when a cgroup v2 (kernfs) file that supports change
// notification is modified: memory.events, memory.events.local,
// cgroup.events (populated, frozen), memory.swap.events, pids.events. The
// kernel signals such files with POLLPRI; reading the file re-arms it.
type FileWatch struct {
	path string
	fd   int
	buf  [512]byte
}

// WatchFile starts watching path for kernfs modification notices.
func WatchFile(path string) (*FileWatch, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w (%w)", ErrNotAvailable, err)
		}
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	w := &FileWatch{path: path, fd: fd}
	if _, err := w.ready(); err != nil { // the first read arms the notice
		unix.Close(fd)
		return nil, err
	}
	return w, nil
}

// WatchMemoryEvents watches memory.events of the v2 cgroup cg (changes on
// low, high, max, oom, oom_kill). It wraps ErrNotAvailable when cg has no
// memory controller.
func WatchMemoryEvents(cg cgroupfs.Cgroup) (*FileWatch, error) {
	if cg.Version != cgroupfs.V2 {
		return nil, fmt.Errorf("watch %s: memory.events is cgroup v2 only (use OpenUsageThreshold and OpenOOMNotifier on v1): %w", cg.Path, ErrNotAvailable)
	}
	return WatchFile(cg.File("memory.events"))
}

// Name implements Source.
func (w *FileWatch) Name() string { return "watch " + w.path }

// Close implements Source.
func (w *FileWatch) Close() error { return closeFD(&w.fd) }

func (w *FileWatch) pollFD() (int, uint32) { return w.fd, unix.EPOLLPRI }

func (w *FileWatch) ready() (bool, error) {
	for off := int64(0); ; {
		n, err := unix.Pread(w.fd, w.buf[:], off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", w.path, err)
		}
		if n < len(w.buf) {
			return true, nil
		}
		off += int64(n)
	}
}
