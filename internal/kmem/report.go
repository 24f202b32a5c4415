package kmem

import (
	"errors"
	"fmt"
	"sort"

	"github.com/oomguard/oomguard/internal/cgroupfs"
)

// Kind is one line of a cgroup's breakdown: how much kernel memory of one
// kind, how it was obtained and how far it can be trusted.
type Kind struct {
	// Bytes is null when the kernel does not report the kind.
	Bytes *uint64 `json:"bytes"`
	// Count is the number of objects (threads, pipes, sockets) where known.
	Count *uint64 `json:"count,omitempty"`
	// Accuracy is Exact or Estimate.
	Accuracy Accuracy `json:"accuracy"`
	// Source names the file or the computation.
	Source string `json:"source"`
}

// Cgroup is the kernel-memory report of one cgroup: one entry of
// `oomguard kmem --json`.
type Cgroup struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	// Usage is the kernel memory charged to the cgroup and its descendants.
	Usage       *uint64 `json:"usage"`
	UsageSource string  `json:"usage_source"`
	// MaxUsage is the high-water mark: v1 memory.kmem.max_usage_in_bytes;
	// on v2, which keeps none, the peak the daemon has seen, else null.
	MaxUsage       *uint64 `json:"max_usage"`
	MaxUsageSource string  `json:"max_usage_source,omitempty"`
	// Limit is the kernel-memory budget the daemon enforces on the cgroup;
	// null without a daemon or without a budget. (No kernel enforces
	// memory.kmem.limit_in_bytes any more.)
	Limit *uint64 `json:"limit"`
	// Failcnt counts budget breaches the daemon has seen. Without a daemon
	// it is the kernel's v1 memory.kmem.failcnt (which stays 0 on kernels
	// that ignore the kmem limit), and null on v2.
	Failcnt       *uint64 `json:"failcnt"`
	FailcntSource string  `json:"failcnt_source,omitempty"`
	// KernelFailcnt is v1 memory.kmem.failcnt as read; null on v2.
	KernelFailcnt *uint64 `json:"kernel_failcnt"`
	// Action is the budget's action when the daemon has a budget here.
	Action string `json:"action,omitempty"`
	// Breakdown is the kernel memory by kind.
	Breakdown map[string]Kind `json:"breakdown"`
	// Processes are the heaviest kernel-memory users inside, heaviest
	// first, when asked for.
	Processes []Process `json:"processes,omitempty"`
	// Error says why the cgroup could not be read; the other fields are
	// then empty.
	Error string `json:"error,omitempty"`
}

// Report is the whole answer of `oomguard kmem --json`.
type Report struct {
	Cgroups []Cgroup `json:"cgroups"`
	// Slabinfo is system-wide context from /proc/slabinfo where readable.
	Slabinfo *Slabinfo `json:"slabinfo,omitempty"`
}

// Options say how much ReadCgroup reads.
type Options struct {
	// Proc is where process figures are read from.
	Proc ProcFS
	// Attribute reads every member process of the cgroup (and its
	// descendants) and adds the per-process kinds to the breakdown.
	Attribute bool
	// TopProcesses is how many of the heaviest processes to list.
	TopProcesses int
}

// ReadCgroup reads the full kernel-memory report of cg. Errors of the
// cgroup itself are returned; a process that exits meanwhile is skipped.
func ReadCgroup(cg cgroupfs.Cgroup, o Options) (Cgroup, error) {
	var k cgroupfs.Kmem
	if err := cg.KmemReader().Read(&k); err != nil {
		return Cgroup{Path: cg.Path, Version: cg.Version.String(), Error: err.Error()}, err
	}
	c := FromKmem(cg.Path, k)
	if !o.Attribute {
		return c, nil
	}
	procs, err := Members(cg)
	if err != nil {
		return c, err
	}
	var list []Process
	for _, pid := range procs {
		p, err := o.Proc.Process(pid)
		if errors.Is(err, ErrGone) {
			continue
		}
		if err != nil {
			return c, err
		}
		list = append(list, p)
	}
	c.AddProcesses(list, k)
	SortHeaviest(list)
	if len(list) > o.TopProcesses {
		list = list[:o.TopProcesses]
	}
	c.Processes = list
	return c, nil
}

// Members returns the PIDs in cg and its descendants.
func Members(cg cgroupfs.Cgroup) ([]int, error) { return cg.ProcsBelow() }

// SortHeaviest orders processes by Total, heaviest first, then by PID.
func SortHeaviest(ps []Process) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Total != ps[j].Total {
			return ps[i].Total > ps[j].Total
		}
		return ps[i].PID < ps[j].PID
	})
}

func u64(v uint64) *uint64 { return &v }

