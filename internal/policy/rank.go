package policy

import (
	"slices"
	"strconv"
	"strings"
)

// Candidate is one address-space group as the killer ranks it: every process
// sharing one mm (a thread group, clone(CLONE_VM) siblings, vfork children).
// Killing a candidate means SIGKILL to every PID in PIDs.
type Candidate struct {
	// PIDs are all members, in kill order: members that may be chosen first
	// (lowest PID first), then exiting members, then vfork children, which die
	// with the others as sharers.
	PIDs []int `json:"pids"`
	// Victim is the member reported as the victim: never a vfork child. It
	// is 0 when the group holds only vfork children.
	Victim int `json:"victim"`
	// Comm and StartTime are those of Victim (of the first member if 0).
	Comm      string `json:"comm"`
	StartTime uint64 `json:"start_time"`
	// Cgroup is Victim's cgroup path (of the first member if 0).
	Cgroup string `json:"cgroup"`
	// Scope is the index in Snapshot.Scopes of Victim's scope.
	Scope int `json:"scope"`
	// MMGroup is the shared Process.MMGroup; 0 for a process with no mm.
	MMGroup int `json:"mm_group"`
	// Badness is the kernel-like score in pages: RSS + swap + page tables of
	// the shared mm, counted once, plus the members' share of their cgroups'
	// kernel memory, plus oom_score_adj × totalpages / 1000 (the highest over
	// the members that may be chosen).
	Badness int64 `json:"badness"`
	// RSS, Swap and PageTables are the group's memory in bytes, counted once
	// (the largest value any member reports: they all see the same mm).
	RSS        uint64 `json:"rss"`
	Swap       uint64 `json:"swap"`
	PageTables uint64 `json:"page_tables"`
	// CgroupKernel is the members' share of the kernel memory charged to
	// their cgroups (Process.CgroupKernel, summed), in bytes.
	CgroupKernel uint64 `json:"cgroup_kernel,omitempty"`
	// OOMScoreAdj is the oom_score_adj that gave Badness.
	OOMScoreAdj int `json:"oom_score_adj"`
	// TotalPages is the kernel's totalpages the adjustment is scaled by: the
	// scope's limit, or MemTotal + SwapTotal, in pages.
	TotalPages uint64 `json:"total_pages"`
	// Protected is true when a member is protected; such a group is shown
	// but never chosen.
	Protected bool `json:"protected"`
	// Skipped is true when the group is not chosen for another reason:
	// ignored, unjudged, only vfork children left, all members exiting, or
	// marked unkillable by the Killer.
	Skipped bool `json:"skipped"`
	// Ignored is true when a member matches Rules.Ignore.
	Ignored bool `json:"ignored,omitempty"`
	// Exiting is true when every member is already exiting.
	Exiting bool `json:"exiting,omitempty"`
	// VforkOnly is true when the only members that are not exiting are vfork
	// children (the parent is out of view or exiting).
	VforkOnly bool `json:"vfork_only,omitempty"`
	// Unkillable is true when the Killer marked a member skipped after it
	// survived SIGKILL past the deadline twice.
	Unkillable bool `json:"unkillable,omitempty"`
	// Unjudged is true when a member's command line could not be read
	// (Process.CmdlineUnread), nor its executable yet (Process.Exe),
	// while Rules.Protected, Rules.Ignore or Rules.Avoid could name it by
	// them: whether, or when, it may be killed is unknown until one is
	// read. The Killer waits for such a candidate rather than choose a
	// smaller one in its place.
	Unjudged bool `json:"unjudged,omitempty"`
	// Preferred and Avoided tell that Rules.Prefer or Rules.Avoid matched.
	Preferred bool `json:"preferred,omitempty"`
	Avoided   bool `json:"avoided,omitempty"`
	// Reason says why the candidate ranks where it does, or why it is
	// protected or skipped, with the numbers.
	Reason string `json:"reason"`
	// Members are the processes of the group, in PIDs order.
	Members []Member `json:"members"`
}

