// Package lineage records the process lineage, dead ancestors included: one
// record per process image, kept while it has live descendants, so the
// family of a fork bomb whose parents exit at once stays visible.
//
// A Recorder is a pure data structure fed with events and timestamps; it does
// no I/O and reads no clock. It is not safe for concurrent use.
package lineage

import (
	"slices"
	"time"
)

// ID names a record inside one Recorder. IDs of freed records are reused;
// use Ref to hold on to a record across events.
type ID int32

// None is the absent ID.
const None ID = -1

// Root is the sentinel record every parentless record hangs from (PID 0).
const Root ID = 0

// Record is one process image: created by fork, or by exec replacing the
// previous image of the same process. The Recorder maintains every field;
// callers read them only.
type Record struct {
	// PID is the process ID (the thread-group ID).
	PID int32
	// PPID is the PID of the process that forked this one, as recorded at
	// fork time, even when that process is long dead.
	PPID int32
	// Born is when the process was forked (CLOCK_MONOTONIC); an exec image
	// keeps the Born of its process.
	Born time.Duration
	// Start is when this image began: Born, or the exec that created it.
	Start time.Duration
	// End is when this image ended (exit, or exec into a new image); zero
	// while it is alive.
	End time.Duration
	// Comm is the command name, NUL-padded.
	Comm [16]byte
	// CommStale is true when Comm is only a guess: an exec whose new name
	// could not be read (its process had already exited) keeps the previous
	// image's, and a fork copies its parent's. SetComm corrects it.
	CommStale bool
	// Alive is true while this image is the running image of a live
	// process.
	Alive bool
	// Exec is true when exec created this image; Parent is then the
	// previous image of the same process.
	Exec bool
	// Exited is true once the process (every image of it) has exited.
	Exited bool
	// Scanned is true when the record came from a /proc scan rather than a
	// fork event, so what came before it (dead ancestors) is unknown.
	Scanned bool
	// Kthread marks kernel threads (known from a scan).
	Kthread bool

	// Parent, FirstChild and NextSibling link the tree; None when absent.
	Parent, FirstChild, NextSibling ID
	prevSibling                     ID
	gen                             uint32
	mark                            uint32
	used                            bool
	// early: created by an exec whose fork event had not arrived yet.
	early bool
	// adoptable: linked to Root because its parent was unknown; a late
	// fork event of the parent takes it back.
	adoptable bool
}

// CommString returns Comm as a string.
func (r *Record) CommString() string { return string(r.Comm[:commLen(&r.Comm)]) }

// Ref is a reference to a record that detects reuse of its ID.
type Ref struct {
	ID  ID
	gen uint32
}

// Config bounds a Recorder.
type Config struct {
	// MaxRecords caps the number of records, live and dead. When full, the
	// oldest dead records are forgotten; when there are none, new processes
	// go unrecorded (counted in Stats.Dropped). 0 means 65536 (about 8 MiB).
	MaxRecords int
	// AgeInterval is SPEC.md's reset interval: once a whole interval passed
	// with no growth in the live process count and no reclaim, dead records
	// that ended more than an interval ago are forgotten. 0 means 30 s.
	AgeInterval time.Duration
}

// Stats counts the Recorder's bookkeeping.
type Stats struct {
	// Records is the number of records held; Live the live processes.
	Records, Live int
	// Dropped counts processes not recorded because the cap was reached
	// with no dead record left to forget.
	Dropped uint64
	// Evicted counts dead records forgotten to stay under the cap; Aged
	// those forgotten by the quiescence rule.
	Evicted, Aged uint64
	// UnknownParent counts forks whose parent had no record.
	UnknownParent uint64
}

// Recorder holds the lineage. The zero value is not usable; use New.
type Recorder struct {
	cfg   Config
	recs  []Record
	free  []ID
	live  map[int32]ID
	stats Stats
	epoch uint32

	ageStart   time.Duration
	ageCount   int
	ageGrew    bool
	ageReclaim bool

	scratch []ID
	adds    []ID

	// Recent exits, in case a fork event comes after the exit of the
	// process it created: the kernel sends the fork event after waking
	// the child, and a preempted parent can send it long after the child
	// (and its own children) ran, forked and exited on another CPU.
	exits    map[int32]time.Duration
	exitRing []int32
	exitPos  int
	// adoptable counts records under Root waiting for their parent.
	adoptable int
}

// exitMemory is how many recent exits are remembered.
const exitMemory = 8192

