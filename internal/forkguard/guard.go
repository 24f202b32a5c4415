// Package forkguard is the daemon's fork-bomb killer: it feeds proc
// connector events into the lineage recorder, runs the fork-bomb detector
// and contains what it finds.
package forkguard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/actionlog"
	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/containment"
	"github.com/oomguard/oomguard/internal/lineage"
	"github.com/oomguard/oomguard/internal/lineage/procscan"
	"github.com/oomguard/oomguard/internal/policy/forkbomb"
	"github.com/oomguard/oomguard/internal/procconn"
	"github.com/oomguard/oomguard/internal/procfs"
	"github.com/oomguard/oomguard/internal/source"
	"github.com/oomguard/oomguard/internal/sys"
)

// Config configures a Guard. The zero value watches the whole machine with
// the documented defaults.
type Config struct {
	// Scopes limits the killer to processes inside these cgroups (v1 pids
	// or freezer cgroups, or v2 cgroups) and their descendants. Empty
	// means every process.
	Scopes []cgroupfs.Cgroup
	// DryRun logs and records what would be done, and does nothing.
	DryRun bool
	// Detector holds the detection thresholds; zero fields take
	// forkbomb.DefaultConfig's values.
	Detector forkbomb.Config
	// Lineage bounds the recorder (record cap, aging interval).
	Lineage lineage.Config
	// RcvBuf is the proc connector's receive buffer; 0 means
	// procconn.DefaultRcvBuf (16 MiB).
	RcvBuf int
	// KernelFilter turns on the kernel-side event filter (Linux 6.6+),
	// which delivers only fork, exec and exit. It is off by default: the
	// kernel numbers every event before filtering, so the events it
	// filters out (uid, sid, comm, ptrace changes of any process on the
	// machine) leave the same sequence gaps as lost ones, and each such
	// gap cost a /proc resynchronisation (measured: 6 in 30 s of starting
	// a process a second while another benchmark ran, against no gap at
	// all without the filter). Without it, a gap is a loss, and the other
	// event types are rare enough to cost nothing.
	KernelFilter bool
	// DetectInterval is the least time between detection passes while
	// processes fork, exec or exit; 0 means 10 ms. Without such events no pass runs
	// (see Guard.nextPass), unless a verdict was deferred.
	DetectInterval time.Duration
	// ResyncHold is how long after a resynchronisation that found the
	// lineage wrong no family is killed (only logged): the lineage is
	// rebuilt from /proc and lost dead ancestors are gone. 0 means 2 s.
	// It holds from the first such resync of an episode of loss, not
	// from each: a bomb that keeps overflowing the proc connector is
	// contained once the hold is over. Resyncs come at most every 50 ms
	// (or ten times the last one's cost, up to 1 s), and no pass judges a
	// lineage that lost events before its resync.
	ResyncHold time.Duration
	// Cooldown is how long a family already reported in dry-run is not
	// reported again, and how long members that a containment sent
	// SIGKILL but did not see die are passed over; 0 means 10 s, the
	// seed's rest time.
	Cooldown time.Duration
	// Priority is the SCHED_FIFO priority of the event thread (which also
	// detects and contains), so that a bomb's thousands of runnable tasks
	// cannot starve it; it is set with SCHED_RESET_ON_FORK so nothing
	// forked inherits it. The rest of the process keeps its policy (making
	// every thread real-time was tried: anything the process then forks,
	// such as a test's workloads, inherits it, and a real-time fork loop
	// stalls the machine). 0 means 1; negative leaves the thread alone.
	//
	// The thread is real-time all the time, idle included. Running it at
	// normal priority except for 2 s after a take that looked like a
	// bomb's was tried (2026-11-27): a program starting beside the daemon
	// waited less for it (in a 2-vCPU guest, a probe's first iteration
	// 18.7 ms median against 22.7), but the bombs' first takes, at normal
	// priority and paced by the poller's alarm, waited behind the bomb:
	// time to containment went from 31 ms to 957 ms for the bash bomb and
	// from 288 ms to 4.4 s for the C fork() loop (bench/forkbomb, 10 runs
	// each, on the shared 2-CPU host).
	Priority int
	// ProcRoot is the proc filesystem, "/proc".
	ProcRoot string
	// NoFreeze makes containment use SIGSTOP even when the family has a
	// cgroup of its own (tests).
	NoFreeze bool
}

// Guard watches process creation and kills fork bombs. Create it with New,
// run it with Run (once); Tree, Stats and the control handler are safe to
// call concurrently with Run.
type Guard struct {
	cfg     Config
	log     *slog.Logger
	actions *actionlog.Log
	conn    *procconn.Conn
	det     *forkbomb.Detector
	self    int32
	mounts  containment.Mounts

	mu  sync.Mutex // guards rec
	rec *lineage.Recorder

	evs      []procconn.Event
	commBuf  [64]byte
	pathBuf  [64]byte
	verdicts []forkbomb.Verdict
	members  []forkbomb.Member

	monoMinusBoot time.Duration
	changes       int           // lineage events (fork, exec, exit) since the last detection pass
	recheckAt     time.Duration // when a deferred verdict is due again; 0: none (see nextPass)
	lastDetect    time.Duration
	lastCost      time.Duration
	lastGaps      uint64
	lastResync    time.Duration
	resyncCost    time.Duration // how long the last resync took
	lossPending   bool          // events were lost since the last resync
	lastLoss      time.Duration // when events were last seen lost
	lastWrong     time.Duration // when a resync last found the lineage wrong
	holdUntil     time.Duration
	cooldown      map[lineage.Ref]time.Duration
	// dying holds, by PID, the members that a containment has sent
	// SIGKILL, while a goroutine waits for them to die (see contain), and
	// for Cooldown after a wait that left some alive. g.mu guards it.
	dying map[int32]dyingMember
	// reaps counts those goroutines; Run waits for them.
	reaps  sync.WaitGroup
	pgscan uint64
	vmstat *procfs.Reader // kept open; used by the Run goroutine only

	// takeForks, takeExecs and takeOrphans count, in the last take, the
	// forks, the execs and the exits of processes with children on record.
	takeForks, takeExecs, takeOrphans int

	ready            chan struct{}
	resyncs          atomic.Uint64
	wrong            atomic.Uint64
	found            atomic.Uint64
	killed           atomic.Uint64
	takes, calmTakes atomic.Uint64
	maxLag           atomic.Int64
	rt               atomic.Bool
	tid              atomic.Int64
	// cpuBase is the event thread's CPU time when Run took it over, and
	// cpuUsed what Run used of it, set when Run returns: the runtime may
	// have used the thread before, and reuses it after.
	cpuBase, cpuUsed atomic.Int64
	ended            atomic.Bool
}

