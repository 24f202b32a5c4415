package cgroupfs

import (
	"bytes"
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/procfs"
)

// v1NoLimit is the smallest value v1 reports for "no limit": PAGE_COUNTER_MAX
// pages, 0x7FFFFFFFFFFFF000 bytes with 4 KiB pages.
const v1NoLimit = 1 << 62

// MemoryStat holds the memory.stat fields oomguard uses, in bytes or events.
// On v1 the hierarchical total_* value is taken where the kernel writes one
// (so a parent counts its children, as on v2, whose memory.stat is always
// hierarchical). Fields the file lacks have OK false.
type MemoryStat struct {
	// Anon and File: v2 anon and file; v1 rss and cache.
	Anon, File                                         Val
	ActiveAnon, InactiveAnon, ActiveFile, InactiveFile Val
	Shmem, FileMapped, FileDirty, FileWriteback, Swap  Val
	Unevictable                                        Val
	// Kernel memory (v2 only): kernel, slab, slab_reclaimable,
	// slab_unreclaimable, kernel_stack, pagetables, sock, percpu, vmalloc.
	Kernel, Slab, SlabReclaimable, SlabUnreclaimable Val
	KernelStack, PageTables, Sock, Percpu, Vmalloc   Val
	// WorkingsetRefaultFile is workingset_refault_file (v1
	// total_workingset_refault_file where present).
	WorkingsetRefaultFile, WorkingsetRefaultAnon Val
	Pgfault, Pgmajfault                          Val
	// HierarchicalMemoryLimit is v1's limit in force, the lowest
	// memory.limit_in_bytes on the way to the root.
	HierarchicalMemoryLimit Val
}

// Val is a number read from a control file, in the memory and kernel-memory
// figures alike; OK is false when the file or field is absent on this
// kernel, which is not the same as zero. procfs.Some makes a present one and
// Val.Ptr gives JSON's null for an absent one.
type Val = procfs.Val

// OOMControl is v1 memory.oom_control.
type OOMControl struct {
	// OOMKillDisable is true when the kernel's OOM killer is disabled for
	// the cgroup (tasks then wait at the limit).
	OOMKillDisable bool
	// UnderOOM is true while the cgroup is at its limit with the killer
	// disabled.
	UnderOOM bool
	// OOMKill counts the kernel's OOM kills in the cgroup (Linux 4.13+).
	OOMKill Val
}

// MemoryEvents is v2 memory.events, counters since the cgroup was created.
type MemoryEvents struct {
	Low, High, Max, OOM, OOMKill, OOMGroupKill Val
}

// parseMemoryStat parses memory.stat, lines of "name value", v1 or v2.
func parseMemoryStat(b []byte, s *MemoryStat) error {
	*s = MemoryStat{}
	var fromTotal [32]bool
	return eachStat(b, func(key []byte, v uint64) {
		total := false
		if bytes.HasPrefix(key, []byte("total_")) {
			key, total = key[len("total_"):], true
		}
		i := statIndex(key)
		if i < 0 {
			return
		}
		if fromTotal[i] && !total {
			return
		}
		fromTotal[i] = total
		statField(s, i).N, statField(s, i).OK = v, true
	})
}

// statIndex numbers the memory.stat names oomguard keeps; -1 for others.
func statIndex(key []byte) int {
	switch string(key) {
	case "anon", "rss":
		return 0
	case "file", "cache":
		return 1
	case "active_anon":
		return 2
	case "inactive_anon":
		return 3
	case "active_file":
		return 4
	case "inactive_file":
		return 5
	case "shmem":
		return 6
	case "file_mapped", "mapped_file":
		return 7
	case "file_dirty", "dirty":
		return 8
	case "file_writeback", "writeback":
		return 9
	case "swap":
		return 10
	case "unevictable":
		return 11
	case "kernel":
		return 12
	case "slab":
		return 13
	case "slab_reclaimable":
		return 14
	case "slab_unreclaimable":
		return 15
	case "kernel_stack":
		return 16
	case "pagetables":
		return 17
	case "sock":
		return 18
	case "percpu":
		return 19
	case "vmalloc":
		return 20
	case "workingset_refault_file":
		return 21
	case "workingset_refault_anon":
		return 22
	case "pgfault":
		return 23
	case "pgmajfault":
		return 24
	case "hierarchical_memory_limit":
		return 25
	}
	return -1
}