// Eligible reports whether the candidate may be chosen as a victim.
func (c *Candidate) Eligible() bool { return !c.Protected && !c.Skipped }

// Member is one process of a Candidate.
type Member struct {
	PID          int    `json:"pid"`
	PPID         int    `json:"ppid"`
	StartTime    uint64 `json:"start_time"`
	Comm         string `json:"comm"`
	Cmdline      string `json:"cmdline,omitempty"`
	State        string `json:"state"`
	Cgroup       string `json:"cgroup,omitempty"`
	Scope        int    `json:"scope"`
	RSS          uint64 `json:"rss"`
	Swap         uint64 `json:"swap"`
	PageTables   uint64 `json:"page_tables"`
	CgroupKernel uint64 `json:"cgroup_kernel,omitempty"`
	OOMScoreAdj  int    `json:"oom_score_adj"`
	VforkChild   bool   `json:"vfork_child,omitempty"`
	Exiting      bool   `json:"exiting,omitempty"`
	KernelThread bool   `json:"kernel_thread,omitempty"`
	// CmdlineUnread and Exe: see Process.CmdlineUnread and Process.Exe.
	CmdlineUnread bool   `json:"cmdline_unread,omitempty"`
	Exe           string `json:"exe,omitempty"`
	// Protected says why this member is protected; empty if it is not.
	Protected string `json:"protected,omitempty"`
}

// procKey identifies a process across PID reuse.
type procKey struct {
	pid   int
	start uint64
}

// Rank groups snap.Processes by address space and returns the groups in kill
// order, best victim first: eligible groups, then skipped ones, then
// protected ones. Within each class the order is: preferred first, avoided
// last, higher badness, then ties broken by larger RSS, then the younger
// victim (larger StartTime), then the lower victim PID. It does not modify
// snap.
func Rank(snap *Snapshot, r Rules) []Candidate {
	return rank(snap, r, nil, true)
}

// loneKernelThread reports whether p is a kernel thread without an
// address space. It is a group of its own, always protected, and protects
// nothing else (only kill-cgroup mode lets a protected member protect
// others: its cgroup's), so the killer's choice need not rank it. A kernel
// thread that borrowed a user mm (kthread_use_mm) is grouped, and ranked,
// with that mm's processes: it protects them.
func loneKernelThread(p *Process, r Rules) bool {
	return p.KernelThread && p.MMGroup == 0 && !r.KillCgroup
}

// rank is Rank with the Killer's skip marks (reason by process). Without
// kernelThreads it leaves out every loneKernelThread: most processes of a
// small machine (52 of the 60 of bench/vm's guest), and more than a
// thousand on a large one, ranked at every decision only to be protected.
func rank(snap *Snapshot, r Rules, marks map[procKey]string, kernelThreads bool) []Candidate {
	page := snap.PageSize
	if page == 0 {
		page = 4096
	}
	// Group by address space in two passes, so that members and PIDs of all
	// groups share two allocations. groupOf is -1 for a process left out.
	n := len(snap.Processes)
	index := make(map[int]int, n)
	groupOf := make([]int, n)
	var counts []int
	kept := 0
	for i := range snap.Processes {
		p := &snap.Processes[i]
		if !kernelThreads && loneKernelThread(p, r) {
			groupOf[i] = -1
			continue
		}
		kept++
		key := p.MMGroup
		if key == 0 {
			key = -p.PID // no mm: a group of its own
		}
		j, ok := index[key]
		if !ok {
			j = len(counts)
			index[key] = j
			counts = append(counts, 0)
		}
		groupOf[i] = j
		counts[j]++
	}
	cands := make([]Candidate, len(counts))
	members := make([]Member, kept)
	pids := make([]int, kept)
	off := 0
	for j, c := range counts {
		cands[j].Members = members[off : off : off+c]
		cands[j].PIDs = pids[off : off+c : off+c]
		off += c
	}
	for i := range snap.Processes {
		if groupOf[i] < 0 {
			continue
		}
		p := &snap.Processes[i]
		c := &cands[groupOf[i]]
		c.MMGroup = p.MMGroup
		c.Members = append(c.Members, memberOf(snap, p, r))
	}
	for i := range cands {
		evaluate(&cands[i], snap, r, marks, page)
	}
	if r.KillCgroup {
		protectCgroups(cands)
	}
	// Sort pointers: candidates are large, and the comparators take pointers.
	order := make([]*Candidate, len(cands))
	for i := range cands {
		order[i] = &cands[i]
	}
	slices.SortFunc(order, killOrder) // total order: the last key is a unique PID
	out := make([]Candidate, len(cands))
	for i, c := range order {
		out[i] = *c
	}
	explainTies(out)
	return out
}

