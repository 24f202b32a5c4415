package sys

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// RaiseThreads raises every thread of the process to SCHED_FIFO and its
// restore function puts each back to SCHED_OTHER at the nice value it had.
func TestRaiseThreads(t *testing.T) {
	// Threads of our own, each locked by its goroutine, at nice values of
	// their own; the goroutines hold them until the test ends.
	const extra = 3
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	ready.Add(extra)
	done.Add(extra)
	for i := range extra {
		go func() {
			defer done.Done()
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			unix.Setpriority(unix.PRIO_PROCESS, 0, 2+i)
			ready.Done()
			<-release
		}()
	}
	ready.Wait()
	defer done.Wait()
	defer close(release)

	before := map[int]unix.SchedAttr{}
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	for _, tid := range tids {
		if a, err := unix.SchedGetAttr(tid, 0); err == nil {
			before[tid] = *a
		}
	}
	restore, err := RaiseThreads(tids, 1)
	if err != nil {
		t.Skipf("no SCHED_FIFO here: %v", err)
	}
	for tid := range before {
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // a runtime thread that exited
		}
		if a.Policy != unix.SCHED_FIFO || a.Priority != 1 {
			t.Errorf("thread %d: policy %d priority %d after RaiseThreads, want SCHED_FIFO 1", tid, a.Policy, a.Priority)
		}
	}
	restore()
	nices := map[int32]bool{}
	for tid, was := range before {
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue
		}
		if a.Policy != was.Policy || a.Nice != was.Nice {
			t.Errorf("thread %d: policy %d nice %d after restore, want policy %d nice %d", tid, a.Policy, a.Nice, was.Policy, was.Nice)
		}
		nices[a.Nice] = true
	}
	for _, n := range []int32{2, 3, 4} {
		if !nices[n] {
			t.Errorf("no thread at nice %d after restore: the test's own threads lost their nice values (%v)", n, nices)
		}
	}
}
