package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/action"
	"github.com/oomguard/oomguard/internal/actionlog"
	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/hooks"
	"github.com/oomguard/oomguard/internal/lineage/procscan"
	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/scan"
	"github.com/oomguard/oomguard/internal/source"
	"github.com/oomguard/oomguard/internal/sys"
)

// snapshotter fills snapshots from the kernel.
type snapshotter interface {
	// System fills the memory, pressure and scope fields.
	System(snap *policy.Snapshot) error
	// Processes fills the process list, restricted to the scopes.
	Processes(snap *policy.Snapshot) error
	// ConfirmGroup returns pid and every process of candidates that shares
	// pid's mm right now, as kcmp tells.
	ConfirmGroup(pid int, candidates []int) ([]int, error)
	// Warm reads processes missing from the cache until deadline, and
	// returns how many it left.
	Warm(deadline time.Time) (left int, err error)
	// ReadRefaultsBelow limits reading the system's refault counter to
	// MemAvailable under pct percent (see scan.Scanner).
	ReadRefaultsBelow(pct float64)
	// CgroupKernel fills each process's share of its cgroup's kernel
	// memory (see scan.Scanner).
	CgroupKernel(snap *policy.Snapshot)
	// LastPass describes the last Processes pass.
	LastPass() scan.PassStats
	// KeepKernelThreads empties the cache but for kernel threads.
	KeepKernelThreads()
}

// waker wakes the loop early when an event source saw something.
type waker interface {
	C() <-chan struct{}
	Close() error
}

// memoryKiller is the OOM killer's loop: snapshot, trigger verdict, kill
// decision, kill. Only the victim's kill runs outside mu.
type memoryKiller struct {
	log     *slog.Logger
	actions *actionlog.Log
	scopes  []cgroupfs.Cgroup
	wake    waker
	watched map[string]uint64 // scope path: lowest usage threshold armed (see openWakeSources)
	hooks   *hooks.Runner     // set before Run; nil runs no hooks
	steps   atomic.Uint64     // loop iterations, for the watchdog
	// unreadWarned is when the loop last warned of command lines it could
	// not read (at most one warning in 10 s).
	unreadWarned time.Time

	mu       sync.Mutex // guards the fields below and the scanner
	scan     snapshotter
	snap     policy.Snapshot
	psSnap   policy.Snapshot
	state    policy.TriggerState
	triggers policy.Triggers
	policy   *policy.Killer
	kc       policy.KillConfig // policy's, for rehearse
	act      action.Killer
	rules    policy.Rules
	grace    time.Duration
	dryRun   bool
	// rehearsalVictim: see Daemon.RehearsalVictim and rehearseKill.
	rehearsalVictim []string
	interval        time.Duration
	last            policy.Verdict
	lastErr         string
	dryShown        map[int]time.Time
	warmed          time.Time // last step of warm that left no process cold
	warmLeft        int       // processes the last step of warm left cold
	// sched moves the loop's thread between SCHED_OTHER and SCHED_FIFO;
	// set by Run when it may, used only from Run's thread.
	sched *loopScheduler
	// graceKills are the cgroups sent SIGTERM whole (kill_cgroup with
	// term_grace), whose remains are killed when their grace ends; used
	// only from Run's thread.
	graceKills []*graceKill
}

// graceKill is a whole-cgroup kill promised after a grace: with
// kill_cgroup and term_grace, the victim's cgroup gets SIGTERM, and when
// the grace is over, if any process that the SIGTERM reached is still
// there, the cgroup is stopped and killed, whether or not the victim
// itself is still alive and however the pressure went meanwhile: the user
// asked for the workload gone. A SIGKILL escalation of the same victim
// before then kills it at once.
type graceKill struct {
	killer  action.CgroupKiller
	cg      cgroupfs.Cgroup
	until   time.Time
	victim  int
	comm    string
	trigger string
	// termed are the processes the SIGTERM reached, by PID and start time.
	// When none of them is left at the end of the grace, the workload has
	// ended by itself, and whatever the cgroup holds then is new (a
	// service restarted by its manager, say): the cgroup is not killed.
	termed []action.Member
}

func newMemoryKiller(cfg *config.Config, scopes []cgroupfs.Cgroup, log *slog.Logger, actions *actionlog.Log) (*memoryKiller, error) {
	m := &memoryKiller{
		log:      log.With("part", "oom"),
		actions:  actions,
		scopes:   scopes,
		scan:     scan.New(scan.Config{ProcRoot: "/proc", Scopes: scopes, SelfPID: os.Getpid(), CmdlineWait: cmdlineWait, CmdlinePriority: loopPriority}),
		dryShown: map[int]time.Time{},
	}
	if err := m.reconfigure(cfg); err != nil {
		return nil, err
	}
	m.wake, m.watched = openWakeSources(cfg, scopes, m.log)
	return m, nil
}