// Stats counts what a Guard did.
type Stats struct {
	Events   procconn.Stats
	Lineage  lineage.Stats
	Resyncs  uint64 // /proc resynchronisations after lost events
	Wrong    uint64 // resyncs that found the lineage wrong
	Found    uint64 // bomb families detected
	Killed   uint64 // processes killed
	Filtered bool   // kernel-side event filter in use
	// MaxLag is the longest time between an event and its processing.
	MaxLag time.Duration
	// RealTime tells whether the event thread runs at SCHED_FIFO.
	RealTime bool
	// ThreadCPU is the CPU time the event thread used in Run (it also
	// detects and contains), not counting what the runtime ran on that
	// thread before or after.
	ThreadCPU time.Duration
	// Takes counts the event loop's reads of the queued events, and
	// CalmTakes those after which it waited calmDelay (see Run): a busy
	// machine's cost in wake-ups.
	Takes, CalmTakes uint64
}

// New subscribes to the proc connector (so no event after New is missed)
// and returns a Guard ready to Run. It needs CAP_NET_ADMIN. A nil log
// discards; a nil actions log is allowed.
func New(cfg Config, log *slog.Logger, actions *actionlog.Log) (*Guard, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.DetectInterval <= 0 {
		cfg.DetectInterval = 10 * time.Millisecond
	}
	if cfg.ResyncHold <= 0 {
		cfg.ResyncHold = 2 * time.Second
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = 10 * time.Second
	}
	if cfg.Priority == 0 {
		cfg.Priority = 1
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	mounts, err := containment.FindMounts(cfg.ProcRoot + "/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("forkguard: %w", err)
	}
	conn, err := procconn.Open(procconn.Options{RcvBuf: cfg.RcvBuf, NoFilter: !cfg.KernelFilter})
	if err != nil {
		return nil, fmt.Errorf("forkguard: %w", err)
	}
	return &Guard{
		cfg:      cfg,
		log:      log,
		actions:  actions,
		conn:     conn,
		det:      forkbomb.New(cfg.Detector),
		self:     int32(os.Getpid()),
		mounts:   mounts,
		rec:      lineage.New(cfg.Lineage),
		evs:      make([]procconn.Event, 256),
		cooldown: map[lineage.Ref]time.Duration{},
		dying:    map[int32]dyingMember{},
		ready:    make(chan struct{}),
	}, nil
}

// Ready is closed once Run has seeded the lineage from /proc.
func (g *Guard) Ready() <-chan struct{} { return g.ready }

// Stats returns the counters so far.
func (g *Guard) Stats() Stats {
	g.mu.Lock()
	ls := g.rec.Stats()
	g.mu.Unlock()
	return Stats{Events: g.conn.Stats(), Lineage: ls, Resyncs: g.resyncs.Load(), Wrong: g.wrong.Load(),
		Found: g.found.Load(), Killed: g.killed.Load(), Filtered: g.conn.Filtered(),
		MaxLag: time.Duration(g.maxLag.Load()), RealTime: g.rt.Load(), ThreadCPU: g.threadCPU(),
		Takes: g.takes.Load(), CalmTakes: g.calmTakes.Load()}
}

// DetectorConfig returns the effective detection thresholds.
func (g *Guard) DetectorConfig() forkbomb.Config { return g.det.Config() }

// now returns CLOCK_MONOTONIC, the clock of proc connector timestamps.
//
// The clock is read once through clock_gettime(2), and after that through
// Go's own monotonic clock, which is CLOCK_MONOTONIC read through the vDSO:
// x/sys's ClockGettime is a real system call, and one made through package
// syscall wakes Go's monitor thread, which on an idle machine cost every
// lone fork a handful of context switches.
func now() time.Duration { return monoBase + time.Since(timeBase) }

// monoBase is CLOCK_MONOTONIC at timeBase.
var monoBase, timeBase = func() (time.Duration, time.Time) {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano()), time.Now()
}()

func monoMinusBoot() time.Duration {
	var m, b unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &m)
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &b)
	return time.Duration(m.Nano() - b.Nano())
}

