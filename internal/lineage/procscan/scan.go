// Package procscan reads /proc into lineage.Proc values for seeding and
// resynchronising the lineage recorder.
package procscan

import (
	"bytes"
	"fmt"
	"github.com/oomguard/oomguard/internal/lineage"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// pfKthread is PF_KTHREAD in /proc/PID/stat's flags field.
const pfKthread = 0x00200000

// userHZ is the unit of /proc/PID/stat's starttime (USER_HZ, 100 on every
// Linux architecture oomguard runs on).
const userHZ = 100

// Scan reads every process in procRoot (normally "/proc") for
// lineage.Recorder.Reconcile.
// monoMinusBoot converts /proc's boot-time-based start times to the
// CLOCK_MONOTONIC of proc connector events: pass CLOCK_MONOTONIC minus
// CLOCK_BOOTTIME, read together. Zombies are left out: they have exited.
// Processes that vanish during the scan are skipped.
func Scan(procRoot string, monoMinusBoot time.Duration) ([]lineage.Proc, error) {
	d, err := os.Open(procRoot)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", procRoot, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", procRoot, err)
	}
	out := make([]lineage.Proc, 0, len(names))
	buf := make([]byte, 1024)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		n, err := readFile(filepath.Join(procRoot, name, "stat"), buf)
		if err != nil {
			continue
		}
		p, ok := ParseStat(buf[:n])
		if !ok || p.PID != int32(pid) {
			continue
		}
		p.Born += monoMinusBoot
		out = append(out, p)
	}
	return out, nil
}

func readFile(path string, buf []byte) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := f.Read(buf)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ParseStat parses /proc/PID/stat into a Proc with Born in CLOCK_BOOTTIME.
// ok is false for zombies, dead tasks and malformed lines. A leader that
// exited while other threads of its process run reads as a zombie in
// state, yet its process lives: ok is true for it. (num_threads counts a
// thread until it is released, so a process whose other threads are
// zombies kept by a tracer, or are being released in a group exit, also
// reads as live until they are gone.)
func ParseStat(b []byte) (p lineage.Proc, ok bool) {
	open := bytes.IndexByte(b, '(')
	close := bytes.LastIndexByte(b, ')')
	if open <= 0 || close < open || close+2 > len(b) {
		return p, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return p, false
	}
	p.PID = int32(pid)
	copy(p.Comm[:15], b[open+1:close])
	// Fields after the comm, numbered from 3 (state).
	f := bytes.Fields(b[close+2:])
	if len(f) < 20 {
		return p, false
	}
	// A zombie leader whose other threads run (num_threads, field 20,
	// above 1: pthread_exit in main) is a live process.
	if s := f[0]; len(s) != 1 || s[0] == 'Z' && !(len(f[17]) > 1 || f[17][0] > '1') || s[0] == 'X' || s[0] == 'x' {
		return p, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	flags, err2 := strconv.ParseUint(string(f[6]), 10, 64)
	start, err3 := strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return p, false
	}
	p.PPID = int32(ppid)
	p.Kthread = flags&pfKthread != 0
	p.Born = time.Duration(start) * (time.Second / userHZ)
	return p, true
}
