// Package containment ends a process family: it stops every member first, so
// the family cannot respawn while being killed, then SIGKILLs every member
// through pidfds, never touching a process outside the family or a protected
// one.
package containment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/lineage/procscan"
	"github.com/oomguard/oomguard/internal/sys"
)

// Target is one live member of the family as the lineage knows it: its PID
// and its birth time (CLOCK_MONOTONIC), which identifies it against PID
// reuse.
type Target struct {
	PID  int32
	Born time.Duration
}

// Family returns the family's current live members, appended to out. It is
// called again and again while the family is being stopped, and must report
// members born since the previous call (the caller drains its event source
// first).
type Family func(out []Target) []Target

// Mounts are the roots of the cgroup hierarchies that can freeze.
type Mounts struct {
	// V1Freezer is the v1 freezer hierarchy's mount point, or "".
	V1Freezer string
	// V2 is the cgroup2 mount point, or "".
	V2 string
}

// FindMounts reads mountinfo (normally /proc/self/mountinfo) for the v1
// freezer and cgroup2 mount points.
func FindMounts(mountinfo string) (Mounts, error) {
	if _, err := os.Stat(mountinfo); err != nil {
		return Mounts{}, fmt.Errorf("find cgroup mounts: %w", err)
	}
	var m Mounts
	ms := cgroupfs.ReadMounts(mountinfo)
	if mt, ok := ms.V2(); ok {
		m.V2 = mt.Dir
	}
	if mt, ok := ms.V1("freezer"); ok {
		m.V1Freezer = mt.Dir
	}
	return m, nil
}

// Options configures Contain. Zero fields take the defaults noted.
type Options struct {
	// ProcRoot is the proc filesystem, "/proc".
	ProcRoot string
	// Mounts tell where to look for a cgroup of the family's own.
	Mounts Mounts
	// Self is oomguard's PID (os.Getpid()); never touched.
	Self int
	// MonoMinusBoot converts /proc start times to the CLOCK_MONOTONIC of
	// Target.Born: CLOCK_MONOTONIC minus CLOCK_BOOTTIME.
	MonoMinusBoot time.Duration
	// FreezeTimeout bounds waiting for a cgroup freeze, 5 s (freezing 2,000
	// spinning tasks took up to 4.4 s on a loaded 2-CPU machine); on
	// timeout the cgroup is thawed and SIGSTOP takes over.
	FreezeTimeout time.Duration
	// ExitTimeout bounds waiting for the next killed member to exit, 5 s:
	// the wait goes on while members keep exiting. Killed members can take
	// seconds to die: in CI, with the bomb's memory cgroup at its limit,
	// 970 took 3.4 s; here, beside 1,450 members of the same bomb left
	// running, 550 took 15.7 s. Why is not known.
	ExitTimeout time.Duration
	// ExitDeadline bounds the whole wait after SIGKILL, 30 s.
	ExitDeadline time.Duration
	// MaxRounds bounds the SIGSTOP sweeps, 500.
	MaxRounds int
	// NoFreeze forces the SIGSTOP path (tests).
	NoFreeze bool
}

func (o *Options) defaults() {
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.FreezeTimeout <= 0 {
		o.FreezeTimeout = 5 * time.Second
	}
	if o.ExitTimeout <= 0 {
		o.ExitTimeout = 5 * time.Second
	}
	if o.ExitDeadline <= 0 {
		o.ExitDeadline = 30 * time.Second
	}
	if o.MaxRounds <= 0 {
		o.MaxRounds = 500
	}
}

// Skip is a member left alone, and why.
type Skip struct {
	PID    int32  `json:"pid"`
	Reason string `json:"reason"`
}