// New returns an empty Recorder holding only the Root sentinel.
func New(cfg Config) *Recorder {
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 65536
	}
	if cfg.AgeInterval <= 0 {
		cfg.AgeInterval = 30 * time.Second
	}
	r := &Recorder{cfg: cfg, live: make(map[int32]ID, 1024), recs: make([]Record, 1, 1024),
		exits: make(map[int32]time.Duration, exitMemory), exitRing: make([]int32, exitMemory)}
	r.recs[0] = Record{Parent: None, FirstChild: None, NextSibling: None, prevSibling: None, used: true, Alive: true}
	copy(r.recs[0].Comm[:], "(root)")
	return r
}

// Config returns the effective configuration.
func (r *Recorder) Config() Config { return r.cfg }

// Stats returns the current counters.
func (r *Recorder) Stats() Stats {
	s := r.stats
	s.Live = len(r.live)
	s.Records = len(r.recs) - len(r.free) - 1
	return s
}

// Len returns the size of the ID space: every valid ID is below it.
func (r *Recorder) Len() int { return len(r.recs) }

// Get returns the record with id, or nil when id is not in use.
func (r *Recorder) Get(id ID) *Record {
	if id < 0 || int(id) >= len(r.recs) || !r.recs[id].used {
		return nil
	}
	return &r.recs[id]
}

// Lookup returns the live record of process pid.
func (r *Recorder) Lookup(pid int32) (ID, bool) {
	id, ok := r.live[pid]
	return id, ok
}

// Ref returns a reference to id.
func (r *Recorder) Ref(id ID) Ref {
	if r.Get(id) == nil {
		return Ref{ID: None}
	}
	return Ref{ID: id, gen: r.recs[id].gen}
}

// Resolve returns the record ref points at, or None when it was freed.
func (r *Recorder) Resolve(ref Ref) ID {
	if rec := r.Get(ref.ID); rec != nil && rec.gen == ref.gen {
		return ref.ID
	}
	return None
}

// LiveCount returns the number of live processes recorded.
func (r *Recorder) LiveCount() int { return len(r.live) }

// alloc returns a fresh record ID, or None when the cap is reached.
func (r *Recorder) alloc() ID {
	if len(r.recs)-len(r.free)-1 >= r.cfg.MaxRecords {
		r.evict()
		if len(r.recs)-len(r.free)-1 >= r.cfg.MaxRecords {
			r.stats.Dropped++
			return None
		}
	}
	var id ID
	if n := len(r.free); n > 0 {
		id = r.free[n-1]
		r.free = r.free[:n-1]
	} else {
		r.recs = append(r.recs, Record{})
		id = ID(len(r.recs) - 1)
	}
	gen := r.recs[id].gen + 1
	r.recs[id] = Record{Parent: None, FirstChild: None, NextSibling: None, prevSibling: None, gen: gen, used: true}
	return id
}

// link makes id the first child of parent.
func (r *Recorder) link(id, parent ID) {
	c := &r.recs[id]
	p := &r.recs[parent]
	c.Parent = parent
	c.prevSibling = None
	c.NextSibling = p.FirstChild
	if p.FirstChild != None {
		r.recs[p.FirstChild].prevSibling = id
	}
	p.FirstChild = id
}

func (r *Recorder) unlink(id ID) {
	c := &r.recs[id]
	if c.prevSibling != None {
		r.recs[c.prevSibling].NextSibling = c.NextSibling
	} else if c.Parent != None {
		r.recs[c.Parent].FirstChild = c.NextSibling
	}
	if c.NextSibling != None {
		r.recs[c.NextSibling].prevSibling = c.prevSibling
	}
	c.Parent, c.NextSibling, c.prevSibling = None, None, None
}

// release frees id and then each dead ancestor left without children: a
// dead record lives exactly as long as it has live descendants.
func (r *Recorder) release(id ID) {
	for id > Root {
		c := &r.recs[id]
		if c.Alive || c.FirstChild != None {
			return
		}
		p := c.Parent
		r.unlink(id)
		if c.adoptable {
			c.adoptable = false
			r.adoptable--
		}
		c.used = false
		r.free = append(r.free, id)
		id = p
	}
}

// forget removes dead record id, moving its children up to its parent.
func (r *Recorder) forget(id ID) {
	c := &r.recs[id]
	p := c.Parent
	for ch := c.FirstChild; ch != None; {
		next := r.recs[ch].NextSibling
		r.unlink(ch)
		r.link(ch, p)
		ch = next
	}
	c.FirstChild = None
	r.release(id)
}

