package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxProcs caps the daemon's GOMAXPROCS.
const maxProcs = 4

// protectSelf makes the daemon hard to starve or kill: it locks its memory
// (on fault, so Go's large reservations do not become resident), asks the
// kernel never to OOM-kill it, and raises its CPU priority. Each step that
// lacks a privilege is logged with the knob that fixes it; none is fatal,
// because a daemon that runs unprotected still beats no daemon.
func protectSelf(log *slog.Logger, procRoot string) {
	// The runtime must not let the heap balloon while the machine is short of
	// memory: collect more eagerly above a modest soft limit.
	debug.SetMemoryLimit(32 << 20)
	// Fix GOMAXPROCS (at most maxProcs: the daemon's work is a few serial
	// loops). Setting it also stops the runtime from re-reading the CPU
	// affinity and cgroup CPU limit every second, which is most of what an
	// idle daemon would otherwise spend.
	runtime.GOMAXPROCS(min(runtime.GOMAXPROCS(0), maxProcs))

	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		if errors.Is(err, unix.EINVAL) {
			err = unix.Mlockall(unix.MCL_CURRENT)
		}
		if err != nil {
			log.Warn("self-protection: cannot lock memory; the daemon may be paged out under pressure",
				"err", err, "fix", "run as root or with CAP_IPC_LOCK, or raise RLIMIT_MEMLOCK (LimitMEMLOCK=infinity)")
		}
	}
	if err := writeOOMScoreAdj(procRoot, os.Getpid(), -1000); err != nil {
		log.Warn("self-protection: cannot set own oom_score_adj to -1000; the kernel OOM killer may pick oomguard",
			"err", err, "fix", "grant CAP_SYS_RESOURCE (the unit sets OOMScoreAdjust=-1000)")
	}
	// setpriority(PRIO_PROCESS) renices one thread on Linux: renice every
	// thread the runtime has started; threads it starts later inherit the
	// value from the thread that creates them.
	tasks, _ := os.ReadDir(fmt.Sprintf("%s/%d/task", procRoot, os.Getpid()))
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		// getpriority(2) returns 20 - nice. A thread already at -10 or
		// better (the unit's Nice=-20) keeps its value.
		if p, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil && 20-p <= -10 {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, -10); err != nil {
			log.Debug("self-protection: cannot raise CPU priority", "tid", tid, "err", err)
			break
		}
	}
}

func writeOOMScoreAdj(procRoot string, pid, adj int) error {
	path := fmt.Sprintf("%s/%d/oom_score_adj", procRoot, pid)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%d", adj); err != nil {
		if errors.Is(err, unix.EACCES) && adj < 0 {
			return fmt.Errorf("write %d to %s: %w (lowering oom_score_adj needs CAP_SYS_RESOURCE)", adj, path, err)
		}
		return fmt.Errorf("write %d to %s: %w", adj, path, err)
	}
	return nil
}
