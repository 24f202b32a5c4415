// Package policy is oomguard's pure decision core: it turns a Snapshot of
// the machine into decisions (which trigger fired, which victim to kill) and
// does no I/O of any kind.
package policy

import "time"

// Snapshot is everything the policy knows about the machine at one instant.
// Event sources and readers build it; the policy only reads it.
type Snapshot struct {
	// Time is when the snapshot was taken. Policies use it, never a clock.
	Time time.Time
	// Memory is the system-wide /proc/meminfo state.
	Memory Memory
	// Pressure holds system-wide PSI (/proc/pressure/*).
	Pressure Pressures
	// RefaultFile is the cumulative workingset_refault_file counter of
	// /proc/vmstat; -1 if unknown. Scoped snapshots use each scope's own
	// ScopeMemory.RefaultFile instead.
	RefaultFile int64
	// Scopes holds the memory state of each scoped cgroup, in --scope order.
	// It is empty when oomguard runs unscoped.
	Scopes []ScopeMemory
	// Processes are the processes that may be considered, already restricted
	// to the scopes. It is only filled when a decision needs a victim.
	Processes []Process
	// SelfPID is oomguard's own PID, never a victim.
	SelfPID int
	// PageSize is the size of a memory page in bytes; 0 means 4096.
	PageSize uint64
}

// Memory is system-wide memory in bytes, from /proc/meminfo.
type Memory struct {
	Total     uint64
	Available uint64
	SwapTotal uint64
	SwapFree  uint64
}

// Pressure is one PSI line ("some" or "full") of a pressure file.
type Pressure struct {
	Avg10, Avg60, Avg300 float64 // percent of wall time stalled
	Total                uint64  // cumulative stall, microseconds
}

// PressureFile is one pressure file: its "some" and "full" lines. Valid is
// true when the file was read (false: no PSI here, e.g. a v1 cgroup). Full is
// absent (HasFull false) in /proc/pressure/cpu on older kernels.
type PressureFile struct {
	Some, Full Pressure
	Valid      bool
	HasFull    bool
}

// Pressures is the memory, io and cpu pressure of the system or a cgroup.
type Pressures struct {
	Memory, IO, CPU PressureFile
}

// ScopeMemory is the memory state of one scoped cgroup.
type ScopeMemory struct {
	// Path is the cgroup directory.
	Path string
	// Usage is memory.usage_in_bytes (v1) or memory.current (v2).
	Usage uint64
	// Limit is memory.limit_in_bytes (v1) or memory.max (v2); 0 if none.
	Limit uint64
	// High is v2 memory.high; 0 if none or v1.
	High uint64
	// ReclaimableFile is the inactive file cache that reclaim can drop
	// (v1 total_inactive_file, v2 inactive_file).
	ReclaimableFile uint64
	// RefaultFile is the cumulative workingset_refault_file of the cgroup;
	// -1 if unknown.
	RefaultFile int64
	// OOMKills is the kernel's oom_kill counter for the cgroup; -1 if unknown.
	OOMKills int64
	// Pressure is the cgroup's own PSI, where the kernel has it.
	Pressure Pressures
}

// Process is one process (thread group) as the policy sees it.
type Process struct {
	PID  int
	PPID int
	// StartTime is field 22 of /proc/PID/stat (clock ticks since boot). With
	// PID it identifies the process across PID reuse.
	StartTime uint64
	UID       int
	Comm      string
	// Cmdline is /proc/PID/cmdline with NULs turned into spaces.
	Cmdline string
	// CmdlineUnread says the command line could not be read in time (its
	// read blocked on the process's mmap_lock); Cmdline is empty. Until
	// Exe is known, rules that could name the process by it cannot be
	// judged (see Candidate.Unjudged).
	CmdlineUnread bool
	// Exe is the path of the executable, read when the command line has
	// stayed unread for a while (scan.CmdlineHold): the rules judge the
	// process by its comm and by Exe in its place, argv[0] being Exe's
	// base name. Empty otherwise.
	Exe string
	// State is the state letter of /proc/PID/stat (R, S, D, Z, T, X, …).
	State byte
	// RSS is VmRSS in bytes; Swap is VmSwap; PageTables is VmPTE.
	RSS, Swap, PageTables uint64
	// OOMScoreAdj is /proc/PID/oom_score_adj, -1000…1000.
	OOMScoreAdj int
	// Cgroup is the process's cgroup path as written in /proc/PID/cgroup for
	// the hierarchy of its scope (v2, or the v1 memory controller).
	Cgroup string
	// CgroupKernel is this process's share of the kernel memory charged to
	// its cgroup (pipe buffers, dentries, slab), split evenly among the
	// cgroup's processes; 0 in the root cgroup or when unknown. It shows in
	// no RSS, so it is counted in badness separately.
	CgroupKernel uint64
	// KernelThread is true for kernel threads (no mm, PF_KTHREAD).
	KernelThread bool
	// Exiting is true when the process is already dying (PF_EXITING, or
	// state Z or X).
	Exiting bool
	// MMGroup identifies the address space: processes with the same non-zero
	// MMGroup share one mm (checked with kcmp KCMP_VM). Zero means no mm.
	MMGroup int
	// VforkChild is true for a process that shares its parent's mm because
	// it was vforked and has not exec'd yet.
	VforkChild bool
	// MMTask, when not 0, is a live thread of the process through which
	// its memory was read, and through which kcmp must compare its mm: the
	// thread-group leader (PID) exited before the others (pthread_exit in
	// main), and has no mm of its own any more. State, Exiting and UID are
	// that thread's (credentials are per thread, and almost always the
	// same in all of them).
	MMTask int
	// Scope is the index in Snapshot.Scopes of the scope the process was
	// found under. It is ignored when Snapshot.Scopes is empty, so the zero
	// value is right for unscoped and single-scope snapshots.
	Scope int
}

// MMPID is the ID through which p's mm is compared with kcmp(KCMP_VM): its
// MMTask when it has one, else its PID.
func (p *Process) MMPID() int {
	if p.MMTask != 0 {
		return p.MMTask
	}
	return p.PID
}