// Fork records that process parent forked process pid at t. Callers pass
// processes only: a thread creation (pid != tgid) is not a fork here.
func (r *Recorder) Fork(parent, pid int32, t time.Duration) {
	pid0, ok := r.live[parent]
	if !ok {
		pid0 = Root
		r.stats.UnknownParent++
	}
	if old, ok := r.live[pid]; ok {
		o := &r.recs[old]
		if o.early {
			// Its exec came first: hang the images under their parent.
			top := old
			for r.recs[top].Exec && r.recs[top].Parent > Root {
				top = r.recs[top].Parent
			}
			r.unlink(top)
			r.link(top, pid0)
			r.recs[top].adoptable = false
			r.adoptable--
			for i := old; ; i = r.recs[i].Parent {
				c := &r.recs[i]
				c.PPID, c.Born, c.early, c.Scanned = parent, t, false, false
				if i == top {
					break
				}
			}
			r.recs[top].Start = t
			r.adopt(top, pid, t)
			return
		}
		if d := o.Born - t; d < dupTolerance && d > -dupTolerance {
			return // already learned from a scan that raced the event
		}
		r.exit(old, t) // its exit was lost
	}
	end, exited := r.exits[pid]
	exited = exited && end >= t
	if exited && r.adoptable == 0 {
		return // born and gone before we heard of it, childless
	}
	id := r.alloc()
	if id == None {
		return
	}
	c := &r.recs[id]
	c.PID, c.PPID = pid, parent
	c.Born, c.Start = t, t
	if pid0 != Root {
		c.Comm, c.CommStale = r.recs[pid0].Comm, r.recs[pid0].CommStale
	}
	r.link(id, pid0)
	if pid0 == Root && parent != 0 {
		c.adoptable = true
		r.adoptable++
	}
	if exited {
		// A dead record, kept only if it takes back children whose fork
		// events came before its own.
		c.End, c.Exited = end, true
		r.adopt(id, pid, t)
		r.release(id)
		return
	}
	c.Alive = true
	r.live[pid] = id
	r.adopt(id, pid, t)
	r.noteGrowth()
}

// adopt moves the records under Root that wait for parent pid (born at or
// after t) under id.
func (r *Recorder) adopt(id ID, pid int32, t time.Duration) {
	if r.adoptable == 0 {
		return
	}
	for ch := r.recs[Root].FirstChild; ch != None; {
		next := r.recs[ch].NextSibling
		c := &r.recs[ch]
		if c.adoptable && c.PPID == pid && c.Born >= t-dupTolerance && ch != id {
			c.adoptable = false
			r.adoptable--
			r.unlink(ch)
			r.link(ch, id)
		}
		ch = next
	}
}

// dupTolerance is how far apart a fork event's time and a scan's start time
// of the same process may be: /proc start times are in 10 ms ticks.
const dupTolerance = 30 * time.Millisecond

// Exec records that process pid replaced its image at t; comm is the new
// command name (nil keeps the old one). The new image's parent is the old.
func (r *Recorder) Exec(pid int32, t time.Duration, comm []byte) {
	old, ok := r.live[pid]
	id := r.alloc()
	if id == None {
		return
	}
	c := &r.recs[id]
	c.PID = pid
	c.Start = t
	c.Alive = true
	if ok {
		o := &r.recs[old]
		c.PPID, c.Born, c.Comm = o.PPID, o.Born, o.Comm
		c.Exec = true
		o.Alive, o.End = false, t
		r.link(id, old)
	} else {
		c.Born, c.Scanned, c.early, c.adoptable = t, true, true, true
		r.adoptable++
		r.link(id, Root)
	}
	c.CommStale = comm == nil
	if comm != nil {
		c.Comm = [16]byte{}
		copy(c.Comm[:15], comm)
	}
	r.live[pid] = id
}

// SetComm sets the command name of process pid's live image, read from
// /proc after its record was made with a stale one (Record.CommStale).
// When that image came from a fork and the image it was forked from is
// stale too, that one gets the name as well: a fork copies the name, so it
// is the parent's unless the child has exec'd since (then its own exec
// event, later in the stream, names it again).
func (r *Recorder) SetComm(pid int32, comm []byte) {
	id, ok := r.live[pid]
	if !ok || len(comm) == 0 {
		return
	}
	var name [16]byte
	copy(name[:15], comm)
	c := &r.recs[id]
	c.Comm, c.CommStale = name, false
	if p := c.Parent; !c.Exec && p > Root && r.recs[p].CommStale {
		r.recs[p].Comm, r.recs[p].CommStale = name, false
	}
}

