// Package action carries out oomguard's decisions on processes (signals
// through pidfds, process_mrelease, oom_score_adj writes) and decides nothing.
package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/sys"
)

// DefaultDeadline is how long Kill waits for death when Killer.Deadline is 0.
const DefaultDeadline = 5 * time.Second

// Member is one process of a victim, named by PID and pinned by start time.
type Member struct {
	// PID is the process (thread-group) ID; pidfd_open refuses the ID of
	// a thread that is not its group's leader.
	PID int
	// StartTime is field 22 of /proc/PID/stat (clock ticks since boot) as
	// observed when the victim was chosen. Kill signals the member only if
	// the process it pins with a pidfd still has this start time, so a
	// reused PID is never hit. 0 means "do not check".
	StartTime uint64
}

// Victim is what the policy chose to kill: normally every process sharing
// one address space (an mm group), which must die together for its memory to
// come back.
type Victim struct {
	// Members are the processes to kill. Order does not matter.
	Members []Member
	// SameMM, when not 0, is the member whose address space the victim
	// is: before signalling, Kill drops every other member that kcmp says
	// no longer shares it. A vfork child, or a CLONE_VM clone, that
	// exec'd since the choice has left the group and is another program
	// now, perhaps a protected one; its death would free nothing of the
	// victim's.
	SameMM int
	// Reason is logged with every step (for example the policy's verdict).
	Reason string
}

// Op names a step of a kill.
type Op string

// The steps Kill records, in the order they normally happen.
const (
	// OpOpen: a pidfd was opened and the member's start time verified.
	OpOpen Op = "open"
	// OpDrop: the member was dropped before any signal, because it was
	// already gone or its PID now names another process.
	OpDrop Op = "drop"
	// OpSignal: a signal was sent through the pidfd (Signal tells which).
	OpSignal Op = "signal"
	// OpMrelease: process_mrelease(2) was called on the member's pidfd.
	OpMrelease Op = "mrelease"
	// OpExit: the member's pidfd reported that it exited.
	OpExit Op = "exit"
	// OpTimeout: a wait ended with the member still alive.
	OpTimeout Op = "timeout"
)

// Step is one recorded action or observation of a kill. Steps are recorded
// in the order they happened.
type Step struct {
	Time   time.Time
	Op     Op
	PID    int
	Signal unix.Signal // for OpSignal
	Err    error       // nil on success
	Note   string      // why, in words
}

// Result reports what Kill did. Every PID of the victim appears in exactly
// one of Killed, Gone, Mismatched and StillAlive.
type Result struct {
	// Killed are members that exited after Kill signalled them.
	Killed []int
	// Gone are members that were already dead before any signal reached them.
	Gone []int
	// Mismatched are members whose PID now names a process with another
	// start time (a reused PID), or a process that has left the victim's
	// address space (see Victim.SameMM); they were never signalled.
	Mismatched []int
	// StillAlive are members that were signalled but had not exited when the
	// deadline passed (frozen or stuck in D state), or when ctx ended; and
	// members never signalled because their pidfd could not be opened or
	// verified, or because ctx ended before Kill reached them.
	StillAlive []int
	// Signalled are members SIGKILL was sent to.
	Signalled []int
	// Termed are members SIGTERM was sent to (Term, or Kill's SIGTERM
	// stage).
	Termed []int
	// Released are members process_mrelease succeeded on.
	Released []int
	// Steps is every step in order, with timestamps.
	Steps []Step
	// Err is the first unexpected failure (a signal refused for a reason
	// other than the process being gone, or ctx ending); nil otherwise.
	Err error
}

