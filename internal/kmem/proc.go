// Package kmem attributes kernel memory to processes where the kernel lets
// userspace tell, and builds the per-cgroup kernel-memory report of
// `oomguard kmem`.
package kmem

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/procfs"
)

// Accuracy says how far a figure can be trusted.
type Accuracy string

const (
	// Exact figures are counters the kernel keeps (memory.kmem.*, memory.stat
	// fields, VmPTE).
	Exact Accuracy = "exact"
	// Estimate figures are computed by oomguard from object counts and
	// typical object sizes; the kernel keeps no per-process counter for them.
	Estimate Accuracy = "estimate"
)

// Sizes used by the estimates, in bytes.
const (
	// ThreadStackSize is THREAD_SIZE on x86_64 and arm64 (4 KiB pages): the
	// kernel stack every thread owns, charged as memory.stat kernel_stack.
	ThreadStackSize = 16 << 10
	// PipeOverhead approximates the kernel objects of one pipe besides its
	// data pages: pipe_inode_info, its ring of 16 pipe_buffers, the inode,
	// the dentry and two struct files.
	PipeOverhead = 2 << 10
	// SocketOverhead approximates one socket's struct socket, sock, inode,
	// dentry and file. Queued data is not included (v1 memory.kmem.tcp and
	// v2 "sock" count TCP buffers).
	SocketOverhead = 2 << 10
)

// pageSize is the kernel's page size: pipe data and slabs are counted in
// pages, 16 or 64 KiB on some arm64 kernels.
var pageSize = uint64(os.Getpagesize())

// Process is the kernel memory attributable to one process. PageTables is
// exact; KernelStack, PipeBytes and SocketBytes are estimates.
type Process struct {
	PID int `json:"pid"`
	// StartTime is field 22 of /proc/PID/stat; with PID it names the process
	// across PID reuse.
	StartTime uint64 `json:"start_time"`
	Comm      string `json:"comm"`
	// State is the state letter of /proc/PID/stat (R, S, D, Z, …).
	State       string `json:"state"`
	OOMScoreAdj int    `json:"oom_score_adj"`
	// Threads is the thread count (exact).
	Threads int `json:"threads"`
	// PageTables is VmPTE: the process's page tables (exact).
	PageTables uint64 `json:"pagetables"`
	// KernelStack is Threads × ThreadStackSize (estimate).
	KernelStack uint64 `json:"kernel_stack"`
	// Pipes is the number of distinct pipes (and FIFOs) the process holds
	// an end of (exact); PipeBytes estimates their memory: queued data rounded up to
	// pages, plus PipeOverhead each.
	Pipes     int    `json:"pipes"`
	PipeBytes uint64 `json:"pipe_bytes"`
	// PipeInodes are the inode numbers of those pipes, to count a pipe
	// shared by several processes once per cgroup.
	PipeInodes []uint64 `json:"-"`
	// PipeData is the data queued in each pipe of PipeInodes, in bytes
	// (zeros when PipeDataRead is false).
	PipeData []uint64 `json:"-"`
	// PipeDataRead is false when the queued data was not read
	// (ProcFS.NoPipeData): PipeBytes is then a lower bound.
	PipeDataRead bool `json:"pipe_data_read"`
	// Sockets is the number of distinct sockets held (exact); SocketBytes is
	// Sockets × SocketOverhead (estimate).
	Sockets     int    `json:"sockets"`
	SocketBytes uint64 `json:"socket_bytes"`
	// Total is the sum of the four figures: the measure "heaviest" uses.
	Total uint64 `json:"total"`
	// Accuracy names, per figure, whether it is exact or an estimate.
	Accuracy map[string]Accuracy `json:"accuracy"`
}

// processAccuracy is shared by every Process: the figures' nature does not
// depend on the process.
var processAccuracy = map[string]Accuracy{
	"threads":      Exact,
	"pagetables":   Exact,
	"kernel_stack": Estimate,
	"pipes":        Exact,
	"pipe_bytes":   Estimate,
	"sockets":      Exact,
	"socket_bytes": Estimate,
	"total":        Estimate,
}