// Report says how the family was contained.
type Report struct {
	// Method is "freeze-v2", "freeze-v1" or "sigstop".
	Method string
	// Cgroup is the frozen cgroup, if any.
	Cgroup string
	// Unfrozen says why the family was stopped with SIGSTOP rather than
	// frozen: it has no cgroup of its own, or the freeze failed or timed
	// out; "" when frozen.
	Unfrozen string
	// PIDs lists the members sent SIGKILL.
	PIDs []int32
	// Skipped lists members not touched: protected, or no longer the
	// process the lineage recorded (exited, PID reused).
	Skipped []Skip
	// Rounds counts stop sweeps.
	Rounds int
	// Survivors counts killed members still not dead at ExitTimeout.
	Survivors int
	// Unpinned counts members held by PID and start time rather than a
	// pidfd, because oomguard had no file descriptor left (RLIMIT_NOFILE).
	Unpinned int
	// Adopted counts members found as children of stopped members (with
	// SIGSTOP; a frozen cgroup's are found in it) that the family did not
	// list: forks whose events were lost.
	Adopted int
	// Start is when Contain began, Stopped when every member was stopped,
	// Killed when SIGKILL was sent to all, Done when every killed member
	// was dead.
	Start, Stopped, Killed, Done time.Time
}

// bornTolerance is how close a /proc start time (10 ms ticks) and an
// event's timestamp of the same process are.
const bornTolerance = 30 * time.Millisecond

// SameBirth reports whether two birth times (CLOCK_MONOTONIC) are one
// process's: one may come from /proc, in 10 ms ticks, the other from an
// event.
func SameBirth(a, b time.Duration) bool {
	d := a - b
	return d <= bornTolerance && d >= -bornTolerance
}

// Contain stops the family, kills every member and waits for them to die:
// Kill, then Wait.
func Contain(ctx context.Context, fam Family, o Options) (Report, error) {
	return Kill(ctx, fam, o).Wait(ctx)
}

// Killing is a family that Kill has stopped and sent SIGKILL, whose
// members may not all have died yet. It holds their pidfds until Wait.
type Killing struct {
	c   *container
	rep Report
	err error
}

// Report is the containment so far: everything but Survivors and Done,
// which Wait fills in.
func (k *Killing) Report() Report { return k.rep }

// Targets appends the members sent SIGKILL to out. Call it before Wait.
func (k *Killing) Targets(out []Target) []Target {
	for _, p := range k.c.fds {
		out = append(out, Target{PID: p.pid, Born: p.born})
	}
	return out
}

// Wait waits for every killed member to die: until none is left, until
// none has died for ExitTimeout, until ExitDeadline has passed since the
// kill, or until ctx ends. It then releases the members' pidfds and
// returns the whole report, with an error if Kill failed or a member was
// still alive. Call it once, from any goroutine.
func (k *Killing) Wait(ctx context.Context) (Report, error) {
	c, rep := k.c, k.rep
	defer c.closeAll()
	var stopped error
	rep.Survivors, stopped = c.wait(ctx, c.o.ExitTimeout, c.o.ExitDeadline)
	rep.Done = time.Now()
	switch {
	case k.err != nil:
		return rep, k.err
	case rep.Survivors > 0 && stopped != nil:
		return rep, fmt.Errorf("contain: %d members still alive %v after SIGKILL, when the wait was called off: %w",
			rep.Survivors, rep.Done.Sub(rep.Killed).Round(time.Millisecond), stopped)
	case rep.Survivors > 0:
		return rep, fmt.Errorf("contain: %d members still alive %v after SIGKILL (none exited in the last %v, or the wait reached its bound of %v)",
			rep.Survivors, rep.Done.Sub(rep.Killed).Round(time.Millisecond), c.o.ExitTimeout, c.o.ExitDeadline)
	}
	return rep, nil
}

// Kill stops the family and sends SIGKILL to every member. It returns once
// the signals are sent, without waiting for the members to die: that is
// Killing.Wait's, which must be called. A family with no live member gives
// a Killing whose report's Method is "none".
func Kill(ctx context.Context, fam Family, o Options) *Killing {
	o.defaults()
	c := &container{o: o, fds: map[int32]*pin{}, skipped: map[int32]bool{}}
	c.reserveFDs()
	k := &Killing{c: c}
	k.rep, k.err = c.kill(ctx, fam)
	for pid := range c.fds {
		k.rep.PIDs = append(k.rep.PIDs, pid)
	}
	for pid := range c.skipped {
		k.rep.Skipped = append(k.rep.Skipped, Skip{PID: pid, Reason: c.reasons[pid]})
	}
	return k
}

