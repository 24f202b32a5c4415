package memlock

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/cgroupfs"
)

// runCgroups are the cgroups created for one command.
type runCgroups struct {
	dirs []cgroupfs.Cgroup
	// selfLeaf is set when oomguard moved itself out of its own v2 cgroup
	// (parent) into a leaf, so that parent could pass controllers down;
	// enabled are the controllers it enabled there. remove undoes both.
	selfLeaf string
	parent   string
	enabled  []string
}

// ownCgroups parses /proc/self/cgroup: controller name -> path ("" is the
// v2 line).
func ownCgroups(procRoot string) (map[string]string, error) {
	path := filepath.Join(procRoot, "self", "cgroup")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return parseProcCgroup(b), nil
}

func parseProcCgroup(b []byte) map[string]string {
	m := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			m[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			m[c] = parts[2]
		}
	}
	return m
}

// v2Root returns the cgroup v2 mount to use, or "".
func (p Paths) v2Root() string {
	cands := []string{p.CgroupV2}
	if p.CgroupV2 == "" {
		cands = []string{p.CgroupV1, filepath.Join(p.CgroupV1, "unified")}
	}
	for _, d := range cands {
		var st unix.Statfs_t
		if unix.Statfs(d, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return d
		}
	}
	return ""
}

func hasController(c cgroupfs.Cgroup, name string) bool {
	b, err := c.ReadFile("cgroup.controllers")
	if err != nil {
		return false
	}
	for _, f := range strings.Fields(string(b)) {
		if f == name {
			return true
		}
	}
	return false
}

// cgroupHint is the knob that fixes a cgroup that cannot be created.
const cgroupHint = "run oomguard as root, or delegate the parent cgroup to this user (chown it, or systemd-run --user -p Delegate=yes)"

// createCgroups creates the cgroups for l under this process's own cgroups:
// one v2 cgroup when the v2 hierarchy has the memory controller (and pids,
// when PidsMax is set), else a v1 memory cgroup and a v1 pids cgroup. It
// writes the limits and returns the cgroups, or an error naming the file
// and the knob that fixes it.
func createCgroups(paths Paths, l Limits, name string) (*runCgroups, error) {
	own, err := ownCgroups(paths.Proc)
	if err != nil {
		return nil, err
	}
	rc := &runCgroups{}
	fail := func(err error) (*runCgroups, error) {
		rc.remove(time.Second)
		return nil, err
	}
	if root := paths.v2Root(); root != "" && hasControllers(root, l) {
		if _, ok := own[""]; ok {
			parent := filepath.Join(root, own[""])
			rc.parent = parent
			if err := enableControllers(parent, l, rc); err != nil {
				return fail(err)
			}
			c, err := mkCgroup(parent, name)
			if err != nil {
				return fail(err)
			}
			rc.dirs = append(rc.dirs, c)
			for _, w := range []struct {
				file string
				v    uint64
			}{{"memory.max", l.MemoryMax}, {"memory.high", l.MemoryHigh}, {"memory.min", l.MemoryMin}} {
				if w.v != 0 {
					if err := c.WriteFile(w.file, strconv.FormatUint(w.v, 10)); err != nil {
						return fail(err)
					}
				}
			}
			if l.PidsMax != 0 {
				if err := c.WriteFile("pids.max", strconv.FormatInt(l.PidsMax, 10)); err != nil {
					return fail(err)
				}
			}
			return rc, nil
		}
	}
	if l.memory() {
		if l.MemoryMin != 0 {
			return fail(errors.New("--memory-min needs cgroup v2's memory.min, and the memory controller is only on cgroup v1 here (v1 has no memory protection); boot with systemd.unified_cgroup_hierarchy=1 or drop --memory-min"))
		}
		rel, ok := own["memory"]
		if !ok {
			return fail(fmt.Errorf("no memory controller on cgroup v1 or v2 (see %s/self/cgroup)", paths.Proc))
		}
		c, err := mkCgroup(filepath.Join(paths.CgroupV1, "memory", rel), name)
		if err != nil {
			return fail(err)
		}
		rc.dirs = append(rc.dirs, c)
		if l.MemoryMax != 0 {
			if err := c.WriteFile("memory.limit_in_bytes", strconv.FormatUint(l.MemoryMax, 10)); err != nil {
				return fail(err)
			}
		}
		if l.MemoryHigh != 0 {
			if err := c.WriteFile("memory.soft_limit_in_bytes", strconv.FormatUint(l.MemoryHigh, 10)); err != nil {
				return fail(err)
			}
		}
	}
	if l.PidsMax != 0 {
		rel, ok := own["pids"]
		if !ok {
			return fail(fmt.Errorf("no pids controller on cgroup v1 or v2 (see %s/self/cgroup)", paths.Proc))
		}
		c, err := mkCgroup(filepath.Join(paths.CgroupV1, "pids", rel), name)
		if err != nil {
			return fail(err)
		}
		rc.dirs = append(rc.dirs, c)
		if err := c.WriteFile("pids.max", strconv.FormatInt(l.PidsMax, 10)); err != nil {
			return fail(err)
		}
	}
	return rc, nil
}

