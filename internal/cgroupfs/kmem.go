package cgroupfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/procfs"
)

// KmemCounters are the four counters of one v1 kmem page counter
// (memory.kmem.* or memory.kmem.tcp.*).
type KmemCounters struct {
	// Usage is *usage_in_bytes.
	Usage Val
	// MaxUsage is *max_usage_in_bytes, the high-water mark since the
	// cgroup was created or the file was reset.
	MaxUsage Val
	// Failcnt is *failcnt: how often the kernel's counter hit its limit.
	Failcnt Val
	// Limit is *limit_in_bytes. Current kernels (this 6.18 one included)
	// accept writes to memory.kmem.limit_in_bytes and ignore them: it
	// limits nothing.
	Limit Val
}

// KmemStat holds the kernel-memory fields of a v2 memory.stat, in bytes.
// Fields the running kernel does not print are absent (OK false).
type KmemStat struct {
	Kernel            Val // all kernel memory charged; absent on older kernels
	Slab              Val
	SlabReclaimable   Val
	SlabUnreclaimable Val
	KernelStack       Val
	PageTables        Val
	SecPageTables     Val // secondary (KVM, IOMMU) page tables; absent on older kernels
	Percpu            Val
	Sock              Val // socket buffers; not part of "kernel"
	Vmalloc           Val
}

// Kmem is the kernel memory of one cgroup as the kernel reports it.
type Kmem struct {
	// Version is the hierarchy the figures come from.
	Version Version
	// Usage is the kernel memory charged to the cgroup and its descendants:
	// v1 memory.kmem.usage_in_bytes, v2 memory.stat "kernel".
	Usage Val
	// UsageDerived is true when v2 memory.stat has no "kernel" field (older
	// kernels) and Usage is the sum of slab, kernel_stack, pagetables,
	// sec_pagetables, percpu and vmalloc: a lower bound.
	UsageDerived bool
	// V1 are the v1 memory.kmem.* counters (zero on v2).
	V1 KmemCounters
	// TCP are the v1 memory.kmem.tcp.* counters (zero on v2, where socket
	// memory is memory.stat "sock").
	TCP KmemCounters
	// Stat are the v2 memory.stat kernel fields (zero on v1, whose
	// memory.stat has none).
	Stat KmemStat
}

// KmemReader reads the kernel memory of one cgroup. After the first read it
// does not allocate: paths are prepared once and the read buffer is reused.
// The zero value is not usable; use Cgroup.KmemReader. A KmemReader is not
// safe for concurrent use.
type KmemReader struct {
	cg    Cgroup
	paths [kmemFileCount]string
	buf   procfs.Buffer
}

const (
	fileUsage = iota
	fileMaxUsage
	fileFailcnt
	fileLimit
	fileTCPUsage
	fileTCPMaxUsage
	fileTCPFailcnt
	fileTCPLimit
	fileStat
	kmemFileCount
)

var kmemFileNames = [kmemFileCount]string{
	fileUsage:       "memory.kmem.usage_in_bytes",
	fileMaxUsage:    "memory.kmem.max_usage_in_bytes",
	fileFailcnt:     "memory.kmem.failcnt",
	fileLimit:       "memory.kmem.limit_in_bytes",
	fileTCPUsage:    "memory.kmem.tcp.usage_in_bytes",
	fileTCPMaxUsage: "memory.kmem.tcp.max_usage_in_bytes",
	fileTCPFailcnt:  "memory.kmem.tcp.failcnt",
	fileTCPLimit:    "memory.kmem.tcp.limit_in_bytes",
	fileStat:        "memory.stat",
}

// KmemReader returns a reader of c's kernel-memory files.
func (c Cgroup) KmemReader() *KmemReader {
	r := &KmemReader{cg: c}
	for i, n := range kmemFileNames {
		r.paths[i] = c.File(n)
	}
	return r
}

// Cgroup returns the cgroup r reads.
func (r *KmemReader) Cgroup() Cgroup { return r.cg }

// ErrNoKmem says a cgroup has no kernel-memory accounting files: a v1
// cgroup outside the memory hierarchy, or a v2 cgroup without the memory
// controller enabled.
var ErrNoKmem = errors.New("no kernel-memory accounting files")

// Usage reads only the kernel memory in use, the figure the daemon polls:
// v1 memory.kmem.usage_in_bytes, or v2 memory.stat "kernel" (derived, as in
// Kmem.UsageDerived, on kernels without it). It does not allocate.
func (r *KmemReader) Usage() (usage uint64, derived bool, err error) {
	if r.cg.Version == V1 {
		v, err := r.readUint(fileUsage)
		if err != nil {
			return 0, false, err
		}
		return v.N, false, nil
	}
	var s KmemStat
	if err := r.readStat(&s); err != nil {
		return 0, false, err
	}
	u, derived := s.Total()
	return u.N, derived, nil
}

// ReadSummary reads what a ranking pass over many cgroups needs into k:
// v1 usage and max_usage (two small files), or the whole v2 memory.stat
// (one file, every kernel field). The other v1 counters stay absent. A
// missing v1 memory.kmem.usage_in_bytes or v2 memory.stat is ErrNoKmem. It
// does not allocate once the buffer has grown to the largest file.
func (r *KmemReader) ReadSummary(k *Kmem) error {
	return r.read(k, fileMaxUsage)
}

// Read reads every kernel-memory figure of the cgroup into k: on v1 also
// the kernel's kmem failcnt and limit and the memory.kmem.tcp.* counters.
// Missing optional files are left absent. Errors are as for ReadSummary.
func (r *KmemReader) Read(k *Kmem) error {
	return r.read(k, fileTCPLimit)
}