// memberOf makes the Member of p, with its protection reason.
func memberOf(snap *Snapshot, p *Process, r Rules) Member {
	m := Member{
		PID: p.PID, PPID: p.PPID, StartTime: p.StartTime, Comm: p.Comm,
		Cmdline: p.Cmdline, Cgroup: p.Cgroup, Scope: p.Scope,
		RSS: p.RSS, Swap: p.Swap, PageTables: p.PageTables, CgroupKernel: p.CgroupKernel,
		OOMScoreAdj: p.OOMScoreAdj, VforkChild: p.VforkChild,
		Exiting:       p.Exiting || p.State == 'Z' || p.State == 'X',
		KernelThread:  p.KernelThread,
		CmdlineUnread: p.CmdlineUnread,
		Exe:           p.Exe,
	}
	if p.State != 0 {
		m.State = string(rune(p.State))
	}
	switch {
	case p.PID == 1:
		m.Protected = "is PID 1 (global init)"
	case p.KernelThread:
		m.Protected = "is a kernel thread"
	case snap.SelfPID != 0 && p.PID == snap.SelfPID:
		m.Protected = "is oomguard itself"
	case p.OOMScoreAdj <= -1000:
		m.Protected = "has oom_score_adj -1000"
	default:
		if n, ok := protectedName(r.Protected, p); ok {
			m.Protected = "is named " + strconv.Quote(n) + " in the protected list"
		}
	}
	return m
}

// totalPages is the kernel's totalpages for a process in scope: the scope's
// limit when it has one (capped at the machine's), else MemTotal + SwapTotal.
func totalPages(snap *Snapshot, scope int, page uint64) uint64 {
	total := snap.Memory.Total + snap.Memory.SwapTotal
	if scope >= 0 && scope < len(snap.Scopes) {
		if l := snap.Scopes[scope].Limit; l > 0 && (total == 0 || l < total) {
			total = l
		}
	}
	return total / page
}

// memberOrder puts members that may be chosen first, then exiting members,
// then vfork children; lowest PID first within each.
func memberOrder(a, b Member) int {
	if a.VforkChild != b.VforkChild {
		return boolCmp(a.VforkChild, b.VforkChild)
	}
	if a.Exiting != b.Exiting {
		return boolCmp(a.Exiting, b.Exiting)
	}
	return a.PID - b.PID
}

// boolCmp orders false before true.
func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}

