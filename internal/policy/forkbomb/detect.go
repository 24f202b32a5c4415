// Package forkbomb finds fork bombs in a process lineage: a pure function of
// the lineage recorder, the thresholds and the time.
package forkbomb

import (
	"math"
	"slices"
	"time"

	"github.com/oomguard/oomguard/internal/lineage"
)

// Config holds the detector's thresholds. A family is a record of the
// lineage and everything below it, dead ancestors included; only its live,
// in-scope, non-kernel members are counted. A family is a bomb when all of:
//
//   - size: at least MinFamily live members;
//   - recency: at least MinYoungFraction of them younger than YouthAge, or
//     a birth rate of at least MinRate over RateWindow;
//   - replication: the deepest live member is at least MinDepth forks below
//     the family's root, or at least MinOrphanFraction of the live members
//     have a dead parent.
//
// or, for bombs whose parents exit at once (the hardest kind, and the kind
// that gives itself away soonest), when it is recent as above and either
//
//   - has at least OrphanFamily live members, at least OrphanFamilyFraction
//     of them orphans, and a depth of at least MinDepth; or
//   - has at least ReplicatingFamily live members and at least
//     ReplicatingGenerations replication generations: nested exited
//     processes that each left two or more lines of descendants behind
//     (a process that started two or more others and exited, below one
//     that did the same, below one that did the same).
//
// or, for bombs whose members live on and keep forking copies of
// themselves (a fork() loop, a bomb that sleeps between forks), when it is
// recent as above, has at least CloningFamily live members, at least half
// as many births within RateWindow of its newest prompt birth (a burst:
// measured from its newest birth, not from now, so that a family that grew
// in a burst and then went silent at its pids limit is still seen as one
// by a pass that comes late, such as a guard whose events were delayed;
// and from the newest birth that came within RateWindow of its parent's,
// so that a straggler does not hide the burst: a member a long-lived one
// forked later, when a bomb at its limit refills a slot that some other
// process freed), every live member but its root a copy (forked, never
// exec'd, known from its fork event; or, in a family of MinFamily or more,
// known from a /proc scan and carrying its parent's name, which is all a
// scan can tell), and at least CloningGenerations clone generations: live
// copies nested one inside the other (a copy that forked a copy that
// forked a copy), each of which has run CopyAge without exec.
//
// Lines that a scan shows under one parent, carrying one name, and started
// within RateWindow of each other, none a bomb by itself, are judged as one
// family when each is a line of copies: the lines of a bomb whose root is
// gone (see orphanedBombs).
//
// The defaults, and why:
//
//   - MinFamily 200. Legitimate parallel work is bounded by its job count:
//     make -j16 peaks under 100 live processes (make, shell, compiler
//     driver, cc1, as per job), xargs -P 32 at about 66, go build -p N at
//     about 3N. 200 leaves twice the headroom of a -j32 build, and still
//     stops the fastest bomb this kernel runs (about 15 forks/ms) near 200 +
//     15 × (detection + freeze latency, ~30 ms) ≈ 650 members, under the
//     1,000 target. Raise it on machines that run wider jobs.
//   - YouthAge 60 s, MinYoungFraction 0.8. A bomb's members are at most
//     seconds old; big long-lived pools (prefork servers, browsers, build
//     daemons) are not.
//   - RateWindow 1 s, MinRate 2000 births/s. A bomb sitting at a pids
//     limit for longer than YouthAge still churns; 2000/s is far above
//     what a human-started workload of 200+ members sustains, and a sixth
//     of what a bomb reaches.
//   - MinDepth 6. make → sh → gcc → cc1 is 3 forks deep, xargs → sh → cmd
//     2, go → compile 1; recursive make adds 2 per level. A doubling bomb
//     is log2(200) ≈ 8 deep by the time it has 200 members, a fork loop
//     about e·ln(200) ≈ 14.
//   - MinOrphanFraction 0.3. Legitimate parents (make, xargs, shells) wait
//     for their children; a daemonising double fork orphans one process,
//     not a third of a family of 200. A bash bomb's parents exit at once,
//     so nearly all its members are orphans.
//   - OrphanFamily 50, OrphanFamilyFraction 0.5. A family that is six or
//     more forks deep with half its members orphaned is replicating through
//     exiting parents: no build, test runner or job pool looks like that
//     (their trees are at most four deep and their parents wait), while a
//     bash bomb has that shape from its third generation. Catching it at 50
//     instead of 200 saves two generations.
//   - ReplicatingFamily 16, ReplicatingGenerations 3. This is how a bomb
//     whose parents exit looks from its first generations: each member
//     starts two (or more) copies and exits, so exited, branching records
//     nest one inside the other, one level per generation. Legitimate
//     work has none: builds, job pools and shells wait for their children,
//     so none of their records is an exited parent, in all the recorded
//     workloads (testdata). Daemonising leaves an exited parent of one
//     child, which does not branch; a script that backgrounds several
//     services and exits is one branching generation, and its services
//     daemonising do not add one. Three nested generations with 16 live
//     members is a bash or sh bomb at its third or fourth generation, a
//     quarter of the way to OrphanFamily.
//   - CloningFamily 8, CloningGenerations 3. Legitimate programs exec what
//     they fork (make, xargs, shells and go all run other programs), and
//     those that fork copies of themselves (prefork servers, zygotes, a
//     shell's subshells) fork them from one process, one or two levels
//     deep, and do not double in a second. None of the recorded workloads
//     (testdata) has even two live copies nested while it grows. A bomb
//     whose every member forks copies that fork has three nested copies at
//     its fourth doubling: 8 members, which a bomb doubling every 200 ms
//     reaches 400 ms after its first fork.
//   - CopyAge 20 ms. A process that forks to run another program execs
//     within a millisecond or two; until then it is a copy. CopyAge keeps
//     those passing copies (the two halves of a pipeline in a subshell in a
//     subshell) out of the clone generations; a bomb's copies never exec,
//     so the rule only waits 20 ms for its newest generation.
type Config struct {
	MinFamily            int
	YouthAge             time.Duration
	MinYoungFraction     float64
	RateWindow           time.Duration
	MinRate              float64
	MinDepth             int
	MinOrphanFraction    float64
	OrphanFamily         int
	OrphanFamilyFraction float64

	ReplicatingFamily      int
	ReplicatingGenerations int

	CloningFamily      int
	CloningGenerations int
	CopyAge            time.Duration
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		MinFamily:            200,
		YouthAge:             60 * time.Second,
		MinYoungFraction:     0.8,
		RateWindow:           time.Second,
		MinRate:              2000,
		MinDepth:             6,
		MinOrphanFraction:    0.3,
		OrphanFamily:         50,
		OrphanFamilyFraction: 0.5,

		ReplicatingFamily:      16,
		ReplicatingGenerations: 3,

		CloningFamily:      8,
		CloningGenerations: 3,
		CopyAge:            20 * time.Millisecond,
	}
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.MinFamily <= 0 {
		c.MinFamily = d.MinFamily
	}
	if c.YouthAge <= 0 {
		c.YouthAge = d.YouthAge
	}
	if c.MinYoungFraction <= 0 {
		c.MinYoungFraction = d.MinYoungFraction
	}
	if c.RateWindow <= 0 {
		c.RateWindow = d.RateWindow
	}
	if c.MinRate <= 0 {
		c.MinRate = d.MinRate
	}
	if c.MinDepth <= 0 {
		c.MinDepth = d.MinDepth
	}
	if c.MinOrphanFraction <= 0 {
		c.MinOrphanFraction = d.MinOrphanFraction
	}
	if c.OrphanFamily <= 0 {
		c.OrphanFamily = d.OrphanFamily
	}
	if c.OrphanFamilyFraction <= 0 {
		c.OrphanFamilyFraction = d.OrphanFamilyFraction
	}
	if c.ReplicatingFamily <= 0 {
		c.ReplicatingFamily = d.ReplicatingFamily
	}
	if c.ReplicatingGenerations <= 0 {
		c.ReplicatingGenerations = d.ReplicatingGenerations
	}
	if c.CloningFamily <= 0 {
		c.CloningFamily = d.CloningFamily
	}
	if c.CloningGenerations <= 0 {
		c.CloningGenerations = d.CloningGenerations
	}
	if c.CopyAge <= 0 {
		c.CopyAge = d.CopyAge
	}
	return c
}