// FromKmem turns the kernel's figures into a report entry without any
// per-process attribution.
func FromKmem(path string, k cgroupfs.Kmem) Cgroup {
	c := Cgroup{Path: path, Version: k.Version.String(), Breakdown: map[string]Kind{}, Usage: k.Usage.Ptr()}
	exact := func(v cgroupfs.Val, src string) Kind {
		return Kind{Bytes: v.Ptr(), Accuracy: Exact, Source: src}
	}
	if k.Version == cgroupfs.V2 {
		c.UsageSource = "memory.stat kernel"
		if k.UsageDerived {
			c.UsageSource = "derived: memory.stat slab+kernel_stack+pagetables+sec_pagetables+percpu+vmalloc (no kernel field on this kernel; a lower bound)"
		}
		s := k.Stat
		for name, v := range map[string]cgroupfs.Val{
			"slab": s.Slab, "slab_reclaimable": s.SlabReclaimable, "slab_unreclaimable": s.SlabUnreclaimable,
			"kernel_stack": s.KernelStack, "pagetables": s.PageTables, "sec_pagetables": s.SecPageTables,
			"percpu": s.Percpu, "sock": s.Sock, "vmalloc": s.Vmalloc,
		} {
			c.Breakdown[name] = exact(v, "memory.stat "+name)
		}
		// The part of "kernel" no named field explains (for example
		// kmalloc'd objects charged outside slab accounting).
		if s.Kernel.OK {
			parts := s.Slab.N + s.KernelStack.N + s.PageTables.N + s.SecPageTables.N + s.Percpu.N + s.Vmalloc.N
			if !s.Slab.OK {
				parts += s.SlabReclaimable.N + s.SlabUnreclaimable.N
			}
			var other uint64
			if s.Kernel.N > parts {
				other = s.Kernel.N - parts
			}
			c.Breakdown["other"] = Kind{Bytes: &other, Accuracy: Exact, Source: "memory.stat kernel minus its named parts"}
		}
		return c
	}
	c.UsageSource = "memory.kmem.usage_in_bytes"
	c.MaxUsage = k.V1.MaxUsage.Ptr()
	if k.V1.MaxUsage.OK {
		c.MaxUsageSource = "memory.kmem.max_usage_in_bytes"
	}
	c.KernelFailcnt = k.V1.Failcnt.Ptr()
	if k.V1.Failcnt.OK {
		c.Failcnt, c.FailcntSource = k.V1.Failcnt.Ptr(), "kernel memory.kmem.failcnt"
	}
	c.Breakdown["kmem"] = exact(k.V1.Usage, "memory.kmem.usage_in_bytes")
	if k.TCP.Usage.OK {
		c.Breakdown["tcp"] = exact(k.TCP.Usage, "memory.kmem.tcp.usage_in_bytes (separate from kmem)")
	}
	return c
}

// AddProcesses adds the per-process kinds, summed over ps, to the
// breakdown: pagetables (exact, VmPTE), kernel_stack, pipes and sockets
// (estimates; a pipe shared by several processes counts once). On v1, where
// memory.stat has no kernel fields, it also adds "unattributed": kmem usage
// minus those kinds, the slab objects (dentries, inodes, …) that no process
// can be charged with.
func (c *Cgroup) AddProcesses(ps []Process, k cgroupfs.Kmem) {
	var threads, pt, sockets, sockBytes uint64
	pipes := map[uint64]uint64{}
	pipeSource := "distinct pipes in /proc/PID/fd: queued data (FIONREAD) rounded to pages + 2 KiB each"
	for _, p := range ps {
		if !p.PipeDataRead {
			pipeSource = "distinct pipes in /proc/PID/fd x 2 KiB: a lower bound, queued data not read"
		}
		threads += uint64(p.Threads)
		pt += p.PageTables
		sockets += uint64(p.Sockets)
		sockBytes += p.SocketBytes
		for i, ino := range p.PipeInodes {
			pipes[ino] = p.PipeData[i]
		}
	}
	var pipeBytes uint64
	for _, q := range pipes {
		pipeBytes += PipeEstimate(q)
	}
	stacks := threads * ThreadStackSize
	nPipes := uint64(len(pipes))
	add := func(name string, kd Kind) {
		if _, ok := c.Breakdown[name]; !ok { // the kernel's own figure wins
			c.Breakdown[name] = kd
		}
	}
	add("pagetables", Kind{Bytes: &pt, Accuracy: Exact, Source: "sum of VmPTE of member processes"})
	add("kernel_stack", Kind{Bytes: &stacks, Count: &threads, Accuracy: Estimate,
		Source: fmt.Sprintf("threads x %d KiB (THREAD_SIZE)", ThreadStackSize>>10)})
	c.Breakdown["pipes"] = Kind{Bytes: &pipeBytes, Count: &nPipes, Accuracy: Estimate, Source: pipeSource}
	c.Breakdown["sockets"] = Kind{Bytes: &sockBytes, Count: &sockets, Accuracy: Estimate,
		Source: "sockets in /proc/PID/fd x 2 KiB (queued data not included)"}
	if k.Version == cgroupfs.V1 && k.Usage.OK {
		attributed := pt + stacks + pipeBytes + sockBytes
		var rest uint64
		if k.Usage.N > attributed {
			rest = k.Usage.N - attributed
		}
		c.Breakdown["unattributed"] = Kind{Bytes: &rest, Accuracy: Estimate,
			Source: "kmem usage minus pagetables, kernel_stack, pipes, sockets: slab objects such as dentries and inodes (see /proc/slabinfo)"}
	}
}

// DaemonCgroup is what the daemon knows of one budgeted cgroup: the answer
// of the control method "kmem".
type DaemonCgroup struct {
	Path string `json:"path"`
	// Limit is the budget in bytes.
	Limit uint64 `json:"limit"`
	// Low is the mark usage must fall below before the budget re-arms.
	Low uint64 `json:"low"`
	// Failcnt is the number of breaches seen.
	Failcnt uint64 `json:"failcnt"`
	// Peak is the highest usage seen by the daemon; Usage the latest.
	Peak  uint64 `json:"peak"`
	Usage uint64 `json:"usage"`
	// Action is the budget's action.
	Action string `json:"action"`
	// Armed is false after a breach until usage falls below Low.
	Armed bool `json:"armed"`
}

// ApplyDaemon overlays the daemon's budget state on c: limit, failcnt and,
// where the kernel keeps no high-water mark (v2), the daemon's peak.
func (c *Cgroup) ApplyDaemon(d DaemonCgroup) {
	c.Limit = u64(d.Limit)
	c.Failcnt, c.FailcntSource = u64(d.Failcnt), "daemon"
	c.Action = d.Action
	if c.MaxUsage == nil {
		c.MaxUsage, c.MaxUsageSource = u64(d.Peak), "peak seen by the daemon"
	}
}