func statField(s *MemoryStat, i int) *Val {
	return [...]*Val{&s.Anon, &s.File, &s.ActiveAnon, &s.InactiveAnon, &s.ActiveFile, &s.InactiveFile,
		&s.Shmem, &s.FileMapped, &s.FileDirty, &s.FileWriteback, &s.Swap, &s.Unevictable,
		&s.Kernel, &s.Slab, &s.SlabReclaimable, &s.SlabUnreclaimable, &s.KernelStack, &s.PageTables,
		&s.Sock, &s.Percpu, &s.Vmalloc, &s.WorkingsetRefaultFile, &s.WorkingsetRefaultAnon,
		&s.Pgfault, &s.Pgmajfault, &s.HierarchicalMemoryLimit}[i]
}

// parseOOMControl parses v1 memory.oom_control: "oom_kill_disable 0",
// "under_oom 0" and, since Linux 4.13, "oom_kill N".
func parseOOMControl(b []byte, o *OOMControl) error {
	*o = OOMControl{}
	seen := 0
	err := eachStat(b, func(key []byte, v uint64) {
		switch string(key) {
		case "oom_kill_disable":
			o.OOMKillDisable, seen = v != 0, seen|1
		case "under_oom":
			o.UnderOOM, seen = v != 0, seen|2
		case "oom_kill":
			o.OOMKill = procfs.Some(v)
		}
	})
	if err != nil {
		return err
	}
	if seen != 3 {
		return lineErr(0, "no oom_kill_disable or under_oom")
	}
	return nil
}

// parseMemoryEvents parses v2 memory.events (or memory.events.local).
func parseMemoryEvents(b []byte, e *MemoryEvents) error {
	*e = MemoryEvents{}
	return eachStat(b, func(key []byte, v uint64) {
		var f *Val
		switch string(key) {
		case "low":
			f = &e.Low
		case "high":
			f = &e.High
		case "max":
			f = &e.Max
		case "oom":
			f = &e.OOM
		case "oom_kill":
			f = &e.OOMKill
		case "oom_group_kill":
			f = &e.OOMGroupKill
		default:
			return
		}
		f.N, f.OK = v, true
	})
}

// parseLimit parses a file holding one number or "max" (v2 memory.max,
// memory.high), or v1's huge "no limit" number. It returns 0 for no limit.
func parseLimit(b []byte) (uint64, error) {
	b = bytes.TrimRight(b, "\n")
	if string(b) == "max" {
		return 0, nil
	}
	v, ok := procfs.ParseUint(b)
	if !ok {
		return 0, lineErr(1, "not a number or \"max\"")
	}
	if v >= v1NoLimit {
		return 0, nil
	}
	return v, nil
}

// MemoryReader reads the memory state of one cgroup, v1 or v2, into buffers
// it keeps, so reading it again allocates nothing. It is not safe for
// concurrent use.
type MemoryReader struct {
	cg  Cgroup
	buf procfs.Buffer
	// Control file paths, built once.
	usage, limit, high, oomControl, events, stat string
	pressure                                     [3]string // memory, io, cpu
	// noPressure[i] and noMemory remember files found missing, so that
	// later reads do not pay for the error again.
	noPressure [3]bool
	noMemory   bool

	// Stat, OOM and Events hold what the last Read parsed.
	Stat   MemoryStat
	OOM    OOMControl
	Events MemoryEvents
}

// NewMemoryReader returns a MemoryReader of c.
func NewMemoryReader(c Cgroup) *MemoryReader {
	m := &MemoryReader{cg: c, stat: c.File("memory.stat")}
	if c.Version == V2 {
		m.usage, m.limit, m.high = c.File("memory.current"), c.File("memory.max"), c.File("memory.high")
		m.events = c.File("memory.events")
	} else {
		m.usage, m.limit = c.File("memory.usage_in_bytes"), c.File("memory.limit_in_bytes")
		m.oomControl = c.File("memory.oom_control")
	}
	m.pressure = [3]string{c.File("memory.pressure"), c.File("io.pressure"), c.File("cpu.pressure")}
	if c.Version == V1 {
		m.noPressure = [3]bool{true, true, true} // v1 has no per-cgroup PSI
	}
	return m
}

// Cgroup returns the cgroup m reads.
func (m *MemoryReader) Cgroup() Cgroup { return m.cg }

// KeepFiles makes m keep the cgroup's files open between reads (see
// procfs.Buffer.KeepFiles): a daemon polling its scopes once a second
// then makes one system call per file, and wakes nothing else in the Go
// runtime. Close them with CloseFiles.
func (m *MemoryReader) KeepFiles() { m.buf.KeepFiles() }

// CloseFiles closes the files KeepFiles kept open.
func (m *MemoryReader) CloseFiles() { m.buf.CloseFiles() }

