package memlock

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/sys"
)

// regs is the tracee's register file as PTRACE_GETREGS returns it.
type regs = unix.PtraceRegs

// syscallInsn is the amd64 `syscall` instruction, little-endian in the low
// bytes of a word.
const (
	syscallInsn     = 0x050f
	syscallInsnMask = 0xffff
)

func getRegs(pid int, r *regs) error {
	if err := unix.PtraceGetRegs(pid, r); err != nil {
		return fmt.Errorf("ptrace(PTRACE_GETREGS, %d): %w", pid, err)
	}
	return nil
}

func setRegs(pid int, r *regs) error {
	if err := unix.PtraceSetRegs(pid, r); err != nil {
		return fmt.Errorf("ptrace(PTRACE_SETREGS, %d): %w", pid, err)
	}
	return nil
}

func pc(r *regs) uintptr { return uintptr(r.Rip) }

// setupSyscall points r at a syscall instruction at addr that will call
// system call nr with up to three arguments. orig_rax is set to -1 so that the
// kernel's syscall-restart logic leaves the injected context alone.
func setupSyscall(r *regs, addr uintptr, nr uintptr, args syscallArgs) {
	r.Rip = uint64(addr)
	r.Rax = uint64(nr)
	r.Orig_rax = ^uint64(0)
	r.Rdi, r.Rsi, r.Rdx = uint64(args[0]), uint64(args[1]), uint64(args[2])
}

// trapCode returns one word of code that makes system call nr and then
// traps: "mov eax, nr; syscall; int3". It is immune to the value execve
// leaves in rax, so it can be planted at a PTRACE_EVENT_EXEC stop, and needs
// a single stop (the int3) instead of syscall-entry and -exit stops.
func trapCode(nr uintptr) (uint64, bool) {
	return 0xcc050f00000000b8 | uint64(uint32(nr))<<8, true
}

// trapLen is the length of trapCode: the pc after its int3.
const trapLen = 8

// setupTrap points r at trapCode planted at addr, with up to three
// arguments.
func setupTrap(r *regs, addr uintptr, args syscallArgs) {
	r.Rip = uint64(addr)
	r.Orig_rax = ^uint64(0)
	r.Rdi, r.Rsi, r.Rdx = uint64(args[0]), uint64(args[1]), uint64(args[2])
}

// sp returns the stack pointer.
func sp(r *regs) uintptr { return uintptr(r.Rsp) }

// setExecReturn makes r hold execve's successful return value.
func setExecReturn(r *regs) { r.Rax = 0 }

// syscallResult returns the injected call's return value (-errno on error).
func syscallResult(r *regs) int64 { return int64(r.Rax) }

// cloneFlags returns the clone flags of the fork, vfork, clone or clone3
// call a tracee is stopped in (at its PTRACE_EVENT_FORK/VFORK/CLONE stop).
func cloneFlags(pid int) (uint64, error) {
	var r regs
	if err := getRegs(pid, &r); err != nil {
		return 0, err
	}
	switch r.Orig_rax {
	case unix.SYS_FORK:
		return uint64(unix.SIGCHLD), nil
	case unix.SYS_VFORK:
		return unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD), nil
	case unix.SYS_CLONE:
		return r.Rdi, nil
	case unix.SYS_CLONE3:
		// struct clone_args starts with the u64 flags.
		return sys.PtracePeekData(pid, uintptr(r.Rdi))
	}
	return 0, fmt.Errorf("pid %d: stopped in syscall %d, not a fork", pid, int64(r.Orig_rax))
}

// The system calls the notifier's seccomp filter watches, as seccomp sees
// them on this architecture.
const (
	auditArch  = unix.AUDIT_ARCH_X86_64
	nrExecve   = unix.SYS_EXECVE
	nrExecveat = unix.SYS_EXECVEAT
	nrFork     = unix.SYS_FORK
	nrClone    = unix.SYS_CLONE
	nrClone3   = unix.SYS_CLONE3
	// notifierArch: the notifier can run here (it needs trapCode).
	notifierArch = true
)

// entryGadget is "mov eax, SYS_MLOCKALL; syscall; ret", planted in unused
// bytes of a new image's vDSO (see lockAtEntry). The mov is needed because
// execve's return value overwrites rax when the exec stop is left.
const entryGadget uint64 = 0xc3050f00000000b8 | uint64(unix.SYS_MLOCKALL)<<8

// entryGadgetArch: lockAtEntry can run here.
const entryGadgetArch = true

// setupEntryCall makes r, stopped at a new image's first instruction, call
// the gadget at addr with arg0 and return to the entry point: the entry
// point is pushed (the caller writes ret at slot) and the stack pointer is
// back where it was once the gadget returns. At a program's entry only rsp
// and rdx carry meaning (rdx, the atexit hook, is untouched); rax, rcx, rdi
// and r11 are left as the call leaves them.
func setupEntryCall(r *regs, addr uintptr, arg0 uintptr) (slot uintptr, ret uint64) {
	ret = r.Rip
	r.Rsp -= 8
	r.Rip = uint64(addr)
	r.Rdi = uint64(arg0)
	return uintptr(r.Rsp), ret
}