// ProcFS reads per-process figures from a procfs mount. The zero value
// reads /proc.
type ProcFS struct {
	// Root is the procfs mount point; empty means /proc.
	Root string
	// NoPipeData skips reading how much data each pipe holds: pipes are
	// still counted, and PipeBytes is the lower bound Pipes × PipeOverhead.
	// It saves three system calls per pipe where speed matters more.
	NoPipeData bool
}

func (p ProcFS) root() string {
	if p.Root == "" {
		return "/proc"
	}
	return p.Root
}

func (p ProcFS) path(pid int, name string) string {
	return filepath.Join(p.root(), strconv.Itoa(pid), name)
}

// ErrGone says the process exited while it was read.
var ErrGone = errors.New("process is gone")

// Process reads the kernel memory attributable to pid. Pipe occupancy is
// read with FIONREAD on a read-only, non-blocking reopen of the pipe through
// /proc/PID/fd/N; nothing is read from the pipe. Where the reopen is
// refused, the pipe counts as empty. An exited process yields ErrGone.
func (p ProcFS) Process(pid int) (Process, error) {
	pr := Process{PID: pid, Accuracy: processAccuracy, PipeDataRead: !p.NoPipeData}
	b, err := os.ReadFile(p.path(pid, "stat"))
	if err != nil {
		return pr, gone(pid, err)
	}
	if pr.Comm, pr.State, pr.StartTime, err = ParseStat(b); err != nil {
		return pr, fmt.Errorf("parse %s: %w", p.path(pid, "stat"), err)
	}
	b, err = os.ReadFile(p.path(pid, "status"))
	if err != nil {
		return pr, gone(pid, err)
	}
	st, err := ParseStatus(b)
	if err != nil {
		return pr, fmt.Errorf("parse %s: %w", p.path(pid, "status"), err)
	}
	// A leader that exited before its other threads reads as a zombie
	// with no page tables and no open files, though its process runs on
	// and holds them: those are read through a live thread.
	fdDir := p.path(pid, "fd")
	if pr.State == "Z" && st.Threads > 1 {
		if tid, ok := procfs.LiveThread(p.root(), pid); ok {
			task := p.path(pid, filepath.Join("task", strconv.Itoa(tid)))
			if b, err := os.ReadFile(task + "/stat"); err == nil {
				if _, state, _, err := ParseStat(b); err == nil {
					pr.State = state
				}
			}
			if b, err := os.ReadFile(task + "/status"); err == nil {
				if tst, err := ParseStatus(b); err == nil {
					st.VmPTE = tst.VmPTE
				}
			}
			fdDir = task + "/fd"
		}
	}
	pr.Threads = st.Threads
	pr.PageTables = st.VmPTE
	pr.KernelStack = uint64(st.Threads) * ThreadStackSize
	if b, err = os.ReadFile(p.path(pid, "oom_score_adj")); err == nil {
		pr.OOMScoreAdj, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if err := p.fds(&pr, fdDir); err != nil {
		return pr, err
	}
	pr.Total = pr.PageTables + pr.KernelStack + pr.PipeBytes + pr.SocketBytes
	return pr, nil
}

func gone(pid int, err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	return fmt.Errorf("pid %d: %w", pid, err)
}

// fds counts the sockets and pipes among the open files in dir, pr's
// /proc/PID/fd (or a live thread's). It stats each entry (the file type and
// inode of its target), which is several times cheaper than reading the
// link.
func (p ProcFS) fds(pr *Process, dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return gone(pr.PID, err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return gone(pr.PID, err)
	}
	seenSock := map[uint64]bool{}
	seenPipe := map[uint64]bool{}
	var st unix.Stat_t
	for _, n := range names {
		link := dir + "/" + n
		if err := unix.Stat(link, &st); err != nil {
			continue // closed meanwhile
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFSOCK:
			if !seenSock[st.Ino] {
				seenSock[st.Ino] = true
				pr.Sockets++
			}
		case unix.S_IFIFO:
			if seenPipe[st.Ino] {
				continue
			}
			seenPipe[st.Ino] = true
			var queued uint64
			if !p.NoPipeData {
				queued = pipeQueued(link)
			}
			pr.Pipes++
			pr.PipeInodes = append(pr.PipeInodes, st.Ino)
			pr.PipeData = append(pr.PipeData, queued)
			pr.PipeBytes += PipeEstimate(queued)
		}
	}
	pr.SocketBytes = uint64(pr.Sockets) * SocketOverhead
	return nil
}

// PipeEstimate estimates the kernel memory of one pipe holding queued bytes.
func PipeEstimate(queued uint64) uint64 {
	return (queued+pageSize-1)/pageSize*pageSize + PipeOverhead
}

// pipeQueued returns the bytes queued in the pipe behind a /proc fd link, or
// 0 when it cannot be reopened.
func pipeQueued(link string) uint64 {
	fd, err := unix.Open(link, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
	if err != nil || n < 0 {
		return 0
	}
	return uint64(n)
}

// ParseStat returns the command name, the state letter and the start time
// (field 22) from the contents of /proc/PID/stat. The name may hold spaces
// and parentheses, so fields are counted from the last ')'.
func ParseStat(b []byte) (comm, state string, start uint64, err error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", "", 0, fmt.Errorf("no (comm) in %q", clip(b))
	}
	fields := bytes.Fields(b[end+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return "", "", 0, fmt.Errorf("%d fields after comm, want at least 20", len(fields))
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return "", "", 0, fmt.Errorf("bad start time %q", fields[19])
	}
	return string(b[open+1 : end]), string(fields[0]), start, nil
}

// StartTime reads the start time (field 22 of /proc/PID/stat) of pid, to
// tell the process from a later one that reuses its PID.
func (p ProcFS) StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(p.path(pid, "stat"))
	if err != nil {
		return 0, gone(pid, err)
	}
	_, _, start, err := ParseStat(b)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", p.path(pid, "stat"), err)
	}
	return start, nil
}

