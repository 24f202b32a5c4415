package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/sys"
)

// batchAbove is the victim size up to which Kill opens a pidfd for every
// member without checking its descriptor budget.
const batchAbove = 256

// fdReserve is how many descriptors a kill leaves free for everything else
// the process does meanwhile (reading /proc, its sockets and files).
const fdReserve = 128

// minBatch is the smallest batch killInBatches works in, whatever the
// budget says.
const minBatch = 16

// procPoll is how often killInBatches checks, through /proc, which members
// have exited.
const procPoll = 20 * time.Millisecond

// fdBudget returns how many more descriptors this process may open and
// still leave fdReserve free: the soft RLIMIT_NOFILE less the descriptors
// open now.
func fdBudget() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return int(min(lim.Cur, 1<<30)) - len(open) - fdReserve
}

// killInBatches is Kill for a victim with more members than descriptors
// left (budget of them): holding a pidfd for each at once, the kill failed
// with EMFILE part way, with some members signalled and others not, which
// frees nothing when they share an mm. It works through the members in
// batches: each batch's pidfds are opened and verified as Kill does, the
// batch is signalled through them, and they are closed again. Every signal
// still goes through a verified pidfd. After a SIGTERM stage the members
// left get SIGKILL through pidfds opened and verified again. One member's
// pidfd stays open for process_mrelease (its address space is the others',
// in an mm group). Exits are watched through /proc (PID and start time),
// and only failed steps are recorded.
func (k *Killer) killInBatches(ctx context.Context, v Victim, budget int) Result {
	r := &run{k: k, v: v, logger: k.log(), quiet: true}
	batch := max(budget, minBatch)
	r.logger.Warn("kill: more members than file descriptors left; signalling them in batches of pidfds",
		"members", len(v.Members), "batch", batch, "reason", v.Reason)
	var reaper *target // the member whose pidfd stays open
	defer func() {
		if reaper != nil {
			reaper.fd.Close()
		}
	}()
	first := unix.SIGKILL
	if k.TermGrace > 0 {
		first = unix.SIGTERM
	}
	// Members that left the victim's address space, judged for all of
	// them before the first signal, by PID (a PID reused since names a
	// process that does not share it either: dropped all the same).
	left := leavers(k.procRoot(), v)
	for i := 0; i < len(v.Members); i += batch {
		part := v.Members[i:min(i+batch, len(v.Members))]
		part = r.dropLeft(part, left)
		if ctx.Err() != nil {
			// Never reached: alive as far as we know, and not signalled.
			for _, m := range part {
				r.res.StillAlive = append(r.res.StillAlive, m.PID)
			}
			continue
		}
		from := len(r.ts)
		r.openMembers(part)
		opened := r.ts[from:]
		r.signalTargets(opened, first)
		for _, t := range opened {
			if reaper == nil && !t.dead {
				reaper = t
				continue
			}
			t.fd.Close()
			t.fd = nil
		}
	}
	if k.TermGrace > 0 && ctx.Err() == nil {
		r.waitByProc(ctx, k.TermGrace, false)
		r.killAgain(batch, reaper)
	}
	if k.Mrelease && reaper != nil && ctx.Err() == nil {
		if k.MreleaseAfter > 0 {
			r.waitByProc(ctx, k.MreleaseAfter, false)
		}
		if !reaper.dead {
			r.mreleaseTargets([]*target{reaper})
		}
	}
	r.waitByProc(ctx, k.deadline(), true)
	r.noteStillAlive()
	if err := ctx.Err(); err != nil && len(r.res.StillAlive) > 0 {
		r.quiet = false
		r.step(Step{Op: OpTimeout, Err: err, Note: strconv.Itoa(len(r.res.StillAlive)) + " members left alive, some never signalled: cancelled"})
		r.fail(errors.New("kill: " + strconv.Itoa(len(r.res.StillAlive)) + " members still alive: " + err.Error()))
	}
	r.logger.Info("kill: batches done", "members", len(v.Members), "signalled", len(r.res.Signalled),
		"killed", len(r.res.Killed), "gone", len(r.res.Gone), "mismatched", len(r.res.Mismatched),
		"still_alive", len(r.res.StillAlive), "released", r.res.Released, "reason", v.Reason)
	return r.res
}

