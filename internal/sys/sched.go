package sys

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// schedFlagResetOnFork is SCHED_FLAG_RESET_ON_FORK from
// include/uapi/linux/sched.h.
const schedFlagResetOnFork = 0x01

// SetFIFO moves the calling thread to SCHED_FIFO at priority, with
// SCHED_RESET_ON_FORK so that nothing it forks (a hook, a helper) inherits
// the real-time policy. The caller must have locked its goroutine to the
// thread (runtime.LockOSThread), or the policy lands on whichever thread
// the goroutine happens to run on. It needs CAP_SYS_NICE or an
// RLIMIT_RTPRIO of at least priority.
func SetFIFO(priority int) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(priority),
		Flags: schedFlagResetOnFork}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Errorf("sched_setattr(SCHED_FIFO, priority %d) on thread %d: %w (needs CAP_SYS_NICE or RLIMIT_RTPRIO)",
			priority, unix.Gettid(), err)
	}
	return nil
}

// SetNormal moves the calling thread back to SCHED_OTHER at the nice value
// it had (a real-time thread keeps its nice value, which sched_setattr
// would otherwise reset to 0), undoing SetFIFO before the thread is handed
// back to the Go runtime.
func SetNormal() error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr}
	// getpriority(2) returns 20 - nice.
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err == nil {
		attr.Nice = int32(20 - p)
	}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Errorf("sched_setattr(SCHED_OTHER, nice %d) on thread %d: %w", attr.Nice, unix.Gettid(), err)
	}
	return nil
}

// SleepThread sleeps the calling thread for d in nanosleep(2), through the
// runtime's system call path, resuming after signals. A goroutine that
// sleeps on a Go timer, a channel or the network poller is woken by
// another runtime thread, which runs at normal priority: a real-time
// thread locked to its goroutine (see SetFIFO) that sleeps that way waits
// for a normal thread to get a CPU, and a fork bomb's thousands of
// runnable tasks can keep it waiting for seconds. Here the kernel wakes
// the sleeper itself. The cost is that entering the system call may wake
// the runtime's monitor thread, which a sleep in the poller does not.
func SleepThread(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
}

// RaiseThreads moves every thread of tids (this process's, from
// /proc/self/task) that is not real-time already to SCHED_FIFO at priority
// (with SCHED_RESET_ON_FORK), and returns a function that puts each back to
// the policy and nice value it had.
//
// A goroutine locked to a real-time thread (see SetFIFO) still depends on
// the Go scheduler's other threads whenever it is preempted or comes back
// from a long system call: another thread must run the scheduler and hand
// the goroutine back to its own thread. At normal priority, a fork bomb's
// thousands of runnable tasks can keep that thread off the CPU for
// seconds. For a short, critical stretch (a containment), raising every
// thread removes the wait. Threads created meanwhile start at normal
// priority (SCHED_RESET_ON_FORK). Threads that exit meanwhile are skipped.
// The error reports the first thread that could not be raised; the
// threads raised before it are put back before RaiseThreads returns.
func RaiseThreads(tids []int, priority int) (restore func(), err error) {
	type saved struct {
		tid  int
		attr unix.SchedAttr
	}
	var raised []saved
	restore = func() {
		for _, s := range raised {
			attr := s.attr
			attr.Size = unix.SizeofSchedAttr
			unix.SchedSetAttr(s.tid, &attr, 0) // an exited thread needs nothing
		}
	}
	for _, tid := range tids {
		old, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // exited
		}
		if old.Policy == unix.SCHED_FIFO || old.Policy == unix.SCHED_RR {
			continue
		}
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(priority),
			Flags: schedFlagResetOnFork}
		if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			restore()
			return func() {}, fmt.Errorf("sched_setattr(SCHED_FIFO, priority %d) on thread %d: %w (needs CAP_SYS_NICE or RLIMIT_RTPRIO)",
				priority, tid, err)
		}
		raised = append(raised, saved{tid, *old})
	}
	return restore, nil
}

// ThreadIsFIFO reports whether the calling thread runs under SCHED_FIFO.
func ThreadIsFIFO() bool {
	attr, err := unix.SchedGetAttr(0, 0)
	return err == nil && attr.Policy == unix.SCHED_FIFO
}