// evaluate fills in everything about c but its rank.
func evaluate(c *Candidate, snap *Snapshot, r Rules, marks map[procKey]string, page uint64) {
	slices.SortFunc(c.Members, memberOrder)
	rep := &c.Members[0]
	allExiting, live, liveVfork := true, 0, 0
	for i := range c.Members {
		m := &c.Members[i]
		c.PIDs[i] = m.PID
		c.RSS = max(c.RSS, m.RSS)
		c.Swap = max(c.Swap, m.Swap)
		c.PageTables = max(c.PageTables, m.PageTables)
		c.CgroupKernel += m.CgroupKernel
		if !m.Exiting {
			allExiting = false
			live++
			if m.VforkChild {
				liveVfork++
			}
		}
	}
	if !rep.VforkChild {
		c.Victim = rep.PID
	}
	c.Comm, c.StartTime, c.Cgroup, c.Scope = rep.Comm, rep.StartTime, rep.Cgroup, rep.Scope
	c.TotalPages = totalPages(snap, rep.Scope, page)
	memPages := int64((c.RSS + c.Swap + c.PageTables + c.CgroupKernel) / page)

	// Badness: the highest adjustment over the members that may be chosen
	// (all members when only vfork children are left).
	best := false
	for i := range c.Members {
		m := &c.Members[i]
		if m.VforkChild && c.Victim != 0 {
			continue
		}
		b := memPages + int64(m.OOMScoreAdj)*int64(c.TotalPages/1000)
		if !best || b > c.Badness {
			c.Badness, c.OOMScoreAdj, best = b, m.OOMScoreAdj, true
		}
	}

	var why strings.Builder
	why.Grow(160)
	// Protection: any protected member protects the whole group.
	for i := range c.Members {
		m := &c.Members[i]
		if m.Protected == "" {
			continue
		}
		if !c.Protected {
			why.WriteString("protected: ")
		} else {
			why.WriteString("; ")
		}
		c.Protected = true
		writeMember(&why, m)
		why.WriteString(" " + m.Protected)
	}
	if c.Protected && len(c.Members) > 1 {
		why.WriteString(" (the whole mm group of " + strconv.Itoa(len(c.Members)) + " is protected)")
	}

	// Skips.
	skip := func(s string) {
		if c.Protected {
			return
		}
		if !c.Skipped {
			why.WriteString("skipped: ")
		} else {
			why.WriteString("; ")
		}
		c.Skipped = true
		why.WriteString(s)
	}
	for i := range c.Members {
		m := &c.Members[i]
		if re := matchAny(r.Ignore, m.Comm, ruleLine(m)); re != nil {
			c.Ignored = true
			var s strings.Builder
			s.WriteString("ignored: ")
			writeMember(&s, m)
			s.WriteString(" matches --ignore " + strconv.Quote(re.String()))
			skip(s.String())
			break
		}
	}
	if len(r.Protected) > 0 || len(r.Ignore) > 0 || len(r.Avoid) > 0 {
		// Killing it could kill what the rules protect, ignore or keep
		// for last: it waits until its command line or its executable
		// is read (the scanner tries each pass).
		for i := range c.Members {
			m := &c.Members[i]
			if m.CmdlineUnread && m.Exe == "" && !m.Exiting {
				c.Unjudged = true
				var s strings.Builder
				writeMember(&s, m)
				s.WriteString(" has a command line that could not be read yet (a read of /proc/PID/cmdline blocked on its mmap_lock): rules.protect, rules.ignore or rules.avoid may name it by it")
				skip(s.String())
				break
			}
		}
	}
	for i := range c.Members {
		m := &c.Members[i]
		if reason, ok := marks[procKey{m.PID, m.StartTime}]; ok {
			c.Unkillable = true
			var s strings.Builder
			writeMember(&s, m)
			s.WriteString(" " + reason)
			skip(s.String())
			break
		}
	}
	switch {
	case allExiting:
		c.Exiting = true
		skip("all " + strconv.Itoa(len(c.Members)) + " members are already exiting; their memory is being freed")
	case live == liveVfork:
		c.VforkOnly = true
		skip("only vfork children are left (" + joinPIDs(c.PIDs) + "); a vfork child is never chosen by itself")
	}

	for i := range c.Members {
		if m := &c.Members[i]; m.CmdlineUnread && m.Exe != "" && c.Eligible() {
			why.WriteString("command line of ")
			writeMember(&why, m)
			why.WriteString(" unreadable (its read blocked on the mmap_lock): the rules judged it by its comm and its executable " + strconv.Quote(m.Exe) + "; ")
			break
		}
	}

	// Preference.
	for i := range c.Members {
		m := &c.Members[i]
		if m.VforkChild {
			continue
		}
		if re := matchAny(r.Prefer, m.Comm, ruleLine(m)); re != nil {
			c.Preferred = true
			if c.Eligible() {
				why.WriteString("preferred: ")
				writeMember(&why, m)
				why.WriteString(" matches --prefer " + strconv.Quote(re.String()) + "; ")
			}
			break
		}
	}
	for i := range c.Members {
		m := &c.Members[i]
		if re := matchAny(r.Avoid, m.Comm, ruleLine(m)); re != nil {
			c.Avoided = true
			if c.Eligible() {
				why.WriteString("avoided: ")
				writeMember(&why, m)
				why.WriteString(" matches --avoid " + strconv.Quote(re.String()) + "; ")
			}
			break
		}
	}
	if c.Eligible() {
		writeBadness(&why, c, memPages)
		if liveVfork > 0 {
			var vf []int
			for i := range c.Members {
				if c.Members[i].VforkChild {
					vf = append(vf, c.Members[i].PID)
				}
			}
			why.WriteString("; vfork children " + joinPIDs(vf) +
				" are never chosen themselves but die with PID " + strconv.Itoa(c.Victim) + " as sharers")
		}
	}
	c.Reason = why.String()
}