// idleAfterEmpty is how many takes in a row must find nothing for the
// event loop to go idle (see Run); coalesceDelay is how long an active
// loop sleeps between takes; hotBatch is how many events one take must
// hold for the loop to treat them as a burst. Waking once per event would cost a busy machine's
// legitimate workloads several percent of their wall time (each wake-up
// is a cross-CPU interrupt charged to the forking process, and a thread
// blocked in poll(2) keeps Go's monitor thread polling). The delay adds
// at most coalesceDelay to a detection: a few dozen members of the
// fastest bomb, whose first take already holds a burst. One empty take
// is enough to go idle: a lone process's fork, exec and exit then cost
// two wake-ups, the one its fork causes and one after coalesceDelay.
//
// A trickle (a take of fewer than trickleBatch events that is not the
// first since the loop woke from idle: a machine starting a few hundred
// processes a second, as a build or xargs does) waits trickleDelay
// instead, so that such a machine pays for a wake-up every 20 ms, not
// every 5 ms. A bomb that starts on a quiet machine is taken 5 ms after
// its first event, as before; one that starts during a trickle is seen up
// to trickleDelay − coalesceDelay later, and leaves the trickle within one
// take.
//
// A calm take holds no more forks than execs and no exit of a process with
// children; after calmAfter of them in a row, the loop waits calmDelay.
// That is a shell loop, a build or a job pool: processes that start other
// programs and wait for them. Each wake-up costs such a workload a context
// switch or two in its own time, which on this project's VMs came to
// several percent at 50 a second. A bomb's takes are
// not calm: its members fork copies that never exec (bash and fork()
// bombs, the slow bomb) or exit leaving children (exec chains). One that
// starts during a calm spell is seen up to calmDelay late (the price of
// the spell), and leaves it with its first take. A take that ends between
// a fork and its exec is not calm either; nor is the first take after an
// idle spell. So what a quiet machine starts is still read within
// coalesceDelay or two, names included (the name of a process is read
// from /proc when its exec is taken, and is lost once it has exited).
const (
	idleAfterEmpty = 1
	coalesceDelay  = 5 * time.Millisecond
	trickleDelay   = 20 * time.Millisecond
	calmDelay      = 100 * time.Millisecond
	calmAfter      = 2
	trickleBatch   = 16
	hotBatch       = 64
)

// detectGap is the least time between detection passes while processes
// fork: DetectInterval, or 20 times the last pass's cost, so that passes
// take at most 5 % of the event thread on a machine with many records.
func (g *Guard) detectGap() time.Duration { return max(g.cfg.DetectInterval, 20*g.lastCost) }

// minResyncGap is the least time between two resynchronisations from
// /proc: a bomb that overflows the proc connector loses events at every
// take, and a scan of every process at every take (600 in 7 s with a
// minimal receive buffer) would cost the event thread most of its time.
const minResyncGap = 50 * time.Millisecond

// maxResyncGap bounds resyncGap: no pass judges a lineage that lost
// events before its resync, so the gap delays a containment (a resync of
// a fork() loop's 2,000 members took 600 ms, and ten times that held the
// loop for 6 s after the hold).
const maxResyncGap = time.Second

// resyncGap is the least time between resynchronisations: minResyncGap,
// or ten times the last one's cost, so that they take at most a tenth of
// the event thread on a machine with many processes, up to maxResyncGap.
func (g *Guard) resyncGap() time.Duration {
	return min(max(minResyncGap, 10*g.resyncCost), maxResyncGap)
}

// lossTrail is how long after the last loss seen resyncs go on, a
// resyncGap apart, even when no further loss is seen. The kernel reports
// an overflow once, then drops silently until the receive queue has been
// emptied; a sequence gap shows only when a later event of the same CPU
// comes. A bomb that goes silent at its pids limit sends none: the
// guard, its lineage resynchronised mid-growth, missed half of a fork()
// loop's members for 7 s until some other event came.
const lossTrail = time.Second

// nextResync returns when the next resync from /proc is due, and false
// when none is: resyncGap after the last one, while a loss seen since is
// pending, or while the last one came within lossTrail of the last loss.
func (g *Guard) nextResync() (time.Duration, bool) {
	if !g.lossPending && (g.lastLoss == 0 || g.lastResync-g.lastLoss >= lossTrail) {
		return 0, false
	}
	return g.lastResync + g.resyncGap(), true
}

// nextPass returns when the next detection pass is due, and false when
// none is. A pass is due detectGap after the last one once any process
// has forked, exec'd or exited since (a fork adds a member, an exec makes
// an image young, an exit orphans children), and when a deferred verdict
// (the hold after lost events, a family's cooldown) comes up again.
// Otherwise no pass can find a new bomb: without events the lineage only
// ages, and age makes no family more bomb-like (its young fraction and
// birth rate only fall). A bomb that fills its pids limit and then sits
// there was forking, so a pass ran while it grew; one that was there
// before the guard started is in the seed, whose pass runs at once. So an idle guard sleeps until the
// next event, and costs nothing on an idle machine.
func (g *Guard) nextPass() (time.Duration, bool) {
	switch {
	case g.changes > 0:
		return g.lastDetect + g.detectGap(), true
	case g.recheckAt > 0:
		return g.recheckAt, true
	}
	return 0, false
}