// read reads the v1 files up to and including last.
func (r *KmemReader) read(k *Kmem, last int) error {
	*k = Kmem{Version: r.cg.Version}
	if r.cg.Version == V2 {
		if err := r.readStat(&k.Stat); err != nil {
			return err
		}
		k.Usage, k.UsageDerived = k.Stat.Total()
		return nil
	}
	var err error
	if k.V1.Usage, err = r.readUint(fileUsage); err != nil {
		return err
	}
	k.Usage = k.V1.Usage
	dst := [...]*Val{
		fileMaxUsage:    &k.V1.MaxUsage,
		fileFailcnt:     &k.V1.Failcnt,
		fileLimit:       &k.V1.Limit,
		fileTCPUsage:    &k.TCP.Usage,
		fileTCPMaxUsage: &k.TCP.MaxUsage,
		fileTCPFailcnt:  &k.TCP.Failcnt,
		fileTCPLimit:    &k.TCP.Limit,
	}
	for i := fileMaxUsage; i <= last; i++ {
		v, err := r.readUint(i)
		if errors.Is(err, ErrNoKmem) {
			continue
		}
		if err != nil {
			return err
		}
		*dst[i] = v
	}
	return nil
}

// ReadKmem reads c's kernel memory once. Callers that poll use a KmemReader.
func (c Cgroup) ReadKmem() (Kmem, error) {
	var k Kmem
	err := c.KmemReader().Read(&k)
	return k, err
}

func (r *KmemReader) readUint(i int) (Val, error) {
	b, err := r.load(i)
	if err != nil {
		return Val{}, err
	}
	n, err := parseUintFile(b)
	if err != nil {
		return Val{}, fmt.Errorf("parse %s: %w", r.paths[i], err)
	}
	return procfs.Some(n), nil
}

func (r *KmemReader) readStat(s *KmemStat) error {
	b, err := r.load(fileStat)
	if err != nil {
		return err
	}
	if err := ParseKmemStat(b, s); err != nil {
		return fmt.Errorf("parse %s: %w", r.paths[fileStat], err)
	}
	return nil
}

// load reads file i to end of file into r.buf, without allocating once the
// buffer has grown to the largest file. The bytes are valid until the next
// load. A missing file is ErrNoKmem.
func (r *KmemReader) load(i int) ([]byte, error) {
	b, err := r.buf.ReadFile(r.paths[i])
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("read %s: %w", r.paths[i], ErrNoKmem)
		}
		// The path is in our message; keep the errno alone.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("read %s: %w", r.paths[i], err)
	}
	return b, nil
}

// Total returns the kernel memory in s: the "kernel" field where present,
// otherwise the sum of slab (or its two halves), kernel_stack, pagetables,
// sec_pagetables, percpu and vmalloc, with derived true. Socket memory is
// not included, as in the kernel's own "kernel" figure. Total is absent only
// when none of the parts is present.
func (s KmemStat) Total() (total Val, derived bool) {
	if s.Kernel.OK {
		return s.Kernel, false
	}
	var sum Val
	add := func(v Val) {
		if v.OK {
			sum.N += v.N
			sum.OK = true
		}
	}
	if s.Slab.OK {
		add(s.Slab)
	} else {
		add(s.SlabReclaimable)
		add(s.SlabUnreclaimable)
	}
	add(s.KernelStack)
	add(s.PageTables)
	add(s.SecPageTables)
	add(s.Percpu)
	add(s.Vmalloc)
	return sum, sum.OK
}

// ParseKmemStat parses the kernel fields of a v2 memory.stat into s, which
// it resets first. Other fields are checked for form but not stored. A line
// that is not "name number" is an error. It does not allocate.
func ParseKmemStat(b []byte, s *KmemStat) error {
	*s = KmemStat{}
	line := 0
	for len(b) > 0 {
		line++
		var l []byte
		l, b, _ = bytes.Cut(b, []byte("\n"))
		if len(l) == 0 {
			continue
		}
		sp := bytes.IndexByte(l, ' ')
		if sp <= 0 || sp == len(l)-1 {
			return fmt.Errorf("line %d: want \"name value\", got %q", line, l)
		}
		name, num := l[:sp], l[sp+1:]
		n, ok := procfs.ParseUint(num)
		if !ok {
			return fmt.Errorf("line %d: bad number %q for %q", line, num, name)
		}
		if dst := s.field(name); dst != nil {
			*dst = procfs.Some(n)
		}
	}
	return nil
}

func (s *KmemStat) field(name []byte) *Val {
	// string(name) in a switch does not allocate.
	switch string(name) {
	case "kernel":
		return &s.Kernel
	case "slab":
		return &s.Slab
	case "slab_reclaimable":
		return &s.SlabReclaimable
	case "slab_unreclaimable":
		return &s.SlabUnreclaimable
	case "kernel_stack":
		return &s.KernelStack
	case "pagetables":
		return &s.PageTables
	case "sec_pagetables":
		return &s.SecPageTables
	case "percpu":
		return &s.Percpu
	case "sock":
		return &s.Sock
	case "vmalloc":
		return &s.Vmalloc
	}
	return nil
}

// parseUintFile parses a control file holding one unsigned number and a
// newline.
func parseUintFile(b []byte) (uint64, error) {
	t := bytes.TrimSpace(b)
	n, ok := procfs.ParseUint(t)
	if !ok {
		return 0, fmt.Errorf("want one unsigned number, got %q", b)
	}
	return n, nil
}