// reconfigure applies cfg's triggers, rules and kill settings. The kill
// state machine takes the new rules and keeps its victim in flight and its
// skip marks (policy.Killer.Reconfigured): a reload during a kill neither
// forgets a victim that is still dying nor chooses a second one.
func (m *memoryKiller) reconfigure(cfg *config.Config) error {
	t, err := policyTriggers(cfg)
	if err != nil {
		return err
	}
	kc := policy.KillConfig{TermGrace: time.Duration(cfg.Kill.TermGrace), Deadline: time.Duration(cfg.Kill.Deadline),
		ReapAfter: time.Duration(cfg.Kill.MreleaseAfter)}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.triggers = t
	// /proc/vmstat's refault counter feeds only the thrash trigger, which
	// needs available memory under its soft level; reading starts 10
	// points above it, so that a rate is known by the time it matters.
	if t.Thrash.Enabled {
		m.scan.ReadRefaultsBelow(min(t.Thrash.AvailPercent+10, 100))
	} else {
		m.scan.ReadRefaultsBelow(-1)
	}
	m.rules = PolicyRules(cfg)
	if m.policy == nil {
		m.policy = policy.NewKiller(kc, m.rules)
	} else {
		m.policy = m.policy.Reconfigured(kc, m.rules)
	}
	m.kc = kc
	m.grace = kc.TermGrace
	// MreleaseAfter is the decision's (KillConfig.ReapAfter).
	m.act = action.Killer{Log: m.log, Deadline: kc.Deadline, Mrelease: cfg.Kill.Mrelease}
	if m.act.Deadline == 0 {
		m.act.Deadline = policy.DefaultDeadline
	}
	m.dryRun = cfg.DryRun
	m.interval = time.Duration(cfg.Interval)
	if m.interval <= 0 {
		m.interval = time.Second
	}
	return nil
}

// loopPriority is the SCHED_FIFO priority of the memory loop's thread
// while memory stalls or a kill is due (see loopScheduler), the same as
// forkguard's event thread.
const loopPriority = 1

// Run loops until ctx ends. It sleeps on a source.Alarm, which an idle
// daemon wakes from at a fraction of a Go timer's cost; a Go timer stands
// in where the kernel refuses the Alarm's timerfd.
func (m *memoryKiller) Run(ctx context.Context) error {
	// One OS thread runs the loop, at real-time priority while tasks stall
	// on memory or a kill is due (loopScheduler), as forkguard's event
	// thread does, and at normal priority otherwise. The loop sleeps
	// between polls and allocates nothing, so it takes little from others.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m.rehearse(time.Now())
	m.rehearseKill(ctx)
	if err := sys.SetFIFO(loopPriority); err != nil {
		m.log.Warn("cannot raise the memory loop to SCHED_FIFO; under a thrash the kill may come late",
			"err", err, "fix", "run as root or with CAP_SYS_NICE (the unit grants it)")
	} else {
		m.sched = &loopScheduler{priority: loopPriority, realtime: true, log: m.log}
		defer func() {
			if m.sched.realtime {
				sys.SetNormal()
			}
			m.sched = nil
		}()
	}
	var wakeC <-chan struct{}
	if m.wake != nil {
		wakeC = m.wake.C()
		defer m.wake.Close()
	}
	var tick <-chan struct{}
	alarm, err := source.NewAlarm()
	if err != nil {
		m.log.Warn("memory poll: sleeping on a Go timer instead", "err", err)
	} else {
		defer alarm.Close()
		tick = alarm.C()
	}
	for {
		m.finishGraceKills(ctx, time.Now())
		next := m.step(ctx, time.Now())
		for _, g := range m.graceKills {
			next = min(next, time.Until(g.until))
		}
		next = max(next, time.Nanosecond)
		var late <-chan time.Time
		if alarm == nil {
			late = time.After(next)
		} else if err := alarm.Set(next); err != nil {
			m.noteError("memory poll", err)
			late = time.After(next)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		case <-late:
		case <-wakeC:
		}
	}
}

// step takes one snapshot, decides and acts, and returns how long to sleep.
func (m *memoryKiller) step(ctx context.Context, now time.Time) time.Duration {
	m.steps.Add(1)
	m.mu.Lock()
	snap := &m.snap
	snap.Time = now
	snap.SelfPID = os.Getpid()
	if err := m.scan.System(snap); err != nil {
		m.noteError("read memory state", err)
		m.mu.Unlock()
		return m.interval
	}
	v := policy.EvaluateTriggers(&m.state, snap, m.triggers)
	if v.Level != m.last.Level {
		m.log.Debug("trigger level", "level", v.Level, "trigger", v.Trigger, "reason", v.Reason)
	}
	m.last = v
	_, inFlight := m.policy.InFlight()
	m.sched.apply(loopPressure(snap), now, v.Level != policy.LevelNone || inFlight)
	if v.Level == policy.LevelNone && !inFlight {
		headroom := m.headroom(snap)
		next := m.nextInterval(snap, headroom)
		m.warm(headroom, now)
		m.mu.Unlock()
		return next
	}
	// For the debug log: when each phase ended (the scan, counted from the
	// step's start; the cgroups' kernel memory; the decision; the kcmp
	// check of the victim's mm), and the thread's page faults meanwhile.
	debug := m.log.Enabled(ctx, slog.LevelDebug)
	var phases [4]time.Time
	var faults [2]unix.Rusage
	if debug {
		unix.Getrusage(unix.RUSAGE_THREAD, &faults[0])
	}
	if err := m.scan.Processes(snap); err != nil {
		m.noteError("scan processes", err)
		m.mu.Unlock()
		return m.interval
	}
	phases[0] = time.Now()
	if st := m.scan.LastPass(); st.CmdlineUnread > 0 && now.Sub(m.unreadWarned) >= 10*time.Second {
		m.unreadWarned = now
		m.log.Warn("some command lines could not be read in time (a read of /proc/PID/cmdline blocked on the process's mmap_lock): "+
			"with rules.protect, ignore or avoid set, the killer waits for such a process rather than kill a smaller one, until its executable is read; "+
			"the rules then judge it by its comm and executable",
			"processes", st.CmdlineUnread, "judged_by_executable", st.Exe, "waited", cmdlineWait, "hold", scan.CmdlineHold)
	}
	m.scan.CgroupKernel(snap)
	phases[1] = time.Now()
	dec := m.policy.Decide(snap, v, now)
	phases[2] = time.Now()
	for _, s := range dec.Skipped {
		m.log.Warn("victim skipped", "pid", s.PID, "reason", s.Reason)
		m.actions.Record(actionlog.Action{Kind: "skip", Trigger: v.Trigger, Reason: s.Reason, PIDs: []int{s.PID}})
	}
	if dec.Kind == policy.DecideKill {
		m.confirmSharers(&dec)
	}
	phases[3] = time.Now()
	if debug {
		unix.Getrusage(unix.RUSAGE_THREAD, &faults[1])
		m.log.Debug("decision pass", "decision", dec.Kind, "processes", len(snap.Processes),
			"scan", phases[0].Sub(now), "kernel_memory", phases[1].Sub(phases[0]),
			"decide", phases[2].Sub(phases[1]), "confirm", phases[3].Sub(phases[2]), "stats", m.scan.LastPass(),
			"minflt", faults[1].Minflt-faults[0].Minflt, "majflt", faults[1].Majflt-faults[0].Majflt)
	}
	dryRun, grace, act, rules := m.dryRun, m.grace, m.act, m.rules
	m.mu.Unlock()

	switch dec.Kind {
	case policy.DecideWait:
		m.log.Debug("waiting for victim", "pid", dec.Victim.Victim, "reason", dec.Reason)
		return 20 * time.Millisecond
	case policy.DecideKill:
		if dryRun {
			m.dryRunKill(dec, now)
			m.observe(policy.Outcome{Kind: policy.OutcomeExited, PID: dec.Victim.Victim, StartTime: dec.Victim.StartTime}, now)
			return m.interval
		}
		m.kill(ctx, act, grace, rules, dec, time.Since(now))
		return 0
	}
	return 20 * time.Millisecond
}

