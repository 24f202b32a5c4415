// Package memlock runs a command as oomguard's lock prefix: with mlockall
// injected into the command (and, as asked, its descendants) at every new
// image and every new child through ptrace, inside a cgroup created for it,
// with an oom_score_adj and a raised RLIMIT_MEMLOCK.
package memlock

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// LockMode says which mlockall(2) flags are injected.
type LockMode int

// The lock modes.
const (
	// LockNone injects nothing.
	LockNone LockMode = iota
	// LockAll injects mlockall(MCL_CURRENT|MCL_FUTURE): every page is faulted
	// in and locked at once, and every later mapping is populated and locked.
	LockAll
	// LockOnFault injects mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT): pages
	// are locked as they are first touched.
	LockOnFault
)

// String returns the mode's name as reports show it.
func (m LockMode) String() string {
	switch m {
	case LockNone:
		return "none"
	case LockAll:
		return "all"
	case LockOnFault:
		return "onfault"
	}
	return fmt.Sprintf("LockMode(%d)", int(m))
}

// Scope says which generations of the command's processes are covered.
type Scope int

// The scopes, as the flags of oomguard run name them.
const (
	// ScopeCommand covers the command itself across its own execs
	// (generation 0). Its children are detached at birth.
	ScopeCommand Scope = iota
	// ScopeInherit also covers the command's direct children across their
	// execs (generation 1), the seed's MCL_INHERIT.
	ScopeInherit
	// ScopeRecursive covers every descendant, the seed's MCL_RECURSIVE.
	ScopeRecursive
)