// PIDSet is an immutable set of PIDs, for scopes.
type PIDSet struct{ pids []int32 }

// NewPIDSet returns the set of pids.
func NewPIDSet(pids []int) *PIDSet {
	s := &PIDSet{pids: make([]int32, len(pids))}
	for i, p := range pids {
		s.pids[i] = int32(p)
	}
	slices.Sort(s.pids)
	return s
}

// Contains reports whether pid is in s. A nil set contains every PID.
func (s *PIDSet) Contains(pid int32) bool {
	if s == nil {
		return true
	}
	_, ok := slices.BinarySearch(s.pids, pid)
	return ok
}

// Len returns the number of PIDs in s.
func (s *PIDSet) Len() int { return len(s.pids) }

// Verdict describes one family found to be a bomb.
type Verdict struct {
	// Root is the family's top record; RootRef survives later events.
	Root    lineage.ID
	RootRef lineage.Ref
	RootPID int32
	// RootAlive tells whether the root record is a live process.
	RootAlive bool
	// Live, Young and Orphans count live members; Dead counts the dead
	// records (exited ancestors) in the family; Births the forks within
	// RateWindow still on record.
	Live, Young, Orphans, Dead, Births int
	// Depth is the deepest live member's fork distance below Root.
	Depth int
	// Rate is Births per second of RateWindow.
	Rate float64
	// Burst counts the processes on record started within RateWindow of
	// the family's newest prompt start (see prompt; up to burstClimb levels
	// below each counting record).
	Burst int
	// Generations counts replication generations: the most exited,
	// branching records (processes that exited leaving two or more lines of
	// descendants) nested along one line of descent.
	Generations int
	// Clones counts clone generations: the most live copies (forked, never
	// exec'd, for at least CopyAge), or namesakes (see namesake), nested
	// one inside the other below Root.
	Clones int
	// FirstBorn is the earliest birth in the family: when it started.
	FirstBorn time.Duration
	// FirstFork is the earliest birth below Root: the bomb's first fork
	// (later than FirstBorn by however long the root ran before forking);
	// math.MaxInt64 when no record below Root was born of a fork.
	FirstFork time.Duration
	// Siblings are the roots of the bomb's other lines when its own root
	// is gone and a scan is all the guard knows (see orphanedLines): the
	// family is Root's and theirs. Live and Young count theirs too.
	Siblings []lineage.Ref
}

// Input is what one detection pass looks at.
type Input struct {
	Lineage *lineage.Recorder
	// Now is the current CLOCK_MONOTONIC time, the clock of the records.
	Now time.Duration
	// Scope limits members to these PIDs; nil means every process.
	Scope *PIDSet
	// Self is oomguard's own PID: never part of a family's root chain.
	Self int32
}