// rehearse runs the pass that decides a kill once, before the loop starts,
// on the processes as they are: a full scan, the kernel memory of their
// cgroups, a decision by a throwaway killer with the same rules at the kill
// level, and the kcmp check of its victim's mm, or, when there is no
// victim yet, a choice beside a process of its own (rehearseChoice); and
// the triggers reaching a level (rehearseTriggers). Nothing is killed.
//
// Memory is locked on fault (protectSelf), so a page of code or data the
// daemon has never touched is not resident: the first real decision would
// fault in its code from the executable while memory is nearly gone, a
// read from disk for each page under a thrash. After the rehearsal that
// path is resident and locked. (In bench/vm's emulated guest it also
// spares the first real pass the translation of code never run before:
// with kernel threads watched by pidfd, the pass that decided a fast hog's
// kill took 53 to 106 ms without the rehearsal and 26 to 50 ms with it, in
// trial runs of 2026-11-27; passes repeated every 100 ms took 4 to 10 ms.)
//
// The cache keeps only the kernel threads read (scan.Scanner.Processes
// watches them by pidfd from then on): the other processes are read again
// as memory nears a level (warm), and meanwhile hold no files.
func (m *memoryKiller) rehearse(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := &m.snap
	snap.Time, snap.SelfPID = now, os.Getpid()
	err := m.scan.System(snap)
	if err == nil {
		err = m.scan.Processes(snap)
	}
	if err != nil {
		m.log.Debug("rehearsal of a decision: cannot read the processes", "err", err)
		return
	}
	m.scan.CgroupKernel(snap)
	v := policy.Verdict{Level: policy.LevelKill, Trigger: "rehearsal", Scope: -1, Reason: "rehearsal", MemoryWaiting: true}
	dec := policy.NewKiller(m.kc, m.rules).Decide(snap, v, now)
	if dec.Kind == policy.DecideKill {
		m.scan.ConfirmGroup(dec.Victim.Victim, m.withMM())
	} else {
		rehearseChoice(snap, v, m.kc, m.rules)
	}
	rehearseTriggers(snap, m.triggers)
	m.scan.KeepKernelThreads()
	m.log.Debug("rehearsed a decision", "processes", len(snap.Processes), "would_kill", dec.Victim.Victim, "took", time.Since(now))
}

// rehearsalPID is the PID of the process rehearseChoice adds: above the
// largest pid_max (2^22), so that no process can have it.
const rehearsalPID = 1<<22 + 1

// rehearseChoice decides, with a throwaway killer, on a copy of snap with
// one more process, eligible and alone in its mm, that cannot exist
// (rehearsalPID), and returns the decision, which the caller discards: a
// daemon started before its workload often has no eligible victim at
// start, and the branch that chooses one and builds its reason would
// otherwise run for the first time at the first real kill. A user's rule
// that ignores or protects the added process's name would leave that
// branch unrun, so then it decides once more without the rules. snap is
// not modified.
func rehearseChoice(snap *policy.Snapshot, v policy.Verdict, kc policy.KillConfig, rules policy.Rules) policy.Decision {
	s := *snap
	s.Processes = append(slices.Clone(snap.Processes), policy.Process{PID: rehearsalPID, PPID: 1,
		Comm: "rehearsal", State: 'S', RSS: 1 << 20, MMGroup: rehearsalPID, OOMScoreAdj: 1000})
	d := policy.NewKiller(kc, rules).Decide(&s, v, snap.Time)
	if d.Kind != policy.DecideKill {
		d = policy.NewKiller(kc, policy.Rules{}).Decide(&s, v, snap.Time)
	}
	return d
}

