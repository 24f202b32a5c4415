package source

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// PSISpec is a PSI trigger: fire when tasks stalled for at least Stall
// within any Window. Kind is "some" or "full".
type PSISpec struct {
	Kind   string
	Stall  time.Duration
	Window time.Duration
}

// String formats the spec as the line written to a pressure file.
func (s PSISpec) String() string {
	return s.Kind + " " + strconv.FormatInt(s.Stall.Microseconds(), 10) + " " + strconv.FormatInt(s.Window.Microseconds(), 10)
}

func (s PSISpec) validate() error {
	if s.Kind != "some" && s.Kind != "full" {
		return fmt.Errorf("psi trigger kind %q: want some or full", s.Kind)
	}
	if s.Window <= 0 || s.Stall <= 0 || s.Stall > s.Window {
		return fmt.Errorf("psi trigger %q: need 0 < stall <= window", s)
	}
	return nil
}

// UnprivilegedWindow is the granularity the kernel imposes on PSI trigger
// windows for writers without CAP_SYS_RESOURCE: a multiple of 2 s.
const UnprivilegedWindow = 2 * time.Second

// TriggerRefusedError says the kernel refused a PSI trigger on Path, so the
// caller has to poll instead (see OpenPSI).
type TriggerRefusedError struct {
	Path string
	Spec PSISpec
	Err  error
}

// Error says which trigger was refused on which file, and why.
func (e *TriggerRefusedError) Error() string {
	return fmt.Sprintf("psi trigger %q on %s refused: %v", e.Spec, e.Path, e.Err)
}

// Unwrap returns the kernel's error (EINVAL, EPERM, ENOENT, ...).
func (e *TriggerRefusedError) Unwrap() error { return e.Err }

// PSITrigger is a kernel PSI trigger: the kernel signals POLLPRI when the
// stall threshold is met within the window, at most once per window.
type PSITrigger struct {
	path string
	spec PSISpec
	fd   int
}

// OpenPSITrigger writes spec to the pressure file path (/proc/pressure/memory,
// /proc/pressure/io, or a v2 cgroup's memory.pressure or io.pressure) and
// keeps the file open; closing it removes the trigger. The kernel refuses
// windows that are not a multiple of 2 s from writers without
// CAP_SYS_RESOURCE; OpenPSITrigger then retries once with the window rounded
// up to such a multiple (Spec tells what was installed, and log gets a
// warning). Other refusals are a *TriggerRefusedError.
func OpenPSITrigger(path string, spec PSISpec, log *slog.Logger) (*PSITrigger, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fd, err := installTrigger(path, spec)
	if err != nil && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM)) && spec.Window%UnprivilegedWindow != 0 {
		rounded := spec
		rounded.Window = (spec.Window/UnprivilegedWindow + 1) * UnprivilegedWindow
		if fd, err = installTrigger(path, rounded); err == nil {
			if log != nil {
				log.Warn("psi trigger window rounded up: without CAP_SYS_RESOURCE the kernel accepts only multiples of 2s",
					"path", path, "asked", spec.String(), "installed", rounded.String())
			}
			spec = rounded
		}
	}
	if err != nil {
		return nil, &TriggerRefusedError{Path: path, Spec: spec, Err: err}
	}
	return &PSITrigger{path: path, spec: spec, fd: fd}, nil
}

func installTrigger(path string, spec PSISpec) (int, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	// The kernel wants the trigger line NUL-terminated.
	if _, err := unix.Write(fd, append([]byte(spec.String()), 0)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("write %q to %s: %w", spec, path, err)
	}
	return fd, nil
}

// Spec returns the trigger as installed (after any rounding).
func (p *PSITrigger) Spec() PSISpec { return p.spec }

// Name implements Source.
func (p *PSITrigger) Name() string { return "psi " + p.path + " " + p.spec.String() }

// Close implements Source; it removes the trigger.
func (p *PSITrigger) Close() error { return closeFD(&p.fd) }

func (p *PSITrigger) pollFD() (int, uint32) { return p.fd, unix.EPOLLPRI }

// ready: the kernel clears the trigger's event when it is polled, so there
// is nothing to consume. POLLERR means the trigger is gone (its cgroup was
// removed): an error, so the Waker drops the source instead of spinning.
func (p *PSITrigger) ready() (bool, error) {
	var pfd = [1]unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLPRI}}
	if _, err := unix.Poll(pfd[:], 0); err != nil && !errors.Is(err, unix.EINTR) {
		return false, fmt.Errorf("poll %s: %w", p.path, err)
	}
	if pfd[0].Revents&unix.POLLERR != 0 {
		return false, fmt.Errorf("%s: trigger gone (POLLERR)", p.path)
	}
	return true, nil
}