// kill is Kill's work: stop, kill, and list the late members.
func (c *container) kill(ctx context.Context, fam Family) (Report, error) {
	o := c.o
	rep := Report{Start: time.Now()}
	members := fam(nil)
	if len(members) == 0 {
		rep.Method = "none"
		return rep, nil
	}
	var frozen *cgroupfs.Cgroup
	if o.NoFreeze {
		rep.Unfrozen = "freezing disabled"
	} else if cg, why := c.ownCgroup(members, fam); why != "" {
		rep.Unfrozen = why
	} else if err := cg.Freeze(o.FreezeTimeout); err != nil {
		rep.Unfrozen = err.Error()
		if err := cg.Thaw(); err != nil {
			rep.Unfrozen += "; and thawing it again failed: " + err.Error()
		}
	} else {
		frozen = &cg
		rep.Cgroup = cg.Path
		rep.Method = "freeze-" + cg.Version.String()
	}
	if frozen == nil {
		rep.Method = "sigstop"
	}
	// The frozen cgroup's processes, read once: members found there need
	// no signal to stop.
	inFrozen := map[int32]bool{}
	if frozen != nil {
		frozen.Walk(func(sub cgroupfs.Cgroup) error {
			pids, _ := sub.Procs()
			for _, p := range pids {
				inFrozen[int32(p)] = true
			}
			return nil
		})
	}
	// Stop sweeps: every member not inside the frozen cgroup is
	// SIGSTOPped; repeat until two sweeps in a row find no new member.
	quiet := 0
	for rep.Rounds = 0; rep.Rounds < o.MaxRounds && quiet < 2; rep.Rounds++ {
		if err := ctx.Err(); err != nil {
			c.killAll()
			rep.Killed = time.Now()
			err = fmt.Errorf("contain: called off while stopping the family, whose %d members known so far were sent SIGKILL: %w", len(c.fds), err)
			if frozen != nil {
				// Frozen, the killed members could not die, nor could
				// anything else the cgroup takes in later run.
				if terr := frozen.Thaw(); terr != nil {
					err = fmt.Errorf("%w; and thawing %s failed: %v", err, frozen.Path, terr)
				}
			}
			return rep, err
		}
		members = fam(members[:0])
		fresh := 0
		for _, m := range members {
			if _, ok := c.fds[m.PID]; ok || c.skipped[m.PID] {
				continue
			}
			fresh++
			fd := c.open(m)
			if fd == nil {
				continue
			}
			if inFrozen[m.PID] || (frozen != nil && c.inCgroup(m.PID, *frozen)) {
				continue // frozen already
			}
			if err := c.signal(fd, unix.SIGSTOP); err != nil {
				c.skip(m.PID, "stop: "+err.Error())
			}
		}
		if fresh == 0 {
			quiet++
			sys.SleepThread(2 * time.Millisecond)
		} else {
			quiet = 0
		}
	}
	if frozen == nil {
		// Children that the family does not know of: forks whose events
		// were lost (a bomb overflowing the proc connector) would refill
		// the slots the kill frees. Stopped members fork no more.
		for round := 0; round < o.MaxRounds; round++ {
			n := c.adoptChildren()
			rep.Adopted += n
			if n == 0 {
				break
			}
		}
	}
	rep.Stopped = time.Now()
	if frozen != nil {
		// Anything else in a cgroup that held only the family came from
		// the family (frozen tasks cannot fork): born after the family's
		// first member, it is one whose fork event is not in yet.
		c.adoptFromCgroup(*frozen, members)
	}
	c.killAll()
	if frozen != nil {
		if err := frozen.Thaw(); err != nil {
			rep.Killed = time.Now()
			return rep, fmt.Errorf("contain: thaw %s after kill: %w", frozen.Path, err)
		}
	}
	// Late members (forked between the last sweep and the kill): kill
	// them too, until the family is empty.
	for round := 0; round < 50; round++ {
		members = fam(members[:0])
		fresh := 0
		for _, m := range members {
			if _, ok := c.fds[m.PID]; ok || c.skipped[m.PID] {
				continue
			}
			if fd := c.open(m); fd != nil {
				fresh++
				if err := c.signal(fd, unix.SIGKILL); err != nil {
					c.skip(m.PID, "kill: "+err.Error())
				}
			}
		}
		if fresh == 0 {
			break
		}
	}
	rep.Killed = time.Now()
	for _, p := range c.fds {
		if p.fd == nil {
			rep.Unpinned++
		}
	}
	return rep, nil
}