// rehearseTriggers evaluates the triggers, with a state of their own, on a
// copy of snap whose memory (the machine's, and each limited scope's)
// falls to nothing within 100 ms, and returns the last verdict, which the
// caller discards. A trigger builds its reason (the numbers, formatted)
// only at a level, so the first step that reaches one otherwise runs that
// code for the first time. In bench/vm's emulated guest, evaluating the
// triggers took 1.7 to 3.8 ms in that step, at SCHED_FIFO (trial runs of
// 2026-11-27). snap is not modified.
func rehearseTriggers(snap *policy.Snapshot, t policy.Triggers) policy.Verdict {
	var state policy.TriggerState
	var v policy.Verdict
	s := *snap
	s.Scopes = slices.Clone(snap.Scopes)
	for i, left := range [2]float64{0.2, 0} {
		s.Time = snap.Time.Add(time.Duration(i) * 100 * time.Millisecond)
		s.Memory.Available = uint64(left * float64(s.Memory.Total))
		s.Memory.SwapFree = uint64(left * float64(s.Memory.SwapTotal))
		for j := range s.Scopes {
			sc := &s.Scopes[j]
			if sc.Limit > 0 && sc.Limit != math.MaxUint64 {
				sc.Usage, sc.ReclaimableFile = uint64((1-left)*float64(sc.Limit)), 0
			}
		}
		v = policy.EvaluateTriggers(&state, &s, t)
	}
	return v
}

// rehearseKill starts m.rehearsalVictim and kills it as a victim is
// killed (action.Killer.Kill with the daemon's settings: a pidfd pinned by
// start time, SIGKILL, the wait, process_mrelease when enabled); its steps
// are not logged, only a summary at debug level. Memory is locked on
// fault, so the code of the kill path is otherwise first touched, and read
// from the executable, by the first real kill, when memory is short and a
// page read may wait on a thrashing disk. It is skipped in dry-run, where
// no kill comes, and without a victim program.
func (m *memoryKiller) rehearseKill(ctx context.Context) {
	if len(m.rehearsalVictim) == 0 || m.dryRun {
		return
	}
	start := time.Now()
	cmd := exec.Command(m.rehearsalVictim[0], m.rehearsalVictim[1:]...)
	in, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		m.log.Warn("cannot rehearse a kill: the first real kill runs its code for the first time", "program", m.rehearsalVictim[0], "err", err)
		return
	}
	defer func() {
		in.Close() // ends it, should the kill have failed
		cmd.Wait()
	}()
	member, err := action.MemberOf(m.act.ProcRoot, cmd.Process.Pid)
	if err != nil {
		m.log.Warn("cannot rehearse a kill: the first real kill runs its code for the first time", "pid", cmd.Process.Pid, "err", err)
		return
	}
	// Its steps are not logged (only the summary, at debug level), and
	// process_mrelease, where enabled, follows SIGKILL at once, so that it
	// runs too, whether it finds the child exiting or gone.
	k := m.act
	k.Log, k.TermGrace, k.MreleaseAfter = nil, 0, 0
	victim := action.Victim{Members: []action.Member{member}, Reason: "rehearsal", SameMM: member.PID}
	m.mu.Lock()
	grace := m.grace
	m.mu.Unlock()
	var termed []int
	if grace > 0 {
		// A SIGTERM decision runs Term first. The child dies of it and
		// stays unreaped, so Kill then runs its own steps on it still.
		termed = k.Term(victim).StillAlive
	}
	res := k.Kill(ctx, victim)
	m.log.Debug("rehearsed a kill", "pid", member.PID, "killed", res.Killed, "released", res.Released,
		"still_alive", res.StillAlive, "err", res.Err, "took", time.Since(start), "termed", termed)
}

// warmBand is the headroom (points above the nearest SIGTERM level) below
// which warm keeps the scanner's process cache current; warmEvery is how
// often it looks for processes new since its last complete round, and
// warmSlice how long one step may spend reading them. The band is
// nextInterval's fastest, so steps come every 10 ms there: a cache of 60
// cold processes fills within a few dozen ms of CPU spread over tens of
// steps. A machine that idles a little above the band pays nothing.
const (
	warmBand  = fastPollBand
	warmEvery = time.Second
	warmSlice = 5 * time.Millisecond
)

// warm keeps the scanner's process cache current while memory approaches
// a level, so that the pass that decides a kill reads only what changes
// (stat, oom_score_adj) instead of every process's status, command line
// and cgroup. Under a thrash those first reads are what is slow: each
// command line of a swapped-out process is a swap-in, each new file a
// kernel allocation in direct reclaim. In a 2-vCPU guest paging to zram
// the cold pass over 59 processes took 120 to 190 ms, a third of the time
// from trigger to kill, and without a thrash 90 to 220 ms, during which
// the probe of bench/vm waited for its CPU as long. So the cache is filled
// in slices of warmSlice, one per step, until no uncached process is left,
// and looked at again warmEvery later. m.mu is held.
func (m *memoryKiller) warm(headroom float64, now time.Time) {
	if headroom >= warmBand || (m.warmLeft == 0 && now.Sub(m.warmed) < warmEvery) {
		return
	}
	left, err := m.scan.Warm(now.Add(warmSlice))
	if err != nil {
		m.noteError("warm the process cache", err)
		m.warmLeft = 0
		m.warmed = now
		return
	}
	if left == 0 {
		m.warmed = now
	}
	m.warmLeft = left
	// Checked first: the arguments would be boxed, at every step of the band.
	if m.log.Enabled(context.Background(), slog.LevelDebug) {
		m.log.Debug("process cache warmed", "left", left, "took", time.Since(now))
	}
}