// Run seeds the lineage from /proc, then follows events, detects and
// contains bombs until ctx is done. It closes the proc connector on return.
func (g *Guard) Run(ctx context.Context) error {
	// Last: the waits for killed families to die, called off when Run
	// returns (for an error too), end at once, and each records its action.
	defer g.reaps.Wait()
	ctx, callOff := context.WithCancel(ctx)
	defer callOff()
	defer g.conn.Close()
	defer func() {
		if g.vmstat != nil {
			g.vmstat.CloseSystemFiles()
		}
	}()
	// One OS thread does everything, at real-time priority when allowed.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g.tid.Store(int64(unix.Gettid()))
	g.cpuBase.Store(int64(threadCPU(g.cfg.ProcRoot, g.tid.Load())))
	defer func() {
		g.cpuUsed.Store(int64(g.threadCPU()))
		g.ended.Store(true)
	}()
	if g.cfg.Priority > 0 {
		if err := sys.SetFIFO(g.cfg.Priority); err != nil {
			g.log.Warn("forkguard: cannot raise the event thread to SCHED_FIFO; a bomb may starve it", "err", err)
		} else {
			g.rt.Store(true)
			defer sys.SetNormal()
		}
	}
	g.monoMinusBoot = monoMinusBoot()
	if err := g.resync(true); err != nil {
		return err
	}
	// A collection now, from another goroutine: the first one a process
	// makes starts the runtime's background mark workers and waits for
	// each to run, on threads of normal priority. Made first by this
	// thread in a bomb's containment (which allocates), that wait took
	// 2.4 to 3.3 s on a 2-CPU machine, the bomb's members holding every
	// CPU; once started, the workers stay. On a calm machine this one is
	// over in milliseconds. Not on this thread: with a bomb already
	// running (a guard started late), a whole collection waits on those
	// threads, and the guard was not ready after 10 s.
	go runtime.GC()
	g.pgscan, _ = g.readPgscan()
	close(g.ready)
	g.log.Info("forkguard: watching", "processes", g.rec.LiveCount(), "filter", g.conn.Filtered(),
		"scopes", len(g.cfg.Scopes), "dry_run", g.cfg.DryRun)
	lastTick := now()
	stop := context.AfterFunc(ctx, g.conn.Interrupt)
	defer stop()
	// The loop reads in one of three ways. Idle (the last idleAfterEmpty
	// takes found nothing): park in the network poller until an event or
	// the next detection pass (procconn.Conn.WaitIdle). Active: sleep
	// coalesceDelay (trickleDelay after a take of fewer than trickleBatch
	// events), then take everything queued, so that a busy machine's
	// trickle of forks and execs costs a wake-up every few milliseconds,
	// not one per event. Hot (the last take held a burst of hotBatch
	// events or more: a bomb): take again at once.
	// The active loop sleeps on an Alarm (unlike time.Sleep, it does not
	// wake Go's monitor thread: see source.Alarm), or in the kernel when
	// the thread is real-time and the take was not calm (see pause).
	alarm, err := source.NewAlarm()
	if err != nil {
		g.log.Warn("forkguard: sleeping on Go timers instead", "err", err)
	} else {
		defer alarm.Close()
	}
	hot, trickle, calm := false, false, false
	calmRun := 0            // calm takes in a row
	empty := idleAfterEmpty // takes in a row that found nothing
	busy := 0               // takes in a row that found something
	for ctx.Err() == nil {
		var n int
		var err error
		switch t := now(); {
		case hot:
		case empty < idleAfterEmpty:
			delay := coalesceDelay
			switch {
			case calm:
				delay = calmDelay
			case trickle:
				delay = trickleDelay
			}
			g.pause(ctx, alarm, delay, calm)
		default:
			wait := time.Duration(-1) // until an event
			if due, ok := g.nextPass(); ok {
				wait = max(due-t, time.Millisecond)
			}
			if due, ok := g.nextResync(); ok {
				due = max(due-t, time.Millisecond)
				if wait < 0 || due < wait {
					wait = due
				}
			}
			if _, err := g.conn.WaitIdle(wait); err != nil {
				return fmt.Errorf("forkguard: %w", err)
			}
		}
		if ctx.Err() != nil {
			break
		}
		// Take everything queued, up to a buffer's worth.
		for err == nil && n < len(g.evs) {
			m, e := g.conn.TryRead(g.evs[n:])
			if m == 0 && e == nil {
				break
			}
			n, err = n+m, e
		}
		if n > 0 {
			busy++
		} else {
			busy = 0
		}
		hot, trickle = n >= hotBatch, n < trickleBatch && busy > 1
		if err != nil && !errors.Is(err, procconn.ErrLost) {
			return fmt.Errorf("forkguard: %w", err)
		}
		lost := errors.Is(err, procconn.ErrLost)
		g.mu.Lock()
		g.takeForks, g.takeExecs, g.takeOrphans = 0, 0, 0
		g.apply(g.evs[:n], true)
		g.mu.Unlock()
		// A calm take is no burst, however big: a busy build's.
		if busy > 1 && g.takeForks <= g.takeExecs && g.takeOrphans == 0 {
			calmRun++
		} else {
			calmRun = 0
		}
		calm = calmRun >= calmAfter
		hot = hot && calmRun == 0
		g.takes.Add(1)
		if calm {
			g.calmTakes.Add(1)
		}
		t := now()
		if n > 0 || lost {
			empty = 0
		} else {
			empty++
		}
		if n > 0 {
			if lag := int64(t - g.evs[n-1].Time); lag > g.maxLag.Load() {
				g.maxLag.Store(lag)
			}
		}
		if gaps := g.conn.Stats().Gaps; gaps != g.lastGaps {
			g.lastGaps = gaps
			// With the kernel filter, filtered-out events leave gaps too;
			// the resync tells a real loss (lineage wrong) from those.
			if !g.conn.Filtered() || t-g.lastResync > 250*time.Millisecond {
				lost = true
			}
		}
		if lost {
			g.lossPending = true
			g.lastLoss = t
		}
		if due, ok := g.nextResync(); ok && t >= due {
			g.lossPending = false
			if err := g.resync(false); err != nil {
				g.log.Error("forkguard: resync", "err", err)
			}
		}
		if t-lastTick >= time.Second {
			lastTick = t
			pg, _ := g.readPgscan()
			g.mu.Lock()
			g.rec.Tick(t, pg != g.pgscan)
			g.mu.Unlock()
			g.pgscan = pg
		}
		// Detection passes cost O(records) (plus a scope read when a
		// candidate shows up); on a busy machine they are spaced so that
		// they take at most 5% of the thread's time.
		// A lineage that lost events waits for its resync (at most
		// resyncGap) before anything is judged on it.
		if due, ok := g.nextPass(); ok && t >= due && !g.lossPending {
			g.detect(ctx, t)
		}
	}
	return nil
}

