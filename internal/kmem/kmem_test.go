package kmem

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/procfs"
)

func TestParseStatus(t *testing.T) {
	b, err := os.ReadFile("testdata/status")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	// Recorded from `cat /proc/self/status`: one thread, VmPTE 44 kB.
	if want := (Status{VmPTE: 44 << 10, Threads: 1}); got != want {
		t.Errorf("ParseStatus = %+v, want %+v", got, want)
	}
	tests := []struct {
		in      string
		want    Status
		wantErr bool
	}{
		{"Name:\tkworker\nThreads:\t1\n", Status{Threads: 1}, false}, // kernel thread: no VmPTE
		{"VmPTE:\t 12 kB\nThreads:\t3", Status{VmPTE: 12 << 10, Threads: 3}, false},
		{"VmPTE:\t12\nThreads:\t3\n", Status{}, true},
		{"VmPTE:\tx kB\nThreads:\t3\n", Status{}, true},
		{"VmPTE:\t1 kB\n", Status{}, true},
		{"Threads:\t-1\n", Status{}, true},
	}
	for _, tt := range tests {
		got, err := ParseStatus([]byte(tt.in))
		if (err != nil) != tt.wantErr || err == nil && got != tt.want {
			t.Errorf("ParseStatus(%q) = %+v, %v; want %+v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseStat(t *testing.T) {
	b, err := os.ReadFile("testdata/stat")
	if err != nil {
		t.Fatal(err)
	}
	comm, state, start, err := ParseStat(b)
	if err != nil || comm != "cat" || state != "R" || start != 89365 {
		t.Errorf("ParseStat = %q, %d, %v; want cat, 89365", comm, start, err)
	}
	// A name with spaces and parentheses.
	odd := strings.Replace(string(b), "(cat)", "(a) (b c)", 1)
	comm, _, start, err = ParseStat([]byte(odd))
	if err != nil || comm != "a) (b c" || start != 89365 {
		t.Errorf("ParseStat(odd) = %q, %d, %v", comm, start, err)
	}
	for _, bad := range []string{"", "1 cat R", "1 (cat) R 1 2 3"} {
		if _, _, _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q): no error", bad)
		}
	}
}

func TestParseSlabinfo(t *testing.T) {
	b, err := os.ReadFile("testdata/slabinfo")
	if err != nil {
		t.Fatal(err)
	}
	slabs, err := ParseSlabinfo(b)
	if err != nil {
		t.Fatal(err)
	}
	var dentry *Slab
	for i := range slabs {
		if slabs[i].Name == "dentry" {
			dentry = &slabs[i]
		}
	}
	want := Slab{Name: "dentry", ActiveObjs: 63445, NumObjs: 63630, ObjSize: 192, Bytes: 3030 * 1 * 4096}
	if dentry == nil || *dentry != want {
		t.Errorf("dentry = %+v, want %+v", dentry, want)
	}
	for _, bad := range []string{"garbage\n", "slabinfo - version: 2.1\nfoo 1 2 3\n",
		"slabinfo - version: 2.1\nx 1 2 3 4 5 : tunables 0 0 0 : slabdata 1 a 0\n"} {
		if _, err := ParseSlabinfo([]byte(bad)); err == nil {
			t.Errorf("ParseSlabinfo(%q): no error", bad)
		}
	}
	si, err := ReadSlabinfo("testdata/slabinfo", 3)
	if err != nil || len(si.Top) != 3 || si.Top[0].Bytes < si.Top[1].Bytes || si.Total < si.Top[0].Bytes {
		t.Errorf("ReadSlabinfo = %+v, %v", si, err)
	}
	if _, err := ReadSlabinfo("testdata/nope", 3); err == nil || !strings.Contains(err.Error(), "testdata/nope") {
		t.Errorf("missing file: err = %v", err)
	}
}

func fixtureKmem(t *testing.T, v cgroupfs.Version, dir string) cgroupfs.Kmem {
	t.Helper()
	abs, _ := filepath.Abs(filepath.Join("..", "cgroupfs", "testdata", "kmem", dir))
	k, err := cgroupfs.Cgroup{Path: abs, Version: v}.ReadKmem()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestFromKmemV2(t *testing.T) {
	c := FromKmem("/x", fixtureKmem(t, cgroupfs.V2, "v2/kernel-6.x-container"))
	if *c.Usage != 167936000 || c.MaxUsage != nil || c.Limit != nil || c.Failcnt != nil || c.KernelFailcnt != nil {
		t.Errorf("top-level figures wrong: %+v", c)
	}
	got := map[string]uint64{}
	for k, v := range c.Breakdown {
		if v.Accuracy != Exact {
			t.Errorf("%s: accuracy %s, want exact", k, v.Accuracy)
		}
		got[k] = *v.Bytes
	}
	want := map[string]uint64{
		"slab": 37174240, "slab_reclaimable": 4199912, "slab_unreclaimable": 32974328,
		"kernel_stack": 81346560, "pagetables": 42930176, "sec_pagetables": 0, "percpu": 126200,
		"sock": 0, "vmalloc": 1236992,
		"other": 167936000 - (37174240 + 81346560 + 42930176 + 126200 + 1236992),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("breakdown (-want +got):\n%s", d)
	}
	// Older kernel: the total is derived and says so; absent kinds are null.
	c = FromKmem("/y", fixtureKmem(t, cgroupfs.V2, "v2/kernel-5.10-edited"))
	if !strings.HasPrefix(c.UsageSource, "derived") || c.Breakdown["vmalloc"].Bytes != nil {
		t.Errorf("5.10 fixture: source %q, vmalloc %v", c.UsageSource, c.Breakdown["vmalloc"].Bytes)
	}
	if _, ok := c.Breakdown["other"]; ok {
		t.Errorf("5.10 fixture: 'other' cannot be known without a kernel field")
	}
	// JSON: null, not 0, for absent figures.
	b, _ := json.Marshal(c)
	if !strings.Contains(string(b), `"limit":null`) || !strings.Contains(string(b), `"max_usage":null`) ||
		!strings.Contains(string(b), `"vmalloc":{"bytes":null`) {
		t.Errorf("JSON lacks nulls: %s", b)
	}
}

func TestFromKmemV1AndProcesses(t *testing.T) {
	k := cgroupfs.Kmem{Version: cgroupfs.V1, Usage: procfs.Some(10 << 20),
		V1:  cgroupfs.KmemCounters{Usage: procfs.Some(10 << 20), MaxUsage: procfs.Some(12 << 20), Failcnt: procfs.Some(0)},
		TCP: cgroupfs.KmemCounters{Usage: procfs.Some(4096)}}
	c := FromKmem("/m", k)
	if *c.MaxUsage != 12<<20 || *c.Failcnt != 0 || c.FailcntSource != "kernel memory.kmem.failcnt" || *c.Breakdown["tcp"].Bytes != 4096 {
		t.Errorf("v1 entry: %+v", c)
	}
	// Two processes share one pipe (inode 9) holding 5000 bytes: counted once.
	ps := []Process{
		{PID: 10, PipeDataRead: true, Threads: 4, PageTables: 1 << 20, Pipes: 2, PipeInodes: []uint64{9, 11}, PipeData: []uint64{5000, 0}, Sockets: 1, SocketBytes: SocketOverhead},
		{PID: 11, PipeDataRead: true, Threads: 1, PageTables: 8192, Pipes: 1, PipeInodes: []uint64{9}, PipeData: []uint64{5000}},
	}
	c.AddProcesses(ps, k)
	b := func(n string) uint64 { return *c.Breakdown[n].Bytes }
	if b("pagetables") != 1<<20+8192 || b("kernel_stack") != 5*ThreadStackSize || *c.Breakdown["kernel_stack"].Count != 5 {
		t.Errorf("pagetables %d kernel_stack %d", b("pagetables"), b("kernel_stack"))
	}
	wantPipes := uint64(8192 + PipeOverhead + 0 + PipeOverhead)
	if b("pipes") != wantPipes || *c.Breakdown["pipes"].Count != 2 {
		t.Errorf("pipes %d (count %d), want %d (2)", b("pipes"), *c.Breakdown["pipes"].Count, wantPipes)
	}
	attributed := uint64(1<<20+8192) + 5*ThreadStackSize + wantPipes + SocketOverhead
	if b("unattributed") != 10<<20-attributed || c.Breakdown["unattributed"].Accuracy != Estimate {
		t.Errorf("unattributed %d, want %d", b("unattributed"), 10<<20-attributed)
	}
	c.ApplyDaemon(DaemonCgroup{Path: "/m", Limit: 1 << 30, Failcnt: 3, Peak: 1, Action: "report"})
	if *c.Limit != 1<<30 || *c.Failcnt != 3 || c.FailcntSource != "daemon" || *c.MaxUsage != 12<<20 {
		t.Errorf("ApplyDaemon: %+v", c)
	}
}

func TestSortHeaviest(t *testing.T) {
	ps := []Process{{PID: 3, Total: 5}, {PID: 1, Total: 9}, {PID: 2, Total: 5}}
	SortHeaviest(ps)
	if ps[0].PID != 1 || ps[1].PID != 2 || ps[2].PID != 3 {
		t.Errorf("order %v", ps)
	}
}

// TestProcessSelf attributes this test process after it makes pipes with
// data and a socket: counts are exact, the pipe bytes follow the data.
func TestProcessSelf(t *testing.T) {
	var fds []*os.File
	defer func() {
		for _, f := range fds {
			f.Close()
		}
	}()
	before, err := ProcFS{}.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, r, w)
		if _, err := w.Write(make([]byte, 6000)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := ProcFS{}.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p.Pipes != before.Pipes+5 {
		t.Errorf("pipes %d, want %d", p.Pipes, before.Pipes+5)
	}
	if min := before.PipeBytes + 5*(8192+PipeOverhead); p.PipeBytes < min {
		t.Errorf("pipe bytes %d, want at least %d", p.PipeBytes, min)
	}
	if p.Threads < 1 || p.KernelStack != uint64(p.Threads)*ThreadStackSize || p.PageTables == 0 {
		t.Errorf("threads %d stack %d pagetables %d", p.Threads, p.KernelStack, p.PageTables)
	}
	if p.Total != p.PageTables+p.KernelStack+p.PipeBytes+p.SocketBytes || p.Accuracy["pagetables"] != Exact || p.Accuracy["pipe_bytes"] != Estimate {
		t.Errorf("total/accuracy: %+v", p)
	}
	fast, err := ProcFS{NoPipeData: true}.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if fast.Pipes != p.Pipes || fast.PipeDataRead || !p.PipeDataRead || fast.PipeBytes != uint64(fast.Pipes)*PipeOverhead || fast.PipeBytes >= p.PipeBytes {
		t.Errorf("NoPipeData: pipes %d bytes %d read %v; full: pipes %d bytes %d", fast.Pipes, fast.PipeBytes, fast.PipeDataRead, p.Pipes, p.PipeBytes)
	}
	if st, err := (ProcFS{}).StartTime(os.Getpid()); err != nil || st != p.StartTime || st == 0 {
		t.Errorf("StartTime = %d, %v; want %d", st, err, p.StartTime)
	}
	if adj, err := (ProcFS{}).OOMScoreAdj(os.Getpid()); err != nil || adj != p.OOMScoreAdj {
		t.Errorf("OOMScoreAdj = %d, %v", adj, err)
	}
	if path, ok, err := (ProcFS{}).CgroupPath(os.Getpid(), "memory"); err != nil || !ok || path == "" {
		t.Errorf("CgroupPath(memory) = %q, %v, %v", path, ok, err)
	}
	if _, err := (ProcFS{Root: t.TempDir()}).Process(os.Getpid()); err == nil {
		t.Errorf("missing process: no error")
	}
}

func FuzzParseStatus(f *testing.F) {
	b, _ := os.ReadFile("testdata/status")
	f.Add(b)
	f.Add([]byte("VmPTE:\t12 kB\nThreads:\t3"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatus(b)
		if err == nil && s.Threads < 0 {
			t.Errorf("negative threads from %q", b)
		}
	})
}

func FuzzParseStat(f *testing.F) {
	b, _ := os.ReadFile("testdata/stat")
	f.Add(b)
	f.Add([]byte("1 (a b) S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		comm, _, _, err := ParseStat(b)
		if err == nil && !strings.Contains(string(b), "("+comm+")") {
			t.Errorf("comm %q not in %q", comm, b)
		}
	})
}

func FuzzParseSlabinfo(f *testing.F) {
	b, _ := os.ReadFile("testdata/slabinfo")
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		slabs, err := ParseSlabinfo(b)
		if err != nil {
			return
		}
		for _, s := range slabs {
			if s.Name == "" {
				t.Errorf("empty name from %q", b)
			}
		}
	})
}