// confirmSharers asks kcmp, right before the kill, which processes of the
// snapshot share the victim's mm now, and adds any the last grouping missed
// (a sharer created since, or one whose layout was caught changing), so
// that every sharer gets SIGKILL before the mm is reaped. Processes the
// snapshot found without an mm (kernel threads, zombies) are not asked:
// none can have gained the victim's since (exec brings a new mm). m.mu is
// held.
func (m *memoryKiller) confirmSharers(dec *policy.Decision) {
	c := &dec.Victim
	sharers, err := m.scan.ConfirmGroup(c.Victim, m.withMM())
	if err != nil {
		m.log.Warn("kill: cannot confirm which processes share the victim's mm; killing the group as grouped", "victim", c.Victim, "err", err)
		return
	}
	known := map[int]bool{}
	for _, p := range c.PIDs {
		known[p] = true
	}
	for _, id := range sharers {
		for i := range m.snap.Processes {
			p := &m.snap.Processes[i]
			if p.MMPID() == id && !known[p.PID] {
				known[p.PID] = true
				m.log.Info("kill: adding a sharer of the victim's mm", "victim", c.Victim, "pid", p.PID, "comm", p.Comm)
				c.PIDs = append(c.PIDs, p.PID)
				c.Members = append(c.Members, policy.Member{PID: p.PID, PPID: p.PPID, StartTime: p.StartTime, Comm: p.Comm})
			}
		}
	}
}

// withMM returns, for each of m.snap's processes that have an mm, the
// task to compare it through (policy.Process.MMPID). m.mu is held.
func (m *memoryKiller) withMM() []int {
	ids := make([]int, 0, len(m.snap.Processes))
	for i := range m.snap.Processes {
		if p := &m.snap.Processes[i]; p.MMGroup != 0 {
			ids = append(ids, p.MMPID())
		}
	}
	return ids
}

// kill carries out dec; decided is how long the step took to reach it
// (the snapshot of the processes, ranking and the mm check).
func (m *memoryKiller) kill(ctx context.Context, act action.Killer, grace time.Duration, rules policy.Rules, dec policy.Decision, decided time.Duration) {
	c := dec.Victim
	act.MreleaseAfter = dec.ReapAfter
	// SameMM: a vfork child (or clone) of the group that exec'd since the
	// choice is another program now, and is not killed with the victim.
	victim := action.Victim{Reason: fmt.Sprintf("%s: %s", dec.Verdict.Trigger, dec.Reason), SameMM: c.Victim}
	for _, mb := range c.Members {
		victim.Members = append(victim.Members, action.Member{PID: mb.PID, StartTime: mb.StartTime})
	}
	uids := ownerUIDs(c.PIDs)
	if m.hooks != nil {
		ev := hooks.Event{PID: c.Victim, PIDs: c.PIDs, Comm: c.Comm, Cgroup: c.Cgroup, Trigger: dec.Verdict.Trigger,
			Reason: dec.Reason, RSSBytes: c.RSS}
		if len(uids) > 0 {
			ev.UID = uids[0]
		}
		if err := m.hooks.PreKill(ctx, ev); err != nil {
			m.log.Warn("pre-kill hook failed; killing anyway", "victim", c.Victim, "err", err)
		}
	}
	m.log.Info("kill", "victim", c.Victim, "pids", c.PIDs, "comm", c.Comm, "signal", dec.Signal.String(),
		"attempt", dec.Attempt, "trigger", dec.Verdict.Trigger, "badness", c.Badness, "rss", c.RSS, "decided_in", decided, "reap_after", dec.ReapAfter, "reason", dec.Reason)
	begin := time.Now()
	if dec.Signal == policy.SIGTERM {
		m.term(act, grace, rules, dec, victim, uids, decided)
		return
	}
	var cgKiller action.CgroupKiller
	var cg cgroupfs.Cgroup
	var cgErr error
	if dec.KillCgroup {
		cgKiller, cg, cgErr = m.cgroupKiller(c, rules, act)
	}
	res := act.Kill(ctx, victim)
	numbers := decisionNumbers(dec, decided)
	numbers["kill_duration_seconds"] = time.Since(begin).Seconds()
	numbers["reap_after_seconds"] = dec.ReapAfter.Seconds()
	kind := "kill"
	reason, pids := dec.Reason, c.PIDs
	if dec.KillCgroup {
		// The mm group first: its memory comes back soonest (mrelease).
		// Then the rest of the cgroup, stopped first so that nothing in it
		// forks a replacement.
		var rep action.CgroupKill
		err := cgErr
		if err == nil {
			// Killed now, not when its grace ends.
			m.graceKills = slices.DeleteFunc(m.graceKills, func(g *graceKill) bool { return g.cg.Path == cg.Path })
			rep, err = cgKiller.Kill(ctx, cg)
		}
		pids = append(slices.Clone(pids), rep.Killed...)
		slices.Sort(pids)
		pids = slices.Compact(pids)
		numbers["cgroup_killed"] = float64(len(rep.Killed))
		switch {
		case err != nil:
			reason += fmt.Sprintf("; the rest of cgroup %s was not killed: %v", c.Cgroup, err)
			m.log.Warn("kill-cgroup: only the victim's mm group was killed", "victim", c.Victim, "cgroup", c.Cgroup, "err", err)
		default:
			reason += fmt.Sprintf("; and the rest of its cgroup %s (%d processes) via %s", c.Cgroup, len(rep.Killed), rep.Method)
			m.log.Info("kill-cgroup: killed the victim's cgroup", "victim", c.Victim, "cgroup", c.Cgroup,
				"pids", rep.Killed, "method", rep.Method, "released", rep.Released)
		}
		for pid, why := range rep.Protected {
			m.log.Warn("kill-cgroup: protected process left alone", "pid", pid, "cgroup", c.Cgroup, "why", why)
		}
	}
	m.actions.Record(actionlog.Action{Kind: kind, Trigger: dec.Verdict.Trigger, Reason: reason,
		PIDs: pids, Cgroup: c.Cgroup, Comm: c.Comm, UIDs: uids, Numbers: numbers})
	now := time.Now()
	switch {
	case len(res.StillAlive) == 0 && res.Err == nil:
		m.log.Info("victim gone", "victim", c.Victim, "killed", res.Killed, "gone", res.Gone,
			"released", res.Released, "seconds", time.Since(begin).Seconds())
		m.observe(policy.Outcome{Kind: policy.OutcomeExited, PID: c.Victim, StartTime: c.StartTime}, now)
	case len(res.Signalled) == 0 && res.Err != nil:
		m.log.Error("kill failed", "victim", c.Victim, "err", res.Err)
		m.observe(policy.Outcome{Kind: policy.OutcomeFailed, PID: c.Victim, StartTime: c.StartTime, Err: res.Err.Error()}, now)
	default:
		m.log.Warn("victim still alive after deadline", "victim", c.Victim, "alive", res.StillAlive, "deadline", act.Deadline)
	}
}

