// Package scan builds the policy's snapshots from /proc and the scoped
// cgroups, allocating nothing in steady state.
package scan

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/procfs"
	"github.com/oomguard/oomguard/internal/sys"
)

// Config says what a Scanner looks at.
type Config struct {
	// ProcRoot is where proc is mounted; "" means /proc.
	ProcRoot string
	// Scopes restricts Processes to the processes of these cgroups'
	// subtrees, and System reads their memory state into Snapshot.Scopes
	// in this order. Empty means the whole machine.
	Scopes []cgroupfs.Cgroup
	// SelfPID is oomguard's own PID, copied into every snapshot.
	SelfPID int
	// CmdlineMax caps the bytes of /proc/PID/cmdline kept per process;
	// 0 means 4096.
	CmdlineMax int
	// CmdlineWait is how long a pass waits, all its reads together, for
	// the command lines of processes new to the cache, read on goroutines
	// of their own (a read of /proc/PID/cmdline blocks for as long as the
	// process's mmap_lock is held for writing, see cmdlineReader). A
	// process whose command line does not come in time is taken without
	// it (policy.Process.CmdlineUnread); its read stays out, and a later
	// pass takes the reply. Past CmdlineHold, the pass reads the path of
	// its executable instead (policy.Process.Exe). 0 reads command lines
	// in place, waiting as long as each takes.
	CmdlineWait time.Duration
	// CmdlineHold is how long a process goes without its command line
	// before a pass reads its executable's path instead; 0 means
	// CmdlineHold.
	CmdlineHold time.Duration
	// CmdlinePriority, when above 0, is the SCHED_FIFO priority of the
	// command-line readers' threads while they read for a pass that runs
	// at SCHED_FIFO itself (see cmdlineReader.run): it should not wait
	// behind the tasks it competes with for a CPU. Where it cannot be
	// set, they run at normal priority.
	CmdlinePriority int
	// KeepOpen names the /proc/PID files kept open between passes and
	// read again with one pread(2) each; 0 means KeepDefault.
	KeepOpen Keep
	// MaxKept caps the processes whose files are kept open; the others
	// are read with open, read and close. 0 means 8192. It is lowered so
	// that kept files leave 1024 descriptors of RLIMIT_NOFILE free.
	MaxKept int
}

// fdReserve is how many descriptors kept files leave free.
const fdReserve = 1024

// Scanner fills policy Snapshots. It keeps every buffer and a cache of
// per-process strings between passes, so a pass over the same processes as
// the last one allocates nothing. A Scanner is not safe for concurrent use.
type Scanner struct {
	cfg  Config
	fs   procfs.FS
	r    *procfs.Reader
	dir  procfs.DirReader
	buf  procfs.Buffer // cgroup.procs
	mem  []*cgroupfs.MemoryReader
	psi  [3]bool // system pressure file missing
	gen  uint32
	path []byte

	keep    Keep
	kept    int // processes with files open
	maxKept int

	// scopeMount[i] maps scope i's directories to the cgroup paths that
	// /proc/PID/cgroup shows: strip the mount point, prepend the mount's
	// root. ok is false when the mount was not found.
	scopeMount []mountMap
	// memMount and v2Mount resolve Process.Cgroup paths to directories
	// (see CgroupKernel): the memory hierarchy unscoped and for v1 scopes,
	// cgroup2 for v2 scopes.
	memMount, v2Mount mountMap

	meminfo procfs.Meminfo
	vmstat  procfs.Vmstat
	stat    procfs.Stat
	recheck procfs.Stat // watchKernelThread's second read, liveThread's
	// leaderComm holds the comm of a process whose leader exited while
	// liveThread reads one of its threads (the comm is at most 64 bytes).
	leaderComm [64]byte
	status     procfs.Status
	sc         procfs.Syscall
	// pageSize converts stat's RSS (pages) to bytes.
	pageSize uint64
	// refaultsBelow: see ReadRefaultsBelow.
	refaultsBelow float64

	pids    []int
	found   []found
	dirs    map[string]*dirEntry // cgroup directory → /proc/PID/cgroup path
	cache   map[int]entry
	keys    []mmKey
	tids    []int
	walkers []*procfs.DirReader
	line    []byte
	// cmdlines are the command-line readers (Config.CmdlineWait),
	// cmdlineTimer bounds the wait for one, and waitUntil is when the
	// current pass stops waiting for them (see startWaits).
	cmdlines     []*cmdlineReader
	cmdlineTimer *time.Timer
	waitUntil    time.Time
	waitPass     uint64
	// wholeParents are the parents outside the snapshot whose leader, read
	// in this pass, has not exited (see sharesMM).
	wholeParents []int
	// pidfds says PIDs under cfg.ProcRoot are this process's to open
	// pidfds for (the root is /proc). polls and pollPIDs are the cached
	// kernel threads' pidfds polled by checkKernelThreads, noWait its
	// timeout; threadsAlive says that poll succeeded in this pass.
	pidfds       bool
	polls        []unix.PollFd
	pollPIDs     []int
	noWait       unix.Timespec
	threadsAlive bool
	// failed and unordered: a kcmp failed, or could not order two mms,
	// during the current sort.
	failed, unordered bool
	// retargeted: a kcmp failed because the thread a process was read
	// through exited, and another of its threads was put in its place.
	retargeted bool
	stats      PassStats

	// kmem holds, by Process.Cgroup path, the kernel-memory reader of each
	// cgroup the last CgroupKernel or prepareCgroupKernel pass saw, so that
	// a pass reads the cgroups it knows without allocating; kmemPass
	// numbers those passes.
	kmem     map[string]*cgroupKmem
	kmemPass uint64
}

// cgroupKmem is one cgroup's kernel memory in a CgroupKernel pass, and the
// reader kept for it between passes.
type cgroupKmem struct {
	// r reads the cgroup's kernel memory; nil for a cgroup that has none
	// to read (outside the hierarchy's mount, or its root).
	r     *cgroupfs.KmemReader
	usage uint64
	procs int
	pass  uint64 // the CgroupKernel pass that last saw it
}

// PassStats describes the last Processes pass.
type PassStats struct {
	// Listed is how many PIDs the pass listed; Read how many it read
	// (the others exited meanwhile).
	Listed, Read int
	// New is how many processes were not in the cache: their comm,
	// cmdline and cgroup strings were allocated in this pass.
	New int
	// Kcmp is how many kcmp(2) calls mm grouping made.
	Kcmp int
	// Kept is how many processes have files kept open (Config.KeepOpen).
	Kept int
	// StatusRead is how many status files the pass read (see statusDue).
	StatusRead int
	// KernelThreads is how many kernel threads the pass took from the
	// cache without reading a file: their pidfds said they still run
	// (see Processes).
	KernelThreads int
	// CmdlineUnread is how many processes the pass took without their
	// command line, its read blocked (Config.CmdlineWait); Exe how many
	// of them it took with their executable's path instead (CmdlineHold).
	CmdlineUnread, Exe int
}