// pause sleeps for delay. On the real-time event thread, a pause that is
// not calm sleeps in nanosleep(2): a wake-up through Go's poller (the
// alarm) needs a runtime thread of normal priority to get a CPU first, and
// while a bomb's members held both CPUs of a 2-CPU machine that took 3 to
// 4 s, long enough for a fork() loop to fill its pids limit unseen
// (TestBombsAreContained). A sleep in the kernel is ended by the kernel,
// and the real-time thread preempts the bomb at once. But entering the
// system call wakes the runtime's monitor thread, which then polls every
// 20 µs for a while: a paced shell loop cost the process 560 context
// switches a second that way, against 60 with the alarm. A calm pause (a
// build's or a shell loop's trickle, see calmDelay) is where that would
// add up, and no bomb is running then, so the runtime's threads are idle
// in the poller and wake at once: it sleeps on the alarm (the shell loop
// then cost 100 context switches a second).
func (g *Guard) pause(ctx context.Context, alarm *source.Alarm, delay time.Duration, calm bool) {
	if g.rt.Load() && !calm {
		sys.SleepThread(delay)
		return
	}
	if alarm == nil || alarm.Set(delay) != nil {
		time.Sleep(delay)
		return
	}
	select {
	case <-alarm.C():
	case <-ctx.Done():
	}
}

// apply feeds events to the recorder. g.mu must be held.
func (g *Guard) apply(evs []procconn.Event, readComm bool) {
	for i := range evs {
		e := &evs[i]
		if e.IsThread() {
			continue
		}
		switch e.What {
		case procconn.WhatFork:
			g.rec.Fork(e.ParentTGID, e.TGID, e.Time)
			g.changes++
			g.takeForks++
			// A parent that exec'd and exited before its exec was
			// applied left no name to read; its child, just forked,
			// still carries it.
			if readComm {
				if id, ok := g.rec.Lookup(e.TGID); ok && g.rec.Get(id).CommStale {
					g.rec.SetComm(e.TGID, g.readComm(e.TGID))
				}
			}
		case procconn.WhatExec:
			var comm []byte
			if readComm {
				comm = g.readComm(e.TGID)
			}
			g.rec.Exec(e.TGID, e.Time, comm)
			g.changes++ // a new image is young again
			g.takeExecs++
		case procconn.WhatExit:
			if g.rec.Exit(e.TGID, e.Time) {
				g.takeOrphans++
			}
			g.changes++ // its children become orphans
		}
	}
}

// readComm reads /proc/PID/comm without allocating.
func (g *Guard) readComm(pid int32) []byte {
	p := append(g.pathBuf[:0], g.cfg.ProcRoot...)
	p = append(p, '/')
	p = strconv.AppendInt(p, int64(pid), 10)
	p = append(p, "/comm\x00"...)
	// Raw system calls (a /proc file never blocks): one made through
	// package syscall wakes Go's monitor thread, which costs an idle
	// machine's lone exec several context switches.
	atFDCWD := unix.AT_FDCWD
	fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&p[0])), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&g.commBuf[0])), uintptr(len(g.commBuf)))
	unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	if e != 0 || int(n) <= 0 {
		return nil
	}
	return bytes.TrimRight(g.commBuf[:n], "\n")
}

// drain applies every event already queued on the socket.
func (g *Guard) drain() {
	for {
		n, err := g.conn.TryRead(g.evs)
		if n == 0 && err == nil {
			return
		}
		if n > 0 {
			g.mu.Lock()
			g.apply(g.evs[:n], false)
			g.mu.Unlock()
		}
		if err != nil && !errors.Is(err, procconn.ErrLost) {
			return
		}
	}
}

// resync reconciles the lineage with a /proc scan. After the first (the
// seed), a scan that disagrees with the lineage starts the hold time.
func (g *Guard) resync(seed bool) error {
	t := now()
	g.lastResync = t
	procs, err := procscan.Scan(g.cfg.ProcRoot, g.monoMinusBoot)
	if err != nil {
		return fmt.Errorf("forkguard: %w", err)
	}
	g.mu.Lock()
	diff := g.rec.Reconcile(procs, t)
	g.mu.Unlock()
	g.resyncCost = now() - t
	// Events that raced the scan come after it: a fork already seen by
	// the scan is merged, and parents are known by now.
	g.drain()
	if seed {
		g.recheck(t) // a bomb already running is caught by the first pass
		return nil
	}
	g.resyncs.Add(1)
	if diff > 0 {
		g.recheck(t)
		g.wrong.Add(1)
		// The hold covers the start of an episode of loss, and is not
		// renewed while the loss goes on: a bomb that overflows the proc
		// connector at every take would otherwise be held forever (a
		// bash bomb with a minimal receive buffer was, 23 resyncs in 25
		// s, all wrong). An episode ends after ResyncHold without a
		// wrong resync, beyond the least time between two resyncs.
		episode := g.lastWrong == 0 || t-g.lastWrong > g.cfg.ResyncHold+g.resyncGap()
		g.lastWrong = t
		if episode {
			g.holdUntil = t + g.cfg.ResyncHold
			g.log.Warn("forkguard: events were lost; lineage resynchronised from /proc", "corrected", diff,
				"hold", g.cfg.ResyncHold)
		} else {
			g.log.Debug("forkguard: events still lost; lineage resynchronised from /proc", "corrected", diff)
		}
	}
	return nil
}