// Detector runs detection passes, reusing its scratch space so that passes
// do not allocate once warmed up. It is not safe for concurrent use.
type Detector struct {
	cfg   Config
	order []lineage.ID
	st    []stats
	qe    []bool
	cov   []bool
	// judged marks the heads of orphaned groups already judged in this
	// pass (see groupSpan): any of a group's heads spans the same group,
	// so each is judged once.
	judged []bool
	anc    []bool // ancestors of oomguard itself: their families hold it
	// recheck is when a family that only its youngest copies keep from
	// the cloning rule is due to be looked at again; 0: none.
	recheck time.Duration
}

type stats struct {
	live, young, orphans, dead, births int32
	// burst counts the processes started below and at the record within
	// RateWindow before newest, the latest prompt start there (see prompt;
	// math.MinInt64: none); a start is a fork event, or the start time a
	// scan read.
	burst       int32
	newest      time.Duration
	depth       int32 // -1: no live member below
	generations int32
	// copies counts live members that are copies (forked, never exec'd,
	// known from their fork event), and namesakes those known from a scan
	// that carry their parent's name (see namesake); clones is the most
	// copies or namesakes of at least CopyAge nested one inside the other
	// below the record, counting from its children, and clonesAll the
	// same for any age.
	copies, namesakes, clones, clonesAll int32
	// first is the earliest birth in the family, firstFork the earliest
	// below the record (its own exec images aside); math.MaxInt64: none.
	first, firstFork time.Duration
}

// New returns a detector with cfg (zero fields take defaults).
func New(cfg Config) *Detector { return &Detector{cfg: cfg.WithDefaults()} }

// Config returns the effective thresholds.
func (d *Detector) Config() Config { return d.cfg }

// Recheck returns when the last Detect's input should be looked at again
// even if no event comes: a family it did not flag only because its newest
// copies had not yet run CopyAge. 0 means no such family.
func (d *Detector) Recheck() time.Duration { return d.recheck }

// Detect returns the bomb families in in.Lineage, largest first, appended
// to out. Families never nest: each verdict's root is the topmost record
// that qualifies and is eligible (see eligible): the climb from the bomb
// goes through its dead ancestors and young in-scope parents and stops at
// anything else (an old shell, PID 1, a supervisor outside the scope).
func (d *Detector) Detect(in Input, out []Verdict) []Verdict {
	rec := in.Lineage
	n := rec.Len()
	if cap(d.st) < n {
		d.st = make([]stats, n, n+n/2)
		d.qe = make([]bool, n, n+n/2)
		d.cov = make([]bool, n, n+n/2)
		d.judged = make([]bool, n, n+n/2)
		d.anc = make([]bool, n, n+n/2)
	}
	d.st, d.qe, d.cov, d.anc, d.judged = d.st[:n], d.qe[:n], d.cov[:n], d.anc[:n], d.judged[:n]
	clear(d.judged)
	d.recheck = 0
	clear(d.cov)
	// A family that holds oomguard itself is never a bomb's: killing it
	// would kill the killer and whatever started it (a supervisor, a
	// test runner, a login shell) along with the bomb.
	clear(d.anc)
	if self, ok := rec.Lookup(in.Self); ok && in.Self > 0 {
		for a := rec.Get(self).Parent; a > lineage.Root; a = rec.Get(a).Parent {
			d.anc[a] = true
		}
	}
	order := d.order[:0]
	order = append(order, lineage.Root)
	for i := 0; i < len(order); i++ {
		for ch := rec.Get(order[i]).FirstChild; ch != lineage.None; ch = rec.Get(ch).NextSibling {
			order = append(order, ch)
		}
	}
	d.order = order
	youngCut := in.Now - d.cfg.YouthAge
	rateCut := in.Now - d.cfg.RateWindow
	// Breadth-first order lists parents before children, so the reverse
	// visits leaves first and folds each family into its parent.
	for i := len(order) - 1; i >= 0; i-- {
		id := order[i]
		r := rec.Get(id)
		s := stats{depth: -1, first: r.Born, firstFork: math.MaxInt64, newest: math.MinInt64}
		children := 0
		for ch := r.FirstChild; ch != lineage.None; ch = rec.Get(ch).NextSibling {
			c, chr := &d.st[ch], rec.Get(ch)
			children++
			s.sum(c)
			if isCopy(chr, in) || namesake(r, chr, in) {
				s.clonesAll = max(s.clonesAll, c.clonesAll+1)
				if in.Now-chr.Born >= d.cfg.CopyAge {
					s.clones = max(s.clones, c.clones+1)
				}
			}
			if c.first < s.first {
				s.first = c.first
			}
			if chr.Exec {
				s.firstFork = min(s.firstFork, c.firstFork) // the same process
			} else {
				s.firstFork = min(s.firstFork, c.first)
			}
			if c.depth >= 0 {
				step := int32(1)
				if chr.Exec {
					step = 0
				}
				s.depth = max(s.depth, c.depth+step)
			}
		}
		if id != lineage.Root {
			if r.Alive && !r.Kthread && in.Scope.Contains(r.PID) {
				s.live++
				s.depth = max(s.depth, 0)
				if r.Born >= youngCut {
					s.young++
				}
				if p := rec.ForkParent(id); p > lineage.Root && rec.Get(p).Exited {
					s.orphans++
				}
				if isCopy(r, in) {
					s.copies++
				} else if namesake(rec.Get(r.Parent), r, in) {
					s.namesakes++
				}
			}
			if !r.Alive && r.Exited {
				s.dead++
				// Records without live descendants are freed, so every
				// child here leads to a live member.
				if children >= 2 {
					s.generations++
				}
			}
			if forked(r) && r.Born >= rateCut {
				s.births++
			}
			if !r.Exec && prompt(rec, r, d.cfg.RateWindow) {
				s.newest = max(s.newest, r.Born)
			}
		}
		d.st[id] = s
	}
	d.countBursts(rec, order)
	for _, id := range order {
		r := rec.Get(id)
		s := &d.st[id]
		d.qe[id] = id != lineage.Root && !d.anc[id] && d.qualifies(s) && d.eligible(r, in, youngCut)
		if !d.qe[id] && s.clonesAll > s.clones && id != lineage.Root && d.recent(s) && d.cloning(s, s.clonesAll) {
			// Its youngest copies will have run CopyAge by then.
			d.recheck = in.Now + d.cfg.CopyAge
		}
		// covered: some ancestor is already a verdict's root, or the
		// record is one of a verdict's sibling lines (set below).
		d.cov[id] = d.cov[id] || (r.Parent != lineage.None && (d.cov[r.Parent] || d.qe[r.Parent]))
		if !d.qe[id] || d.cov[id] {
			continue
		}
		// Climb to the bomb's launcher through dead ancestors: a dead
		// parent whose family is this one plus at most two others (a
		// wrapper that exited) belongs to it, even when those two tip its
		// fractions below the thresholds. A live parent (a shell or a
		// timeout waiting for the bomb) is left alone: it forks nothing and
		// ends by itself once the bomb is gone. Anything wider (a runner
		// with bystanders beside the bomb) or holding oomguard is not the
		// bomb's. But a parent, live or not, that forked this family's
		// root and another live line as copies of itself is the bomb's own
		// (see forksCopies), however wide.
		for p := r.Parent; p > lineage.Root; p = rec.Get(p).Parent {
			ps := &d.st[p]
			pr := rec.Get(p)
			if d.anc[p] || !d.eligible(pr, in, youngCut) {
				break
			}
			if (pr.Alive || ps.live > s.live+2) && !d.forksCopies(rec, p, id, in) && !d.scannedCopies(rec, p, id) {
				break
			}
			id, r, s = p, rec.Get(p), ps
		}
		// Step down past live launchers (see launched): a live root that
		// only started the bomb and waits for it, alone or beside
		// bystanders, is not the bomb; its child's family is. A bomb's live
		// root forks into all its children (a C fork loop), so it stays. A
		// record whose process lives on as a later image (after exec)
		// counts as live.
		for r.Alive || !r.Exited {
			next, ok := d.launched(rec, id, in, youngCut)
			if !ok {
				break
			}
			id, r, s = next, rec.Get(next), &d.st[next]
		}
		if d.cov[id] || slices.ContainsFunc(out, func(v Verdict) bool { return v.Root == id }) {
			continue
		}
		siblings, live, young := d.orphanedLines(rec, id, in, youngCut)
		v := *s
		v.live += live
		v.young += young
		out = append(out, d.verdict(rec, id, &v, siblings))
	}
	out = d.orphanedBombs(rec, in, youngCut, out)
	slices.SortStableFunc(out, func(a, b Verdict) int { return b.Live - a.Live })
	return out
}

