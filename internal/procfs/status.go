package procfs

// Status holds the fields of /proc/PID/status oomguard uses. Memory values
// are in bytes. A kernel thread has no Vm* or Rss* lines, so those have OK
// false there.
type Status struct {
	Tgid, PPid Val
	// UID and EUID are the real and effective user IDs (the first two
	// numbers of the Uid line).
	UID, EUID Val
	// Kthread is 1 for kernel threads (Linux 6.8 and later write it).
	Kthread                                    Val
	VmPeak, VmSize, VmLck, VmPin, VmHWM, VmRSS Val
	RssAnon, RssFile, RssShmem                 Val
	VmData, VmStk, VmExe, VmLib, VmPTE, VmSwap Val
	HugetlbPages, Threads, CoreDumping         Val
}

// Status reads /proc/PID/status into s.
func (r *Reader) Status(pid int, s *Status) error {
	b, err := r.readPID(pid, "status", 0, true)
	if err != nil {
		return err
	}
	return r.parsed(parseStatus(b, s))
}

// TaskStatus reads /proc/PID/task/TID/status, one thread's, into s. Its
// memory lines are the process's.
func (r *Reader) TaskStatus(pid, tid int, s *Status) error {
	b, err := r.readTask(pid, tid, "status", 0, true)
	if err != nil {
		return err
	}
	return r.parsed(parseStatus(b, s))
}

// parseStatus parses /proc/PID/status: lines of "Key:\tvalue". Only the lines
// of Status are checked; the others (signal masks, capabilities, cpu lists)
// are skipped unread.
func parseStatus(b []byte, s *Status) error {
	*s = Status{}
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b = nextLine(b)
		if len(line) == 0 {
			continue
		}
		key, value, ok := splitKey(line)
		if !ok {
			return errAt(n, "no \"key:\" in line")
		}
		var f *Val
		switch len(key) {
		case 3:
			if string(key) == "Uid" {
				real, rest := nextField(value)
				eff, _ := nextField(rest)
				r, ok1 := ParseUint(real)
				e, ok2 := ParseUint(eff)
				if !ok1 || !ok2 {
					return errAt(n, "Uid is not numbers")
				}
				s.UID.set(r)
				s.EUID.set(e)
			}
			continue
		case 4:
			switch string(key) {
			case "Tgid":
				f = &s.Tgid
			case "PPid":
				f = &s.PPid
			}
		case 5:
			switch string(key) {
			case "VmLck":
				f = &s.VmLck
			case "VmPin":
				f = &s.VmPin
			case "VmHWM":
				f = &s.VmHWM
			case "VmRSS":
				f = &s.VmRSS
			case "VmStk":
				f = &s.VmStk
			case "VmExe":
				f = &s.VmExe
			case "VmLib":
				f = &s.VmLib
			case "VmPTE":
				f = &s.VmPTE
			}
		case 6:
			switch string(key) {
			case "VmPeak":
				f = &s.VmPeak
			case "VmSize":
				f = &s.VmSize
			case "VmData":
				f = &s.VmData
			case "VmSwap":
				f = &s.VmSwap
			}
		case 7:
			switch string(key) {
			case "RssAnon":
				f = &s.RssAnon
			case "RssFile":
				f = &s.RssFile
			case "Kthread":
				f = &s.Kthread
			case "Threads":
				f = &s.Threads
			}
		case 8:
			if string(key) == "RssShmem" {
				f = &s.RssShmem
			}
		case 11:
			if string(key) == "CoreDumping" {
				f = &s.CoreDumping
			}
		case 12:
			if string(key) == "HugetlbPages" {
				f = &s.HugetlbPages
			}
		}
		if f == nil {
			continue
		}
		v, ok := parseKB(value)
		if !ok {
			return errAt(n, "value of "+string(key)+" is not a number")
		}
		f.set(v)
	}
	return nil
}