type container struct {
	o       Options
	fds     map[int32]*pin
	skipped map[int32]bool
	reasons map[int32]string
	// reserve holds a few descriptors, given back when pidfds run out so
	// that /proc can still be read; outOfFDs is set from then on.
	reserve  []int
	outOfFDs bool
	buf      [1024]byte
	children []byte // see readChildren
}

func (c *container) skip(pid int32, why string) {
	if c.reasons == nil {
		c.reasons = map[int32]string{}
	}
	c.skipped[pid] = true
	c.reasons[pid] = why
	if fd := c.fds[pid]; fd != nil {
		fd.close()
		delete(c.fds, pid)
	}
}

// pin is a member being contained: its pidfd, or, when no descriptor was
// left (RLIMIT_NOFILE: a bomb may have more members than oomguard may
// open files), its PID and start time, checked against /proc before each
// signal. A stopped or frozen member cannot exit by itself, so its PID can
// only be reused if something else kills it between the check and the
// signal.
type pin struct {
	fd   *sys.PidFD
	pid  int32
	born time.Duration
}

func (p *pin) close() {
	if p.fd != nil {
		p.fd.Close()
	}
}

// same reports whether p's PID still names the pinned, unreaped and not
// yet dead process (for a pin without a pidfd).
func (c *container) same(p *pin) bool {
	n, err := c.read(filepath.Join(c.o.ProcRoot, strconv.Itoa(int(p.pid)), "stat"))
	if err != nil {
		return false
	}
	st, ok := procscan.ParseStat(c.buf[:n])
	if !ok {
		return false // a zombie
	}
	return SameBirth(st.Born+c.o.MonoMinusBoot, p.born)
}

// signal sends s to the pinned process.
func (c *container) signal(p *pin, s unix.Signal) error {
	if p.fd != nil {
		return p.fd.SendSignal(s)
	}
	if !c.same(p) {
		return unix.ESRCH
	}
	return unix.Kill(int(p.pid), s)
}

// exited reports whether the pinned process has exited.
func (c *container) exited(p *pin) bool {
	if p.fd != nil {
		done, err := p.fd.Exited()
		return err != nil || done
	}
	return !c.same(p)
}

// open pins m with a pidfd and checks, through /proc read after the pin,
// that the PID still is the recorded process and is not protected. It
// returns nil (and records a skip) otherwise. Out of descriptors, it pins
// m by PID and start time instead (see pin).
func (c *container) open(m Target) *pin {
	if m.PID <= 1 || int(m.PID) == c.o.Self {
		c.skip(m.PID, "protected: init or oomguard")
		return nil
	}
	var fd *sys.PidFD
	var err error
	if !c.outOfFDs {
		fd, err = sys.PidfdOpen(int(m.PID))
	}
	switch {
	case c.outOfFDs || fdLimit(err):
		c.runOut() // and hold m by PID: fd is nil
	case err != nil:
		c.skip(m.PID, "gone")
		return nil
	}
	held := &pin{fd: fd, pid: m.PID, born: m.Born}
	c.fds[m.PID] = held
	dir := filepath.Join(c.o.ProcRoot, strconv.Itoa(int(m.PID)))
	n, err := c.read(filepath.Join(dir, "stat"))
	if err != nil {
		c.skip(m.PID, "gone")
		return nil
	}
	st, ok := procscan.ParseStat(c.buf[:n])
	if !ok {
		c.skip(m.PID, "gone (zombie)")
		return nil
	}
	if st.Kthread {
		c.skip(m.PID, "protected: kernel thread")
		return nil
	}
	if !SameBirth(st.Born+c.o.MonoMinusBoot, m.Born) {
		c.skip(m.PID, fmt.Sprintf("pid reused: started %v, recorded %v", st.Born+c.o.MonoMinusBoot, m.Born))
		return nil
	}
	n, err = c.read(filepath.Join(dir, "oom_score_adj"))
	switch {
	case err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ESRCH):
		c.skip(m.PID, "protection unknown: "+err.Error())
		return nil
	case err == nil && string(bytes.TrimSpace(c.buf[:n])) == "-1000":
		c.skip(m.PID, "protected: oom_score_adj -1000")
		return nil
	}
	return held
}