// writeBadness explains c.Badness.
func writeBadness(b *strings.Builder, c *Candidate, memPages int64) {
	b.WriteString("badness ")
	writeInt(b, c.Badness)
	b.WriteString(" = ")
	writeInt(b, memPages)
	b.WriteString(" pages (rss ")
	writeInt(b, int64(c.RSS/1024))
	b.WriteString(" KiB + swap ")
	writeInt(b, int64(c.Swap/1024))
	b.WriteString(" KiB + page tables ")
	writeInt(b, int64(c.PageTables/1024))
	b.WriteString(" KiB")
	if c.CgroupKernel > 0 {
		b.WriteString(" + kernel memory of its cgroup ")
		writeInt(b, int64(c.CgroupKernel/1024))
		b.WriteString(" KiB")
	}
	if len(c.Members) > 1 {
		b.WriteString(", one mm counted once for ")
		writeInt(b, int64(len(c.Members)))
		b.WriteString(" sharers")
	}
	b.WriteString(")")
	if c.OOMScoreAdj != 0 {
		b.WriteString(" + oom_score_adj ")
		writeInt(b, int64(c.OOMScoreAdj))
		b.WriteString(" × ")
		writeInt(b, int64(c.TotalPages/1000))
		b.WriteString(" (totalpages ")
		writeInt(b, int64(c.TotalPages))
		b.WriteString("/1000)")
	}
}

// writeInt writes n in decimal without allocating.
func writeInt(b *strings.Builder, n int64) {
	var tmp [20]byte
	b.Write(strconv.AppendInt(tmp[:0], n, 10))
}

// writeMember writes "PID 12 (comm)".
func writeMember(b *strings.Builder, m *Member) {
	b.WriteString("PID ")
	writeInt(b, int64(m.PID))
	b.WriteString(" (")
	b.WriteString(m.Comm)
	b.WriteString(")")
}