// Killer kills victims through pidfds. Its zero value is usable: no SIGTERM
// stage, DefaultDeadline, no process_mrelease, /proc, and a logger that
// discards. A Killer holds no state between calls and is safe for concurrent
// use as long as its fields are not changed.
type Killer struct {
	// Log receives one record per step, with PIDs and reasons. nil discards.
	Log *slog.Logger
	// TermGrace, when positive, makes Kill send SIGTERM first and wait this
	// long for the members to exit before SIGKILL. 0 means SIGKILL at once.
	TermGrace time.Duration
	// Deadline is how long Kill waits for death after SIGKILL. 0 means
	// DefaultDeadline.
	Deadline time.Duration
	// Mrelease makes Kill call process_mrelease(2) on every member, after
	// every member has been sent SIGKILL, so the memory comes back without
	// waiting for the victims' own exit paths.
	Mrelease bool
	// MreleaseAfter, when positive, makes Kill first wait this long after
	// SIGKILL for the members to exit by themselves, and reap only those
	// still alive then: one frozen, stuck in D state or starved of CPU.
	// The kernel's OOM reaper waits too (2 s), to give its victim the
	// chance to exit on its own. A victim that can run frees its memory
	// itself, while process_mrelease does the same work on the caller's
	// thread: on a real-time thread, in a 2-vCPU guest, 60 to 120 ms of a
	// CPU taken from everything else for a 220 MiB victim. 0 reaps at once.
	MreleaseAfter time.Duration
	// ProcRoot is the proc mount to read start times and oom_score_adj
	// from. "" means /proc.
	ProcRoot string
}

func (k *Killer) log() *slog.Logger {
	if k.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return k.Log
}

func (k *Killer) procRoot() string {
	if k.ProcRoot == "" {
		return "/proc"
	}
	return k.ProcRoot
}

type target struct {
	m       Member
	fd      *sys.PidFD
	dead    bool // exited (pidfd readable) or found gone
	reached bool // a signal of ours was delivered
}

type run struct {
	k      *Killer
	v      Victim
	res    Result
	ts     []*target
	logger *slog.Logger
	// quiet records and logs only the steps that failed: a victim of
	// thousands of members would otherwise log several lines for each.
	quiet bool
}

func (r *run) step(s Step) {
	if r.quiet && s.Err == nil {
		return
	}
	s.Time = time.Now()
	r.res.Steps = append(r.res.Steps, s)
	attrs := []any{"op", string(s.Op), "pid", s.PID, "reason", r.v.Reason}
	if s.Op == OpSignal {
		attrs = append(attrs, "signal", unix.SignalName(s.Signal))
	}
	if s.Note != "" {
		attrs = append(attrs, "note", s.Note)
	}
	if s.Err != nil {
		attrs = append(attrs, "err", s.Err.Error())
		r.logger.Warn("kill step", attrs...)
		return
	}
	r.logger.Info("kill step", attrs...)
}

func (r *run) fail(err error) {
	if r.res.Err == nil {
		r.res.Err = err
	}
}

// Kill kills every member of v: it opens a pidfd for every member and
// verifies its start time, optionally sends SIGTERM and waits TermGrace,
// sends SIGKILL to every member still alive, then (with Mrelease) calls
// process_mrelease on each of them still alive after MreleaseAfter, and
// finally waits for death on the pidfds up to Deadline or until ctx ends.
// It never signals a member whose identity it could not verify. Kill does
// not retry: call it again with the StillAlive members to wait once more.
//
// A victim with more members than this process has file descriptors left
// (an mm shared by tens of thousands of clones) is killed in batches
// instead; see killInBatches.
func (k *Killer) Kill(ctx context.Context, v Victim) Result {
	if len(v.Members) > batchAbove {
		if budget := fdBudget(); len(v.Members) > budget {
			return k.killInBatches(ctx, v, budget)
		}
	}
	r := &run{k: k, v: v, logger: k.log()}
	defer func() {
		for _, t := range r.ts {
			t.fd.Close()
		}
	}()
	r.openMembers(r.v.Members)
	r.dropLeavers()
	if k.TermGrace > 0 && r.alive() > 0 {
		r.signalTargets(r.ts, unix.SIGTERM)
		r.wait(ctx, k.TermGrace, false)
		r.dropLeavers()
	}
	if r.alive() > 0 && ctx.Err() == nil {
		r.signalTargets(r.ts, unix.SIGKILL)
		if k.Mrelease {
			if k.MreleaseAfter > 0 {
				r.wait(ctx, k.MreleaseAfter, false)
			}
			r.mreleaseTargets(r.ts)
		}
		r.wait(ctx, k.deadline(), true)
	}
	r.noteStillAlive()
	if err := ctx.Err(); err != nil && len(r.res.StillAlive) > 0 {
		r.fail(fmt.Errorf("kill pids %v: %w", r.res.StillAlive, err))
	}
	return r.res
}

// deadline is how long Kill waits for death after SIGKILL.
func (k *Killer) deadline() time.Duration {
	if k.Deadline <= 0 {
		return DefaultDeadline
	}
	return k.Deadline
}