// Close closes the files the Scanner keeps open (the processes' files and
// the system-wide files System reads), empties its cache and ends its
// command-line readers. The Scanner stays usable.
func (s *Scanner) Close() error {
	s.closeCmdlineReaders()
	s.r.CloseSystemFiles()
	for _, m := range s.mem {
		m.CloseFiles()
	}
	for pid, e := range s.cache {
		s.closeFiles(&e)
		delete(s.cache, pid)
	}
	return nil
}

// String names the kept files, for logs and benchmark tables.
func (k Keep) String() string {
	if k == 0 {
		return "default"
	}
	if k&KeepNone != 0 {
		return "none"
	}
	var names []string
	for i, n := range keptNames {
		if k&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, "+")
}

func bits(k Keep) int {
	n := 0
	for ; k != 0; k &= k - 1 {
		n++
	}
	return n
}

// LastPass returns what the last Processes pass did.
func (s *Scanner) LastPass() PassStats { return s.stats }

// found is a PID listed in a pass, with the scope and cgroup it was found in.
type found struct {
	pid   int
	scope int
	dir   string // cgroup path as /proc/PID/cgroup shows it; "" unscoped
}

// entry is what the Scanner remembers of a process between passes. The
// strings are reused as long as the process (PID and start time) keeps its
// comm and address-space layout: exec changes the layout.
type entry struct {
	start   uint64
	layout  uint64
	comm    string
	cmdline string
	cgroup  string
	gen     uint32
	// cmdlinePending says the command line was not read yet, its read
	// blocked (Config.CmdlineWait), since pendingSince; exe is the path
	// of the executable, read once it has waited CmdlineHold.
	cmdlinePending bool
	pendingSince   time.Time
	exe            string
	// files are the process's kept-open /proc files (Config.KeepOpen);
	// kept says some are open, or pidfd is.
	files [nFiles]procfs.PIDFile
	kept  bool
	// pidfd, when watched, is a kernel thread's pidfd, kept instead of
	// its files (see watchKernelThread); ppid and state are what its
	// stat said when it was read.
	pidfd   int
	watched bool
	ppid    int
	state   byte
	// What the last read of status said, and the RSS (from stat, in
	// pages) at that read; see statusDue.
	uid            int
	swap, pte      uint64
	hasMM, kthread bool
	rssAtStatus    int64
	statusGen      uint32
}

// dirEntry is a cgroup directory's path as /proc/PID/cgroup shows it, and
// the last pass that walked it.
type dirEntry struct {
	path string
	gen  uint32
}

type mountMap struct {
	cgroupfs.Mount
	ok bool
}

// mmKey is a process's address-space layout hash and its index in
// Snapshot.Processes.
type mmKey struct {
	hash uint64
	idx  int
}

// New returns a Scanner for cfg.
func New(cfg Config) *Scanner {
	if cfg.CmdlineMax <= 0 {
		cfg.CmdlineMax = 4096
	}
	if cfg.CmdlineHold <= 0 {
		cfg.CmdlineHold = CmdlineHold
	}
	fs := procfs.NewFS(cfg.ProcRoot)
	s := &Scanner{
		cfg:      cfg,
		fs:       fs,
		r:        fs.NewReader(),
		dirs:     make(map[string]*dirEntry),
		cache:    make(map[int]entry),
		kmem:     make(map[string]*cgroupKmem),
		keep:     cfg.KeepOpen,
		maxKept:  cfg.MaxKept,
		pageSize: uint64(unix.Getpagesize()),
	}
	s.r.KeepSystemFiles()
	s.pidfds = cfg.ProcRoot == "" || cfg.ProcRoot == "/proc"
	if s.keep == 0 {
		s.keep = KeepDefault
	}
	if s.maxKept <= 0 {
		s.maxKept = 8192
	}
	if n := bits(s.keep & KeepAll); n > 0 {
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < 1<<30 {
			s.maxKept = max(0, min(s.maxKept, (int(rl.Cur)-fdReserve)/n))
		}
	}
	mounts := cgroupfs.ReadMounts(fs.Path("self/mountinfo"))
	s.memMount.Mount, s.memMount.ok = mounts.Memory()
	s.v2Mount.Mount, s.v2Mount.ok = mounts.V2()
	for _, c := range cfg.Scopes {
		mr := cgroupfs.NewMemoryReader(c)
		mr.KeepFiles()
		s.mem = append(s.mem, mr)
		m, ok := mounts.Holding(c.Path)
		s.scopeMount = append(s.scopeMount, mountMap{m, ok})
	}
	return s
}

// ReadRefaultsBelow makes System read /proc/vmstat (and set
// Snapshot.RefaultFile) only while MemAvailable is under pct percent of
// MemTotal; above it RefaultFile is -1. The thrash trigger, the only user
// of the counter, cannot fire with that much memory available, and vmstat
// is the largest file an idle daemon reads each second. 0, the default,
// reads it always; a negative pct never. Scopes' counters, read from their
// memory.stat, are not affected.
func (s *Scanner) ReadRefaultsBelow(pct float64) { s.refaultsBelow = pct }

// System fills snap.Memory, snap.Pressure, snap.RefaultFile, snap.Scopes
// (reusing its capacity), snap.SelfPID and snap.PageSize. The caller sets snap.Time.
// RefaultFile is the sum of the scopes' counters when every scope has one,
// else /proc/vmstat's, else -1. System-wide pressure files the kernel lacks
// (no PSI) stay Valid false.
func (s *Scanner) System(snap *policy.Snapshot) error {
	snap.SelfPID = s.cfg.SelfPID
	snap.PageSize = uint64(unix.Getpagesize())
	if err := s.r.Meminfo(&s.meminfo); err != nil {
		return err
	}
	m := &s.meminfo
	if !m.MemAvailable.OK {
		return fmt.Errorf("%s: no MemAvailable (needs Linux 3.14)", s.fs.Path("meminfo"))
	}
	snap.Memory = policy.Memory{Total: m.MemTotal.N, Available: m.MemAvailable.N, SwapTotal: m.SwapTotal.N, SwapFree: m.SwapFree.N}
	files := [3]*policy.PressureFile{&snap.Pressure.Memory, &snap.Pressure.IO, &snap.Pressure.CPU}
	for i, name := range [3]string{"memory", "io", "cpu"} {
		*files[i] = policy.PressureFile{}
		if s.psi[i] {
			continue
		}
		if err := s.r.Pressure(name, files[i]); err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.EOPNOTSUPP) {
				s.psi[i] = true
				continue
			}
			return err
		}
	}
	snap.RefaultFile = -1
	if s.refaultsBelow == 0 || 100*float64(m.MemAvailable.N) < s.refaultsBelow*float64(max(m.MemTotal.N, 1)) {
		if err := s.r.Vmstat(&s.vmstat); err != nil {
			return err
		}
		if v := s.vmstat.WorkingsetRefaultFile; v.OK {
			snap.RefaultFile = int64(v.N)
		}
	}
	snap.Scopes = snap.Scopes[:0]
	var sum int64
	for _, mr := range s.mem {
		snap.Scopes = append(snap.Scopes, policy.ScopeMemory{})
		sm := &snap.Scopes[len(snap.Scopes)-1]
		if err := mr.Read(sm); err != nil {
			return err
		}
		if sum >= 0 && sm.RefaultFile >= 0 {
			sum += sm.RefaultFile
		} else {
			sum = -1
		}
	}
	if len(s.mem) > 0 && sum >= 0 {
		snap.RefaultFile = sum
	}
	return nil
}