// orphanedBombs appends the verdicts on bombs whose root is gone and none
// of whose lines qualifies alone, seen by a /proc scan only: a fork() loop
// at its memory limit, where the kernel's OOM killer takes member after
// member (hundreds in seconds), its root among them, leaves dozens of
// lines under PID 1 or a subreaper, each a few levels deep and under
// MinFamily, so that no line is a bomb by itself. Together they are one,
// as their gone common root's family would be: a group of such lines (see
// orphanedLine), each started within RateWindow of another (see
// groupSpan), is judged as one family. Its counts are the lines'
// summed (each line's burst measured from its own newest prompt start),
// with the gone root's level added: the heads, copies of one program,
// count as namesakes of that root, one clone generation and one level of
// depth above the lines'. Lines of other names, or with a member that runs
// another program, or started apart, stay apart; so do a launcher's
// instances of a forking server (postmaster and its backends), whose lines
// are one level deep, two with the gone root's: under CloningGenerations.
func (d *Detector) orphanedBombs(rec *lineage.Recorder, in Input, youngCut time.Duration, out []Verdict) []Verdict {
	for _, p := range d.order {
		for lead := rec.Get(p).FirstChild; lead != lineage.None; lead = rec.Get(lead).NextSibling {
			if d.qe[lead] || d.judged[lead] || !rec.Get(lead).Alive || !in.Scope.Contains(rec.Get(lead).PID) ||
				!d.orphanedLine(rec, lead, lead, in, youngCut) {
				continue
			}
			grp := d.groupSpan(rec, lead, in, youngCut)
			if grp.lines < 2 {
				continue
			}
			g := grp.sum
			g.namesakes += grp.lines
			g.clones++
			g.clonesAll++
			g.depth++
			g.firstFork = g.first
			if !d.qualifies(&g) {
				continue
			}
			siblings, live, young := d.groupLines(rec, lead, grp.from, grp.to, grp.to, in, youngCut)
			g.live = d.st[lead].live + live
			g.young = d.st[lead].young + young
			d.cov[lead] = true
			out = append(out, d.verdict(rec, lead, &g, siblings))
		}
	}
	return out
}