// String returns the scope's name as reports show it.
func (s Scope) String() string {
	switch s {
	case ScopeCommand:
		return "command"
	case ScopeInherit:
		return "inherit"
	case ScopeRecursive:
		return "recursive"
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// maxGen is the last generation s covers.
func (s Scope) maxGen() int {
	switch s {
	case ScopeInherit:
		return 1
	case ScopeRecursive:
		return math.MaxInt
	}
	return 0
}

// Limits are the cgroup limits of the cgroup created for the command. A
// zero field is not set; when every field is zero no cgroup is created.
type Limits struct {
	// MemoryMax is memory.max (v2) or memory.limit_in_bytes (v1), in bytes.
	MemoryMax uint64
	// MemoryHigh is memory.high (v2) or memory.soft_limit_in_bytes (v1, which
	// has no throttling limit), in bytes.
	MemoryHigh uint64
	// MemoryMin is memory.min (v2 only: v1 has no protection knob, and asking
	// for it there is an error).
	MemoryMin uint64
	// PidsMax is pids.max.
	PidsMax int64
}

func (l Limits) memory() bool { return l.MemoryMax != 0 || l.MemoryHigh != 0 || l.MemoryMin != 0 }

func (l Limits) any() bool { return l.memory() || l.PidsMax != 0 }

// Options configure Run. The zero value runs the command plainly, as a
// transparent wrapper.
type Options struct {
	// Lock selects the injected mlockall flags.
	Lock LockMode
	// Scope selects the generations that are locked (and traced).
	Scope Scope
	// Trace traces the generations Scope covers even when Lock is LockNone:
	// the same ptrace stops, no injection. It exists to measure the cost of
	// tracing alone.
	Trace bool
	// OOMScoreAdj, when not nil, is written to the command's oom_score_adj
	// before its first instruction; descendants inherit it, and the kernel
	// keeps it equal across processes sharing an address space.
	OOMScoreAdj *int
	// Limits are applied through a cgroup created for the command and
	// removed once every process in it is gone.
	Limits Limits
	// Report records each process that ran under the prefix (all
	// generations are traced then) and returns it in Result.Processes.
	Report bool

	// Stdin, Stdout and Stderr are the command's standard streams. An
	// *os.File is passed through as is (so a terminal stays the command's
	// terminal); nil means /dev/null for Stdin and discarding for the others.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Warn receives warnings (a process that could not be locked, a limit
	// that could not be applied). Nil discards them.
	Warn io.Writer

	// ReleaseHelper starts a command that nothing traces (no Lock, Trace
	// or Report) without ptrace: it is the argv of a program that calls
	// ExecWhenReleased with the command's path and argv appended, such as
	// {"/proc/self/exe", "<a hidden subcommand>"}. The command's cgroup,
	// oom_score_adj and RLIMIT_MEMLOCK are applied to that program while
	// it waits, and it then execs the command in the same process. Nil
	// starts the command under PTRACE_TRACEME instead, and then the kernel
	// ignores set-user-ID and set-group-ID bits and file capabilities at
	// its exec unless oomguard is privileged over the result: as another
	// user than root, a setuid program would run without its privileges.
	ReleaseHelper []string

	// Env is the command's environment; nil means oomguard's own.
	Env []string
	// Paths locate the kernel interfaces; the zero value means the real ones.
	Paths Paths
}

// Paths are the roots of the kernel interfaces Run touches. Tests point them
// at fixtures; empty fields mean the real locations.
type Paths struct {
	// Proc is the procfs mount, "/proc" by default.
	Proc string
	// CgroupV1 is the directory holding the v1 hierarchies (memory, pids),
	// "/sys/fs/cgroup" by default.
	CgroupV1 string
	// CgroupV2 is the cgroup v2 mount; by default "/sys/fs/cgroup" when that
	// is a v2 mount, else "/sys/fs/cgroup/unified".
	CgroupV2 string
}

func (p Paths) withDefaults() Paths {
	if p.Proc == "" {
		p.Proc = "/proc"
	}
	if p.CgroupV1 == "" {
		p.CgroupV1 = "/sys/fs/cgroup"
	}
	return p
}

// Result is the outcome of Run.
type Result struct {
	// ExitCode is the command's exit status, or 128+N when signal N killed it.
	ExitCode int
	// Signal is the signal that killed the command, or 0.
	Signal int
	// Processes lists every traced process in order of appearance when
	// Options.Report was set.
	Processes []ProcessReport
	// LockFailures counts the processes into which mlockall was injected
	// and failed (each one is also reported on Options.Warn).
	LockFailures int
	// Engine says how the command was followed: "notifier" (a seccomp
	// filter hands oomguard each exec and fork, and processes are traced
	// only then), "ptrace" (every covered process traced for its whole
	// life), or "none" (started and released at once).
	Engine string
	// LockedAtEntry counts the new images the notifier locked without a
	// stop of their own, through the vDSO gadget (processes with
	// CAP_IPC_LOCK, for which mlockall cannot fail); the others were locked
	// by the checked injection.
	LockedAtEntry int
}

// LockState tells how a process ended up with respect to memory locking.
type LockState int

// The lock states of a reported process.
const (
	// NotLocked: the process is outside the locked generations (or locking
	// was not asked for).
	NotLocked LockState = iota
	// Locked: mlockall succeeded in the process's last image.
	Locked
	// SharedMM: the process shares its parent's address space (vfork child
	// before exec, clone(CLONE_VM)); it is locked exactly when that address
	// space is.
	SharedMM
	// LockFailed: mlockall was injected and returned an error.
	LockFailed
)

// String returns the state as the --report table's LOCKED column shows it.
func (s LockState) String() string {
	switch s {
	case NotLocked:
		return "no"
	case Locked:
		return "yes"
	case SharedMM:
		return "shared"
	case LockFailed:
		return "failed"
	}
	return fmt.Sprintf("LockState(%d)", int(s))
}

// ProcessReport is one process that ran under the prefix.
type ProcessReport struct {
	PID int
	// Command is the process's comm at its last sample (its last image).
	Command string
	// Generation is 0 for the command, 1 for its children, and so on.
	Generation int
	// Lock is the lock state of the process's last image.
	Lock LockState
	// LockErr is the mlockall error when Lock is LockFailed.
	LockErr error
	// Execs counts the execs the process made under the prefix.
	Execs int
	// PeakVmLck and PeakVmRSS are the largest VmLck and VmHWM seen in
	// /proc/PID/status at its exec and exit stops, in bytes.
	PeakVmLck uint64
	PeakVmRSS uint64
}

// errArch says the injection of mlockall is not implemented for this CPU.
var errArch = errors.New("--mlock is implemented for amd64 and arm64 only")

// ErrPtrace wraps every failure to trace the command.
var ErrPtrace = errors.New("ptrace failed")