// Processes fills snap.Processes, reusing its capacity, with every process
// of the scopes (or of the machine when unscoped), sorted by PID. A process
// that exits during the pass is left out, not an error.
//
// Every pass reads stat and oom_score_adj of each process, and its status
// when it is new, when its RSS moved, or every 16th pass (see statusDue);
// swap, page tables and owner come from the last status read. Comm,
// Cmdline and Cgroup strings are cached per process (PID and start time)
// and read again only when its comm or address-space layout changes (exec
// draws a new layout). Scoped, Cgroup is the cgroup the pass found the
// process in, so moves within the scope show at once; unscoped, it is read
// from /proc/PID/cgroup (the v1 memory line, else the v2 line) when the
// process is first seen, and a later move shows only after an exec.
//
// Address-space groups: processes sharing an mm get the same MMGroup, the
// lowest PID among them; a process without an mm (kernel thread, zombie,
// process past exit_mm) gets 0. Candidates are bucketed by the mm's layout
// (start/end of code, data, brk, stack, args and environment from
// /proc/PID/stat), which every sharer of an mm shows identically and which
// does not change while the mm lives, so unlike memory counters, which the
// sharers' status files show at different instants, it cannot split a
// group. Only within a bucket are mms compared, with kcmp(KCMP_VM), sorting
// the bucket by kcmp's order. Processes forked without exec share a layout
// but not an mm: they land in one bucket and kcmp tells them apart. A
// process whose kcmp fails (it exited) keeps a group of its own. The killer
// should still call ConfirmGroup on its victim right before killing.
//
// VforkChild is set for a process that shares its parent's mm while the
// parent (any of its threads) is blocked in vfork(2), clone(2) with
// CLONE_VFORK, or clone3(2) with CLONE_VFORK in its clone_args.
//
// Kernel threads are read once: a cached one is kept as a pidfd instead of
// files, and each pass polls all of those pidfds with one ppoll(2). One
// that still runs is taken from the cache as it was read (its state and
// comm may have changed since; nothing of it counts for the policy, which
// never chooses a kernel thread). One that exited is dropped and its PID
// read as new. A small machine is mostly kernel threads (about 50 of the
// 60 processes of bench/vm's guest), and reading them took most of the
// pass that decides a kill.
func (s *Scanner) Processes(snap *policy.Snapshot) error {
	s.gen++
	s.stats = PassStats{}
	s.startWaits(time.Time{})
	snap.SelfPID = s.cfg.SelfPID
	if err := s.list(); err != nil {
		return err
	}
	s.checkKernelThreads()
	s.stats.Listed = len(s.found)
	procs := snap.Processes[:0]
	for _, f := range s.found {
		p, ok, err := s.process(f)
		if err != nil {
			return err
		}
		if ok {
			procs = append(procs, p)
		}
	}
	snap.Processes = procs
	s.stats.Read = len(procs)
	for pid, e := range s.cache {
		if e.gen != s.gen {
			s.closeFiles(&e)
			delete(s.cache, pid)
		}
	}
	for dir, d := range s.dirs {
		if d.gen != s.gen {
			delete(s.dirs, dir) // a removed cgroup
		}
	}
	s.groupMMs(procs)
	s.markVforkChildren(procs)
	s.stats.Kept = s.kept
	return nil
}

// Warm reads processes that are not in the cache yet, as a pass would
// (their status, command line and cgroup, and opens their kept files), in
// PID order, then makes their cgroups' kernel-memory readers ready (see
// prepareCgroupKernel), until the clock passes deadline (at least one
// process or cgroup per call), and returns how much it left for a later
// call: the uncached processes, or once there are none, the processes
// whose cgroup's reader is not ready.
// It spreads the cost of a cold cache over many short calls, so that the
// pass that decides a kill reads only what changes: a cold pass over 60
// processes took 90 to 220 ms at once in a 2-vCPU guest under emulation,
// and a task waiting for that CPU waited as long (bench/vm).
//
// Warm changes no snapshot. It drops from the cache, closing their files,
// the processes no longer listed (exited, or moved out of the scopes), as
// a pass would: a daemon that lingers near a level warms for as long, and
// every short-lived process would otherwise stay cached with a descriptor
// open. LastPass still describes the last Processes pass. The readers are
// made ready in the same slices as the processes: in bench/vm's guest,
// making one new cgroup's reader ready (opening the directory, a first
// memory.stat read) took 2 to 17 ms, and the call that read the last
// processes and readied every cgroup at once took up to 19 ms.
func (s *Scanner) Warm(deadline time.Time) (left int, err error) {
	stats := s.stats
	defer func() { s.stats = stats }()
	s.startWaits(deadline)
	if err := s.list(); err != nil {
		return 0, err
	}
	for pid, e := range s.cache {
		if _, listed := slices.BinarySearchFunc(s.found, pid, func(f found, pid int) int { return f.pid - pid }); !listed {
			s.closeFiles(&e)
			delete(s.cache, pid)
		}
	}
	read := false
	for _, f := range s.found {
		if _, ok := s.cache[f.pid]; ok {
			continue
		}
		if read && time.Now().After(deadline) {
			left++
			continue
		}
		if _, _, err := s.process(f); err != nil {
			return 0, err
		}
		read = true
	}
	if left == 0 {
		left = s.prepareCgroupKernel(deadline, read)
	}
	return left, nil
}

// prepareCgroupKernel makes ready, for the cgroup of every cached process
// the last listing found (kernel threads aside), the kernel-memory reader
// CgroupKernel will use, and reads a new one once so that its buffer has
// grown; it drops the readers of cgroups none of them is in. Warm calls it
// once nothing is left cold, so that the decision pass that follows reads
// the workload's cgroups without allocating, as it reads its processes.
// Once the clock passes deadline, with busy set (Warm read a process) or
// after one new reader, it leaves the other new cgroups for a later call
// and returns how many processes are in them.
func (s *Scanner) prepareCgroupKernel(deadline time.Time, busy bool) (left int) {
	s.kmemPass++
	for _, f := range s.found {
		e, ok := s.cache[f.pid]
		if !ok || e.kthread || e.watched || e.cgroup == "" || e.cgroup == "/" {
			continue
		}
		c := s.kmem[e.cgroup]
		if c == nil {
			if busy && time.Now().After(deadline) {
				left++
				continue
			}
			busy = true
			if c = s.newCgroupKmem(e.cgroup, f.scope); c == nil {
				continue
			}
			s.kmem[e.cgroup] = c
			if c.r != nil {
				c.r.Usage()
			}
		}
		c.pass = s.kmemPass
	}
	s.dropCgroupKmem()
	return left
}

