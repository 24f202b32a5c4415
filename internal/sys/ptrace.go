package sys

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ptrace requests and options that x/sys/unix names but does not wrap with
// the arguments oomguard needs.
const (
	// PtraceEventStop is PTRACE_EVENT_STOP: a group-stop, PTRACE_INTERRUPT or
	// initial auto-attach stop of a seized tracee (status>>16).
	PtraceEventStop = unix.PTRACE_EVENT_STOP
)

func ptrace(request, pid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(request), uintptr(pid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// PtraceSeize calls ptrace(PTRACE_SEIZE, pid, 0, options): it attaches to pid
// without stopping it and sets the PTRACE_O_* options. The calling OS thread
// becomes the tracer; every later request must come from it.
func PtraceSeize(pid int, options int) error {
	if err := ptrace(unix.PTRACE_SEIZE, pid, 0, uintptr(options)); err != nil {
		return fmt.Errorf("ptrace(PTRACE_SEIZE, %d): %w", pid, err)
	}
	return nil
}

// PtraceCont calls ptrace(PTRACE_CONT, pid, 0, sig): it restarts a stopped
// tracee, delivering sig when the stop was a signal-delivery-stop.
func PtraceCont(pid int, sig unix.Signal) error {
	if err := ptrace(unix.PTRACE_CONT, pid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("ptrace(PTRACE_CONT, %d, %d): %w", pid, sig, err)
	}
	return nil
}

// PtraceSyscall calls ptrace(PTRACE_SYSCALL, pid, 0, sig): like PtraceCont,
// but the tracee stops again at the next system-call entry or exit.
func PtraceSyscall(pid int, sig unix.Signal) error {
	if err := ptrace(unix.PTRACE_SYSCALL, pid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("ptrace(PTRACE_SYSCALL, %d, %d): %w", pid, sig, err)
	}
	return nil
}

// PtraceDetach calls ptrace(PTRACE_DETACH, pid, 0, sig): it releases a
// stopped tracee, delivering sig when the stop was a signal-delivery-stop.
func PtraceDetach(pid int, sig unix.Signal) error {
	if err := ptrace(unix.PTRACE_DETACH, pid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("ptrace(PTRACE_DETACH, %d, %d): %w", pid, sig, err)
	}
	return nil
}

// PtraceInterrupt calls ptrace(PTRACE_INTERRUPT, pid, 0, 0): a seized
// tracee stops (PTRACE_EVENT_STOP) on its way back to user mode, unless it
// is detached first, which cancels the stop.
func PtraceInterrupt(pid int) error {
	if err := ptrace(unix.PTRACE_INTERRUPT, pid, 0, 0); err != nil {
		return fmt.Errorf("ptrace(PTRACE_INTERRUPT, %d): %w", pid, err)
	}
	return nil
}

// PtraceListen calls ptrace(PTRACE_LISTEN, pid, 0, 0): a seized tracee in
// group-stop stays stopped, but the tracer is told when SIGCONT or another
// stop signal arrives, so job control keeps working under the tracer.
func PtraceListen(pid int) error {
	if err := ptrace(unix.PTRACE_LISTEN, pid, 0, 0); err != nil {
		return fmt.Errorf("ptrace(PTRACE_LISTEN, %d): %w", pid, err)
	}
	return nil
}

// PtraceGetEventMsg calls ptrace(PTRACE_GETEVENTMSG, pid, 0, &msg): the new
// PID of a fork/vfork/clone event, the former thread ID of an exec event, or
// the exit status of an exit event.
func PtraceGetEventMsg(pid int) (uint64, error) {
	var msg uint64
	if err := ptrace(unix.PTRACE_GETEVENTMSG, pid, 0, uintptr(unsafe.Pointer(&msg))); err != nil {
		return 0, fmt.Errorf("ptrace(PTRACE_GETEVENTMSG, %d): %w", pid, err)
	}
	return msg, nil
}

// PtraceGetSiginfo calls ptrace(PTRACE_GETSIGINFO, pid, 0, &info): the
// siginfo of the signal a tracee in signal-delivery-stop is receiving.
func PtraceGetSiginfo(pid int) (unix.Siginfo, error) {
	var info unix.Siginfo
	if err := ptrace(unix.PTRACE_GETSIGINFO, pid, 0, uintptr(unsafe.Pointer(&info))); err != nil {
		return info, fmt.Errorf("ptrace(PTRACE_GETSIGINFO, %d): %w", pid, err)
	}
	return info, nil
}

// PtracePeekData calls ptrace(PTRACE_PEEKDATA, pid, addr, 0) and returns the
// word at addr in the tracee.
func PtracePeekData(pid int, addr uintptr) (uint64, error) {
	var word uint64
	// The raw syscall stores the word at the address passed as data.
	if err := ptrace(unix.PTRACE_PEEKDATA, pid, addr, uintptr(unsafe.Pointer(&word))); err != nil {
		return 0, fmt.Errorf("ptrace(PTRACE_PEEKDATA, %d, %#x): %w", pid, addr, err)
	}
	return word, nil
}

// PtracePokeData calls ptrace(PTRACE_POKEDATA, pid, addr, word): it writes
// one word into the tracee, even into read-only text (copy-on-write).
func PtracePokeData(pid int, addr uintptr, word uint64) error {
	if err := ptrace(unix.PTRACE_POKEDATA, pid, addr, uintptr(word)); err != nil {
		return fmt.Errorf("ptrace(PTRACE_POKEDATA, %d, %#x): %w", pid, addr, err)
	}
	return nil
}