// Exit records that process pid exited at t. It reports whether the
// process left children on record (forked by any of its images), orphans
// now.
func (r *Recorder) Exit(pid int32, t time.Duration) (orphaned bool) {
	if id, ok := r.live[pid]; ok {
		for i := id; i > Root && !orphaned; i = r.recs[i].Parent {
			for ch := r.recs[i].FirstChild; ch != None && !orphaned; ch = r.recs[ch].NextSibling {
				orphaned = !r.recs[ch].Exec
			}
			if !r.recs[i].Exec {
				break
			}
		}
		r.exit(id, t)
	}
	if old := r.exitRing[r.exitPos]; old != 0 {
		delete(r.exits, old)
	}
	r.exitRing[r.exitPos] = pid
	r.exitPos = (r.exitPos + 1) % len(r.exitRing)
	r.exits[pid] = t
	return orphaned
}

func (r *Recorder) exit(id ID, t time.Duration) {
	c := &r.recs[id]
	delete(r.live, c.PID)
	c.Alive, c.End = false, t
	for i := id; i > Root; i = r.recs[i].Parent {
		r.recs[i].Exited = true
		if !r.recs[i].Exec {
			break
		}
	}
	r.release(id)
}

// Proc is one process as a /proc scan saw it.
type Proc struct {
	PID, PPID int32
	// Born is the start time converted to CLOCK_MONOTONIC.
	Born    time.Duration
	Comm    [16]byte
	Kthread bool
}

// Reconcile makes the live set equal to a /proc scan taken at now: live
// records the scan did not see (or saw with another start time: a reused
// PID) are marked exited, and scanned processes without a record are added
// under their current parent, marked Scanned. It returns how many records
// disagreed with the scan. Seeding an empty Recorder is a Reconcile.
func (r *Recorder) Reconcile(procs []Proc, now time.Duration) int {
	slices.SortFunc(procs, func(a, b Proc) int {
		if a.Born != b.Born {
			if a.Born < b.Born {
				return -1
			}
			return 1
		}
		return int(a.PID - b.PID)
	})
	r.epoch++
	diff := 0
	add := r.adds[:0]
	for i := range procs {
		p := &procs[i]
		if id, ok := r.live[p.PID]; ok {
			if d := r.recs[id].Born - p.Born; d < dupTolerance && d > -dupTolerance {
				c := &r.recs[id]
				c.mark = r.epoch
				switch {
				case p.Comm[0] == 0 || c.Comm == p.Comm:
				case c.Comm[0] == 0 || c.CommStale:
					// A name never read, or only guessed.
					c.Comm, c.CommStale = p.Comm, false
				default:
					// The process runs under another name: its exec
					// event was lost (or it renamed itself). A record
					// forked from its parent would otherwise stay a copy
					// under the parent's name (a fork() loop's root
					// named after its timeout wrapper, say).
					r.Exec(p.PID, now, p.Comm[:commLen(&p.Comm)])
					if img, ok := r.live[p.PID]; ok {
						r.recs[img].mark = r.epoch
					}
					diff++
				}
				continue
			}
		}
		add = append(add, ID(i))
	}
	var stale []ID
	for _, id := range r.live {
		if r.recs[id].mark != r.epoch {
			stale = append(stale, id)
		}
	}
	for _, id := range stale {
		r.exit(id, now)
		diff++
	}
	for _, i := range add {
		p := &procs[i]
		parent, ok := r.live[p.PPID]
		if !ok {
			parent = Root
		}
		id := r.alloc()
		if id == None {
			continue
		}
		c := &r.recs[id]
		c.PID, c.PPID, c.Born, c.Start, c.Comm = p.PID, p.PPID, p.Born, p.Born, p.Comm
		c.Alive, c.Scanned, c.Kthread, c.mark = true, true, p.Kthread, r.epoch
		r.link(id, parent)
		r.live[p.PID] = id
		diff++
	}
	// Start times tick every 10 ms and PIDs wrap, so a child may have been
	// added before its parent: link such records now.
	for ch := r.recs[Root].FirstChild; ch != None; {
		next := r.recs[ch].NextSibling
		c := &r.recs[ch]
		if (c.Scanned || c.adoptable) && c.PPID != 0 {
			if p, ok := r.live[c.PPID]; ok && p != ch && !r.isAncestor(ch, p) {
				if c.adoptable {
					c.adoptable = false
					r.adoptable--
				}
				r.unlink(ch)
				r.link(ch, p)
			}
		}
		ch = next
	}
	r.adds = add[:0]
	r.noteGrowth()
	return diff
}

