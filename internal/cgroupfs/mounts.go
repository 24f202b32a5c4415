package cgroupfs

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Mount is a mounted cgroup hierarchy, from /proc/PID/mountinfo.
type Mount struct {
	// Dir is the mount point; Root is the hierarchy's directory mounted
	// there ("/" unless the mount is of a sub-tree, as in a container).
	Dir, Root string
	// Version is V2 for a cgroup2 mount.
	Version Version
	// Options are a v1 mount's super options, which name its controllers
	// (for example rw, memory).
	Options []string
}

// Mounts are the cgroup mounts of a mount namespace.
type Mounts []Mount

// ReadMounts reads the cgroup and cgroup2 mounts of a mountinfo file
// (normally /proc/self/mountinfo); nil when it cannot be read.
func ReadMounts(mountinfo string) Mounts {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out Mounts
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, rest := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(rest) < 1 || (rest[0] != "cgroup" && rest[0] != "cgroup2") {
			continue
		}
		m := Mount{Dir: unescapeMount(fields[4]), Root: unescapeMount(fields[3]), Version: V1}
		if rest[0] == "cgroup2" {
			m.Version = V2
		} else if len(rest) >= 3 {
			m.Options = strings.Split(rest[2], ",")
		}
		out = append(out, m)
	}
	return out
}

// Holding returns the mount whose mount point is the longest prefix of dir.
func (ms Mounts) Holding(dir string) (Mount, bool) {
	var best Mount
	found := false
	for _, m := range ms {
		if (dir == m.Dir || strings.HasPrefix(dir, m.Dir+"/")) && (!found || len(m.Dir) > len(best.Dir)) {
			best, found = m, true
		}
	}
	return best, found
}

// V1 returns the mount of the v1 hierarchy of controller (for example
// "freezer").
func (ms Mounts) V1(controller string) (Mount, bool) {
	for _, m := range ms {
		if m.Version == V1 && slices.Contains(m.Options, controller) {
			return m, true
		}
	}
	return Mount{}, false
}

// V2 returns the first cgroup2 mount.
func (ms Mounts) V2() (Mount, bool) {
	for _, m := range ms {
		if m.Version == V2 {
			return m, true
		}
	}
	return Mount{}, false
}

// Memory returns the hierarchy that /proc/PID/cgroup paths of memory
// accounting refer to: the v1 memory controller's mount, else cgroup2.
func (ms Mounts) Memory() (Mount, bool) {
	if m, ok := ms.V1("memory"); ok {
		return m, true
	}
	return ms.V2()
}

// ProcPath returns the path that /proc/PID/cgroup shows for the cgroup
// directory dir below m.Dir.
func (m Mount) ProcPath(dir string) string {
	return filepath.Join("/", m.Root, strings.TrimPrefix(dir, m.Dir))
}

// DirOf returns the directory of the cgroup that /proc/PID/cgroup names
// path in m's hierarchy; false when path lies outside the mounted sub-tree.
func (m Mount) DirOf(path string) (string, bool) {
	p, root := filepath.Clean("/"+path), filepath.Clean("/"+m.Root)
	if root != "/" {
		if p != root && !strings.HasPrefix(p, root+"/") {
			return "", false
		}
		p = strings.TrimPrefix(p, root)
	}
	return filepath.Join(m.Dir, p), true
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