// orphanedLine reports whether record id may be one line of a bomb whose
// root is gone, the bomb of line lead's (see orphanedLines): a live,
// eligible process known from a scan, not covered by a verdict, not
// holding oomguard, a sibling of lead carrying lead's name under a parent
// of another name (a parent of that name forked them all: the climb and
// the root's own verdict cover that), and heading a line of namesakes (see
// namesakeLine). Or such a process on its way out of the scope, whose
// line below it is namesakes in scope (see leavingCopy).
func (d *Detector) orphanedLine(rec *lineage.Recorder, lead, id lineage.ID, in Input, youngCut time.Duration) bool {
	if !d.orphanedSibling(rec, lead, id) {
		return false
	}
	r := rec.Get(id)
	if !r.Alive || !in.Scope.Contains(r.PID) {
		return d.leavingCopy(r, &d.st[id], in, youngCut)
	}
	return d.eligible(r, in, youngCut) && d.namesakeLine(id)
}

// leavingCopy reports whether r, a process out of the scope, or one that
// exited since the scan that found it (its record stays while its line
// lives), with family counts s, is a bomb's copy on its way out or gone:
// young, not PID 1, oomguard or a kernel thread, with live members in
// scope below it, every one a copy or namesake. The kernel's OOM killer
// takes line heads too, after the guard's scan as well as before: the
// line of one that died after it is still the bomb's. (In a guard run at
// 340 MiB the first containment left 114 members out, though the scans
// taken alike were judged whole; the recorded scan with two heads exited
// after it was three verdicts before this.) A copy of a fork() loop at its
// memory limit that the kernel's OOM killer took leaves its cgroup
// (cgroup_exit) before it hands its children to the adopter (exit_notify;
// beside 2,000 forking copies, long enough for one scan to catch three):
// for a while a scan shows it, out of its cgroup's list, at the head of
// its line (three such lines, an eighth of a bomb at its limits, in one
// recorded scan). Its members are in scope; it is not, and Members leaves
// it out.
func (d *Detector) leavingCopy(r *lineage.Record, s *stats, in Input, youngCut time.Duration) bool {
	return r.PID > 1 && r.PID != in.Self && !r.Kthread && r.Born >= youngCut && s.live >= 1 && s.copies+s.namesakes >= s.live
}

// orphanedCopy reports whether record id is, as far as a scan can tell, a
// lone copy of the bomb of line lead's: a sibling of lead as for
// orphanedLine, eligible, alone, with no live member below it. A fork()
// loop at its limits leaves many: the children of a copy that the
// kernel's OOM killer took, deep in the tree, are mostly leaves, each at
// the head of nothing.
func (d *Detector) orphanedCopy(rec *lineage.Recorder, lead, id lineage.ID, in Input, youngCut time.Duration) bool {
	return d.orphanedSibling(rec, lead, id) && rec.Get(id).Alive && d.eligible(rec.Get(id), in, youngCut) && d.st[id].live == 1
}

// orphanedSibling reports whether record id, a process known from a scan,
// live or exited since (not one that exec'd: a later image is another
// program), not covered by a verdict nor holding oomguard, is a sibling of
// lead carrying its name, under a parent of another name.
func (d *Detector) orphanedSibling(rec *lineage.Recorder, lead, id lineage.ID) bool {
	r, lr := rec.Get(id), rec.Get(lead)
	return r.Scanned && (r.Alive || r.Exited) && !d.cov[id] && !d.anc[id] && r.Parent > lineage.Root && r.Parent == lr.Parent &&
		r.Comm == lr.Comm && rec.Get(r.Parent).Comm != r.Comm
}

// lineGroup is the group of lines that a line belongs to (see groupSpan).
type lineGroup struct {
	// from and to are the first and last of its lines' starts.
	from, to time.Duration
	// lines counts its lines; sum is their counts folded (see add).
	lines int32
	sum   stats
}

// groupSpan returns the group of lines that lead belongs to, each started
// within RateWindow of another, as a fork() loop's root forks its children
// in one burst, and marks its lines judged (see orphanedBombs): any of
// them spans the same group.
func (d *Detector) groupSpan(rec *lineage.Recorder, lead lineage.ID, in Input, youngCut time.Duration) lineGroup {
	g := lineGroup{from: rec.Get(lead).Born, to: rec.Get(lead).Born}
	first := rec.Get(rec.Get(lead).Parent).FirstChild
	for changed := true; changed; {
		changed = false
		for ch := first; ch != lineage.None; ch = rec.Get(ch).NextSibling {
			b := rec.Get(ch).Born
			if (b >= g.from && b <= g.to) || b < g.from-d.cfg.RateWindow || b > g.to+d.cfg.RateWindow || !d.orphanedLine(rec, lead, ch, in, youngCut) {
				continue
			}
			g.from, g.to, changed = min(g.from, b), max(g.to, b), true
		}
	}
	for ch := first; ch != lineage.None; ch = rec.Get(ch).NextSibling {
		if b := rec.Get(ch).Born; b < g.from || b > g.to || !d.orphanedLine(rec, lead, ch, in, youngCut) {
			continue
		}
		if g.lines == 0 {
			g.sum = d.st[ch]
		} else {
			g.sum.add(&d.st[ch])
		}
		g.lines++
		d.judged[ch] = true
	}
	return g
}

// groupLines returns the lines of lead's group (see orphanedLine) that
// started from from to linesTo, other than lead's own, and its lone copies
// (see orphanedCopy) that started from from to copiesTo, and how many live
// and young members they hold, and marks them covered.
func (d *Detector) groupLines(rec *lineage.Recorder, lead lineage.ID, from, linesTo, copiesTo time.Duration, in Input, youngCut time.Duration) (siblings []lineage.Ref, live, young int32) {
	for ch := rec.Get(rec.Get(lead).Parent).FirstChild; ch != lineage.None; ch = rec.Get(ch).NextSibling {
		b := rec.Get(ch).Born
		if ch == lead || b < from ||
			!(b <= linesTo && d.orphanedLine(rec, lead, ch, in, youngCut) || b <= copiesTo && d.orphanedCopy(rec, lead, ch, in, youngCut)) {
			continue
		}
		siblings = append(siblings, rec.Ref(ch))
		live += d.st[ch].live
		young += d.st[ch].young
		d.cov[ch] = true
	}
	return siblings, live, young
}

