// Package cgroupfs reads and writes cgroup v1 and v2 control files.
package cgroupfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Version is a cgroup hierarchy version.
type Version int

// The two cgroup hierarchy versions.
const (
	V1 Version = 1
	V2 Version = 2
)

// String returns "v1" or "v2".
func (v Version) String() string { return "v" + strconv.Itoa(int(v)) }

// Cgroup is one cgroup directory. The zero value is not usable; use Open.
type Cgroup struct {
	// Path is the absolute directory of the cgroup, cleaned.
	Path string
	// Version tells which hierarchy the directory belongs to.
	Version Version
}

// Open checks that dir is a cgroup directory of a mounted cgroup hierarchy
// and tells its version from the filesystem's magic number.
func Open(dir string) (Cgroup, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Cgroup{}, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(abs, &st); err != nil {
		return Cgroup{}, fmt.Errorf("cgroup %s: %w", abs, err)
	}
	switch st.Type {
	case unix.CGROUP2_SUPER_MAGIC:
		return Cgroup{Path: abs, Version: V2}, nil
	case unix.CGROUP_SUPER_MAGIC:
		return Cgroup{Path: abs, Version: V1}, nil
	}
	return Cgroup{}, fmt.Errorf("cgroup %s: not on a cgroup filesystem (magic %#x)", abs, st.Type)
}

// String returns the cgroup directory's path.
func (c Cgroup) String() string { return c.Path }

// File returns the path of the control file name in c.
func (c Cgroup) File(name string) string { return filepath.Join(c.Path, name) }

// Has reports whether control file name exists in c.
func (c Cgroup) Has(name string) bool {
	_, err := os.Stat(c.File(name))
	return err == nil
}

// ReadFile reads the whole control file name, to end of file.
func (c Cgroup) ReadFile(name string) ([]byte, error) {
	b, err := os.ReadFile(c.File(name))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.File(name), err)
	}
	return b, nil
}

// WriteFile writes value to control file name in a single write(2), as
// cgroup files require.
func (c Cgroup) WriteFile(name, value string) error {
	f, err := os.OpenFile(c.File(name), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, c.File(name), err)
	}
	_, err = f.Write([]byte(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, c.File(name), err)
	}
	return nil
}

// ReadUint reads a control file holding one unsigned number. "max" reads as
// math.MaxUint64.
func (c Cgroup) ReadUint(name string) (uint64, error) {
	b, err := c.ReadFile(name)
	if err != nil {
		return 0, err
	}
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return ^uint64(0), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", c.File(name), err)
	}
	return v, nil
}

// Procs returns the PIDs in c's cgroup.procs, read to end of file: a single
// read(2) returns only part of a large cgroup.
func (c Cgroup) Procs() ([]int, error) {
	return readPIDs(c.File("cgroup.procs"))
}

// Tasks returns the thread IDs in c (v1 "tasks", v2 "cgroup.threads").
func (c Cgroup) Tasks() ([]int, error) {
	if c.Version == V2 {
		return readPIDs(c.File("cgroup.threads"))
	}
	return readPIDs(c.File("tasks"))
}

func readPIDs(path string) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	pids := make([]int, 0, bytes.Count(b, []byte{'\n'}))
	for _, line := range bytes.Fields(b) {
		pid, err := strconv.Atoi(string(line))
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("parse %s: bad pid %q", path, line)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// ProcsBelow returns the PIDs in c and every descendant. A cgroup removed
// during the walk holds none.
func (c Cgroup) ProcsBelow() ([]int, error) {
	var pids []int
	err := c.Walk(func(c Cgroup) error {
		p, err := c.Procs()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		pids = append(pids, p...)
		return nil
	})
	return pids, err
}

// AddProc moves process pid into c.
func (c Cgroup) AddProc(pid int) error {
	return c.WriteFile("cgroup.procs", strconv.Itoa(pid))
}

// Children returns the child cgroups of c.
func (c Cgroup) Children() ([]Cgroup, error) {
	ents, err := os.ReadDir(c.Path)
	if err != nil {
		return nil, fmt.Errorf("list cgroup %s: %w", c.Path, err)
	}
	var out []Cgroup
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, Cgroup{Path: filepath.Join(c.Path, e.Name()), Version: c.Version})
		}
	}
	return out, nil
}