// noteStillAlive adds the targets not known dead to StillAlive.
func (r *run) noteStillAlive() {
	for _, t := range r.ts {
		if !t.dead {
			r.res.StillAlive = append(r.res.StillAlive, t.m.PID)
		}
	}
}

// openMembers opens and verifies a pidfd for each of ms, and adds a target
// to r.ts for each it pinned. Kill opens every member before any signal.
func (r *run) openMembers(ms []Member) {
	for _, m := range ms {
		fd, err := sys.PidfdOpen(m.PID)
		if err != nil {
			if errors.Is(err, unix.ESRCH) {
				r.res.Gone = append(r.res.Gone, m.PID)
				r.step(Step{Op: OpDrop, PID: m.PID, Note: "no such process"})
				continue
			}
			r.res.StillAlive = append(r.res.StillAlive, m.PID)
			r.step(Step{Op: OpDrop, PID: m.PID, Err: err, Note: "cannot open pidfd; not signalled"})
			r.fail(err)
			continue
		}
		// The pidfd now pins whatever process holds the PID. If that is
		// the member we were told about, /proc/PID/stat shows its start
		// time; if the PID was reused, it shows another one.
		if m.StartTime != 0 {
			st, err := ReadStartTime(r.k.procRoot(), m.PID)
			if err != nil && errors.Is(err, unix.ENOENT) {
				fd.Close()
				r.res.Gone = append(r.res.Gone, m.PID)
				r.step(Step{Op: OpDrop, PID: m.PID, Note: "exited before its identity could be verified"})
				continue
			}
			if err != nil {
				fd.Close()
				r.res.StillAlive = append(r.res.StillAlive, m.PID)
				r.step(Step{Op: OpDrop, PID: m.PID, Err: err, Note: "cannot verify start time; not signalled"})
				r.fail(err)
				continue
			}
			if st != m.StartTime {
				fd.Close()
				r.res.Mismatched = append(r.res.Mismatched, m.PID)
				r.step(Step{Op: OpDrop, PID: m.PID, Note: fmt.Sprintf("pid reused: start time %d, victim's was %d; not signalled", st, m.StartTime)})
				continue
			}
		}
		r.ts = append(r.ts, &target{m: m, fd: fd})
		r.step(Step{Op: OpOpen, PID: m.PID})
	}
}

// dropLeavers drops the targets that no longer share the address space
// of the victim's Victim.SameMM member (see leavers).
func (r *run) dropLeavers() {
	left := leavers(r.k.procRoot(), r.v)
	for _, t := range r.ts {
		if !t.dead && left[t.m.PID] {
			t.dead = true
			r.leftMM(t.m.PID)
		}
	}
}

// dropLeft returns ms without the members in left, which it records as
// having left the victim's address space.
func (r *run) dropLeft(ms []Member, left map[int]bool) []Member {
	if len(left) == 0 {
		return ms
	}
	kept := make([]Member, 0, len(ms))
	for _, m := range ms {
		if left[m.PID] {
			r.leftMM(m.PID)
			continue
		}
		kept = append(kept, m)
	}
	return kept
}

// leftMM records pid as not signalled because it left the address space
// of Victim.SameMM; the step is logged even in quiet mode.
func (r *run) leftMM(pid int) {
	r.res.Mismatched = append(r.res.Mismatched, pid)
	quiet := r.quiet
	r.quiet = false
	r.step(Step{Op: OpDrop, PID: pid, Note: fmt.Sprintf("no longer shares the address space of pid %d (it exec'd since it was chosen); not signalled", r.v.SameMM)})
	r.quiet = quiet
}

func (r *run) alive() int {
	n := 0
	for _, t := range r.ts {
		if !t.dead {
			n++
		}
	}
	return n
}