// sum folds into s the counts of o, a child's family, that a family sums
// over its children.
func (s *stats) sum(o *stats) {
	s.live += o.live
	s.young += o.young
	s.orphans += o.orphans
	s.dead += o.dead
	s.births += o.births
	s.copies += o.copies
	s.namesakes += o.namesakes
	s.newest = max(s.newest, o.newest)
	s.generations = max(s.generations, o.generations)
}

// add folds the counts of the family o into s, as of two sibling lines.
func (s *stats) add(o *stats) {
	s.sum(o)
	s.burst += o.burst
	s.depth = max(s.depth, o.depth)
	s.clones = max(s.clones, o.clones)
	s.clonesAll = max(s.clonesAll, o.clonesAll)
	s.first = min(s.first, o.first)
	s.firstFork = min(s.firstFork, o.firstFork)
}

// verdict returns the verdict on the family of record id with counts s and
// sibling lines siblings.
func (d *Detector) verdict(rec *lineage.Recorder, id lineage.ID, s *stats, siblings []lineage.Ref) Verdict {
	r := rec.Get(id)
	return Verdict{
		Root:        id,
		RootRef:     rec.Ref(id),
		RootPID:     r.PID,
		RootAlive:   r.Alive,
		Live:        int(s.live),
		Young:       int(s.young),
		Orphans:     int(s.orphans),
		Dead:        int(s.dead),
		Births:      int(s.births),
		Burst:       int(s.burst),
		Depth:       int(s.depth),
		Rate:        float64(s.births) / d.cfg.RateWindow.Seconds(),
		Generations: int(s.generations),
		Clones:      int(s.clones),
		FirstBorn:   s.first,
		FirstFork:   s.firstFork,
		Siblings:    siblings,
	}
}

// orphanedLines returns the roots of the other lines of a bomb whose root
// is gone, seen by a /proc scan only, and how many live and young members
// they hold, and marks them covered. A fork() loop whose root died (the
// kernel's OOM killer takes any member once the bomb reaches its memory
// limit) leaves each of the root's children at the top of a line of its
// own, adopted by PID 1 or a subreaper. Fork events would have kept the
// dead root on record, and the climb would pass through it (see
// forksCopies); a guard that started later, or resynchronised after lost
// events, sees only siblings under a parent of another name. The bomb's
// lines are id's and those of its siblings that are, as far as a scan can
// tell, the same program's copies at the head of lines of copies (see
// orphanedLine), and that started no earlier than the group's start (see
// groupSpan), however much later: a line that a loop's root forked into a
// slot freed later is the bomb's too, once one line has qualified alone.
// Lone processes of that name (see orphanedCopy) are taken when they
// started within the group's span, and the group holds two lines or more:
// a fork() loop's copies, left alone by the OOM killer, fork again into the
// slots the verdict frees (a loop at its memory limit kept regrowing from
// them, round after round). Beside one line alone, or started later, a
// lone process of that name (a job shell beside a shell bomb under make)
// has forked no copy and is spared; a lone copy of a fork() loop left
// behind forks again, and is caught then. Record id must itself head a
// line.
func (d *Detector) orphanedLines(rec *lineage.Recorder, id lineage.ID, in Input, youngCut time.Duration) (siblings []lineage.Ref, live, young int32) {
	if !d.orphanedLine(rec, id, id, in, youngCut) {
		return nil, 0, 0
	}
	grp := d.groupSpan(rec, id, in, youngCut)
	copiesTo := grp.to
	if grp.lines < 2 {
		// id's line alone in its span: no lone copy is taken beside it.
		copiesTo = math.MinInt64
	}
	return d.groupLines(rec, id, grp.from, math.MaxInt64, copiesTo, in, youngCut)
}

// namesakeLine reports whether the family of record id is a line of
// copies: two or more live members, every one below id a copy or a
// namesake of its parent.
func (d *Detector) namesakeLine(id lineage.ID) bool {
	s := &d.st[id]
	return s.live >= 2 && s.copies+s.namesakes >= s.live-1
}