// read reads path into c.buf (see readInto).
func (c *container) read(path string) (int, error) { return c.readInto(path, c.buf[:]) }

// runOut switches to holding members by PID: no more pidfds are opened,
// and the reserve leaves descriptors for reading their /proc files.
func (c *container) runOut() {
	if !c.outOfFDs {
		c.outOfFDs = true
		c.releaseFDs()
	}
}

// fdLimit reports whether err is running out of file descriptors.
func fdLimit(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}

func readInto(path string, buf []byte) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Read(buf)
}

// ownCgroup finds a cgroup that holds family members and nothing else: the
// v2 cgroup or v1 freezer cgroup of a member, checked through cgroup.procs
// of it and its descendants. It never returns a root cgroup or one holding
// oomguard. When there is none, it says why.
func (c *container) ownCgroup(members []Target, fam Family) (cgroupfs.Cgroup, string) {
	// The first member whose cgroups can be read: a bomb's members come
	// and go, and an exiting one may already have left its cgroups.
	var cands []string
	for _, m := range members {
		if cands = c.freezable(m.PID); len(cands) > 0 {
			break
		}
	}
	if len(cands) == 0 {
		return cgroupfs.Cgroup{}, fmt.Sprintf("none of the %d members is in a freezable cgroup below a root", len(members))
	}
	var why []string
	for _, dir := range cands {
		cg, err := cgroupfs.Open(dir)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		if !cg.CanFreeze() {
			why = append(why, dir+" cannot freeze")
			continue
		}
		// The family may still be forking. The kernel queues a fork's
		// event before the child joins its parent's cgroup, so the member
		// list, refreshed (and its events drained) after cgroup.procs is
		// read, knows every member that the read saw. A process it lacks
		// is still accepted when its parent is a member (or such a
		// process). A few attempts, for lost events.
		var not string
		for attempt := 0; attempt < 3; attempt++ {
			if not = c.onlyFamily(cg, fam); not == "" {
				return cg, ""
			}
		}
		why = append(why, dir+" "+not)
	}
	return cgroupfs.Cgroup{}, strings.Join(why, "; ")
}

// freezable returns the cgroups of pid that could freeze it, below their
// hierarchies' roots: its v2 cgroup first, then its v1 freezer cgroup.
func (c *container) freezable(pid int32) []string {
	b, err := os.ReadFile(filepath.Join(c.o.ProcRoot, strconv.Itoa(int(pid)), "cgroup"))
	if err != nil {
		return nil
	}
	var cands []string
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[2] == "/" {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "" && c.o.Mounts.V2 != "":
			cands = append([]string{filepath.Join(c.o.Mounts.V2, parts[2])}, cands...)
		case c.o.Mounts.V1Freezer != "" && hasController(parts[1], "freezer"):
			cands = append(cands, filepath.Join(c.o.Mounts.V1Freezer, parts[2]))
		}
	}
	return cands
}

