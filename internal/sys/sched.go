package sys

import (
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
