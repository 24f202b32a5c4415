// Package source turns kernel notifications (PSI triggers, cgroup v1 usage
// thresholds and OOM notifications, cgroup v2 file changes, timers) into
// wake-ups that mean "something may have changed, look now"; it decides
// nothing.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Source is one thing a Waker waits on. Implementations are the types of
// this package (PSITrigger, PSIPoller, CgroupEvent, FileWatch, Ticker); the
// interface is closed.
type Source interface {
	// Name identifies the source in logs, for example "psi /proc/pressure/memory some 150ms/2s".
	Name() string
	// Close releases the source's descriptors. A Waker closes its sources.
	Close() error

	// pollFD returns the descriptor to wait on and the epoll events.
	pollFD() (fd int, events uint32)
	// ready is called when the descriptor is ready. It consumes the event
	// (re-arming the source) and reports whether it counts as a wake.
	ready() (bool, error)
}

// Wake tells which sources fired since the previous Wait returned.
type Wake uint64

// MaxSources is how many sources one Waker can hold.
const MaxSources = 62

const pokeBit = Wake(1) << 63

// Fired reports whether source i (its index in NewWaker's list) fired.
func (w Wake) Fired(i int) bool { return i >= 0 && i < MaxSources && w&(1<<uint(i)) != 0 }

// Poked reports whether Waker.Poke caused the wake.
func (w Wake) Poked() bool { return w&pokeBit != 0 }

// Waker merges sources into one wake-up the daemon loop blocks on. One
// goroutine waits on all sources with epoll; Wait returns when any of them
// fired. Wakes that arrive while nobody waits are merged, never queued, so
// a slow loop sees one wake covering all of them. Waiting and waking do not
// allocate.
//
// Wait and Poke are safe for concurrent use; Close must be called once.
type Waker struct {
	log     *slog.Logger
	sources []Source
	epfd    int
	stopfd  int
	pending atomic.Uint64
	ch      chan struct{}
	done    chan struct{}
	errMu   sync.Mutex
	err     error
}

// NewWaker starts waiting on sources (at most MaxSources). The Waker owns
// them from now on and closes them in Close, also when NewWaker fails. log
// receives source errors; nil discards.
func NewWaker(log *slog.Logger, sources ...Source) (*Waker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Waker{log: log, sources: sources, epfd: -1, stopfd: -1, ch: make(chan struct{}, 1), done: make(chan struct{})}
	fail := func(err error) (*Waker, error) {
		w.closeFDs()
		return nil, err
	}
	if len(sources) > MaxSources {
		return fail(fmt.Errorf("waker: %d sources, at most %d", len(sources), MaxSources))
	}
	var err error
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fail(fmt.Errorf("waker: epoll_create1: %w", err))
	}
	if w.stopfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fail(fmt.Errorf("waker: eventfd: %w", err))
	}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, w.stopfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}); err != nil {
		return fail(fmt.Errorf("waker: epoll_ctl stop eventfd: %w", err))
	}
	for i, s := range sources {
		fd, ev := s.pollFD()
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: ev, Fd: int32(i)}); err != nil {
			return fail(fmt.Errorf("waker: epoll_ctl %s: %w", s.Name(), err))
		}
	}
	go w.loop()
	return w, nil
}

// Sources returns the sources in index order, as Wake.Fired numbers them.
func (w *Waker) Sources() []Source { return w.sources }

// Wait blocks until a source fires (or Poke is called) and returns which
// fired. It returns ctx's error when ctx ends first, and ErrClosed after
// Close.
func (w *Waker) Wait(ctx context.Context) (Wake, error) {
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-w.done:
			if m := Wake(w.pending.Swap(0)); m != 0 {
				return m, nil
			}
			return 0, ErrClosed
		case <-w.ch:
			if m := Wake(w.pending.Swap(0)); m != 0 {
				return m, nil
			}
		}
	}
}

// ErrClosed is returned by Wait once the Waker is closed.
var ErrClosed = errors.New("waker closed")

// Poke wakes Wait as if a source had fired; Wake.Poked tells.
func (w *Waker) Poke() { w.fire(pokeBit) }

func (w *Waker) fire(bits Wake) {
	w.pending.Or(uint64(bits))
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// Err returns the first error a source reported (such a source is dropped
// from the wait set and logged); nil if none.
func (w *Waker) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

func (w *Waker) loop() {
	defer close(w.done)
	var events [16]unix.EpollEvent
	for {
		n, err := unix.EpollWait(w.epfd, events[:], -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			w.setErr(fmt.Errorf("waker: epoll_wait: %w", err))
			return
		}
		var bits Wake
		for _, ev := range events[:n] {
			if ev.Fd < 0 {
				return // Close
			}
			i := int(ev.Fd)
			s := w.sources[i]
			fired, err := s.ready()
			if err != nil {
				fd, _ := s.pollFD()
				unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
				w.setErr(fmt.Errorf("waker: %s: %w (source dropped)", s.Name(), err))
				w.log.Warn("wake source failed; dropped", "source", s.Name(), "err", err.Error())
				fired = true // look once more, the state behind it changed
			}
			if fired {
				bits |= 1 << uint(i)
			}
		}
		if bits != 0 {
			w.fire(bits)
		}
	}
}

func (w *Waker) setErr(err error) {
	w.errMu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.errMu.Unlock()
}

// Close stops the Waker and closes every source. Wait returns ErrClosed
// afterwards.
func (w *Waker) Close() error {
	var one = [8]byte{1}
	if _, err := unix.Write(w.stopfd, one[:]); err != nil {
		return fmt.Errorf("waker: stop: %w", err)
	}
	<-w.done
	return w.closeFDs()
}

func (w *Waker) closeFDs() error {
	var errs []error
	for _, s := range w.sources {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, fd := range []int{w.epfd, w.stopfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	w.epfd, w.stopfd = -1, -1
	return errors.Join(errs...)
}
