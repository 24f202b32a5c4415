package memlock

// arm64 support: compiled and vetted, but not run on a real arm64 kernel yet.

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/sys"
)

// regs is the tracee's register file as PTRACE_GETREGSET(NT_PRSTATUS)
// returns it.
type regs = unix.PtraceRegs

// syscallInsn is the arm64 `svc #0` instruction, little-endian in the low
// four bytes of a word.
const (
	syscallInsn     = 0xd4000001
	syscallInsnMask = 0xffffffff
)

func getRegs(pid int, r *regs) error {
	if err := unix.PtraceGetRegs(pid, r); err != nil {
		return fmt.Errorf("ptrace(PTRACE_GETREGSET, %d): %w", pid, err)
	}
	return nil
}

func setRegs(pid int, r *regs) error {
	if err := unix.PtraceSetRegs(pid, r); err != nil {
		return fmt.Errorf("ptrace(PTRACE_SETREGSET, %d): %w", pid, err)
	}
	return nil
}

func pc(r *regs) uintptr { return uintptr(r.Pc) }

// setupSyscall points r at an svc instruction at addr that will call system
// call nr (x8) with up to three arguments (x0 to x2). The injection points (a new image's
// first instruction, a new child's return from fork) hold no restartable
// syscall result, so the kernel's restart logic leaves the context alone.
func setupSyscall(r *regs, addr uintptr, nr uintptr, args syscallArgs) {
	r.Pc = uint64(addr)
	r.Regs[8] = uint64(nr)
	r.Regs[0], r.Regs[1], r.Regs[2] = uint64(args[0]), uint64(args[1]), uint64(args[2])
}

// trapCode: arm64 uses the syscall-stop injection only.
func trapCode(nr uintptr) (uint64, bool) { return 0, false }

const trapLen = 0

func setupTrap(r *regs, addr uintptr, args syscallArgs) {}

// sp returns the stack pointer.
func sp(r *regs) uintptr { return uintptr(r.Sp) }

func setExecReturn(r *regs) { r.Regs[0] = 0 }

// syscallResult returns the injected call's return value (-errno on error).
func syscallResult(r *regs) int64 { return int64(r.Regs[0]) }

// cloneFlags returns the clone flags of the clone or clone3 call a tracee is
// stopped in (at its PTRACE_EVENT_FORK/VFORK/CLONE stop); x0 still holds the
// first argument there.
func cloneFlags(pid int) (uint64, error) {
	var r regs
	if err := getRegs(pid, &r); err != nil {
		return 0, err
	}
	switch r.Regs[8] {
	case unix.SYS_CLONE:
		return r.Regs[0], nil
	case unix.SYS_CLONE3:
		return sys.PtracePeekData(pid, uintptr(r.Regs[0]))
	}
	return 0, fmt.Errorf("pid %d: stopped in syscall %d, not a fork", pid, r.Regs[8])
}

// The system calls the notifier's seccomp filter watches, as seccomp sees
// them on this architecture (which has no fork).
const (
	auditArch  = unix.AUDIT_ARCH_AARCH64
	nrExecve   = unix.SYS_EXECVE
	nrExecveat = unix.SYS_EXECVEAT
	nrFork     = 1<<32 - 1
	nrClone    = unix.SYS_CLONE
	nrClone3   = unix.SYS_CLONE3
	// notifierArch: the notifier needs trapCode, which arm64 lacks; the
	// full ptrace engine runs instead.
	notifierArch = false
)

const (
	entryGadget     uint64 = 0
	entryGadgetArch        = false
)

func setupEntryCall(r *regs, addr uintptr, arg0 uintptr) (slot uintptr, ret uint64) { return 0, 0 }