// term carries out a SIGTERM decision: SIGTERM to the victim's mm group
// (and, with kill_cgroup, to its whole cgroup), and back to the loop at
// once. The policy then decides on each pass: SIGKILL once the grace is
// over or as soon as the level reaches kill, nothing if the pressure is
// relieved (policy.KillConfig.TermGrace). A cgroup sent SIGTERM whole is
// killed when its grace ends in any case (graceKill).
func (m *memoryKiller) term(act action.Killer, grace time.Duration, rules policy.Rules, dec policy.Decision, victim action.Victim, uids []int, decided time.Duration) {
	c := dec.Victim
	begin := time.Now()
	res := act.Term(victim)
	reason := dec.Reason
	numbers := decisionNumbers(dec, decided)
	numbers["grace_seconds"] = grace.Seconds()
	pids := c.PIDs
	if dec.KillCgroup {
		cgKiller, cg, err := m.cgroupKiller(c, rules, act)
		var sent []int
		if err == nil {
			sent, err = cgKiller.Signal(cg, unix.SIGTERM)
		}
		if err != nil {
			reason += fmt.Sprintf("; the rest of cgroup %s got no SIGTERM and will not be killed whole: %v", c.Cgroup, err)
			m.log.Warn("kill-cgroup: SIGTERM to the victim's mm group only", "victim", c.Victim, "cgroup", c.Cgroup, "err", err)
		} else {
			g := &graceKill{killer: cgKiller, cg: cg, until: begin.Add(grace), victim: c.Victim, comm: c.Comm, trigger: dec.Verdict.Trigger}
			for _, pid := range append(slices.Clone(sent), res.StillAlive...) {
				if mb, err := action.MemberOf("", pid); err == nil {
					g.termed = append(g.termed, mb)
				}
			}
			m.graceKills = append(m.graceKills, g)
			reason += fmt.Sprintf("; and the rest of its cgroup %s (%d processes), which is killed whole when the grace of %v is over", c.Cgroup, len(sent), grace)
			pids = append(slices.Clone(pids), sent...)
			slices.Sort(pids)
			pids = slices.Compact(pids)
		}
	}
	m.actions.Record(actionlog.Action{Kind: "term", Trigger: dec.Verdict.Trigger, Reason: reason,
		PIDs: pids, Cgroup: c.Cgroup, Comm: c.Comm, UIDs: uids, Numbers: numbers})
	switch {
	case len(res.StillAlive) == 0 && res.Err == nil:
		m.log.Info("victim gone before SIGTERM reached it", "victim", c.Victim, "gone", res.Gone)
		m.observe(policy.Outcome{Kind: policy.OutcomeExited, PID: c.Victim, StartTime: c.StartTime}, time.Now())
	case res.Err != nil && len(res.Termed) == 0:
		m.log.Error("SIGTERM failed", "victim", c.Victim, "err", res.Err)
		m.observe(policy.Outcome{Kind: policy.OutcomeFailed, PID: c.Victim, StartTime: c.StartTime, Err: res.Err.Error()}, time.Now())
	default:
		m.log.Info("SIGTERM sent; the policy decides on each pass whether SIGKILL follows", "victim", c.Victim,
			"pids", res.StillAlive, "grace", grace)
	}
}

// decisionNumbers are the numbers of a kill or term action common to
// both: the victim's, how long the decision took, and the verdict's.
func decisionNumbers(dec policy.Decision, decided time.Duration) map[string]float64 {
	c := &dec.Victim
	numbers := map[string]float64{
		"badness":          float64(c.Badness),
		"rss_bytes":        float64(c.RSS),
		"swap_bytes":       float64(c.Swap),
		"decision_seconds": decided.Seconds(),
	}
	for k, v := range dec.Verdict.Numbers {
		numbers[k] = v
	}
	return numbers
}

// finishGraceKills kills what is left of each cgroup sent SIGTERM whole
// whose grace is over (see graceKill).
func (m *memoryKiller) finishGraceKills(ctx context.Context, now time.Time) {
	var due []*graceKill
	m.graceKills = slices.DeleteFunc(m.graceKills, func(g *graceKill) bool {
		if now.Before(g.until) {
			return false
		}
		due = append(due, g)
		return true
	})
	for _, g := range due {
		m.finishGraceKill(ctx, g)
	}
}

