package cgroupfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const sampleMountinfo = `22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
30 22 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 /process_api /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/freezer rw,nosuid - cgroup cgroup rw,freezer
34 30 0:30 / /sys/fs/cgroup/cpu\040acct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
`

func TestReadMounts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(sampleMountinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	ms := ReadMounts(p)
	want := Mounts{
		{Dir: "/sys/fs/cgroup/unified", Root: "/", Version: V2},
		{Dir: "/sys/fs/cgroup/memory", Root: "/process_api", Version: V1, Options: []string{"rw", "memory"}},
		{Dir: "/sys/fs/cgroup/freezer", Root: "/", Version: V1, Options: []string{"rw", "freezer"}},
		{Dir: "/sys/fs/cgroup/cpu acct", Root: "/", Version: V1, Options: []string{"rw", "cpu", "cpuacct"}},
	}
	if diff := cmp.Diff(want, ms); diff != "" {
		t.Fatalf("ReadMounts (-want +got):\n%s", diff)
	}
	if ReadMounts(filepath.Join(t.TempDir(), "missing")) != nil {
		t.Error("a missing mountinfo gave mounts")
	}

	mem, ok := ms.Memory()
	if !ok || mem.Dir != "/sys/fs/cgroup/memory" {
		t.Fatalf("Memory() = %+v, %v; want the v1 memory mount", mem, ok)
	}
	if m, ok := ms[:1].Memory(); !ok || m.Version != V2 {
		t.Fatalf("Memory() without v1 memory = %+v, %v; want cgroup2", m, ok)
	}
	if m, ok := ms.V1("freezer"); !ok || m.Dir != "/sys/fs/cgroup/freezer" {
		t.Fatalf("V1(freezer) = %+v, %v", m, ok)
	}
	if m, ok := ms.V1("cpuacct"); !ok || m.Dir != "/sys/fs/cgroup/cpu acct" {
		t.Fatalf("V1(cpuacct) = %+v, %v", m, ok)
	}
	if _, ok := ms.V1("pids"); ok {
		t.Fatal("V1(pids) found a mount that is not there")
	}
	if _, ok := ms[1:].V2(); ok {
		t.Fatal("V2 found a mount without cgroup2")
	}
	if m, ok := ms.Holding("/sys/fs/cgroup/freezer/a/b"); !ok || m.Dir != "/sys/fs/cgroup/freezer" {
		t.Fatalf("Holding = %+v, %v", m, ok)
	}
	if _, ok := ms.Holding("/sys/fs/cgroup/freezerx/a"); ok {
		t.Fatal("Holding matched a mount point that is only a string prefix")
	}

	// The memory mount shows the sub-tree /process_api: /proc/PID/cgroup
	// paths start with it, directories do not.
	if got := mem.ProcPath("/sys/fs/cgroup/memory/job/a"); got != "/process_api/job/a" {
		t.Errorf("ProcPath = %q", got)
	}
	for path, want := range map[string]string{
		"/process_api/job/a": "/sys/fs/cgroup/memory/job/a",
		"/process_api":       "/sys/fs/cgroup/memory",
		"/other/job":         "",
		"/process_apix/job":  "",
	} {
		got, ok := mem.DirOf(path)
		if got != want || ok != (want != "") {
			t.Errorf("DirOf(%q) = %q, %v; want %q", path, got, ok, want)
		}
	}
	if got, _ := ms[2].DirOf("/a/b"); got != "/sys/fs/cgroup/freezer/a/b" {
		t.Errorf("DirOf on a root mount = %q", got)
	}
}