// onlyFamily returns "" when every process in cg and its descendants is a
// member of fam, read after them, or a descendant of a member (by /proc
// parent links), and otherwise what else it holds, or why it cannot tell.
func (c *container) onlyFamily(cg cgroupfs.Cgroup, fam Family) string {
	var pids []int
	err := cg.Walk(func(sub cgroupfs.Cgroup) error {
		p, err := sub.Procs()
		pids = append(pids, p...)
		return err
	})
	if err != nil {
		return "cannot be read: " + err.Error()
	}
	set := map[int32]bool{}
	for _, m := range fam(nil) {
		set[m.PID] = true
	}
	var unknown []int32
	for _, p := range pids {
		if p == c.o.Self {
			return fmt.Sprintf("also holds oomguard itself (pid %d)", p)
		}
		if !set[int32(p)] {
			unknown = append(unknown, int32(p))
		}
	}
	for progress := true; len(unknown) > 0 && progress; {
		progress = false
		rest := unknown[:0]
		for _, p := range unknown {
			n, err := readInto(filepath.Join(c.o.ProcRoot, strconv.Itoa(int(p)), "stat"), c.buf[:])
			if err != nil {
				progress = true // gone: nothing to protect
				continue
			}
			st, ok := procscan.ParseStat(c.buf[:n])
			if !ok {
				progress = true
				continue
			}
			if set[st.PPID] {
				set[p] = true
				progress = true
				continue
			}
			rest = append(rest, p)
		}
		unknown = rest
	}
	if len(unknown) > 0 {
		return fmt.Sprintf("also holds process %d, not of the family", unknown[0])
	}
	return ""
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

func (c *container) inCgroup(pid int32, cg cgroupfs.Cgroup) bool {
	b, err := os.ReadFile(filepath.Join(c.o.ProcRoot, strconv.Itoa(int(pid)), "cgroup"))
	if err != nil {
		return false
	}
	var root string
	if cg.Version == cgroupfs.V2 {
		root = c.o.Mounts.V2
	} else {
		root = c.o.Mounts.V1Freezer
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if (cg.Version == cgroupfs.V2 && parts[0] == "0") || (cg.Version == cgroupfs.V1 && hasController(parts[1], "freezer")) {
			return cg.Contains(filepath.Join(root, parts[2]))
		}
	}
	return false
}

// adoptFromCgroup pins the processes of the frozen family cgroup that the
// member list does not have yet, when they were born after the family's
// first member.
func (c *container) adoptFromCgroup(cg cgroupfs.Cgroup, members []Target) {
	if len(members) == 0 {
		return
	}
	first := members[0].Born
	for _, m := range members {
		first = min(first, m.Born)
	}
	cg.Walk(func(sub cgroupfs.Cgroup) error {
		pids, err := sub.Procs()
		if err != nil {
			return nil
		}
		for _, p := range pids {
			pid := int32(p)
			if _, ok := c.fds[pid]; ok || c.skipped[pid] {
				continue
			}
			n, err := readInto(filepath.Join(c.o.ProcRoot, strconv.Itoa(p), "stat"), c.buf[:])
			if err != nil {
				continue
			}
			st, ok := procscan.ParseStat(c.buf[:n])
			if !ok || st.Born+c.o.MonoMinusBoot < first-bornTolerance {
				continue
			}
			c.open(Target{PID: pid, Born: st.Born + c.o.MonoMinusBoot})
		}
		return nil
	})
}

// adoptChildren pins and stops the children of pinned members that are
// neither pinned nor skipped, from /proc/PID/task/PID/children (the
// children of each member's main thread: a fork() loop's, a shell's), and
// returns how many it stopped. A child counts only if its stat names
// that member as its parent, and open then pins it only if its start time
// is still the one read: a PID reused in between is someone else's.
func (c *container) adoptChildren() int {
	parents := make([]int32, 0, len(c.fds))
	for pid := range c.fds {
		parents = append(parents, pid)
	}
	adopted := 0
	for _, parent := range parents {
		dir := strconv.Itoa(int(parent))
		n, err := c.readChildren(filepath.Join(c.o.ProcRoot, dir, "task", dir, "children"))
		if err != nil {
			continue
		}
		for list := c.children[:n]; len(list) > 0; {
			var field []byte
			field, list = nextField(list)
			pid, err := strconv.Atoi(string(field))
			if err != nil || pid <= 0 {
				continue
			}
			if _, ok := c.fds[int32(pid)]; ok || c.skipped[int32(pid)] {
				continue
			}
			m, err := c.read(filepath.Join(c.o.ProcRoot, strconv.Itoa(pid), "stat"))
			if err != nil {
				continue
			}
			st, ok := procscan.ParseStat(c.buf[:m])
			if !ok || st.PPID != parent {
				continue
			}
			p := c.open(Target{PID: int32(pid), Born: st.Born + c.o.MonoMinusBoot})
			if p == nil {
				continue
			}
			if err := c.signal(p, unix.SIGSTOP); err != nil {
				c.skip(int32(pid), "stop: "+err.Error())
				continue
			}
			adopted++
		}
	}
	return adopted
}

// readChildren reads a children file into c.children, growing it (a fork()
// loop's root can have thousands of children) up to 1 MiB.
func (c *container) readChildren(path string) (int, error) {
	if c.children == nil {
		c.children = make([]byte, 16<<10)
	}
	for {
		n, err := c.readInto(path, c.children)
		if err != nil || n < len(c.children) || len(c.children) >= 1<<20 {
			return n, err
		}
		c.children = make([]byte, 2*len(c.children))
	}
}

// readInto reads path into buf; out of descriptors, it gives the reserve
// back (see runOut) and tries again.
func (c *container) readInto(path string, buf []byte) (int, error) {
	n, err := readInto(path, buf)
	if fdLimit(err) && !c.outOfFDs {
		c.runOut()
		n, err = readInto(path, buf)
	}
	return n, err
}

// nextField returns the first space-separated field of b and the rest.
func nextField(b []byte) (field, rest []byte) {
	b = bytes.TrimLeft(b, " \n")
	i := bytes.IndexAny(b, " \n")
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i:]
}