// finishGraceKill kills what is left of g's cgroup.
func (m *memoryKiller) finishGraceKill(ctx context.Context, g *graceKill) {
	left := 0
	for _, mb := range g.termed {
		if stillRuns(mb) {
			left++
		}
	}
	if left == 0 {
		m.log.Info("kill-cgroup: every process the SIGTERM reached has exited; the cgroup is not killed", "cgroup", g.cg.Path, "victim", g.victim)
		return
	}
	rep, err := g.killer.Kill(ctx, g.cg)
	for pid, why := range rep.Protected {
		m.log.Warn("kill-cgroup: protected process left alone", "pid", pid, "cgroup", g.cg.Path, "why", why)
	}
	if err == nil && len(rep.Killed) == 0 {
		m.log.Info("kill-cgroup: nothing left of the cgroup when its grace ended", "cgroup", g.cg.Path, "victim", g.victim)
		return
	}
	reason := fmt.Sprintf("the grace after SIGTERM to the cgroup of PID %d (%s) is over: killed what was left of %s (%d processes) via %s",
		g.victim, g.comm, g.cg.Path, len(rep.Killed), rep.Method)
	if err != nil {
		reason += fmt.Sprintf(" (incomplete: %v)", err)
		m.log.Warn("kill-cgroup: killing what was left after the grace", "cgroup", g.cg.Path, "err", err)
	} else {
		m.log.Info("kill-cgroup: killed what was left after the grace", "cgroup", g.cg.Path, "pids", rep.Killed, "method", rep.Method)
	}
	m.actions.Record(actionlog.Action{Kind: "kill", Trigger: g.trigger, Reason: reason, PIDs: rep.Killed, Cgroup: g.cg.Path,
		Comm: g.comm, Numbers: map[string]float64{"cgroup_killed": float64(len(rep.Killed))}})
}

// stillRuns reports whether mb's process (PID and start time) is there and
// not a zombie.
func stillRuns(mb action.Member) bool {
	if st, err := action.ReadStartTime("/proc", mb.PID); err != nil || st != mb.StartTime {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(mb.PID), "stat"))
	if err != nil {
		return false
	}
	_, ok := procscan.ParseStat(b) // false for a zombie
	return ok
}

// observe reports an outcome to the killer with m.mu held: status, ps and the
// metrics read the killer's skip marks from other goroutines, and a map
// read while Observe writes it is a fatal error in Go.
func (m *memoryKiller) observe(o policy.Outcome, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policy.Observe(o, now) // after a reload, the killer that took over the flight
}

func (m *memoryKiller) dryRunKill(dec policy.Decision, now time.Time) {
	c := dec.Victim
	m.mu.Lock()
	shown, ok := m.dryShown[c.Victim]
	if ok && now.Sub(shown) < 10*time.Second {
		m.mu.Unlock()
		return
	}
	m.dryShown[c.Victim] = now
	m.mu.Unlock()
	m.log.Warn("dry-run: would kill", "victim", c.Victim, "pids", c.PIDs, "comm", c.Comm,
		"signal", dec.Signal.String(), "trigger", dec.Verdict.Trigger, "badness", c.Badness, "rss", c.RSS, "reason", dec.Reason)
	m.actions.Record(actionlog.Action{Kind: "kill", Trigger: dec.Verdict.Trigger, Reason: dec.Reason,
		PIDs: c.PIDs, Cgroup: c.Cgroup, Comm: c.Comm, Numbers: dec.Verdict.Numbers, DryRun: true})
}

// noteError logs a read error once per distinct message.
func (m *memoryKiller) noteError(what string, err error) {
	if msg := err.Error(); msg != m.lastErr {
		m.lastErr = msg
		m.log.Error(what, "err", err)
	}
}

// cmdlineWait is how long a pass waits, all its reads together, for the
// command lines of processes new to the scanner's cache
// (scan.Config.CmdlineWait). A read of /proc/PID/cmdline blocks for as
// long as a writer holds the process's mmap_lock, which under a thrash can
// be seconds: the loop goes on without it, and while rules could name the
// process by it, the killer waits for it rather than kill a smaller one,
// until the scanner reads its executable (scan.CmdlineHold; see
// policy.Candidate.Unjudged). A read that does not block takes
// microseconds; one that pages the arguments in from swap, milliseconds.
const cmdlineWait = 100 * time.Millisecond

// fastPollBand is the headroom (see headroom) below which nextInterval
// polls every 10 ms.
const fastPollBand = 10

// nextInterval polls faster as memory gets closer to a trigger level, as
// earlyoom does: event sources wake the loop for sudden changes, and the
// poll catches everything else. headroom is m.headroom(snap).
func (m *memoryKiller) nextInterval(snap *policy.Snapshot, headroom float64) time.Duration {
	switch {
	case headroom < fastPollBand:
		return min(m.interval, 10*time.Millisecond)
	case headroom < 25:
		return min(m.interval, 100*time.Millisecond)
	default:
		return fillInterval(m.interval, snap, &m.triggers, m.watched)
	}
}

// headroom is how many points available memory is above the nearest
// SIGTERM level: of the machine (MemAvailable) when unscoped, of the
// tightest scope with a limit otherwise; 100 when nothing is measured.
func (m *memoryKiller) headroom(snap *policy.Snapshot) float64 {
	headroom := 100.0
	if len(snap.Scopes) == 0 && snap.Memory.Total > 0 && m.triggers.MemAvail.Enabled {
		pct := 100 * float64(snap.Memory.Available) / float64(snap.Memory.Total)
		headroom = pct - m.triggers.MemAvail.MemTermPercent
	}
	for _, s := range snap.Scopes {
		if s.Limit == 0 || s.Limit == ^uint64(0) || !m.triggers.Scope.Enabled {
			continue
		}
		avail := float64(s.Limit) - float64(s.Usage) + float64(s.ReclaimableFile)
		headroom = min(headroom, 100*avail/float64(s.Limit)-m.triggers.Scope.TermPercent)
	}
	return headroom
}

// maxFillRate is the fastest memory is expected to fill, in bytes a
// second: earlyoom's figure (6,000 MiB/s, measured with stress -m 4).
// minFillPoll is the shortest poll fillInterval asks for (earlyoom's
// floor), and maxStretch bounds how far it lengthens the poll.
const (
	maxFillRate = 6000 << 20
	minFillPoll = 100 * time.Millisecond
	maxStretch  = 4
)