// launched returns the family a live root only launched, to step down to:
//
//   - its only child, when it has one and that child's family has live
//     members (a shell or timeout that started the bomb and waits for it),
//     unless a scan shows that child carrying the root's name: a copy, as
//     far as a scan can tell, so the root is the bomb's own.
//     The child's family need not qualify by itself: it holds every live
//     member but the wrapper, which may be just what tips a family at a
//     threshold.
//   - among several children, the one that holds the bomb: the only one
//     whose family qualifies by itself or, when none does (the runner and
//     its bystanders may be just what tips the family at a threshold), the
//     only one with replication generations. It must be eligible, and the
//     rest of the root's family must show no replication of its own: no
//     exited parent that left two or more lines behind, at most a quarter
//     of the chosen child's recent births, at most 8 live members or a
//     quarter of the child's, and no other copy of the root when the
//     chosen child is one (see forksCopies). That is a runner (a
//     test harness, a CI job script, a young terminal) with bystanders
//     beside the bomb; they are not the bomb's. A bomb's own live root (a
//     C fork loop, a shell whose background pipeline forks the bomb's two
//     halves) forks copies of itself into several children after the
//     first, so the root stays.
func (d *Detector) launched(rec *lineage.Recorder, id lineage.ID, in Input, youngCut time.Duration) (lineage.ID, bool) {
	r := rec.Get(id)
	only, n := lineage.None, 0
	chosen, qualified := lineage.None, 0
	replicating, generational := lineage.None, 0
	for ch := r.FirstChild; ch != lineage.None; ch = rec.Get(ch).NextSibling {
		only = ch
		n++
		if d.qualifies(&d.st[ch]) {
			chosen = ch
			qualified++
		}
		if d.st[ch].generations > 0 {
			replicating = ch
			generational++
		}
	}
	if n == 1 {
		// A scan's namesake below a root of the same name is a copy as far
		// as it can tell: the root is a member of the bomb (a copy in a
		// line whose own root died, see orphanedLines), not its launcher.
		if namesake(r, rec.Get(only), in) {
			return lineage.None, false
		}
		return only, d.st[only].live > 0
	}
	switch {
	case qualified == 1:
	case qualified == 0 && generational == 1:
		chosen = replicating
	default:
		return lineage.None, false
	}
	if !d.eligible(rec.Get(chosen), in, youngCut) {
		return lineage.None, false
	}
	c := &d.st[chosen]
	if c.generations > 0 {
		generational-- // the others' replication is what counts
	}
	// The others, besides the root itself, are a few bystanders: at most
	// 8 (a runner's bystanders and probe, and what they run), or a quarter
	// of the chosen family's live members. A fork loop's other children
	// are bomb members too, with families of their own; at its pids limit
	// no one is born any more, so births alone cannot tell.
	others := d.st[id].live - c.live
	if rec.Get(id).Alive {
		others--
	}
	if generational > 0 || 4*(d.st[id].births-c.births) > c.births || 4*others > max(c.live, 32) {
		return lineage.None, false
	}
	// A root that forks copies of itself into several children is a bomb's
	// own root, whatever the sizes (see forksCopies). A scan cannot tell a
	// copy from a program that exec'd, so a scanned child counts as a copy
	// when it carries the root's name and was born after the chosen one: a
	// fork loop's first child's family can hold most of the bomb (83 % in
	// a C loop at its pids limit), and the rest would refill the limit once
	// the verdict's members die.
	if d.forksCopies(rec, id, chosen, in) {
		return lineage.None, false
	}
	cr := rec.Get(chosen)
	for ch := r.FirstChild; ch != lineage.None; ch = rec.Get(ch).NextSibling {
		if chr := rec.Get(ch); ch != chosen && chr.Scanned && chr.Alive && chr.Born >= cr.Born && chr.Comm == r.Comm {
			return lineage.None, false
		}
	}
	return chosen, true
}

// forksCopies reports whether the process of record p forked child as a
// copy of itself and also another copy with live members: a shell whose
// background pipeline forks a bomb's two halves (one half's family may
// qualify alone while the other lags), or a fork loop. Copies count once
// they have run CopyAge (a runner's passing fork before an exec does not).
// A runner's bystanders run other programs.
func (d *Detector) forksCopies(rec *lineage.Recorder, p, child lineage.ID, in Input) bool {
	if cr := rec.Get(child); cr.Exec || cr.Scanned || execd(rec, child) {
		return false
	}
	for ch := rec.Get(p).FirstChild; ch != lineage.None; ch = rec.Get(ch).NextSibling {
		chr := rec.Get(ch)
		if ch != child && !chr.Exec && !chr.Scanned && !execd(rec, ch) && d.st[ch].live > 0 && in.Now-chr.Born >= d.cfg.CopyAge {
			return true
		}
	}
	return false
}

// scannedCopies is forksCopies for a child known from a scan only (its
// fork event was lost, or came before the guard started), which cannot
// tell a copy: the child carries p's name, and p's whole family is a line
// of namesakes (see namesakeLine), so p and everything below it run one
// program that never exec'd. A fork() loop's root, whose children a
// resync after lost events brought back as scans, is one; a shell whose
// children run scripts of the same name is not, for those scripts run
// other programs.
func (d *Detector) scannedCopies(rec *lineage.Recorder, p, child lineage.ID) bool {
	cr := rec.Get(child)
	return cr.Scanned && cr.Comm[0] != 0 && cr.Comm == rec.Get(p).Comm && d.namesakeLine(p)
}

// execd reports whether the process of record id exec'd: a later image of
// it is on record.
func execd(rec *lineage.Recorder, id lineage.ID) bool { return rec.LastImage(id) != id }

func (d *Detector) qualifies(s *stats) bool {
	live := float64(s.live)
	if s.live < int32(min(d.cfg.MinFamily, d.cfg.OrphanFamily, d.cfg.ReplicatingFamily, d.cfg.CloningFamily)) {
		return false
	}
	if !d.recent(s) {
		return false
	}
	deep := int(s.depth) >= d.cfg.MinDepth
	orphans := float64(s.orphans)
	if s.live >= int32(d.cfg.OrphanFamily) && deep && orphans >= d.cfg.OrphanFamilyFraction*live {
		return true
	}
	if s.live >= int32(d.cfg.ReplicatingFamily) && s.generations >= int32(d.cfg.ReplicatingGenerations) {
		return true
	}
	if d.cloning(s, s.clones) {
		return true
	}
	return s.live >= int32(d.cfg.MinFamily) && (deep || orphans >= d.cfg.MinOrphanFraction*live)
}