// scopeSet returns the PIDs inside the configured scopes, nil when unscoped.
func (g *Guard) scopeSet() (*forkbomb.PIDSet, error) {
	if len(g.cfg.Scopes) == 0 {
		return nil, nil
	}
	var all []int
	for _, sc := range g.cfg.Scopes {
		pids, err := sc.ProcsBelow()
		all = append(all, pids...)
		if err != nil {
			return nil, fmt.Errorf("forkguard: read scope %s: %w", sc.Path, err)
		}
	}
	return forkbomb.NewPIDSet(all), nil
}

func (g *Guard) detect(ctx context.Context, t time.Duration) {
	g.lastDetect = t
	g.changes = 0
	g.recheckAt = 0
	g.mu.Lock()
	g.verdicts = g.det.Detect(forkbomb.Input{Lineage: g.rec, Now: t, Self: g.self}, g.verdicts[:0])
	g.mu.Unlock()
	if due := g.det.Recheck(); due > 0 {
		// A family of copies waits only for its newest to come of age.
		g.recheck(due)
	}
	if len(g.verdicts) == 0 {
		g.lastCost = now() - t
		return
	}
	scope, err := g.scopeSet()
	if err != nil {
		g.log.Error("forkguard: scope", "err", err)
		g.recheck(t + time.Second)
		return
	}
	if scope != nil {
		g.mu.Lock()
		g.verdicts = g.det.Detect(forkbomb.Input{Lineage: g.rec, Now: t, Self: g.self, Scope: scope}, g.verdicts[:0])
		g.mu.Unlock()
	}
	g.lastCost = now() - t // detection only, not containment
	for k, until := range g.cooldown {
		if t > until {
			delete(g.cooldown, k)
		}
	}
	g.mu.Lock()
	for pid, d := range g.dying {
		if d.until != 0 && t > d.until {
			delete(g.dying, pid)
		}
	}
	g.mu.Unlock()
	for _, v := range g.verdicts {
		if until, ok := g.cooldown[v.RootRef]; ok {
			g.recheck(until)
			continue
		}
		if g.dyingFamily(v, scope, t) {
			continue
		}
		if t < g.holdUntil {
			g.recheck(g.holdUntil)
			g.log.Warn("forkguard: bomb-like family found during the hold after lost events; not acting yet",
				"root", v.RootPID, "size", v.Live)
			continue
		}
		g.found.Add(1)
		g.contain(ctx, v, scope)
	}
}

// dyingMember is a member sent SIGKILL: its birth time, against PID
// reuse, and when it stops counting as dying (0 while its family's wait
// goes on).
type dyingMember struct {
	born, until time.Duration
}

// dyingRecheck is how often a family being waited for is judged again: its
// members' exits, or the end of the wait, make it no family or a new one.
const dyingRecheck = 250 * time.Millisecond

// dyingFamily reports whether every live member of v was sent SIGKILL by a
// containment whose wait for their deaths goes on (or left them alive less
// than Cooldown ago): the same bomb, already dealt with, which is passed
// over; a member forked since, by a member left alone (a protected one),
// makes it a bomb again. It asks for the pass that will judge it next.
func (g *Guard) dyingFamily(v forkbomb.Verdict, scope *forkbomb.PIDSet, t time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.dying) == 0 {
		return false
	}
	g.members = g.verdictMembers(v, scope)
	next := t + dyingRecheck
	for _, m := range g.members {
		d, ok := g.dying[m.PID]
		if !ok || !containment.SameBirth(d.born, m.Born) {
			return false
		}
		if d.until != 0 {
			next = min(next, d.until)
		}
	}
	if len(g.members) == 0 {
		return false
	}
	g.recheck(next)
	return true
}

// recheck asks for a detection pass at t, or sooner.
func (g *Guard) recheck(t time.Duration) {
	if g.recheckAt == 0 || t < g.recheckAt {
		g.recheckAt = t
	}
}

