package procfs

import (
	"os"
	"strconv"
)

// Flags of the flags field of /proc/PID/stat (include/linux/sched.h).
const (
	// PFExiting is PF_EXITING: the process is in do_exit.
	PFExiting = 0x00000004
	// PFKthread is PF_KTHREAD: a kernel thread, which has no mm.
	PFKthread = 0x00200000
)

// Stat is /proc/PID/stat.
type Stat struct {
	PID int
	// Comm is the command name between the parentheses. It may contain
	// spaces and ')'. It points into the Reader's buffer: copy it to keep it.
	Comm  []byte
	State byte
	PPID  int
	// Flags is the kernel's task flags (PFKthread, PFExiting, …).
	Flags          uint64
	MinFlt, MajFlt uint64
	// UTime and STime are in clock ticks.
	UTime, STime uint64
	NumThreads   int64
	// StartTime is the start time in clock ticks since boot. With PID it
	// identifies a process across PID reuse.
	StartTime uint64
	// VSize is the virtual memory size in bytes; RSS the resident set in
	// pages.
	VSize uint64
	RSS   int64
	// Layout holds the mm's address-space layout (startcode, endcode,
	// startstack, start_data, end_data, start_brk, arg_start, arg_end,
	// env_start, env_end). Processes sharing one mm show the same layout;
	// exec draws a new one (ASLR). HasLayout is false on kernels that do
	// not write these fields. They read as zero for a process without an
	// mm and for a reader without ptrace access to the process.
	Layout    [10]uint64
	HasLayout bool
}

// KernelThread reports whether the process is a kernel thread.
func (s *Stat) KernelThread() bool { return s.Flags&PFKthread != 0 }

// Exiting reports whether the process is dying: PF_EXITING, or state Z
// (zombie) or X (dead). Read from a leader that exited before its other
// threads (see LeaderExited), it is true of a process that still runs.
func (s *Stat) Exiting() bool {
	return s.Flags&PFExiting != 0 || s.State == 'Z' || s.State == 'X'
}

// Stat reads /proc/PID/stat into s. s.Comm points into r's buffer.
func (r *Reader) Stat(pid int, s *Stat) error {
	b, err := r.readPID(pid, "stat", 0, true)
	if err != nil {
		return err
	}
	return r.parsed(parseStat(b, s))
}

// TaskStat reads /proc/PID/task/TID/stat, one thread's, into s. The
// memory fields are the process's (its threads share one mm); state and
// flags are the thread's own. s.Comm points into r's buffer.
func (r *Reader) TaskStat(pid, tid int, s *Stat) error {
	b, err := r.readTask(pid, tid, "stat", 0, true)
	if err != nil {
		return err
	}
	return r.parsed(parseStat(b, s))
}

// LeaderExited reports whether s, the stat of a thread-group leader, is
// a leader that has exited while other threads of its process still run
// (pthread_exit in main): state Z, but more than one thread. Such a
// process is alive and holds its memory, yet its /proc/PID files read as
// a zombie's: no mm, RSS 0, an empty cmdline. They must be read through a
// live thread (/proc/PID/task/TID).
func (s *Stat) LeaderExited() bool { return s.State == 'Z' && s.NumThreads > 1 }

// LiveThread returns a thread of process pid, read from root/PID/task,
// that is neither a zombie nor exiting (PF_EXITING): the way to the memory,
// open files and command line of a process whose leader exited before its
// other threads (Stat.LeaderExited). ok is false when there is none: every
// thread has exited or is exiting, and the process is dying. It allocates;
// Scanner-style hot paths read the task directory themselves.
func LiveThread(root string, pid int) (tid int, ok bool) {
	dir := root + "/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	var st Stat
	for _, t := range tasks {
		id, ok := ParsePID([]byte(t.Name()))
		if !ok || id == pid {
			continue
		}
		b, err := os.ReadFile(dir + t.Name() + "/stat")
		if err != nil || parseStat(b, &st) != nil || st.Exiting() {
			continue
		}
		return id, true
	}
	return 0, false
}

// ParseStat parses b, a /proc/PID/stat or /proc/PID/task/TID/stat read
// by other means, into s. s.Comm points into b.
func ParseStat(b []byte, s *Stat) error { return parseStat(b, s) }

// layoutFields maps stat field numbers 26-28 and 45-51 to Layout indexes.
var layoutFields = [...]int{26, 27, 28, 45, 46, 47, 48, 49, 50, 51}

// parseStat parses /proc/PID/stat: "pid (comm) state ppid …" with fields
// numbered from 1 as in proc(5). comm may contain anything, so it ends at
// the last ')'.
func parseStat(b []byte, s *Stat) error {
	*s = Stat{}
	open, close := -1, -1
	for i, c := range b {
		if c == '(' {
			open = i
			break
		}
	}
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			close = i
			break
		}
	}
	if open < 1 || close < open || b[open-1] != ' ' {
		return errAt(1, "no \"pid (comm)\"")
	}
	pid, ok := parseInt(b[:open-1])
	if !ok || pid <= 0 || pid > 1<<31 {
		return errAt(1, "pid is not a number")
	}
	s.PID = int(pid)
	s.Comm = b[open+1 : close]
	rest := b[close+1:]
	if len(rest) > 0 && rest[len(rest)-1] == '\n' {
		rest = rest[:len(rest)-1]
	}
	field := 2
	li := 0
	for {
		var f []byte
		f, rest = nextField(rest)
		if len(f) == 0 {
			break
		}
		field++
		if field == 3 {
			if len(f) != 1 {
				return errAt(1, "state is not one letter")
			}
			s.State = f[0]
			continue
		}
		// Every later field is a number, some of them signed.
		v, ok := parseInt(f)
		var u uint64
		if !ok {
			if u, ok = ParseUint(f); !ok {
				return errAt(1, "field "+fieldName(field)+" is not a number")
			}
		} else {
			u = uint64(v)
		}
		switch field {
		case 4:
			s.PPID = int(v)
		case 9:
			s.Flags = u
		case 10:
			s.MinFlt = u
		case 12:
			s.MajFlt = u
		case 14:
			s.UTime = u
		case 15:
			s.STime = u
		case 20:
			s.NumThreads = v
		case 22:
			s.StartTime = u
		case 23:
			s.VSize = u
		case 24:
			s.RSS = v
		case 26, 27, 28, 45, 46, 47, 48, 49, 50, 51:
			if li < len(s.Layout) && layoutFields[li] == field {
				s.Layout[li] = u
				li++
			}
		}
	}
	if field < 24 {
		return errAt(1, "fewer than 24 fields")
	}
	s.HasLayout = li == len(s.Layout)
	return nil
}

// fieldName names stat field numbers in errors (error path only).
func fieldName(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return string([]byte{digits[n/10%10], digits[n%10]})
}