// recent reports whether a family is young enough to be a bomb: most of
// its members young, or births at a bomb's rate.
func (d *Detector) recent(s *stats) bool {
	rate := float64(s.births) / d.cfg.RateWindow.Seconds()
	return float64(s.young) >= d.cfg.MinYoungFraction*float64(s.live) || rate >= d.cfg.MinRate
}

// cloning is the cloning rule with clones clone generations: a family of
// copies, half as many of its births within RateWindow before its newest
// prompt one (see prompt) as it has live members, with copies nested that
// deep. Namesakes (copies as far as a scan can tell) count as copies in a
// family of MinFamily or more: a fork() loop that filled its pids limit
// before the guard saw it, or whose events were lost, is a scan's
// namesakes, every one started in one burst; on a fast machine it is too
// shallow for MinDepth (4 or 5 levels at 2,000 members).
func (d *Detector) cloning(s *stats, clones int32) bool {
	copies := s.copies
	if s.live >= int32(d.cfg.MinFamily) {
		copies += s.namesakes
	}
	return s.live >= int32(d.cfg.CloningFamily) && clones >= int32(d.cfg.CloningGenerations) &&
		copies >= s.live-1 && 2*s.burst >= s.live
}

// burstClimb bounds how many levels above itself a start is counted in
// bursts, so that a pass stays linear in the records however deep the
// lineage. The cloning rule, the only user, is for families of a few
// levels: a fork loop is 4 or 5 deep at 400 members, a bomb that doubles
// about log2 of its size; deeper families are caught by MinDepth.
const burstClimb = 64

// countBursts fills each record's burst: a process's start (its fork, or
// the start time a scan read) counts at every record above it (itself
// included) whose family's newest prompt start came at most RateWindow
// after it, and not before it (a straggler is not counted). Going up, the
// newest prompt start only gets later (or first appears), so each start
// counts at an unbroken run of records, and the climb stops at the first
// whose newest prompt start is too late (or after burstClimb levels).
func (d *Detector) countBursts(rec *lineage.Recorder, order []lineage.ID) {
	for _, id := range order[1:] { // order[0] is the root of everything
		r := rec.Get(id)
		if r.Exec { // an image of a process started earlier
			continue
		}
		for a, n := id, 0; a > lineage.Root && n < burstClimb; a, n = rec.Get(a).Parent, n+1 {
			newest := d.st[a].newest
			if newest == math.MinInt64 || r.Born > newest { // no prompt start here yet, or a later straggler
				continue
			}
			if newest-r.Born > d.cfg.RateWindow {
				break
			}
			d.st[a].burst++
		}
	}
}

// prompt reports whether r, a process's first image, started within window
// of the process that forked it (or its parent is unknown). The burst of a
// family is measured back from its newest prompt start: a bomb's members
// fork as soon as they run, while a member that a long-lived one forks
// later (a bomb at its pids limit refilling a slot that another process of
// its cgroup or session freed) is a straggler, and measured back from it
// the burst would be that straggler alone. A family grown slowly has no
// burst before its newest prompt start either.
func prompt(rec *lineage.Recorder, r *lineage.Record, window time.Duration) bool {
	if r.Parent <= lineage.Root {
		return true
	}
	return r.Born-rec.Get(r.Parent).Born <= window
}

// forked reports whether r was born of a fork event: not an exec image
// (whose process was born earlier) nor a process known only from a scan.
func forked(r *lineage.Record) bool { return !r.Exec && !r.Scanned }

// namesake reports whether r, a live member known only from a /proc scan
// (a guard started late, or resynchronised after lost events), carries the
// name of its parent p: a copy of it as far as a scan can tell, which
// cannot tell a copy from a program that exec'd the same name (a shell
// running a shell script). So namesakes count toward the cloning rule
// only in families of MinFamily or more (see cloning).
func namesake(p, r *lineage.Record, in Input) bool {
	return p != nil && r.Scanned && r.Alive && !r.Kthread && r.Comm[0] != 0 && r.Comm == p.Comm &&
		in.Scope.Contains(r.PID)
}

// isCopy reports whether r is a live member running a copy of its parent's
// image: born of a fork event (not a scan, which cannot tell a copy from a
// program that exec'd), never exec'd, in scope.
func isCopy(r *lineage.Record, in Input) bool {
	return r.Alive && !r.Exec && !r.Scanned && !r.Kthread && in.Scope.Contains(r.PID)
}

// eligible reports whether r may be the root of a family to kill: a young
// record (born within YouthAge: descendants are younger still, so the climb
// never passes above an old process such as a login shell or a service that
// a dead ancestor left behind), not PID 1, oomguard or a kernel thread, and,
// while its process lives, inside the scope.
func (d *Detector) eligible(r *lineage.Record, in Input, youngCut time.Duration) bool {
	if r.PID <= 1 || r.PID == in.Self || r.Kthread || r.Born < youngCut {
		return false
	}
	if r.Alive || !r.Exited { // the process lives (maybe as a later image)
		return in.Scope.Contains(r.PID)
	}
	return true
}

// Members appends to out the live, in-scope, non-kernel members of the
// family rooted at root, with their birth times.
func Members(rec *lineage.Recorder, root lineage.ID, scope *PIDSet, out []Member) []Member {
	rec.Walk(root, func(id lineage.ID, _ int) bool {
		r := rec.Get(id)
		if r.Alive && !r.Kthread && r.PID > 1 && scope.Contains(r.PID) {
			out = append(out, Member{PID: r.PID, Born: r.Born})
		}
		return true
	})
	return out
}

// Member is one live process of a family.
type Member struct {
	PID  int32
	Born time.Duration
}
