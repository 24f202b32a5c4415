package procfs

// Cmdline reads /proc/PID/cmdline, at most max bytes (max <= 0: all of it).
// The result is the raw NUL-separated argument list, empty for kernel
// threads and zombies; it points into r's buffer. AppendCmdline turns it
// into one line.
func (r *Reader) Cmdline(pid int, max int) ([]byte, error) {
	return r.readPID(pid, "cmdline", max, true)
}

// TaskCmdline reads /proc/PID/task/TID/cmdline, as Cmdline does. It is the
// process's, read through one of its threads: the way to it when the
// thread-group leader has exited and the others run (Stat.LeaderExited).
func (r *Reader) TaskCmdline(pid, tid int, max int) ([]byte, error) {
	return r.readTask(pid, tid, "cmdline", max, true)
}

// AppendCmdline appends raw, a /proc/PID/cmdline, to dst as one line: NULs
// between arguments become spaces, trailing NULs are dropped and bytes below
// 0x20 (newlines, escapes) become '?' so a log line stays one line.
func AppendCmdline(dst, raw []byte) []byte {
	end := len(raw)
	for end > 0 && raw[end-1] == 0 {
		end--
	}
	for _, c := range raw[:end] {
		switch {
		case c == 0:
			c = ' '
		case c < 0x20 || c == 0x7f:
			c = '?'
		}
		dst = append(dst, c)
	}
	return dst
}

// EqualCmdline reports whether line equals AppendCmdline(nil, raw), without
// building it.
func EqualCmdline(line string, raw []byte) bool {
	end := len(raw)
	for end > 0 && raw[end-1] == 0 {
		end--
	}
	if len(line) != end {
		return false
	}
	for i, c := range raw[:end] {
		switch {
		case c == 0:
			c = ' '
		case c < 0x20 || c == 0x7f:
			c = '?'
		}
		if line[i] != c {
			return false
		}
	}
	return true
}
