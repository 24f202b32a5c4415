package cgroupfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/procfs"
)

// testdataCgroup is the recorded cgroup directory testdata/elem... as a
// Cgroup of version v.
func testdataCgroup(t testing.TB, v Version, elem ...string) Cgroup {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join(append([]string{"testdata"}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	return Cgroup{Path: abs, Version: v}
}

func TestMemoryReaderFixtures(t *testing.T) {
	tests := []struct {
		dir  string
		v    Version
		want policy.ScopeMemory
	}{
		// Recorded: our own v1 cgroup, no limit of its own.
		{dir: "v1", v: V1, want: policy.ScopeMemory{Usage: 22327296, Limit: 0, ReclaimableFile: 10645504,
			RefaultFile: 2432, OOMKills: 0}},
		// Recorded: a child with a 64 MiB limit and the OOM killer disabled.
		{dir: "v1/hog", v: V1, want: policy.ScopeMemory{Usage: 1462272, Limit: 64 << 20, ReclaimableFile: 12288,
			RefaultFile: 0, OOMKills: 0}},
		{dir: "v2/app", v: V2, want: policy.ScopeMemory{Usage: 201326592, Limit: 256 << 20, High: 0,
			ReclaimableFile: 33554432, RefaultFile: 81234, OOMKills: 1, Pressure: policy.Pressures{
				Memory: policy.PressureFile{Some: policy.Pressure{Avg10: 3.1, Avg60: 1.2, Avg300: 0.4, Total: 5123456},
					Full: policy.Pressure{Avg10: 2, Avg60: 0.9, Avg300: 0.3, Total: 4123456}, Valid: true, HasFull: true},
				IO: policy.PressureFile{Some: policy.Pressure{Avg10: 75, Avg60: 60.5, Avg300: 20.25, Total: 99123456},
					Full: policy.Pressure{Avg10: 70, Avg60: 55, Avg300: 18, Total: 88123456}, Valid: true, HasFull: true},
				CPU: policy.PressureFile{Some: policy.Pressure{Total: 1000}, Valid: true, HasFull: true},
			}}},
		// v2 without the memory controller: no numbers, but its PSI.
		{dir: "v2/nomem", v: V2, want: policy.ScopeMemory{RefaultFile: -1, OOMKills: -1, Pressure: policy.Pressures{
			Memory: policy.PressureFile{Some: policy.Pressure{Avg10: 3.1, Avg60: 1.2, Avg300: 0.4, Total: 5123456},
				Full: policy.Pressure{Avg10: 2, Avg60: 0.9, Avg300: 0.3, Total: 4123456}, Valid: true, HasFull: true},
			IO: policy.PressureFile{Some: policy.Pressure{Avg10: 75, Avg60: 60.5, Avg300: 20.25, Total: 99123456},
				Full: policy.Pressure{Avg10: 70, Avg60: 55, Avg300: 18, Total: 88123456}, Valid: true, HasFull: true},
			CPU: policy.PressureFile{Some: policy.Pressure{Total: 1000}, Valid: true, HasFull: true},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			c := testdataCgroup(t, tt.v, "memory", tt.dir)
			tt.want.Path = c.Path
			r := NewMemoryReader(c)
			var got policy.ScopeMemory
			if err := r.Read(&got); err != nil {
				t.Fatal(err)
			}
			approx := cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })
			if diff := cmp.Diff(tt.want, got, approx); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestMemoryReaderDetails(t *testing.T) {
	r := NewMemoryReader(testdataCgroup(t, V1, "memory", "v1/hog"))
	var sm policy.ScopeMemory
	if err := r.Read(&sm); err != nil {
		t.Fatal(err)
	}
	if !r.OOM.OOMKillDisable || r.OOM.UnderOOM || r.OOM.OOMKill != (val(0)) {
		t.Errorf("oom_control = %+v", r.OOM)
	}
	if r.Stat.Anon != (val(1044480)) || r.Stat.File != (val(12288)) || r.Stat.Kernel.OK {
		t.Errorf("v1 stat: rss %v cache %v kernel %v (kernel is v2 only)", r.Stat.Anon, r.Stat.File, r.Stat.Kernel)
	}
	r = NewMemoryReader(testdataCgroup(t, V2, "memory", "v2/app"))
	if err := r.Read(&sm); err != nil {
		t.Fatal(err)
	}
	want := MemoryEvents{Low: val(0), High: val(0), Max: val(17), OOM: val(2),
		OOMKill: val(1), OOMGroupKill: val(0)}
	if r.Events != want {
		t.Errorf("events = %+v", r.Events)
	}
	if r.Stat.Kernel != (val(8388608)) || r.Stat.PageTables != (val(1048576)) || r.Stat.SlabReclaimable != (val(5242880)) {
		t.Errorf("v2 kernel memory: %+v", r.Stat)
	}
}

func TestParseMemoryStatV1PrefersTotals(t *testing.T) {
	var s MemoryStat
	in := "inactive_file 1\nworkingset_refault_file 5\ntotal_inactive_file 10\ntotal_workingset_refault_file 50\n"
	if err := parseMemoryStat([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if s.InactiveFile.N != 10 || s.WorkingsetRefaultFile.N != 50 {
		t.Errorf("got inactive_file %v refaults %v, want the hierarchical totals", s.InactiveFile, s.WorkingsetRefaultFile)
	}
	// Order does not matter: a total_ line wins even before its local line.
	if err := parseMemoryStat([]byte("total_inactive_file 10\ninactive_file 1\n"), &s); err != nil || s.InactiveFile.N != 10 {
		t.Errorf("got %v, %v", s.InactiveFile, err)
	}
	// Older kernels (before 5.9) have no workingset_refault_file.
	if err := parseMemoryStat([]byte("workingset_refault 7\n"), &s); err != nil || s.WorkingsetRefaultFile.OK {
		t.Errorf("absent refaults read as %v", s.WorkingsetRefaultFile)
	}
	for _, bad := range []string{"anon\n", "anon x\n", "anon 1 2\n", " 1\n", "anon -1\n", "anon  1\n"} {
		if err := parseMemoryStat([]byte(bad), &s); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func TestParseOOMControlAndLimits(t *testing.T) {
	var o OOMControl
	if err := parseOOMControl([]byte("oom_kill_disable 0\nunder_oom 1\n"), &o); err != nil || !o.UnderOOM || o.OOMKill.OK {
		t.Errorf("pre-4.13 oom_control: %+v, %v", o, err)
	}
	for _, bad := range []string{"", "under_oom 0\n", "oom_kill_disable x\nunder_oom 0\n"} {
		if err := parseOOMControl([]byte(bad), &o); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
	for in, want := range map[string]uint64{"max\n": 0, "9223372036854771712\n": 0, "268435456\n": 268435456, "0\n": 0} {
		if got, err := parseLimit([]byte(in)); err != nil || got != want {
			t.Errorf("parseLimit(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "\n", "maximum\n", "-1\n"} {
		if _, err := parseLimit([]byte(bad)); err == nil {
			t.Errorf("parseLimit(%q) gave no error", bad)
		}
	}
}

func TestMemoryReaderErrorsNameFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"memory.usage_in_bytes": "12\n", "memory.limit_in_bytes": "100\n",
		"memory.stat": "total_rss 1\n", "memory.oom_control": "oom_kill_disable maybe\nunder_oom 0\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var sm policy.ScopeMemory
	err := NewMemoryReader(Cgroup{Path: dir, Version: V1}).Read(&sm)
	var pe *procfs.ParseError
	if !errors.As(err, &pe) || pe.Path != filepath.Join(dir, "memory.oom_control") || pe.Line != 1 {
		t.Fatalf("err = %v, want a ParseError naming memory.oom_control line 1", err)
	}
	os.Remove(filepath.Join(dir, "memory.stat"))
	err = NewMemoryReader(Cgroup{Path: dir, Version: V1}).Read(&sm)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "memory.stat") {
		t.Fatalf("missing memory.stat: err = %v", err)
	}
}

func TestMemoryReaderAllocs(t *testing.T) {
	for _, c := range []Cgroup{testdataCgroup(t, V1, "memory", "v1/hog"), testdataCgroup(t, V2, "memory", "v2/app"), testdataCgroup(t, V2, "memory", "v2/nomem")} {
		r := NewMemoryReader(c)
		var sm policy.ScopeMemory
		if err := r.Read(&sm); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(50, func() { r.Read(&sm) }); n != 0 {
			t.Errorf("%s: Read allocates %v times, want 0", c.Path, n)
		}
	}
}

func TestMemoryReaderLive(t *testing.T) {
	// Our own v1 memory cgroup, read-only.
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skip(err)
	}
	var dir string
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, strings.SplitN(line, ":", 2)[0]+":memory:"); ok {
			dir = filepath.Join("/sys/fs/cgroup/memory", p)
		}
	}
	c, err := Open(dir)
	if dir == "" || err != nil {
		t.Skipf("no v1 memory cgroup: %v", err)
	}
	var sm policy.ScopeMemory
	if err := NewMemoryReader(c).Read(&sm); err != nil {
		t.Fatal(err)
	}
	if sm.Usage == 0 || sm.RefaultFile < 0 || sm.OOMKills < 0 {
		t.Errorf("live %s: %+v", dir, sm)
	}
}

func FuzzParseMemoryStat(f *testing.F) {
	for _, p := range []string{"testdata/memory/v1/memory.stat", "testdata/memory/v2/app/memory.stat"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s MemoryStat
		checkParseErr(t, "memory.stat", parseMemoryStat(b, &s))
		var o OOMControl
		checkParseErr(t, "memory.oom_control", parseOOMControl(b, &o))
		var e MemoryEvents
		checkParseErr(t, "memory.events", parseMemoryEvents(b, &e))
		_, err := parseLimit(b)
		checkParseErr(t, "memory.max", err)
		_, err = parseOne(b)
		checkParseErr(t, "memory.current", err)
	})
}

func checkParseErr(t *testing.T, path string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	werr := procfs.WithPath(path, err)
	var pe *procfs.ParseError
	if !errors.As(werr, &pe) || pe.Path != path || !strings.Contains(werr.Error(), path) {
		t.Fatalf("error %v does not name %s", werr, path)
	}
}

func val(n uint64) Val { return Val{N: n, OK: true} }