func hasControllers(root string, l Limits) bool {
	c, err := cgroupfs.Open(root)
	if err != nil {
		return false
	}
	if l.memory() && !hasController(c, "memory") {
		return false
	}
	if l.PidsMax != 0 && !hasController(c, "pids") {
		return false
	}
	return true
}

func mkCgroup(parent, name string) (cgroupfs.Cgroup, error) {
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		hint := ""
		if errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EROFS) {
			hint = ": " + cgroupHint
		}
		return cgroupfs.Cgroup{}, fmt.Errorf("create cgroup: %w%s", err, hint)
	}
	return cgroupfs.Open(dir)
}

// join moves pid into every cgroup.
func (rc *runCgroups) join(pid int) error {
	for _, c := range rc.dirs {
		if err := c.AddProc(pid); err != nil {
			return err
		}
	}
	return nil
}

// remove waits up to timeout for each cgroup to empty and removes it.
func (rc *runCgroups) remove(timeout time.Duration) error {
	var errs []error
	deadline := time.Now().Add(timeout)
	for _, c := range rc.dirs {
		for {
			err := os.Remove(c.Path)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				pids, _ := c.Procs()
				errs = append(errs, fmt.Errorf("remove cgroup %s (processes %v): %w", c.Path, pids, err))
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if rc.selfLeaf != "" {
		// Back into the cgroup oomguard came from: first stop passing the
		// controllers it enabled, since a cgroup that passes them cannot
		// hold a process.
		pc, err := cgroupfs.Open(rc.parent)
		if err == nil {
			for _, c := range rc.enabled {
				if werr := pc.WriteFile("cgroup.subtree_control", "-"+c); werr != nil {
					errs = append(errs, werr)
				}
			}
			err = pc.AddProc(os.Getpid())
		}
		if err == nil {
			err = os.Remove(rc.selfLeaf)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("return from %s to %s: %w", rc.selfLeaf, rc.parent, err))
		}
	}
	return errors.Join(errs...)
}

// signal sends sig to every process in the cgroups. A nil rc does nothing.
func (rc *runCgroups) signal(sig unix.Signal) {
	if rc == nil {
		return
	}
	for _, c := range rc.dirs {
		pids, _ := c.Procs()
		for _, pid := range pids {
			unix.Kill(pid, sig)
		}
	}
}

// enableControllers makes sure the v2 parent passes the memory (and pids)
// controllers to its children. cgroup v2 lets a cgroup pass them on only
// while it holds no process itself: when oomguard is alone in parent (as
// under systemd-run --scope), it moves into a leaf of its own first, which
// rc.remove undoes; with other processes there, it fails with the fix.
func enableControllers(parent string, l Limits, rc *runCgroups) error {
	pc, err := cgroupfs.Open(parent)
	if err != nil {
		return err
	}
	b, err := pc.ReadFile("cgroup.subtree_control")
	if err != nil {
		return err
	}
	have := strings.Fields(string(b))
	var want []string
	if l.memory() {
		want = append(want, "memory")
	}
	if l.PidsMax != 0 {
		want = append(want, "pids")
	}
	var missing []string
	for _, c := range want {
		found := false
		for _, h := range have {
			found = found || h == c
		}
		if !found {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// A cgroup that holds processes cannot pass on memory (EBUSY), and
	// passing on a threaded controller such as pids would make it a thread
	// root whose domain children refuse processes (EOPNOTSUPP): it must be
	// empty first. The root cgroup is exempt from both rules.
	isRoot := !pc.Has("cgroup.type")
	if pids, err := pc.Procs(); err != nil {
		return err
	} else if len(pids) > 0 && !isRoot {
		if !aloneIn(pc) {
			return fmt.Errorf("enable %s for the command's cgroup: %s holds other processes; start oomguard in a cgroup of its own, e.g. systemd-run --scope -p Delegate=yes oomguard run ...", strings.Join(missing, ", "), parent)
		}
		leaf, err := mkCgroup(parent, fmt.Sprintf("oomguard-run-%d-self", os.Getpid()))
		if err != nil {
			return err
		}
		rc.selfLeaf = leaf.Path
		if err := leaf.AddProc(os.Getpid()); err != nil {
			return fmt.Errorf("move oomguard into %s so that %s can pass on controllers: %w", leaf.Path, parent, err)
		}
	}
	for _, c := range missing {
		if err := pc.WriteFile("cgroup.subtree_control", "+"+c); err != nil {
			hint := ""
			if errors.Is(err, os.ErrPermission) {
				hint = ": " + cgroupHint
			}
			return fmt.Errorf("enable the %s controller for the command's cgroup: %w%s", c, err, hint)
		}
		rc.enabled = append(rc.enabled, c)
	}
	return nil
}

// aloneIn reports whether this process is the only one in c.
func aloneIn(c cgroupfs.Cgroup) bool {
	pids, err := c.Procs()
	return err == nil && len(pids) == 1 && pids[0] == os.Getpid()
}