// fillInterval sizes the poll, as earlyoom does, by the time the fastest
// hog needs to fill the headroom: the bytes of available memory above the
// SIGTERM level, of the machine or of the tightest scope, over
// maxFillRate; at least minFillPoll (or interval, if shorter) and at most
// maxStretch intervals. On a small machine it polls faster than interval:
// a hog filling a 512 MiB guest at 190 MiB/s took it from 30 % available
// to 1–2 % within one 1 s poll, and died before the next (bench/vm). On a
// large, idle one it stretches the poll and saves wake-ups. It does not
// stretch while memory pressure shows (some avg10 of 1 % or more), so that
// polled PSI triggers keep their pace. Event sources (PSI triggers, cgroup usage
// thresholds and memory.events) still wake the loop at once.
//
// A scope whose usage is below a usage threshold the kernel watches
// (watched: scope path to the lowest armed threshold in bytes, at or
// below its SIGTERM level) bounds nothing: available memory is at least
// limit − usage, so it cannot fall to the SIGTERM level before usage
// crosses the threshold, and that crossing wakes the loop. The scope's
// usage must also be under the thrash trigger's soft level, which no
// event watches; a scope that passes it is seen at the next poll.
func fillInterval(interval time.Duration, snap *policy.Snapshot, t *policy.Triggers, watched map[string]uint64) time.Duration {
	headroom := math.Inf(1)
	if len(snap.Scopes) == 0 {
		if !t.MemAvail.Enabled || snap.Memory.Total == 0 {
			return interval
		}
		level := t.MemAvail.MemTermPercent / 100 * float64(snap.Memory.Total)
		headroom = float64(snap.Memory.Available) - level
	}
	for _, s := range snap.Scopes {
		if s.Limit == 0 || s.Limit == ^uint64(0) || !t.Scope.Enabled {
			return interval // a scope without a limit: no headroom to size by
		}
		limit := float64(s.Limit)
		if at, ok := watched[s.Path]; ok && float64(at) <= (1-t.Scope.TermPercent/100)*limit {
			soft := limit
			if t.Thrash.Enabled {
				soft = (1 - t.Thrash.AvailPercent/100) * limit
			}
			if s.Usage < at && float64(s.Usage) < soft {
				continue
			}
		}
		avail := limit - float64(s.Usage) + float64(s.ReclaimableFile)
		headroom = min(headroom, avail-t.Scope.TermPercent/100*limit)
	}
	var d time.Duration
	switch {
	case headroom <= 0:
		return interval // at the level: the triggers decide now
	case math.IsInf(headroom, 1):
		d = maxStretch * interval
	default:
		d = time.Duration(min(headroom/maxFillRate, maxStretch*interval.Seconds()) * float64(time.Second))
	}
	if p := snap.Pressure.Memory; p.Valid && p.Some.Avg10 >= 1 {
		d = min(d, interval)
	}
	return min(max(d, min(interval, minFillPoll)), maxStretch*interval)
}

// TriggerStatus is the daemon's view of its triggers for `oomguard status`.
type TriggerStatus struct {
	Verdict      policy.Verdict       `json:"verdict"`
	MemTotal     uint64               `json:"mem_total_bytes"`
	MemAvailable uint64               `json:"mem_available_bytes"`
	SwapTotal    uint64               `json:"swap_total_bytes"`
	SwapFree     uint64               `json:"swap_free_bytes"`
	Pressure     policy.Pressures     `json:"pressure"`
	Scopes       []policy.ScopeMemory `json:"scopes,omitempty"`
	Skipped      []policy.SkipMark    `json:"skipped,omitempty"`
	LastError    string               `json:"last_error,omitempty"`
}

func (m *memoryKiller) triggerStatus() TriggerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return TriggerStatus{
		Verdict:      m.last,
		MemTotal:     m.snap.Memory.Total,
		MemAvailable: m.snap.Memory.Available,
		SwapTotal:    m.snap.Memory.SwapTotal,
		SwapFree:     m.snap.Memory.SwapFree,
		Pressure:     m.snap.Pressure,
		Scopes:       append([]policy.ScopeMemory(nil), m.snap.Scopes...),
		Skipped:      m.policy.Skipped(),
		LastError:    m.lastErr,
	}
}

// PsParams are the parameters of the control socket's "ps" method.
type PsParams struct {
	// Scopes, when set, must equal the daemon's scopes; a client that asks
	// for other scopes computes the ranking itself.
	Scopes []string `json:"scopes,omitempty"`
}

// PsResult is the answer of "ps": the ranking in kill order.
type PsResult struct {
	Candidates []policy.Candidate `json:"candidates"`
}

// ErrScopeMismatch is returned by "ps" for scopes the daemon does not watch.
var ErrScopeMismatch = fmt.Errorf("the daemon watches other scopes")

func (m *memoryKiller) handlePs(ctx context.Context, raw json.RawMessage) (any, error) {
	var p PsParams
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("ps params: %w", err)
		}
	}
	if len(p.Scopes) > 0 {
		var mine []string
		for _, s := range m.scopes {
			mine = append(mine, s.Path)
		}
		if strings.Join(p.Scopes, "\n") != strings.Join(mine, "\n") {
			return nil, fmt.Errorf("%w: asked %v, watching %v", ErrScopeMismatch, p.Scopes, mine)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := &m.psSnap
	snap.Time = time.Now()
	snap.SelfPID = os.Getpid()
	if err := m.scan.System(snap); err != nil {
		return nil, err
	}
	if err := m.scan.Processes(snap); err != nil {
		return nil, err
	}
	m.scan.CgroupKernel(snap)
	c := m.policy.Rank(snap)
	if c == nil {
		c = []policy.Candidate{}
	}
	return PsResult{Candidates: c}, nil
}