// Walk calls fn for c and every descendant, parents before children. A
// cgroup removed during the walk is skipped, not an error.
func (c Cgroup) Walk(fn func(Cgroup) error) error {
	if err := fn(c); err != nil {
		return err
	}
	kids, err := c.Children()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, k := range kids {
		if err := k.Walk(fn); err != nil {
			return err
		}
	}
	return nil
}

// Contains reports whether other is c or one of its descendants.
func (c Cgroup) Contains(other string) bool {
	o := filepath.Clean(other)
	return o == c.Path || strings.HasPrefix(o, c.Path+"/")
}

// ErrNoFreezer is returned when a cgroup cannot be frozen: a v1 cgroup outside
// the freezer hierarchy, or a v2 cgroup without cgroup.freeze.
var ErrNoFreezer = errors.New("cgroup has no freezer")

// CanFreeze reports whether Freeze can work on c.
func (c Cgroup) CanFreeze() bool {
	if c.Version == V2 {
		return c.Has("cgroup.freeze")
	}
	return c.Has("freezer.state")
}

// Freeze stops every task in c and its descendants and waits, up to timeout,
// until the kernel reports the cgroup frozen: v1 freezer.state reading
// FROZEN, or v2 cgroup.events reading "frozen 1". It polls every
// millisecond in a raw nanosleep(2) rather than time.Sleep: the caller may
// be a real-time thread locked to its goroutine, and a Go timer wake-up
// needs another runtime thread, which a fork bomb's thousands of runnable
// tasks can starve for seconds.
func (c Cgroup) Freeze(timeout time.Duration) error {
	if !c.CanFreeze() {
		return fmt.Errorf("freeze %s: %w", c.Path, ErrNoFreezer)
	}
	deadline := time.Now().Add(timeout)
	for {
		var err error
		if c.Version == V2 {
			err = c.WriteFile("cgroup.freeze", "1")
		} else {
			err = c.WriteFile("freezer.state", "FROZEN")
		}
		if err != nil {
			return err
		}
		frozen, err := c.Frozen()
		if err != nil {
			return err
		}
		if frozen {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("freeze %s: not frozen after %v", c.Path, timeout)
		}
		ts := unix.NsecToTimespec(int64(time.Millisecond))
		for unix.Nanosleep(&ts, &ts) == unix.EINTR {
		}
	}
}

// Frozen reports whether the kernel has finished freezing c.
func (c Cgroup) Frozen() (bool, error) {
	if c.Version == V2 {
		b, err := c.ReadFile("cgroup.events")
		if err != nil {
			return false, err
		}
		return bytes.Contains(b, []byte("frozen 1")), nil
	}
	b, err := c.ReadFile("freezer.state")
	if err != nil {
		return false, err
	}
	return string(bytes.TrimSpace(b)) == "FROZEN", nil
}

// Thaw lets the tasks of a frozen cgroup run again.
func (c Cgroup) Thaw() error {
	if c.Version == V2 {
		return c.WriteFile("cgroup.freeze", "0")
	}
	return c.WriteFile("freezer.state", "THAWED")
}

// Kill SIGKILLs every process in a v2 cgroup and its descendants through
// cgroup.kill. It returns ErrNoCgroupKill where the file is missing (v1, or a
// kernel older than 5.14).
func (c Cgroup) Kill() error {
	if c.Version != V2 || !c.Has("cgroup.kill") {
		return fmt.Errorf("kill %s: %w", c.Path, ErrNoCgroupKill)
	}
	return c.WriteFile("cgroup.kill", "1")
}

// ErrNoCgroupKill says a cgroup has no cgroup.kill file.
var ErrNoCgroupKill = errors.New("cgroup.kill not available (needs cgroup v2 and Linux 5.14)")
