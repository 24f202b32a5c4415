package procfs

// Vmstat holds the /proc/vmstat counters oomguard uses, all cumulative since
// boot. Counters the running kernel does not write have OK false.
type Vmstat struct {
	WorkingsetRefaultFile, WorkingsetRefaultAnon             Val
	WorkingsetActivateFile, WorkingsetRestoreFile            Val
	PgscanKswapd, PgscanDirect, PgstealKswapd, PgstealDirect Val
	PgscanFile, PgscanAnon                                   Val
	Pgmajfault, Pswpin, Pswpout, OOMKill                     Val
}

// Vmstat reads /proc/vmstat into v.
func (r *Reader) Vmstat(v *Vmstat) error {
	b, err := r.readRoot("", "vmstat", true)
	if err != nil {
		return err
	}
	return r.parsed(parseVmstat(b, v))
}

// parseVmstat parses /proc/vmstat: lines of "name value".
func parseVmstat(b []byte, v *Vmstat) error {
	*v = Vmstat{}
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b = nextLine(b)
		if len(line) == 0 {
			continue
		}
		key, rest := nextField(line)
		num, rest := nextField(rest)
		if extra, _ := nextField(rest); len(key) == 0 || len(extra) != 0 {
			return errAt(n, "line is not \"name value\"")
		}
		x, ok := ParseUint(num)
		if !ok {
			return errAt(n, "value is not a number")
		}
		var f *Val
		switch string(key) {
		case "workingset_refault_file":
			f = &v.WorkingsetRefaultFile
		case "workingset_refault_anon":
			f = &v.WorkingsetRefaultAnon
		case "workingset_activate_file":
			f = &v.WorkingsetActivateFile
		case "workingset_restore_file":
			f = &v.WorkingsetRestoreFile
		case "pgscan_kswapd":
			f = &v.PgscanKswapd
		case "pgscan_direct":
			f = &v.PgscanDirect
		case "pgsteal_kswapd":
			f = &v.PgstealKswapd
		case "pgsteal_direct":
			f = &v.PgstealDirect
		case "pgscan_file":
			f = &v.PgscanFile
		case "pgscan_anon":
			f = &v.PgscanAnon
		case "pgmajfault":
			f = &v.Pgmajfault
		case "pswpin":
			f = &v.Pswpin
		case "pswpout":
			f = &v.Pswpout
		case "oom_kill":
			f = &v.OOMKill
		default:
			continue
		}
		f.set(x)
	}
	return nil
}
