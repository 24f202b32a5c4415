package testbed

import (
	"testing"

	"github.com/oomguard/oomguard/internal/sys"
)

// Pin opens a pidfd on pid, which the caller knows to be alive now (it was
// just started, or it just reported itself), closes it when the test ends,
// and fails the test if the process has already exited. Later checks ask
// the pidfd, not /proc by PID number: this machine's PID space is small and
// other packages run fork bombs beside the tests, so a reaped process's PID
// can be reused within milliseconds (and a process being reaped can read as
// state X), making a dead process look alive.
func Pin(t testing.TB, pid int, what string) *sys.PidFD {
	t.Helper()
	fd, err := sys.PidfdOpen(pid)
	if err != nil {
		t.Fatalf("pin %s %d, which should be alive now: %v", what, pid, err)
	}
	t.Cleanup(func() { fd.Close() })
	if !Alive(t, fd) {
		t.Fatalf("pin %s %d: already exited", what, pid)
	}
	return fd
}

// Alive reports whether the pinned process has not exited (a zombie has).
func Alive(t testing.TB, p *sys.PidFD) bool {
	t.Helper()
	done, err := p.Exited()
	if err != nil {
		t.Fatalf("is %d alive: %v", p.PID(), err)
	}
	return !done
}