// Read fills out with the cgroup's memory state: usage, limit (v1: the
// lowest limit in force, from hierarchical_memory_limit), memory.high,
// reclaimable inactive file cache, file refaults, OOM kills and the cgroup's
// own PSI. A v2 cgroup without the memory controller (no memory.current) has
// Usage and Limit 0 and RefaultFile and OOMKills -1; its pressure files are
// still read. Pressure files the cgroup lacks (v1) are left Valid false.
// Files found missing once are not looked for again by this reader (a
// controller enabled later needs a new MemoryReader).
func (m *MemoryReader) Read(out *policy.ScopeMemory) error {
	*out = policy.ScopeMemory{Path: m.cg.Path, RefaultFile: -1, OOMKills: -1}
	m.Stat, m.OOM, m.Events = MemoryStat{}, OOMControl{}, MemoryEvents{}
	if err := m.readMemory(out); err != nil {
		return err
	}
	files := [3]*policy.PressureFile{&out.Pressure.Memory, &out.Pressure.IO, &out.Pressure.CPU}
	for i, p := range m.pressure {
		if m.noPressure[i] {
			continue
		}
		b, err := m.buf.ReadFile(p)
		// EOPNOTSUPP: PSI is disabled (psi=0, or cgroup.pressure 0).
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.EOPNOTSUPP) {
			m.noPressure[i] = true
			continue
		}
		if err != nil {
			return err
		}
		if err := procfs.ParsePressure(b, files[i]); err != nil {
			return procfs.WithPath(p, err)
		}
	}
	return nil
}

func (m *MemoryReader) readMemory(out *policy.ScopeMemory) error {
	if m.noMemory {
		return nil
	}
	b, err := m.buf.ReadFile(m.usage)
	if m.cg.Version == V2 && errors.Is(err, fs.ErrNotExist) {
		m.noMemory = true // no memory controller here
		return nil
	}
	if err != nil {
		return err
	}
	if out.Usage, err = parseOne(b); err != nil {
		return procfs.WithPath(m.usage, err)
	}
	if b, err = m.buf.ReadFile(m.limit); err != nil {
		return err
	}
	if out.Limit, err = parseLimit(b); err != nil {
		return procfs.WithPath(m.limit, err)
	}
	if b, err = m.buf.ReadFile(m.stat); err != nil {
		return err
	}
	if err := parseMemoryStat(b, &m.Stat); err != nil {
		return procfs.WithPath(m.stat, err)
	}
	out.ReclaimableFile = m.Stat.InactiveFile.N
	if m.Stat.WorkingsetRefaultFile.OK {
		out.RefaultFile = int64(m.Stat.WorkingsetRefaultFile.N)
	}
	if m.cg.Version == V1 {
		if h := m.Stat.HierarchicalMemoryLimit; h.OK && h.N < v1NoLimit && (out.Limit == 0 || h.N < out.Limit) {
			out.Limit = h.N
		}
		if b, err = m.buf.ReadFile(m.oomControl); err != nil {
			return err
		}
		if err := parseOOMControl(b, &m.OOM); err != nil {
			return procfs.WithPath(m.oomControl, err)
		}
		if m.OOM.OOMKill.OK {
			out.OOMKills = int64(m.OOM.OOMKill.N)
		}
		return nil
	}
	if b, err = m.buf.ReadFile(m.high); err != nil {
		return err
	}
	if out.High, err = parseLimit(b); err != nil {
		return procfs.WithPath(m.high, err)
	}
	if b, err = m.buf.ReadFile(m.events); err != nil {
		return err
	}
	if err := parseMemoryEvents(b, &m.Events); err != nil {
		return procfs.WithPath(m.events, err)
	}
	if m.Events.OOMKill.OK {
		out.OOMKills = int64(m.Events.OOMKill.N)
	}
	return nil
}

// parseOne parses a file holding one unsigned number.
func parseOne(b []byte) (uint64, error) {
	v, ok := procfs.ParseUint(bytes.TrimRight(b, "\n"))
	if !ok {
		return 0, lineErr(1, "not a number")
	}
	return v, nil
}

// MemoryStat reads and parses c's memory.stat.
func (c Cgroup) MemoryStat() (MemoryStat, error) {
	return readParsed(c, "memory.stat", parseMemoryStat)
}

// OOMControl reads and parses c's v1 memory.oom_control.
func (c Cgroup) OOMControl() (OOMControl, error) {
	return readParsed(c, "memory.oom_control", parseOOMControl)
}

// MemoryEvents reads and parses c's v2 memory.events.
func (c Cgroup) MemoryEvents() (MemoryEvents, error) {
	return readParsed(c, "memory.events", parseMemoryEvents)
}

// readParsed reads c's file name once and parses it into a new T; a parse
// error names the file.
func readParsed[T any](c Cgroup, name string, parse func([]byte, *T) error) (T, error) {
	var v T
	b, err := c.ReadFile(name)
	if err != nil {
		return v, err
	}
	err = parse(b, &v)
	return v, procfs.WithPath(c.File(name), err)
}