// leavers returns the members of v that kcmp says do not share the
// address space of v.SameMM; none when SameMM is 0, or has exited (kcmp
// would compare against the empty address space of an exited process). A
// member whose check fails (kcmp refused, or it exited) is kept. A process
// whose leader exited before its other threads is compared through one of
// those (mmTask): its leader's own address space is empty too.
func leavers(procRoot string, v Victim) map[int]bool {
	if v.SameMM == 0 {
		return nil
	}
	// An exited process has no address space to compare with.
	ref, err := sys.PidfdOpen(v.SameMM)
	if err != nil {
		return nil
	}
	defer ref.Close()
	if exited, err := ref.Exited(); err != nil || exited {
		return nil
	}
	var left map[int]bool
	through := mmTask(procRoot, v.SameMM)
	for _, m := range v.Members {
		if m.PID == v.SameMM {
			continue
		}
		same, err := sys.SameMM(through, m.PID)
		if err == nil && !same {
			if t := mmTask(procRoot, m.PID); t != m.PID {
				same, err = sys.SameMM(through, t)
			}
		}
		if err == nil && !same {
			if left == nil {
				left = map[int]bool{}
			}
			left[m.PID] = true
		}
	}
	return left
}

// killAgain sends SIGKILL to the members still alive after the SIGTERM
// stage, batch at a time, through pidfds opened and verified again: in the
// meantime a member may have exited and its PID been reused.
func (r *run) killAgain(batch int, keep *target) {
	var todo []*target
	for _, t := range r.ts {
		if !t.dead {
			todo = append(todo, t)
		}
	}
	for i := 0; i < len(todo); i += batch {
		part := todo[i:min(i+batch, len(todo))]
		for _, t := range part {
			if t.fd != nil {
				continue
			}
			fd, err := openVerified(r.k.procRoot(), t.m)
			switch {
			case errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) || errors.Is(err, errReused):
				// Gone, or its PID names another process now: it exited
				// after our SIGTERM reached it.
				t.dead = true
				r.res.Killed = append(r.res.Killed, t.m.PID)
				continue
			case err != nil:
				// Alive as far as we know, and not signalled again.
				r.step(Step{Op: OpDrop, PID: t.m.PID, Err: err, Note: "cannot open or verify a pidfd for SIGKILL"})
				r.fail(err)
				continue
			}
			t.fd = fd
		}
		r.signalTargets(part, unix.SIGKILL)
		for _, t := range part {
			if t != keep && t.fd != nil {
				t.fd.Close()
				t.fd = nil
			}
		}
	}
}

// waitByProc waits up to d (or until ctx ends) for the targets not known
// dead to exit, watching /proc: a member has exited when its PID is gone,
// a zombie, or names a process with another start time. final records
// those left as timed out.
func (r *run) waitByProc(ctx context.Context, d time.Duration, final bool) {
	deadline := time.Now().Add(d)
	for {
		left := 0
		for _, t := range r.ts {
			if t.dead {
				continue
			}
			if exitedByProc(r.k.procRoot(), t.m) {
				t.dead = true
				r.res.Killed = append(r.res.Killed, t.m.PID)
				continue
			}
			left++
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if final {
				// The first few by name, then how many more.
				r.quiet = false
				shown := 0
				for _, t := range r.ts {
					if !t.dead && shown < 10 {
						shown++
						r.step(Step{Op: OpTimeout, PID: t.m.PID, Note: "still alive after deadline " + d.String()})
					}
				}
				if left > shown {
					r.step(Step{Op: OpTimeout, Note: strconv.Itoa(left-shown) + " more members still alive after deadline " + d.String()})
				}
				r.quiet = true
			}
			return
		}
		time.Sleep(min(procPoll, time.Until(deadline)))
	}
}

// errReused says a PID names another process than the member it was.
var errReused = errors.New("pid reused")

// openVerified opens a pidfd on m's PID and checks, while it pins the
// process, that the process still has m's start time.
func openVerified(procRoot string, m Member) (*sys.PidFD, error) {
	fd, err := sys.PidfdOpen(m.PID)
	if err != nil {
		return nil, err
	}
	if m.StartTime != 0 {
		st, err := ReadStartTime(procRoot, m.PID)
		if err != nil || st != m.StartTime {
			fd.Close()
			if err == nil {
				err = fmt.Errorf("pid %d: %w (start time %d, the member's was %d)", m.PID, errReused, st, m.StartTime)
			}
			return nil, err
		}
	}
	return fd, nil
}

// exitedByProc reports whether member m has exited, as /proc/PID/stat
// tells: no such process, a zombie (or dead) one, or another start time
// (the PID was reused). A leader that exited before its other threads is
// not: its process runs on (leaderExited).
func exitedByProc(procRoot string, m Member) bool {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(m.PID) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	if state := b[i+2]; state == 'Z' && !leaderExited(b) || state == 'X' || state == 'x' {
		return true
	}
	st, err := parseStartTime(b)
	return err == nil && m.StartTime != 0 && st != m.StartTime
}