// commLen returns the length of a NUL-padded command name.
func commLen(c *[16]byte) int {
	n := 0
	for n < len(c) && c[n] != 0 {
		n++
	}
	return n
}

// isAncestor reports whether a is id or one of its ancestors.
func (r *Recorder) isAncestor(a, id ID) bool {
	for ; id > Root; id = r.recs[id].Parent {
		if id == a {
			return true
		}
	}
	return false
}

func (r *Recorder) noteGrowth() {
	if len(r.live) > r.ageCount {
		r.ageGrew = true
	}
}

// Tick runs the quiescence rule at now. reclaim tells whether the kernel
// reclaimed memory since the previous Tick (for example a pgscan delta in
// /proc/vmstat). Once a whole AgeInterval has passed without growth of the
// live count and without reclaim, dead records that ended more than an
// interval ago are forgotten; their children move up to the grandparent.
// It returns how many records were forgotten.
func (r *Recorder) Tick(now time.Duration, reclaim bool) int {
	if reclaim {
		r.ageReclaim = true
	}
	if r.ageStart == 0 {
		r.ageStart, r.ageCount, r.ageGrew, r.ageReclaim = now, len(r.live), false, reclaim
		return 0
	}
	if now-r.ageStart < r.cfg.AgeInterval {
		return 0
	}
	n := 0
	if !r.ageGrew && !r.ageReclaim {
		cut := now - r.cfg.AgeInterval
		n = r.forgetDead(func(c *Record) bool { return c.End < cut }, -1)
		r.stats.Aged += uint64(n)
	}
	r.ageStart, r.ageCount, r.ageGrew, r.ageReclaim = now, len(r.live), false, false
	return n
}

// forgetDead forgets up to max (all when negative) dead records matching
// ok, oldest end first.
func (r *Recorder) forgetDead(ok func(*Record) bool, max int) int {
	dead := r.scratch[:0]
	for i := 1; i < len(r.recs); i++ {
		c := &r.recs[i]
		if c.used && !c.Alive && ok(c) {
			dead = append(dead, ID(i))
		}
	}
	slices.SortFunc(dead, func(a, b ID) int {
		ea, eb := r.recs[a].End, r.recs[b].End
		switch {
		case ea < eb:
			return -1
		case ea > eb:
			return 1
		}
		return int(a - b)
	})
	if max >= 0 && len(dead) > max {
		dead = dead[:max]
	}
	for _, id := range dead {
		r.forget(id)
	}
	r.scratch = dead[:0]
	return len(dead)
}

// evict forgets the oldest sixteenth of the cap's worth of dead records.
func (r *Recorder) evict() {
	n := r.forgetDead(func(*Record) bool { return true }, max(1, r.cfg.MaxRecords/16))
	r.stats.Evicted += uint64(n)
}

// Walk visits id and its descendants in pre-order with their depth below
// id (exec edges count as a level). fn returning false skips the subtree.
func (r *Recorder) Walk(id ID, fn func(id ID, depth int) bool) {
	if r.Get(id) == nil {
		return
	}
	type item struct {
		id    ID
		depth int
	}
	stack := []item{{id, 0}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !fn(it.id, it.depth) {
			continue
		}
		for ch := r.recs[it.id].FirstChild; ch != None; ch = r.recs[ch].NextSibling {
			stack = append(stack, item{ch, it.depth + 1})
		}
	}
}

// LastImage returns the newest image on record of id's process: id itself,
// or the last of the images its later execs created.
func (r *Recorder) LastImage(id ID) ID {
	for {
		next := None
		for ch := r.recs[id].FirstChild; ch != None; ch = r.recs[ch].NextSibling {
			if r.recs[ch].Exec {
				next = ch
			}
		}
		if next == None {
			return id
		}
		id = next
	}
}

// ForkParent returns the record of the process that forked id's process:
// it skips id's own earlier exec images.
func (r *Recorder) ForkParent(id ID) ID {
	for id > Root && r.recs[id].Exec {
		id = r.recs[id].Parent
	}
	if id <= Root {
		return None
	}
	return r.recs[id].Parent
}