func (c *container) killAll() {
	for pid, fd := range c.fds {
		if err := c.signal(fd, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			c.skip(pid, "kill: "+err.Error())
		}
	}
}

// wait waits for every killed member to exit and returns how many did not:
// until none is left, until no member exited for timeout, until bound has
// passed since the call, or until ctx ends (and then with ctx's error).
func (c *container) wait(ctx context.Context, timeout, bound time.Duration) (int, error) {
	start := time.Now()
	last := start // the last time a member was seen to exit
	pending := make([]*pin, 0, len(c.fds))
	for _, fd := range c.fds {
		pending = append(pending, fd)
	}
	for {
		left := pending[:0]
		for _, fd := range pending {
			if !c.exited(fd) {
				left = append(left, fd)
			}
		}
		now := time.Now()
		if len(left) < len(pending) {
			last = now
		}
		pending = left
		if len(pending) == 0 || now.Sub(last) >= timeout || now.Sub(start) >= bound {
			return len(pending), nil
		}
		if err := ctx.Err(); err != nil {
			return len(pending), err
		}
		if fd := pending[0]; fd.fd != nil {
			fd.fd.WaitExit(10 * time.Millisecond)
		} else {
			sys.SleepThread(10 * time.Millisecond)
		}
	}
}

func (c *container) closeAll() {
	for _, fd := range c.fds {
		fd.close()
	}
	c.releaseFDs()
}

// fdReserve is how many descriptors reserveFDs keeps: reading a member's
// /proc file takes one at a time.
const fdReserve = 4

// reserveFDs sets descriptors aside for when pidfds have used up
// RLIMIT_NOFILE. If even these cannot be opened, members are held by PID
// from the start.
func (c *container) reserveFDs() {
	for len(c.reserve) < fdReserve {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			c.runOut()
			return
		}
		c.reserve = append(c.reserve, fd)
	}
}

func (c *container) releaseFDs() {
	for _, fd := range c.reserve {
		unix.Close(fd)
	}
	c.reserve = nil
}