// dropCgroupKmem drops the kernel-memory readers of cgroups the last
// CgroupKernel or prepareCgroupKernel pass did not see.
func (s *Scanner) dropCgroupKmem() {
	for path, c := range s.kmem {
		if c.pass != s.kmemPass {
			delete(s.kmem, path)
		}
	}
}

// KeepKernelThreads drops from the cache, closing their files, every
// process but the kernel threads watched by pidfd (see Processes), which
// live as long as the machine, mostly, and cost one descriptor each. The
// daemon calls it after its rehearsal pass (see daemon.memoryKiller): the
// processes it read would otherwise hold their files until the next pass,
// which a machine far from any level may never run.
func (s *Scanner) KeepKernelThreads() {
	for pid, e := range s.cache {
		if !e.watched {
			s.closeFiles(&e)
			delete(s.cache, pid)
		}
	}
}

// list fills s.found with the PIDs of this pass, sorted and unique.
func (s *Scanner) list() error {
	s.found = s.found[:0]
	if len(s.cfg.Scopes) == 0 {
		var err error
		s.pids, err = s.dir.PIDs(s.fs, s.pids[:0])
		if err != nil {
			return err
		}
		for _, pid := range s.pids {
			s.found = append(s.found, found{pid: pid})
		}
	} else {
		for i, c := range s.cfg.Scopes {
			s.path = append(s.path[:0], c.Path...)
			if err := s.walk(i, 0); err != nil {
				return err
			}
		}
	}
	if !slices.IsSortedFunc(s.found, cmpFound) {
		slices.SortStableFunc(s.found, cmpFound)
	}
	// A process in two scopes counts once, in the first.
	s.found = slices.CompactFunc(s.found, func(a, b found) bool { return a.pid == b.pid })
	return nil
}

func cmpFound(a, b found) int { return a.pid - b.pid }

