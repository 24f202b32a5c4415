package memlock

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// procStatus holds the fields of /proc/PID/status that memlock reads.
type procStatus struct {
	Name   string
	VmLck  uint64 // bytes
	VmHWM  uint64 // bytes
	VmRSS  uint64 // bytes
	CapEff uint64
	// CapAmb is the ambient set, which a program exec'd by this process
	// keeps; EUID the effective user ID (-1 when not read).
	CapAmb uint64
	EUID   int
	Tgid   int
	PPid   int
	// HasVm is false for a process without an address space (a zombie).
	HasVm bool
}

// Capability bits of CapEff.
const (
	capIPCLock     = 14
	capSysResource = 24
)

func (s procStatus) hasCap(bit uint) bool { return s.CapEff&(1<<bit) != 0 }

// childHasCap reports whether a program this process execs will have the
// capability: kept from the ambient set, or granted to root, whose execs
// get the bounding set (the effective one is the best guess of it here).
// A file capability of this process's own executable is not passed on.
func (s procStatus) childHasCap(bit uint) bool {
	return s.CapAmb&(1<<bit) != 0 || (s.EUID == 0 && s.hasCap(bit))
}

// readStatus reads /proc/PID/status ("self" for the caller) under procRoot.
func readStatus(procRoot, pid string, buf []byte) (procStatus, error) {
	path := filepath.Join(procRoot, pid, "status")
	f, err := os.Open(path)
	if err != nil {
		return procStatus{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	// To the end: a long Groups line (hundreds of supplementary groups, as
	// on directory-joined hosts) pushes CapEff past 4 KiB. The buffer
	// grows only then.
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, max(len(buf), 4096))...)
		}
		m, err := f.Read(buf[n:])
		n += m
		if err == io.EOF || (err == nil && m == 0) {
			break
		}
		if err != nil {
			return procStatus{}, fmt.Errorf("read %s: %w", path, err)
		}
	}
	return parseStatus(buf[:n]), nil
}

// parseStatus parses the text of /proc/PID/status. Unknown and malformed
// lines are skipped.
func parseStatus(b []byte) procStatus {
	s := procStatus{EUID: -1}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		key, val := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch string(key) {
		case "Name":
			s.Name = string(val)
		case "VmLck":
			s.VmLck, s.HasVm = kB(val), true
		case "VmHWM":
			s.VmHWM = kB(val)
		case "VmRSS":
			s.VmRSS = kB(val)
		case "Tgid":
			s.Tgid, _ = strconv.Atoi(string(val))
		case "PPid":
			s.PPid, _ = strconv.Atoi(string(val))
		case "CapEff":
			s.CapEff, _ = strconv.ParseUint(string(val), 16, 64)
		case "CapAmb":
			s.CapAmb, _ = strconv.ParseUint(string(val), 16, 64)
		case "Uid":
			// Real, effective, saved, filesystem.
			if f := bytes.Fields(val); len(f) >= 2 {
				if n, err := strconv.Atoi(string(f[1])); err == nil {
					s.EUID = n
				}
			}
		}
	}
	return s
}

// kB parses "1234 kB" into bytes.
func kB(v []byte) uint64 {
	if i := bytes.IndexByte(v, ' '); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.ParseUint(string(v), 10, 64)
	return n << 10
}