// PSIPoller is the fallback where triggers are refused: every Interval it
// reads the pressure file's cumulative stall (total=) for Spec.Kind and
// fires when the stall accumulated since the last reading, scaled to
// Spec.Window, reaches Spec.Stall. It reads no more than one file per tick
// and allocates nothing.
type PSIPoller struct {
	path     string
	spec     PSISpec
	interval time.Duration
	timer    int
	file     int
	last     uint64
	have     bool
	tbuf     [8]byte
	buf      [256]byte
}

// NewPSIPoller returns a PSIPoller reading path every interval.
func NewPSIPoller(path string, spec PSISpec, interval time.Duration) (*PSIPoller, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("psi poller: open %s: %w", path, err)
	}
	t, err := NewTicker(interval)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	p := &PSIPoller{path: path, spec: spec, interval: interval, timer: t.fd, file: fd}
	if _, err := p.sample(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Name implements Source.
func (p *PSIPoller) Name() string {
	return "psi-poll " + p.path + " " + p.spec.String() + " every " + p.interval.String()
}

// Close implements Source.
func (p *PSIPoller) Close() error {
	closeFD(&p.timer)
	return closeFD(&p.file)
}

func (p *PSIPoller) pollFD() (int, uint32) { return p.timer, unix.EPOLLIN }

func (p *PSIPoller) ready() (bool, error) {
	if ok, err := drainCounter(p.timer, p.tbuf[:]); !ok || err != nil {
		return false, err
	}
	return p.sample()
}

// sample reads the total and reports whether the stall since the previous
// sample, over the interval, reaches the spec's stall-per-window ratio.
func (p *PSIPoller) sample() (bool, error) {
	n, err := unix.Pread(p.file, p.buf[:], 0)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", p.path, err)
	}
	total, err := parsePSITotal(p.buf[:n], p.spec.Kind)
	if err != nil {
		return false, fmt.Errorf("parse %s: %w", p.path, err)
	}
	prev, had := p.last, p.have
	p.last, p.have = total, true
	if !had || total < prev {
		return false, nil
	}
	// stall/interval >= Stall/Window, in integer microseconds.
	delta := total - prev
	return delta*uint64(p.spec.Window.Microseconds()) >= uint64(p.spec.Stall.Microseconds())*uint64(p.interval.Microseconds()), nil
}

// parsePSITotal returns total= of the line starting with kind in a pressure
// file ("some avg10=0.00 avg60=0.00 avg300=0.00 total=123").
func parsePSITotal(b []byte, kind string) (uint64, error) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if !bytes.HasPrefix(line, []byte(kind)) || len(line) <= len(kind) || line[len(kind)] != ' ' {
			continue
		}
		i := bytes.Index(line, []byte("total="))
		if i < 0 {
			return 0, fmt.Errorf("%q line has no total=", kind)
		}
		v := line[i+len("total="):]
		if j := bytes.IndexByte(v, ' '); j >= 0 {
			v = v[:j]
		}
		var n uint64
		if len(v) == 0 {
			return 0, fmt.Errorf("%q line: empty total=", kind)
		}
		for _, c := range v {
			if c < '0' || c > '9' || n > (1<<64-1)/10-9 {
				return 0, fmt.Errorf("%q line: bad total=%q", kind, v)
			}
			n = n*10 + uint64(c-'0')
		}
		return n, nil
	}
	return 0, fmt.Errorf("no %q line", kind)
}

// OpenPSI installs a PSI trigger on path and, if the kernel refuses it,
// falls back to a PSIPoller at pollInterval, logging why. The returned
// Source is a *PSITrigger or a *PSIPoller.
func OpenPSI(path string, spec PSISpec, pollInterval time.Duration, log *slog.Logger) (Source, error) {
	trig, err := OpenPSITrigger(path, spec, log)
	if err == nil {
		return trig, nil
	}
	var refused *TriggerRefusedError
	if !errors.As(err, &refused) {
		return nil, err
	}
	p, perr := NewPSIPoller(path, spec, pollInterval)
	if perr != nil {
		return nil, fmt.Errorf("%w; polling fallback failed too: %w", err, perr)
	}
	if log != nil {
		log.Warn("psi trigger refused; polling the pressure file instead", "path", path, "spec", spec.String(),
			"interval", pollInterval.String(), "err", err.Error())
	}
	return p, nil
}