// walk lists the processes of the cgroup directory in s.path and of its
// descendants, depth levels below the scope. A cgroup removed during the
// walk is skipped. Each depth has its own DirReader, since a listing is in
// progress at every level above.
func (s *Scanner) walk(scope, depth int) error {
	n := len(s.path)
	s.path = append(s.path, "/cgroup.procs"...)
	b, err := s.buf.ReadFileBytes(s.path)
	s.path = s.path[:n]
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return err
	}
	dir := s.cgroupOf(scope)
	for len(b) > 0 {
		var line []byte
		if i := slices.Index(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		if len(line) == 0 {
			continue
		}
		pid, ok := procfs.ParsePID(line)
		if !ok {
			return fmt.Errorf("parse %s/cgroup.procs: bad pid %q", s.path, line)
		}
		s.found = append(s.found, found{pid: pid, scope: scope, dir: dir})
	}
	for len(s.walkers) <= depth {
		s.walkers = append(s.walkers, new(procfs.DirReader))
	}
	err = s.walkers[depth].EntriesBytes(s.path, func(name []byte, typ uint8) error {
		if typ != unix.DT_DIR {
			return nil
		}
		s.path = append(append(s.path, '/'), name...)
		err := s.walk(scope, depth+1)
		s.path = s.path[:n]
		return err
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// cgroupOf returns the cgroup path that /proc/PID/cgroup shows for the
// directory in s.path, which lies in scope's hierarchy. Paths are computed
// once per directory; "" when the mount of the scope is unknown (then the
// process's own /proc/PID/cgroup is read).
func (s *Scanner) cgroupOf(scope int) string {
	if d, ok := s.dirs[string(s.path)]; ok {
		d.gen = s.gen
		return d.path
	}
	m := s.scopeMount[scope]
	p := ""
	if m.ok {
		p = m.ProcPath(string(s.path))
	}
	s.dirs[string(s.path)] = &dirEntry{path: p, gen: s.gen}
	return p
}

// Keep names /proc/PID files a Scanner keeps open between passes.
type Keep uint8

// The files Config.KeepOpen can name.
const (
	KeepOOMScoreAdj Keep = 1 << iota
	KeepStat
	KeepStatus
	// KeepNone keeps nothing open; Config.KeepOpen 0 means KeepDefault.
	KeepNone Keep = 1 << 7
	// KeepDefault keeps oom_score_adj open: its file has no seq_file
	// buffer, so it costs little kernel memory and saves two system calls
	// per process and pass.
	KeepDefault = KeepOOMScoreAdj
	// KeepAll keeps stat, status and oom_score_adj open: one pread each per
	// pass, at about 9 KiB of kernel memory per process (two page-sized
	// seq_file buffers), measured on Linux 6.18.
	KeepAll = KeepOOMScoreAdj | KeepStat | KeepStatus
)

// kept files of a process, in the order of the Keep bits.
const (
	fileOOM = iota
	fileStat
	fileStatus
	nFiles
)

var keptNames = [nFiles]string{"oom_score_adj", "stat", "status"}

// closeFiles closes the files kept for e, and its pidfd.
func (s *Scanner) closeFiles(e *entry) {
	if !e.kept {
		return
	}
	for i := range e.files {
		e.files[i].Close()
	}
	if e.watched {
		unix.Close(e.pidfd)
		e.watched = false
	}
	e.kept = false
	s.kept--
}

// watchKernelThread keeps a pidfd for the kernel thread e, just read as
// pid, instead of its files, while the budget of kept processes allows
// (a pidfd is one descriptor, as the default kept file is). pidfd_open
// names whichever process holds pid when it is called, so stat is read
// again after it: a thread that exited before, its PID taken by another
// process, is not watched.
func (s *Scanner) watchKernelThread(e *entry, pid int) {
	if !s.pidfds || s.keep&KeepAll == 0 || s.kept >= s.maxKept {
		return
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	if err := s.r.Stat(pid, &s.recheck); err != nil || s.recheck.StartTime != e.start || !s.recheck.KernelThread() {
		unix.Close(fd)
		return
	}
	e.pidfd, e.watched, e.kept = fd, true, true
	s.kept++
}

// checkKernelThreads polls, with one ppoll(2), the pidfds of the cached
// kernel threads listed in this pass. A pidfd polls readable once its
// process has exited: that entry is dropped, and its PID read as new. If
// the poll fails, process reads every kernel thread as usual.
func (s *Scanner) checkKernelThreads() {
	s.threadsAlive = false
	s.polls, s.pollPIDs = s.polls[:0], s.pollPIDs[:0]
	for _, f := range s.found {
		if e, ok := s.cache[f.pid]; ok && e.watched {
			s.polls = append(s.polls, unix.PollFd{Fd: int32(e.pidfd), Events: unix.POLLIN})
			s.pollPIDs = append(s.pollPIDs, f.pid)
		}
	}
	if len(s.polls) == 0 {
		return
	}
	if _, err := unix.Ppoll(s.polls, &s.noWait, nil); err != nil {
		return
	}
	for i := range s.polls {
		if s.polls[i].Revents != 0 {
			pid := s.pollPIDs[i]
			e := s.cache[pid]
			s.forget(pid, &e, true)
		}
	}
	s.threadsAlive = true
}

// openFiles opens the files Config.KeepOpen names for a process new to the
// cache, while fewer than MaxKept processes have theirs open.
func (s *Scanner) openFiles(e *entry, pid int) {
	if s.keep&KeepAll == 0 || s.kept >= s.maxKept {
		return
	}
	for i := range e.files {
		if s.keep&(1<<i) == 0 {
			continue
		}
		f, err := s.r.OpenPIDFile(pid, keptNames[i])
		if err != nil {
			for j := range e.files {
				e.files[j].Close()
			}
			return
		}
		e.files[i] = f
	}
	e.kept = true
	s.kept++
}

// process reads one process. ok is false when it exited meanwhile.
func (s *Scanner) process(f found) (p policy.Process, ok bool, err error) {
	r := s.r
	e, inCache := s.cache[f.pid]
	if inCache && e.watched && s.threadsAlive {
		// A kernel thread that still runs (checkKernelThreads).
		e.gen = s.gen
		if f.dir != "" {
			e.cgroup = f.dir
		}
		s.cache[f.pid] = e
		s.stats.KernelThreads++
		return policy.Process{
			PID: f.pid, PPID: e.ppid, StartTime: e.start, State: e.state, KernelThread: true, Scope: f.scope,
			UID: e.uid, Comm: e.comm, Cmdline: e.cmdline, Cgroup: e.cgroup,
		}, true, nil
	}
	st := &s.stat
	if inCache && e.files[fileStat].IsOpen() {
		err = r.ReadStat(&e.files[fileStat], st)
		if procfs.IsGone(err) {
			// Our process is gone; the PID may be another's now.
			s.forget(f.pid, &e, true)
			inCache = false
			err = r.Stat(f.pid, st)
		}
	} else {
		err = r.Stat(f.pid, st)
	}
	if err != nil {
		return p, false, skipGone(err)
	}
	// A leader that exited before its other threads reads as a zombie
	// without memory, though the process runs and holds all of it: it is
	// read through one of its live threads (thread), keeping the leader's
	// start time, which is the process's identity.
	thread := 0
	if st.LeaderExited() && !st.KernelThread() {
		if thread = s.liveThread(f.pid, st); thread == 0 {
			// Every thread is exiting: the process is dying. Read as
			// it is, a zombie.
			if err = r.Stat(f.pid, st); err != nil {
				return p, false, skipGone(err)
			}
		}
	}
	layout := layoutHash(&st.Layout)
	hit := inCache && e.start == st.StartTime && e.layout == layout && e.comm == string(st.Comm)
	if !hit {
		if inCache {
			// Another process, or another image, under this PID: its
			// files go, and so does its entry, at once. (The entry is a
			// copy: left in the cache when this pass returns early below,
			// it would name closed descriptors, which a later pass would
			// read, or read as another file's once their numbers are
			// reused.)
			s.forget(f.pid, &e, true)
		}
		e = entry{start: st.StartTime, layout: layout, comm: string(st.Comm), ppid: st.PPID, state: st.State}
		s.stats.New++
	}
	p = policy.Process{
		PID: f.pid, PPID: st.PPID, StartTime: st.StartTime, State: st.State,
		KernelThread: st.KernelThread(), Exiting: st.Exiting(), Scope: f.scope, MMTask: thread,
	}
	if !hit && p.KernelThread {
		// A kernel thread new to the cache has no mm, no owner but root
		// and no command line, and is never chosen: only its cgroup is
		// read besides stat, and it is watched by pidfd from now on.
		e.kthread = true
		if e.cgroup, err = s.procCgroup(f, 0); err != nil {
			return p, false, skipGone(err)
		}
		s.watchKernelThread(&e, f.pid)
		e.gen = s.gen
		s.cache[f.pid] = e
		p.Comm, p.Cgroup = e.comm, e.cgroup
		return p, true, nil
	}
	if !hit || e.files[fileStatus].IsOpen() || s.statusDue(&e, f.pid, st.RSS) {
		ss := &s.status
		switch {
		case thread != 0:
			err = r.TaskStatus(f.pid, thread, ss)
		case e.files[fileStatus].IsOpen():
			err = r.ReadStatus(&e.files[fileStatus], ss)
		default:
			err = r.Status(f.pid, ss)
		}
		if err != nil {
			s.forget(f.pid, &e, hit)
			return p, false, skipGone(err)
		}
		s.stats.StatusRead++
		e.uid, e.swap, e.pte = int(ss.UID.N), ss.VmSwap.N, ss.VmPTE.N
		e.kthread = ss.Kthread.OK && ss.Kthread.N == 1
		e.hasMM = ss.VmSize.OK
		e.rssAtStatus, e.statusGen = st.RSS, s.gen
		p.RSS = ss.VmRSS.N
	} else {
		p.RSS = uint64(max(st.RSS, 0)) * s.pageSize
	}
	p.UID, p.Swap, p.PageTables = e.uid, e.swap, e.pte
	if e.kthread {
		p.KernelThread = true
	}
	if e.files[fileOOM].IsOpen() {
		p.OOMScoreAdj, err = r.ReadOOMScoreAdj(&e.files[fileOOM])
	} else {
		p.OOMScoreAdj, err = r.OOMScoreAdj(f.pid)
	}
	if err != nil {
		s.forget(f.pid, &e, hit)
		return p, false, skipGone(err)
	}
	if !hit {
		raw, done, err := s.readCmdline(cmdlineKey{f.pid, st.StartTime, layout}, thread)
		if err != nil {
			return p, false, skipGone(err)
		}
		switch {
		case !done:
			// Its read blocked: taken without it (see pendingCmdline).
			e.cmdlinePending, e.pendingSince = true, time.Now()
		case len(raw) == 0 && !p.KernelThread && !p.Exiting:
			// Caught mid-exec (no arguments yet): read it again next pass.
			e.layout = ^layout
		default:
			s.line = procfs.AppendCmdline(s.line[:0], raw)
			e.cmdline = string(s.line)
		}
		if e.cgroup, err = s.procCgroup(f, thread); err != nil {
			return p, false, skipGone(err)
		}
		s.openFiles(&e, f.pid)
	} else {
		if f.dir != "" && e.cgroup != f.dir {
			e.cgroup = f.dir // moved to another cgroup of the scope
		}
		if e.cmdlinePending {
			s.pendingCmdline(&e, f.pid, thread)
		}
	}
	if e.cmdlinePending {
		p.CmdlineUnread, p.Exe = true, e.exe
		s.stats.CmdlineUnread++
		if e.exe != "" {
			s.stats.Exe++
		}
	}
	e.gen = s.gen
	s.cache[f.pid] = e
	p.Comm, p.Cmdline, p.Cgroup = e.comm, e.cmdline, e.cgroup
	// Only a process with an mm has Vm* lines in its status. (The layout
	// in stat reads as zeros without ptrace access to the process, so it
	// cannot tell.)
	if !p.KernelThread && e.hasMM {
		p.MMGroup = -1 // has an mm: groupMMs numbers it
	}
	return p, true, nil
}

// pendingCmdline reads again the command line of process pid (its cache
// entry e, a hit), whose read blocked: it takes the reply of the read
// still out, or makes another read when none is (one that ended in an
// error, or none sent while every reader was out). Once the process has
// waited Config.CmdlineHold, it reads the path of its executable into
// e.exe, by which the rules judge it meanwhile.
func (s *Scanner) pendingCmdline(e *entry, pid, thread int) {
	// Judged by its executable meanwhile, it is read again (a read is
	// sent if none is out) but never waited for.
	raw, done, err := s.readCmdlineWaiting(cmdlineKey{pid, e.start, e.layout}, thread, e.exe == "")
	if done && err == nil {
		s.line = procfs.AppendCmdline(s.line[:0], raw)
		e.cmdline, e.cmdlinePending, e.exe = string(s.line), false, ""
		return
	}
	if e.exe == "" && time.Since(e.pendingSince) >= s.cfg.CmdlineHold {
		e.exe = s.readExe(pid, thread)
	}
}

// exeUnreadable stands for the path of an executable that could not be
// read: it names no program.
const exeUnreadable = "(executable unreadable)"

// readExe returns the path /proc/PID/exe links to (through thread tid
// when it is not 0), or exeUnreadable. The link is read from the task's
// mm without its mmap_lock.
func (s *Scanner) readExe(pid, tid int) string {
	path := s.fs.Root + "/" + strconv.Itoa(pid)
	if tid != 0 {
		path += "/task/" + strconv.Itoa(tid)
	}
	exe, err := os.Readlink(path + "/exe")
	if err != nil || exe == "" {
		return exeUnreadable
	}
	// Replaced on disk since it started (an upgrade): the path it had.
	return strings.TrimSuffix(exe, " (deleted)")
}

// liveThread returns a thread of process pid, whose leader has exited
// (st, its stat, says procfs.Stat.LeaderExited), that is neither a zombie
// nor exiting, and reads that thread's stat into st with the leader's PID,
// parent, start time and comm: the process's, which its identity, the
// cache and the rules go by (a thread may have a name of its own). It
// returns 0 when every other thread has exited or is exiting (the process
// is dying); st then holds what was read last and must not be used.
func (s *Scanner) liveThread(pid int, st *procfs.Stat) int {
	start, ppid := st.StartTime, st.PPID
	n := copy(s.leaderComm[:], st.Comm) // st.Comm is in the reader's buffer
	var err error
	if s.tids, err = s.dir.Tasks(s.fs, pid, s.tids[:0]); err != nil {
		return 0
	}
	for _, tid := range s.tids {
		if tid == pid || s.r.TaskStat(pid, tid, &s.recheck) != nil || s.recheck.Exiting() {
			continue
		}
		*st = s.recheck
		st.PID, st.StartTime, st.PPID, st.Comm = pid, start, ppid, s.leaderComm[:n]
		return tid
	}
	return 0
}

// statusRefreshPasses bounds how many passes a cached process goes without
// a read of its status file; statusRefreshSlack is the RSS change (in
// pages, besides a sixteenth of the RSS) that makes it read at once.
const (
	statusRefreshPasses = 16
	statusRefreshSlack  = 256
)

// statusDue reports whether a cached process's status must be read again
// in this pass. stat gives RSS, state, parent and flags every pass; status
// adds swap, page tables and the owner, which are kept from its last read
// unless: the RSS has moved by more than a sixteenth (plus 1 MiB of 4 KiB
// pages) since then, which is how swapping out or in and page-table growth
// show; or statusRefreshPasses passes have gone by. Refreshes by age are
// spread over passes by PID, so no pass reads every status at once.
// Skipping status saves three system calls per process, most of a pass's
// cost (see bench/scan).
func (s *Scanner) statusDue(e *entry, pid int, rss int64) bool {
	d := rss - e.rssAtStatus
	if d < 0 {
		d = -d
	}
	if d > e.rssAtStatus/16+statusRefreshSlack {
		return true
	}
	return s.gen-e.statusGen >= statusRefreshPasses || (s.gen+uint32(pid))%statusRefreshPasses == 0
}

// forget drops a cached process that failed to read (it exited).
func (s *Scanner) forget(pid int, e *entry, cached bool) {
	if cached {
		s.closeFiles(e)
		delete(s.cache, pid)
	}
}

// CgroupKernel sets each process's CgroupKernel: the kernel memory charged
// to the cgroup it is in (v2 memory.stat "kernel", v1
// memory.kmem.usage_in_bytes), shared evenly among the snapshot's processes
// of that cgroup. Pipe buffers, dentries and other slab objects are charged
// to a cgroup but show in no process's RSS, so without this a kernel-memory
// bomb's process looks small and a bystander is chosen. The root cgroup is
// skipped (its figure is the whole machine's kernel memory, no process's),
// as is a cgroup whose files cannot be read. It runs only when a victim is
// being chosen. A cgroup's reader is kept while passes see processes in
// it, so a pass over cgroups already seen does not allocate: it runs when
// memory is short, and each new heap page is a page fault then.
func (s *Scanner) CgroupKernel(snap *policy.Snapshot) {
	s.kmemPass++
	for i := range snap.Processes {
		p := &snap.Processes[i]
		p.CgroupKernel = 0
		if p.Cgroup == "" || p.Cgroup == "/" || p.KernelThread {
			continue
		}
		c := s.kmem[p.Cgroup]
		if c == nil {
			c = s.newCgroupKmem(p.Cgroup, p.Scope)
			if c == nil {
				continue // not readable now: tried again next pass
			}
			s.kmem[p.Cgroup] = c
		}
		if c.pass != s.kmemPass {
			c.pass, c.procs, c.usage = s.kmemPass, 0, 0
			if c.r != nil {
				c.usage, _, _ = c.r.Usage()
			}
		}
		c.procs++
	}
	for i := range snap.Processes {
		p := &snap.Processes[i]
		if c := s.kmem[p.Cgroup]; c != nil && c.pass == s.kmemPass && c.procs > 0 && !p.KernelThread {
			p.CgroupKernel = c.usage / uint64(c.procs)
		}
	}
	s.dropCgroupKmem()
}

// newCgroupKmem returns the kernel-memory entry of cgroup (a
// Process.Cgroup path) of a process in scope: with a reader when its
// directory is below the hierarchy's mount, without one for the mount's
// root or a path outside it (nothing to read, for good), and nil when the
// directory cannot be opened now (it may be read later).
func (s *Scanner) newCgroupKmem(cgroup string, scope int) *cgroupKmem {
	m := s.memMount
	if len(s.cfg.Scopes) > 0 && s.cfg.Scopes[scope].Version == cgroupfs.V2 {
		m = s.v2Mount
	}
	dir, ok := m.DirOf(cgroup)
	if !m.ok || !ok || dir == m.Dir {
		return &cgroupKmem{}
	}
	cg, err := cgroupfs.Open(dir)
	if err != nil {
		return nil
	}
	return &cgroupKmem{r: cg.KmemReader()}
}

// procCgroup returns the cgroup the pass found the process in, when
// scoped with the scope's mount known; otherwise it reads the process's
// cgroup path in its scope's hierarchy (v2, or the v1 memory hierarchy
// when unscoped) from /proc/PID/cgroup, or from that of thread, a live
// thread of a process whose leader exited (0 for none).
func (s *Scanner) procCgroup(f found, thread int) (string, error) {
	if f.dir != "" {
		return f.dir, nil
	}
	ctrl := "memory"
	if len(s.cfg.Scopes) > 0 && s.cfg.Scopes[f.scope].Version == cgroupfs.V2 {
		ctrl = ""
	}
	read := func(ctrl string) ([]byte, error) {
		if thread != 0 {
			return s.r.TaskCgroup(f.pid, thread, ctrl)
		}
		return s.r.Cgroup(f.pid, ctrl)
	}
	b, err := read(ctrl)
	if errors.Is(err, procfs.ErrNoCgroupLine) && ctrl != "" {
		b, err = read("")
	}
	if errors.Is(err, procfs.ErrNoCgroupLine) {
		return "", nil
	}
	return string(b), err
}

// skipGone turns "the process exited" into no error.
func skipGone(err error) error {
	if procfs.IsGone(err) {
		return nil
	}
	return err
}

// layoutHash mixes the address-space layout fields (FNV-1a over the words).
func layoutHash(l *[10]uint64) uint64 {
	h := uint64(14695981039346656037)
	for _, v := range l {
		h ^= v
		h *= 1099511628211
		h ^= h >> 29
	}
	return h
}

// groupMMs numbers the address spaces of procs (see Processes). Processes
// with MMGroup -1 have an mm; the others keep 0.
func (s *Scanner) groupMMs(procs []policy.Process) {
	s.keys = s.keys[:0]
	for i := range procs {
		if procs[i].MMGroup == -1 {
			s.keys = append(s.keys, mmKey{hash: s.layoutOf(procs[i].PID), idx: i})
		}
	}
	slices.SortFunc(s.keys, func(a, b mmKey) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return a.idx - b.idx
	})
	for i := 0; i < len(s.keys); {
		j := i + 1
		for j < len(s.keys) && s.keys[j].hash == s.keys[i].hash {
			j++
		}
		s.groupBucket(procs, s.keys[i:j])
		i = j
	}
}

// layoutOf returns the layout hash remembered for pid in this pass.
func (s *Scanner) layoutOf(pid int) uint64 { return s.cache[pid].layout }

// groupBucket splits processes with one layout into mm groups: it sorts
// the bucket by kcmp's order of mms, so sharers end up adjacent, then
// numbers each run of equal mms. A process that exits during the sort makes
// kcmp fail (ESRCH): it is found with kcmp(pid, pid), given MMGroup 0 (it
// has no mm any more) and marked Exiting, and the sort is redone without it.
// If kcmp keeps failing for another reason (EPERM), every process of the
// bucket stays alone; ConfirmGroup and later passes catch a sharer missed
// that way.
func (s *Scanner) groupBucket(procs []policy.Process, bucket []mmKey) {
	for attempt := 0; ; attempt++ {
		if len(bucket) == 1 {
			p := &procs[bucket[0].idx]
			p.MMGroup = p.PID
			return
		}
		if len(bucket) == 0 {
			return
		}
		s.failed, s.unordered, s.retargeted = false, false, false
		slices.SortFunc(bucket, func(a, b mmKey) int {
			pa, pb := procs[a.idx].PID, procs[b.idx].PID
			r := s.kcmp(procs, a.idx, b.idx)
			switch r {
			case 0:
				return 0
			case 1:
				return -1
			case 2:
				return 1
			}
			return pa - pb // failed or unordered: keep the sort going
		})
		if s.unordered {
			s.groupPairwise(procs, bucket)
			return
		}
		if !s.failed {
			break
		}
		live := bucket[:0]
		for _, k := range bucket {
			if procs[k.idx].MMGroup == -1 {
				live = append(live, k)
			}
		}
		if len(live) == len(bucket) && !s.retargeted || attempt == 3 {
			// Nothing died, yet kcmp failed: no ordering to trust.
			for _, k := range live {
				procs[k.idx].MMGroup = procs[k.idx].PID
			}
			return
		}
		bucket = live
	}
	for i := 0; i < len(bucket); {
		j, low := i+1, procs[bucket[i].idx].PID
		for j < len(bucket) && s.kcmp(procs, bucket[i].idx, bucket[j].idx) == 0 {
			low = min(low, procs[bucket[j].idx].PID)
			j++
		}
		for k := i; k < j; k++ {
			procs[bucket[k].idx].MMGroup = low
		}
		i = j
	}
}

// kcmp compares the mms of procs[a] and procs[b]: 0 equal, 1 or 2 ordered,
// -1 on failure. A process found dead on failure gets MMGroup 0 and
// Exiting, unless it was read through a thread (MMTask) that exited while
// another lives on: it is then compared through that one from now on
// (s.retargeted). s.failed and s.unordered record what happened.
func (s *Scanner) kcmp(procs []policy.Process, a, b int) int {
	s.stats.Kcmp++
	r, errno := sys.KcmpErrno(procs[a].MMPID(), procs[b].MMPID(), sys.KcmpVM, 0, 0)
	if errno == 0 {
		if r == 3 {
			s.unordered = true
			return -1
		}
		return r
	}
	s.failed = true
	for _, i := range [2]int{a, b} {
		p := &procs[i]
		if _, e := sys.KcmpErrno(p.MMPID(), p.MMPID(), sys.KcmpVM, 0, 0); e != unix.ESRCH {
			continue
		}
		if p.MMTask != 0 {
			// The thread it was read through exited, perhaps not the
			// process: compare through another, if one is left.
			if tid, ok := procfs.LiveThread(s.fs.Root, p.PID); ok {
				p.MMTask, s.retargeted = tid, true
				continue
			}
		}
		p.MMGroup, p.Exiting = 0, true
	}
	return -1
}

// groupPairwise is the fallback for a kernel whose kcmp cannot order mms
// (result 3): each process joins the first earlier group whose first member
// shares its mm, else starts its own. It is quadratic in the bucket size.
func (s *Scanner) groupPairwise(procs []policy.Process, bucket []mmKey) {
	slices.SortFunc(bucket, func(a, b mmKey) int { return procs[a.idx].PID - procs[b.idx].PID })
	for i := range bucket {
		p := &procs[bucket[i].idx]
		if p.MMGroup == 0 {
			continue // died
		}
		p.MMGroup = p.PID
		for j := 0; j < i; j++ {
			q := &procs[bucket[j].idx]
			if q.MMGroup != q.PID {
				continue // not a group's first member
			}
			if s.kcmp(procs, bucket[j].idx, bucket[i].idx) == 0 {
				p.MMGroup = q.PID
				break
			}
		}
	}
}

// markVforkChildren sets VforkChild (see Processes). procs is sorted by PID.
func (s *Scanner) markVforkChildren(procs []policy.Process) {
	s.wholeParents = s.wholeParents[:0]
	for i := range procs {
		p := &procs[i]
		if p.MMGroup == 0 || p.PPID <= 0 {
			continue
		}
		j, found := slices.BinarySearchFunc(procs, p.PPID, func(q policy.Process, pid int) int { return q.PID - pid })
		if found {
			if procs[j].MMGroup != p.MMGroup {
				continue
			}
		} else if !s.sharesMM(p.MMPID(), p.PPID) {
			continue // parent outside the scope with another mm, or gone
		}
		p.VforkChild = s.inVfork(p.PPID)
	}
}

// sharesMM reports whether task a shares its mm with process pid, which
// is outside the snapshot: compared through a live thread of pid when its
// leader exited before its other threads (its own mm is gone).
func (s *Scanner) sharesMM(a, pid int) bool {
	if r, errno := sys.KcmpErrno(a, pid, sys.KcmpVM, 0, 0); errno == 0 && r == 0 {
		return true
	}
	if slices.Contains(s.wholeParents, pid) {
		return false
	}
	if s.r.Stat(pid, &s.recheck) != nil || !s.recheck.LeaderExited() {
		// Most such parents are a few (PID 1, a shell, a service
		// manager) with many children: each is read once a pass.
		s.wholeParents = append(s.wholeParents, pid)
		return false
	}
	tid, ok := procfs.LiveThread(s.fs.Root, pid) // allocates; a rare case
	if !ok {
		return false
	}
	r, errno := sys.KcmpErrno(a, tid, sys.KcmpVM, 0, 0)
	return errno == 0 && r == 0
}

// inVfork reports whether any thread of process pid is blocked in a vfork:
// vfork(2), clone(2) with CLONE_VFORK in its flags (the first argument), or
// clone3(2) (see vforkCall).
func (s *Scanner) inVfork(pid int) bool {
	if s.r.Syscall(pid, &s.sc) == nil && s.vforkCall(pid, pid) {
		return true
	}
	var err error
	s.tids, err = s.dir.Tasks(s.fs, pid, s.tids[:0])
	if err != nil {
		return false
	}
	for _, tid := range s.tids {
		if tid != pid && s.r.TaskSyscall(pid, tid, &s.sc) == nil && s.vforkCall(pid, tid) {
			return true
		}
	}
	return false
}

// vforkCall reports whether s.sc, the system call of thread tid of process
// pid, is a vfork call: vfork(2), clone(2) with CLONE_VFORK in its flags, or
// clone3(2) while the caller waits for the child (clone3Waits). inVfork is
// asked only about a process that has a child sharing its mm.
func (s *Scanner) vforkCall(pid, tid int) bool {
	sc := &s.sc
	if sc.Running || sc.Nr < 0 {
		return false
	}
	switch sc.Nr {
	case sysVfork:
		return true
	case unix.SYS_CLONE:
		return sc.Args[0]&unix.CLONE_VFORK != 0
	case unix.SYS_CLONE3:
		return s.clone3Waits(pid, tid)
	}
	return false
}

// clone3Waits reports whether thread tid of process pid, blocked in
// clone3(2), waits for a vfork child. clone3's flags are in the clone_args
// its first argument points to, and reading them (/proc/TID/mem) takes the
// process's mmap_lock, which another of its threads may hold for writing
// as long as direct reclaim lasts (see scan.cmdlineReader): the decision
// pass must not wait on it. Where the thread sleeps tells instead
// (/proc/PID/task/TID/wchan, read without that lock): kernel_clone (into
// which wait_for_vfork_done is inlined), or wait_for_vfork_done itself,
// is the wait for a vfork child; anywhere else, say an allocation in
// direct reclaim while glibc's pthread_create makes a thread with clone3,
// it is not. Where the kernel does not tell ("0" or no file), a caller
// blocked in clone3 with a child sharing its mm is taken to wait for it:
// without CLONE_VFORK, clone3 returns as soon as the child runs.
func (s *Scanner) clone3Waits(pid, tid int) bool {
	b, err := s.r.TaskWchan(pid, tid)
	if err != nil {
		return true
	}
	// A name may carry a compiler's suffix (kernel_clone.isra.0).
	w := bytes.TrimSpace(b)
	if i := bytes.IndexByte(w, '.'); i > 0 {
		w = w[:i]
	}
	switch string(w) {
	case "kernel_clone", "wait_for_vfork_done", "_do_fork", "do_fork", "0", "":
		return true
	}
	return false
}

// ConfirmGroup returns pid and every process of candidates that shares
// pid's mm right now, as kcmp(KCMP_VM) tells: the killer calls it right
// before killing, with every process of the victim's scope, so that a
// sharer the last snapshot missed is killed too. Each candidate is the
// task to compare through (policy.Process.MMPID: a live thread of a
// process whose leader exited, whose own mm is gone), and is returned as
// given. Candidates that have exited are left out, and so are candidates
// kcmp may not compare (EPERM: processes this one may not ptrace). It
// fails when pid itself has exited. A pid without an mm (exited, kernel
// thread) has no sharers. A pid whose leader exited before its other
// threads is compared through one of them.
func (s *Scanner) ConfirmGroup(pid int, candidates []int) ([]int, error) {
	if err := s.r.Stat(pid, &s.stat); err != nil {
		return nil, fmt.Errorf("confirm mm group of %d: %w", pid, err)
	}
	out := []int{pid}
	ref := pid // compared through a live thread if the leader exited
	if s.stat.LeaderExited() && !s.stat.KernelThread() {
		if ref = s.liveThread(pid, &s.stat); ref == 0 {
			return out, nil // every thread is exiting: no mm to share
		}
	}
	if s.stat.KernelThread() || s.stat.Layout == ([10]uint64{}) {
		return out, nil
	}
	for _, c := range candidates {
		if c == pid || slices.Contains(out, c) {
			continue
		}
		r, errno := sys.KcmpErrno(ref, c, sys.KcmpVM, 0, 0)
		switch errno {
		case 0:
			if r == 0 {
				out = append(out, c)
			}
		case unix.ESRCH, unix.EPERM:
			// One of the two is gone, or c is out of our reach (a
			// process we may not ptrace cannot be ours to kill).
			if _, e := sys.KcmpErrno(ref, ref, sys.KcmpVM, 0, 0); e != 0 {
				return nil, fmt.Errorf("confirm mm group of %d: kcmp: %w", pid, e)
			}
		default:
			return nil, fmt.Errorf("confirm mm group of %d: kcmp with %d: %w", pid, c, errno)
		}
	}
	return out, nil
}