// signalTargets sends sig through the pidfd of each target of ts that is
// not known dead.
func (r *run) signalTargets(ts []*target, sig unix.Signal) {
	for _, t := range ts {
		if t.dead {
			continue
		}
		err := t.fd.SendSignal(sig)
		switch {
		case err == nil:
			t.reached = true
			switch sig {
			case unix.SIGKILL:
				r.res.Signalled = append(r.res.Signalled, t.m.PID)
			case unix.SIGTERM:
				r.res.Termed = append(r.res.Termed, t.m.PID)
			}
			r.step(Step{Op: OpSignal, PID: t.m.PID, Signal: sig})
		case errors.Is(err, unix.ESRCH):
			// Exited on its own (or from an earlier signal) before this one.
			t.dead = true
			if t.reached {
				r.res.Killed = append(r.res.Killed, t.m.PID)
			} else {
				r.res.Gone = append(r.res.Gone, t.m.PID)
			}
			r.step(Step{Op: OpSignal, PID: t.m.PID, Signal: sig, Err: err, Note: "already exited"})
		default:
			r.step(Step{Op: OpSignal, PID: t.m.PID, Signal: sig, Err: err})
			r.fail(err)
		}
	}
}

// mreleaseTargets calls process_mrelease on each target of ts not known
// dead. It runs only after SIGKILL has gone to every member:
// process_mrelease reaps an address space, and reaping one that a live,
// unsignalled sharer still writes from could corrupt its writes (seed 004).
func (r *run) mreleaseTargets(ts []*target) {
	for _, t := range ts {
		if t.dead {
			continue
		}
		released, err := t.fd.ProcessMrelease()
		switch {
		case err == nil && released:
			r.res.Released = append(r.res.Released, t.m.PID)
			r.step(Step{Op: OpMrelease, PID: t.m.PID})
			continue
		case err == nil:
			r.step(Step{Op: OpMrelease, PID: t.m.PID, Note: "already exited: nothing to release"})
			continue
		}
		note := ""
		if errors.Is(err, unix.EINVAL) {
			note = "kernel refused: not every process sharing the mm is dying"
		}
		r.step(Step{Op: OpMrelease, PID: t.m.PID, Err: err, Note: note})
	}
}

// wait polls every live target's pidfd until all exited, d passed or ctx
// ended. final says whether this is the last wait, whose timeouts are
// recorded; a member that exits during the SIGTERM grace counts as killed.
func (r *run) wait(ctx context.Context, d time.Duration, final bool) {
	deadline := time.Now().Add(d)
	var pfds []unix.PollFd
	var idx []*target
	for {
		pfds, idx = pfds[:0], idx[:0]
		for _, t := range r.ts {
			if !t.dead {
				pfds = append(pfds, unix.PollFd{Fd: int32(t.fd.FD()), Events: unix.POLLIN})
				idx = append(idx, t)
			}
		}
		if len(pfds) == 0 {
			return
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			if final {
				for _, t := range idx {
					note := "still alive after deadline " + d.String()
					if ctx.Err() != nil {
						note = "still alive when waiting was cancelled"
					}
					r.step(Step{Op: OpTimeout, PID: t.m.PID, Note: note})
				}
			}
			return
		}
		ms := int((left + time.Millisecond - 1) / time.Millisecond)
		if ms > 50 {
			ms = 50 // wake up now and then to notice ctx
		}
		n, err := unix.Poll(pfds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			r.fail(fmt.Errorf("poll pidfds %v: %w", r.v.Members, err))
			return
		}
		if n == 0 {
			continue
		}
		for i, p := range pfds {
			if p.Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0 {
				t := idx[i]
				t.dead = true
				r.res.Killed = append(r.res.Killed, t.m.PID)
				r.step(Step{Op: OpExit, PID: t.m.PID})
			}
		}
	}
}

// Term sends SIGTERM to every member of v through pidfds opened and
// verified as Kill does (a reused PID, or a member that has left the
// victim's address space, is not signalled), and returns at once: the
// members it reached are in StillAlive, since they may still be dying.
// What comes next (SIGKILL when the grace is over or the pressure calls
// for it, or nothing when it is relieved) is the caller's to decide: the
// memory loop goes on deciding meanwhile. Members are opened batchAbove at
// a time, so a victim of any size needs few file descriptors.
func (k *Killer) Term(v Victim) Result {
	r := &run{k: k, v: v, logger: k.log(), quiet: len(v.Members) > batchAbove}
	left := leavers(k.procRoot(), v)
	for i := 0; i < len(v.Members); i += batchAbove {
		from := len(r.ts)
		r.openMembers(r.dropLeft(v.Members[i:min(i+batchAbove, len(v.Members))], left))
		r.signalTargets(r.ts[from:], unix.SIGTERM)
		for _, t := range r.ts[from:] {
			t.fd.Close()
			t.fd = nil
		}
	}
	r.noteStillAlive()
	return r.res
}