// boolNumber is 1 for true and 0 for false, for an action's numbers.
func boolNumber(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// contain stops and kills one family and records the action.
func (g *Guard) contain(ctx context.Context, v forkbomb.Verdict, scope *forkbomb.PIDSet) {
	g.mu.Lock()
	root := g.rec.Get(v.Root)
	// The root's process is named by its last image: a wrapper forked by
	// a shell that exec'd timeout is "timeout", not the shell's name.
	named := g.rec.Get(g.rec.LastImage(v.Root))
	rootName := fmt.Sprintf("%s (pid %d)", named.CommString(), v.RootPID)
	// A root that exited (a bomb's first shell, or a launcher that died)
	// is named as such: its PID is no longer the family's, and whatever
	// shares its cgroup now is judged without it.
	rootExited := root.Exited
	if rootExited {
		rootName = fmt.Sprintf("%s (pid %d, exited)", named.CommString(), v.RootPID)
	}
	if named.CommStale {
		rootName = fmt.Sprintf("pid %d (name unknown: it exited before it could be read; last known name %s)",
			v.RootPID, named.CommString())
	}
	if p := g.rec.Get(root.Parent); p != nil {
		g.log.Debug("forkguard: family root's parent", "pid", p.PID, "comm", p.CommString(), "alive", p.Alive,
			"age", now()-p.Born, "scanned", p.Scanned)
	}
	g.mu.Unlock()
	// The burst is what the cloning rule counts: a family silent at its
	// limit shows 0 births/s but the births of its last second on record.
	burst := ""
	if v.Burst > 0 {
		burst = fmt.Sprintf(" (%d within %v before its burst's last birth)", v.Burst, g.det.Config().RateWindow)
	}
	// A bomb whose root died before the guard saw it (see
	// forkbomb.Verdict.Siblings) is named by one line and counts the rest.
	if len(v.Siblings) > 0 {
		rootName += fmt.Sprintf(" and %d sibling lines of its name (their common root is gone)", len(v.Siblings))
	}
	reason := fmt.Sprintf("fork bomb: family of %s has %d live members (%d young, %d orphans, %d dead ancestors), depth %d, %.0f births/s%s, %d replication and %d clone generations",
		rootName, v.Live, v.Young, v.Orphans, v.Dead, v.Depth, v.Rate, burst, v.Generations, v.Clones)
	nums := map[string]float64{
		"size": float64(v.Live), "depth": float64(v.Depth), "rate": v.Rate, "burst": float64(v.Burst), "young": float64(v.Young),
		"orphans": float64(v.Orphans), "dead_ancestors": float64(v.Dead), "root_pid": float64(v.RootPID),
		"root_exited": boolNumber(rootExited),
		"generations": float64(v.Generations), "clones": float64(v.Clones), "sibling_lines": float64(len(v.Siblings)),
	}
	if g.cfg.DryRun {
		g.cooldown[v.RootRef] = now() + g.cfg.Cooldown
		g.recheck(g.cooldown[v.RootRef])
		g.mu.Lock()
		g.members = g.verdictMembers(v, scope)
		g.mu.Unlock()
		pids := make([]int, len(g.members))
		for i, m := range g.members {
			pids[i] = int(m.PID)
		}
		g.log.Warn("forkguard: dry run, would contain", "reason", reason)
		g.record(actionlog.Action{Kind: "contain-forkbomb", Trigger: "forkbomb", Reason: reason, PIDs: pids,
			Numbers: nums, DryRun: true})
		return
	}
	fam := func(out []containment.Target) []containment.Target {
		g.drain()
		sc, err := g.scopeSet()
		if err != nil {
			sc = scope
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		g.members = g.verdictMembers(v, sc)
		for _, m := range g.members {
			// Sent SIGKILL by an earlier containment (of a bomb that
			// refilled the slots its dying members freed): not killed
			// again, nor counted twice.
			if d, ok := g.dying[m.PID]; ok && containment.SameBirth(d.born, m.Born) {
				continue
			}
			out = append(out, containment.Target{PID: m.PID, Born: m.Born})
		}
		return out
	}
	restore := func() {}
	if g.rt.Load() {
		// The containment is 20 to 50 ms of work on this thread, enough to
		// be preempted; getting it back takes another runtime thread,
		// which the bomb would starve (sys.RaiseThreads).
		var dir procfs.DirReader
		tids, err := dir.Tasks(procfs.NewFS(g.cfg.ProcRoot), int(g.self), nil)
		if err == nil {
			restore, err = sys.RaiseThreads(tids, g.cfg.Priority)
		}
		if err != nil {
			g.log.Warn("forkguard: the runtime's other threads stay at normal priority during the containment", "err", err)
		}
	}
	killing := containment.Kill(ctx, fam, containment.Options{
		ProcRoot: g.cfg.ProcRoot, Mounts: g.mounts, Self: int(g.self), MonoMinusBoot: g.monoMinusBoot,
		NoFreeze: g.cfg.NoFreeze,
	})
	restore()
	// The members can take seconds to die (see containment.Options); the
	// wait for that runs on a goroutine of its own, so that this thread
	// goes back to the events at once: a second bomb is seen as soon as it
	// starts, and the connector's buffer does not overflow meanwhile. The
	// killed members stay on record until their exits come in; until
	// then, dyingFamily keeps their family from being contained again.
	targets := killing.Targets(nil)
	g.killed.Add(uint64(len(targets)))
	g.mu.Lock()
	for _, m := range targets {
		g.dying[m.PID] = dyingMember{born: m.Born}
	}
	// Members left alone (protected, or no longer the process on record)
	// are passed over for Cooldown too: on their own they would make the
	// family look new, and be contained again, uselessly, at every pass.
	// (Birth times are compared within containment.SameBirth's tolerance:
	// a member the containment adopted has its birth from /proc.)
	early := killing.Report()
	if skipped := early.Skipped; len(skipped) > 0 {
		born := make(map[int32]time.Duration, len(g.members))
		for _, m := range g.members {
			born[m.PID] = m.Born
		}
		for _, sk := range skipped {
			if b, ok := born[sk.PID]; ok {
				g.dying[sk.PID] = dyingMember{born: b, until: now() + g.cfg.Cooldown}
			}
		}
	}
	g.mu.Unlock()
	if len(targets) > 0 {
		g.log.Info("forkguard: family sent SIGKILL; waiting for its members to die", "root", v.RootPID,
			"killed", len(targets), "method", early.Method)
	}
	g.reaps.Add(1)
	go func() {
		defer g.reaps.Done()
		rep, err := killing.Wait(ctx)
		g.mu.Lock()
		until := time.Duration(0)
		if err != nil {
			until = now() + g.cfg.Cooldown
		}
		for _, m := range targets {
			if d, ok := g.dying[m.PID]; ok && containment.SameBirth(d.born, m.Born) {
				if until == 0 {
					delete(g.dying, m.PID)
				} else {
					g.dying[m.PID] = dyingMember{born: m.Born, until: until}
				}
			}
		}
		g.mu.Unlock()
		g.recordContainment(v, reason, nums, rep, err)
	}()
}

// recordContainment logs and records a containment once its wait is over.
func (g *Guard) recordContainment(v forkbomb.Verdict, reason string, nums map[string]float64, rep containment.Report, err error) {
	if len(rep.PIDs) == 0 && len(rep.Skipped) == 0 && err == nil {
		// Its members had exited by the time it was stopped: their exits
		// were still queued when it was judged (a bomb's remainder, seen
		// while an earlier containment's kills came in). Nothing was done.
		g.log.Debug("forkguard: family gone before it could be contained", "root", v.RootPID, "reason", reason)
		return
	}
	doneMono := now() - time.Since(rep.Done)
	for i, sk := range rep.Skipped {
		if i == 10 {
			g.log.Warn("forkguard: more members skipped", "count", len(rep.Skipped)-i)
			break
		}
		g.log.Warn("forkguard: member not killed", "pid", sk.PID, "reason", sk.Reason)
	}
	nums["size"] = float64(max(v.Live, len(rep.PIDs)))
	nums["killed"] = float64(len(rep.PIDs))
	nums["stop_seconds"] = rep.Stopped.Sub(rep.Start).Seconds()
	nums["kill_seconds"] = rep.Killed.Sub(rep.Stopped).Seconds()
	nums["reap_seconds"] = rep.Done.Sub(rep.Killed).Seconds()
	nums["survivors"] = float64(rep.Survivors)
	nums["rounds"] = float64(rep.Rounds)
	nums["skipped"] = float64(len(rep.Skipped))
	nums["adopted"] = float64(rep.Adopted)
	nums["time_to_contain_seconds"] = (doneMono - v.FirstBorn).Seconds()
	if v.FirstFork < math.MaxInt64 {
		nums["time_from_first_fork_seconds"] = (doneMono - v.FirstFork).Seconds()
	}
	nums["time_to_stop_seconds"] = (now() - time.Since(rep.Stopped) - v.FirstBorn).Seconds()
	// Recorded when the wait ends, the action happened when SIGKILL went
	// out: a later containment's can be recorded first.
	a := actionlog.Action{Time: rep.Killed, Kind: "contain-forkbomb", Trigger: "forkbomb", Reason: reason + " via " + rep.Method,
		Cgroup: rep.Cgroup, Numbers: nums}
	if rep.Unfrozen != "" {
		a.Reason += " (not frozen: " + rep.Unfrozen + ")"
	}
	if rep.Unpinned > 0 {
		a.Reason += fmt.Sprintf(" (%d members held by PID and start time: no file descriptor left for a pidfd, raise RLIMIT_NOFILE)", rep.Unpinned)
		nums["unpinned"] = float64(rep.Unpinned)
	}
	for _, pid := range rep.PIDs {
		a.PIDs = append(a.PIDs, int(pid))
	}
	if err != nil {
		g.log.Error("forkguard: containment incomplete", "err", err, "reason", reason)
		a.Reason += fmt.Sprintf(" (incomplete: %v)", err)
	} else {
		g.log.Warn("forkguard: contained", "reason", reason, "method", rep.Method, "not_frozen", rep.Unfrozen, "killed", len(rep.PIDs),
			"time_to_contain", time.Duration(nums["time_to_contain_seconds"]*float64(time.Second)))
	}
	g.record(a)
}

// verdictMembers lists, into g.members, the live members of v's family
// and of its sibling lines, those whose records still stand (the family
// of a root that exited and left no one is empty). g.mu must be held.
func (g *Guard) verdictMembers(v forkbomb.Verdict, scope *forkbomb.PIDSet) []forkbomb.Member {
	out := g.members[:0]
	if root := g.rec.Resolve(v.RootRef); root != lineage.None {
		out = forkbomb.Members(g.rec, root, scope, out)
	}
	for _, ref := range v.Siblings {
		if id := g.rec.Resolve(ref); id != lineage.None {
			out = forkbomb.Members(g.rec, id, scope, out)
		}
	}
	return out
}

func (g *Guard) record(a actionlog.Action) {
	if g.actions != nil {
		g.actions.Record(a)
	}
}

// readPgscan returns pgscan_kswapd + pgscan_direct from /proc/vmstat,
// which it keeps open and reads with one raw pread (see
// procfs.Buffer.KeepFiles).
func (g *Guard) readPgscan() (uint64, error) {
	if g.vmstat == nil {
		g.vmstat = procfs.NewFS(g.cfg.ProcRoot).NewReader()
		g.vmstat.KeepSystemFiles()
	}
	var v procfs.Vmstat
	if err := g.vmstat.Vmstat(&v); err != nil {
		return 0, err
	}
	return v.PgscanKswapd.N + v.PgscanDirect.N, nil
}

// threadCPU returns the CPU time the event thread used in Run: so far
// while Run runs, in all once it has returned, 0 before it started.
func (g *Guard) threadCPU() time.Duration {
	if g.ended.Load() {
		return time.Duration(g.cpuUsed.Load())
	}
	if g.tid.Load() == 0 {
		return 0
	}
	return max(threadCPU(g.cfg.ProcRoot, g.tid.Load())-time.Duration(g.cpuBase.Load()), 0)
}

// threadCPU returns the user+system CPU time of thread tid of this process.
func threadCPU(procRoot string, tid int64) time.Duration {
	if tid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("%s/self/task/%d/stat", procRoot, tid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(string(f[11]), 10, 64)
	s, _ := strconv.ParseUint(string(f[12]), 10, 64)
	return time.Duration(u+s) * (time.Second / 100)
}
