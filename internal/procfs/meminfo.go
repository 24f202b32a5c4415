package procfs

// Meminfo is /proc/meminfo, every value in bytes. Fields the running kernel
// does not write have OK false.
type Meminfo struct {
	MemTotal, MemFree, MemAvailable, Buffers, Cached, SwapCached           Val
	Active, Inactive, ActiveAnon, InactiveAnon, ActiveFile, InactiveFile   Val
	Unevictable, Mlocked, SwapTotal, SwapFree, Dirty, Writeback            Val
	AnonPages, Mapped, Shmem, KReclaimable, Slab, SReclaimable, SUnreclaim Val
	KernelStack, PageTables, SecPageTables, Percpu, VmallocUsed            Val
}

// Meminfo reads /proc/meminfo into m. It fails when the file lacks MemTotal.
func (r *Reader) Meminfo(m *Meminfo) error {
	b, err := r.readRoot("", "meminfo", true)
	if err != nil {
		return err
	}
	return r.parsed(parseMeminfo(b, m))
}

// parseMeminfo parses /proc/meminfo: lines of "Key:   N kB" (or "Key: N"
// for page counts such as HugePages_Total).
func parseMeminfo(b []byte, m *Meminfo) error {
	*m = Meminfo{}
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b = nextLine(b)
		if len(line) == 0 {
			continue
		}
		key, value, ok := splitKey(line)
		if !ok || len(key) == 0 {
			return errAt(n, "no \"key:\" in line")
		}
		v, ok := parseKB(value)
		if !ok {
			return errAt(n, "value is not a number of kB")
		}
		var f *Val
		switch string(key) {
		case "MemTotal":
			f = &m.MemTotal
		case "MemFree":
			f = &m.MemFree
		case "MemAvailable":
			f = &m.MemAvailable
		case "Buffers":
			f = &m.Buffers
		case "Cached":
			f = &m.Cached
		case "SwapCached":
			f = &m.SwapCached
		case "Active":
			f = &m.Active
		case "Inactive":
			f = &m.Inactive
		case "Active(anon)":
			f = &m.ActiveAnon
		case "Inactive(anon)":
			f = &m.InactiveAnon
		case "Active(file)":
			f = &m.ActiveFile
		case "Inactive(file)":
			f = &m.InactiveFile
		case "Unevictable":
			f = &m.Unevictable
		case "Mlocked":
			f = &m.Mlocked
		case "SwapTotal":
			f = &m.SwapTotal
		case "SwapFree":
			f = &m.SwapFree
		case "Dirty":
			f = &m.Dirty
		case "Writeback":
			f = &m.Writeback
		case "AnonPages":
			f = &m.AnonPages
		case "Mapped":
			f = &m.Mapped
		case "Shmem":
			f = &m.Shmem
		case "KReclaimable":
			f = &m.KReclaimable
		case "Slab":
			f = &m.Slab
		case "SReclaimable":
			f = &m.SReclaimable
		case "SUnreclaim":
			f = &m.SUnreclaim
		case "KernelStack":
			f = &m.KernelStack
		case "PageTables":
			f = &m.PageTables
		case "SecPageTables":
			f = &m.SecPageTables
		case "Percpu":
			f = &m.Percpu
		case "VmallocUsed":
			f = &m.VmallocUsed
		default:
			continue
		}
		f.set(v)
	}
	if !m.MemTotal.OK {
		return errAt(0, "no MemTotal")
	}
	return nil
}