// OOMScoreAdj reads /proc/PID/oom_score_adj.
func (p ProcFS) OOMScoreAdj(pid int) (int, error) {
	b, err := os.ReadFile(p.path(pid, "oom_score_adj"))
	if err != nil {
		return 0, gone(pid, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", p.path(pid, "oom_score_adj"), err)
	}
	return n, nil
}

// CgroupPath returns pid's cgroup path in the v1 hierarchy of controller
// (for example "freezer"), or in the v2 hierarchy when controller is "",
// from /proc/PID/cgroup. ok is false when the process has no such line.
func (p ProcFS) CgroupPath(pid int, controller string) (path string, ok bool, err error) {
	b, err := os.ReadFile(p.path(pid, "cgroup"))
	if err != nil {
		return "", false, gone(pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" && parts[0] == "0" && parts[1] == "" {
			return parts[2], true, nil
		}
		if controller == "" {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return parts[2], true, nil
			}
		}
	}
	return "", false, nil
}

// Status holds the fields of /proc/PID/status that kernel-memory
// attribution uses.
type Status struct {
	// VmPTE is the size of the page tables in bytes; 0 for kernel threads
	// and zombies, which print no VmPTE.
	VmPTE uint64
	// Threads is the number of threads.
	Threads int
}

// ParseStatus parses the contents of /proc/PID/status. A "Threads" line is
// required; VmPTE is optional (absent without an mm).
func ParseStatus(b []byte) (Status, error) {
	var s Status
	threads := false
	for len(b) > 0 {
		var l []byte
		l, b, _ = bytes.Cut(b, []byte("\n"))
		k, v, ok := bytes.Cut(l, []byte{':'})
		if !ok {
			continue
		}
		switch string(k) {
		case "VmPTE":
			f := bytes.Fields(v)
			if len(f) != 2 || string(f[1]) != "kB" {
				return s, fmt.Errorf("bad VmPTE line %q", clip(l))
			}
			n, err := strconv.ParseUint(string(f[0]), 10, 64)
			if err != nil || n > 1<<50 {
				return s, fmt.Errorf("bad VmPTE line %q", clip(l))
			}
			s.VmPTE = n << 10
		case "Threads":
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil || n < 0 {
				return s, fmt.Errorf("bad Threads line %q", clip(l))
			}
			s.Threads, threads = n, true
		}
	}
	if !threads {
		return s, errors.New("no Threads line")
	}
	return s, nil
}

func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
