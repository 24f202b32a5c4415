package procfs

// Syscall is /proc/PID/syscall: what the process is doing in the kernel.
type Syscall struct {
	// Running is true when the process was running (the file says
	// "running"); nothing else is then known.
	Running bool
	// Nr is the system call number the process is blocked in, or -1 when
	// it is blocked outside a system call (then Args are zero).
	Nr int64
	// Args are the six argument registers of the call.
	Args [6]uint64
	// SP and PC are the user stack pointer and program counter.
	SP, PC uint64
}

// Syscall reads /proc/PID/syscall into s. It needs ptrace access to the
// process (root, or the same user without Yama restrictions).
func (r *Reader) Syscall(pid int, s *Syscall) error {
	b, err := r.readPID(pid, "syscall", 0, true)
	if err != nil {
		return err
	}
	return r.parsed(parseSyscall(b, s))
}

// parseSyscall parses "running", "-1 SP PC" or "NR A0 A1 A2 A3 A4 A5 SP PC"
// (numbers after NR in hexadecimal with 0x).
func parseSyscall(b []byte, s *Syscall) error {
	*s = Syscall{}
	line, _ := nextLine(b)
	f, rest := nextField(line)
	if string(f) == "running" {
		s.Running = true
		return nil
	}
	nr, ok := parseInt(f)
	if !ok || nr < -1 {
		return errAt(1, "system call number is not a number")
	}
	s.Nr = nr
	var v [8]uint64
	want := 8
	if nr == -1 {
		want = 2
	}
	got := 0
	for {
		f, rest = nextField(rest)
		if len(f) == 0 {
			break
		}
		if got == want {
			return errAt(1, "too many fields")
		}
		x, ok := parseHex(f)
		if !ok {
			return errAt(1, "field is not a hexadecimal number")
		}
		v[got] = x
		got++
	}
	if got != want {
		return errAt(1, "too few fields")
	}
	if nr == -1 {
		s.SP, s.PC = v[0], v[1]
		return nil
	}
	copy(s.Args[:], v[:6])
	s.SP, s.PC = v[6], v[7]
	return nil
}

// TaskSyscall reads /proc/PID/task/TID/syscall, the system call one thread
// of the process is in.
func (r *Reader) TaskSyscall(pid, tid int, s *Syscall) error {
	b, err := r.readTask(pid, tid, "syscall", 0, true)
	if err != nil {
		return err
	}
	return r.parsed(parseSyscall(b, s))
}

// TaskWchan reads /proc/PID/task/TID/wchan: the kernel function in which
// the thread sleeps, "0" when it runs or the kernel hides it (no
// CONFIG_KALLSYMS, or no ptrace access). The bytes are valid until r's
// next read. The read takes no lock of the process's.
func (r *Reader) TaskWchan(pid, tid int) ([]byte, error) {
	return r.readTask(pid, tid, "wchan", 0, true)
}