// joinPIDs formats pids as "1, 2, 3".
func joinPIDs(pids []int) string {
	var b []byte
	for i, p := range pids {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	return string(b)
}

// protectCgroups protects, for Rules.KillCgroup, every group whose cgroup
// holds a protected process of another group; and makes unjudged
// (Candidate.Unjudged) every group whose cgroup holds an unjudged one, whose
// protection is not known yet.
func protectCgroups(cands []Candidate) {
	holder := map[string]*Member{}
	unjudged := map[string]*Member{}
	for i := range cands {
		for j := range cands[i].Members {
			m := &cands[i].Members[j]
			if m.Protected != "" && holder[m.Cgroup] == nil {
				holder[m.Cgroup] = m
			}
			if cands[i].Unjudged && m.CmdlineUnread && m.Exe == "" && unjudged[m.Cgroup] == nil {
				unjudged[m.Cgroup] = m
			}
		}
	}
	for i := range cands {
		c := &cands[i]
		if c.Protected {
			continue
		}
		m := holder[c.Cgroup]
		if m == nil {
			if u := unjudged[c.Cgroup]; u != nil && !c.Unjudged && !c.Skipped {
				var b strings.Builder
				b.WriteString("skipped: kill-cgroup mode and cgroup " + c.Cgroup + " also holds ")
				writeMember(&b, u)
				b.WriteString(", which cannot be judged yet (its command line unread); " + c.Reason)
				c.Unjudged, c.Skipped = true, true
				c.Reason = b.String()
			}
			continue
		}
		var b strings.Builder
		b.WriteString("protected: kill-cgroup mode and cgroup " + c.Cgroup + " also holds ")
		writeMember(&b, m)
		b.WriteString(" which " + m.Protected)
		c.Protected, c.Skipped = true, false
		c.Reason = b.String()
	}
}

// class orders eligible before skipped before protected.
func class(c *Candidate) int {
	switch {
	case c.Protected:
		return 2
	case c.Skipped:
		return 1
	}
	return 0
}

// lessFunc compares two candidates; negative puts a first.
type lessFunc func(a, b *Candidate) int

// The comparators killOrder is composed of, in order of precedence.
var (
	byClass   lessFunc = func(a, b *Candidate) int { return class(a) - class(b) }
	byPrefer  lessFunc = func(a, b *Candidate) int { return boolCmp(b.Preferred, a.Preferred) }
	byAvoid   lessFunc = func(a, b *Candidate) int { return boolCmp(a.Avoided, b.Avoided) }
	byBadness lessFunc = func(a, b *Candidate) int { return cmp3(b.Badness, a.Badness) }
	byRSS     lessFunc = func(a, b *Candidate) int { return cmp3(b.RSS, a.RSS) }
	byYouth   lessFunc = func(a, b *Candidate) int { return cmp3(b.StartTime, a.StartTime) }
	byPID     lessFunc = func(a, b *Candidate) int { return cmp3(pidKey(a), pidKey(b)) }
)

// tieBreakers are the comparators after badness, with what they mean.
var tieBreakers = [...]struct {
	f    lessFunc
	what string
}{
	{byRSS, "larger RSS"},
	{byYouth, "younger (larger start time)"},
	{byPID, "lower PID"},
}

// pidKey is the victim PID, or the first member's when there is none.
func pidKey(c *Candidate) int {
	if c.Victim != 0 {
		return c.Victim
	}
	return c.PIDs[0]
}

// cmp3 is cmp.Compare for the integer types used here.
func cmp3[T int | int64 | uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// orderedBy composes comparators: the first that tells a and b apart wins.
func orderedBy(fs ...lessFunc) func(a, b *Candidate) int {
	return func(a, b *Candidate) int {
		for _, f := range fs {
			if d := f(a, b); d != 0 {
				return d
			}
		}
		return 0
	}
}

// killOrder is the ranking documented on Rank.
var killOrder = orderedBy(byClass, byPrefer, byAvoid, byBadness,
	tieBreakers[0].f, tieBreakers[1].f, tieBreakers[2].f)

// explainTies notes in the reason of each eligible candidate that ties its
// predecessor's badness which tie-breaker put it after.
func explainTies(cands []Candidate) {
	for i := 1; i < len(cands); i++ {
		a, b := &cands[i-1], &cands[i]
		if !b.Eligible() || byClass(a, b) != 0 || byPrefer(a, b) != 0 ||
			byAvoid(a, b) != 0 || byBadness(a, b) != 0 {
			continue
		}
		what := "nothing (identical)"
		for _, t := range tieBreakers {
			if t.f(a, b) != 0 {
				what = t.what
				break
			}
		}
		b.Reason += "; ties with PID " + strconv.Itoa(pidKey(a)) + ", which ranks first by " + what
	}
}
