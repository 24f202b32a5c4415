package cgroupfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/oomguard/oomguard/internal/procfs"
)

func TestReadKmemV2Fixtures(t *testing.T) {
	tests := []struct {
		dir  string
		want Kmem
	}{{
		dir: "v2/kernel-6.1-arm64",
		want: Kmem{Version: V2, Usage: procfs.Some(188416), Stat: KmemStat{
			Kernel: procfs.Some(188416), Slab: procfs.Some(18752), SlabReclaimable: procfs.Some(0), SlabUnreclaimable: procfs.Some(18752),
			KernelStack: procfs.Some(16384), PageTables: procfs.Some(81920), SecPageTables: procfs.Some(0), Percpu: procfs.Some(0),
			Sock: procfs.Some(0), Vmalloc: procfs.Some(0),
		}},
	}, {
		dir: "v2/kernel-6.x-container",
		want: Kmem{Version: V2, Usage: procfs.Some(167936000), Stat: KmemStat{
			Kernel: procfs.Some(167936000), Slab: procfs.Some(37174240), SlabReclaimable: procfs.Some(4199912), SlabUnreclaimable: procfs.Some(32974328),
			KernelStack: procfs.Some(81346560), PageTables: procfs.Some(42930176), SecPageTables: procfs.Some(0), Percpu: procfs.Some(126200),
			Sock: procfs.Some(0), Vmalloc: procfs.Some(1236992),
		}},
	}, {
		// No "kernel", "sec_pagetables" or "vmalloc": the total is derived
		// from the parts, and the missing fields stay absent, not zero.
		dir: "v2/kernel-5.10-edited",
		want: Kmem{Version: V2, Usage: procfs.Some(18752 + 16384 + 81920 + 0), UsageDerived: true, Stat: KmemStat{
			Slab: procfs.Some(18752), SlabReclaimable: procfs.Some(0), SlabUnreclaimable: procfs.Some(18752),
			KernelStack: procfs.Some(16384), PageTables: procfs.Some(81920), Percpu: procfs.Some(0), Sock: procfs.Some(0),
		}},
	}}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			got, err := testdataCgroup(t, V2, "kmem", tt.dir).ReadKmem()
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("ReadKmem (-want +got):\n%s", d)
			}
			u, derived, err := testdataCgroup(t, V2, "kmem", tt.dir).KmemReader().Usage()
			if err != nil || u != tt.want.Usage.N || derived != tt.want.UsageDerived {
				t.Errorf("Usage() = %d, %v, %v; want %d, %v", u, derived, err, tt.want.Usage.N, tt.want.UsageDerived)
			}
		})
	}
}

func TestReadKmemV1Fixture(t *testing.T) {
	cg := testdataCgroup(t, V1, "kmem", "v1/kernel-6.18")
	read := func(name string) uint64 {
		b, err := os.ReadFile(cg.File(name))
		if err != nil {
			t.Fatal(err)
		}
		n, err := parseUintFile(b)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	got, err := cg.ReadKmem()
	if err != nil {
		t.Fatal(err)
	}
	want := Kmem{
		Version: V1,
		Usage:   procfs.Some(read("memory.kmem.usage_in_bytes")),
		V1: KmemCounters{
			Usage:    procfs.Some(read("memory.kmem.usage_in_bytes")),
			MaxUsage: procfs.Some(read("memory.kmem.max_usage_in_bytes")),
			Failcnt:  procfs.Some(read("memory.kmem.failcnt")),
			Limit:    procfs.Some(9223372036854771712),
		},
		TCP: KmemCounters{
			Usage:    procfs.Some(read("memory.kmem.tcp.usage_in_bytes")),
			MaxUsage: procfs.Some(read("memory.kmem.tcp.max_usage_in_bytes")),
			Failcnt:  procfs.Some(read("memory.kmem.tcp.failcnt")),
			Limit:    procfs.Some(9223372036854771712),
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ReadKmem (-want +got):\n%s", d)
	}
	if got.Usage.N == 0 || got.V1.MaxUsage.N < got.Usage.N {
		t.Errorf("recorded usage %d, max %d: not a plausible recording", got.Usage.N, got.V1.MaxUsage.N)
	}
}

func TestReadKmemErrors(t *testing.T) {
	// Malformed file: the error names the file.
	_, err := testdataCgroup(t, V1, "kmem", "v1/malformed").ReadKmem()
	if err == nil || !strings.Contains(err.Error(), "memory.kmem.usage_in_bytes") {
		t.Errorf("malformed usage: err = %v, want one naming memory.kmem.usage_in_bytes", err)
	}
	// A directory without the files: ErrNoKmem, naming the path.
	dir := t.TempDir()
	_, err = Cgroup{Path: dir, Version: V1}.ReadKmem()
	if !errors.Is(err, ErrNoKmem) || !strings.Contains(err.Error(), dir) {
		t.Errorf("empty v1 dir: err = %v, want ErrNoKmem naming %s", err, dir)
	}
	_, err = Cgroup{Path: dir, Version: V2}.ReadKmem()
	if !errors.Is(err, ErrNoKmem) {
		t.Errorf("empty v2 dir: err = %v, want ErrNoKmem", err)
	}
	// A v1 cgroup with only the usage file: the rest is absent, not zero.
	if err := os.WriteFile(filepath.Join(dir, "memory.kmem.usage_in_bytes"), []byte("4096\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := Cgroup{Path: dir, Version: V1}.ReadKmem()
	if err != nil {
		t.Fatal(err)
	}
	if !k.Usage.OK || k.Usage.N != 4096 || k.V1.MaxUsage.OK || k.TCP.Usage.OK || k.V1.MaxUsage.Ptr() != nil {
		t.Errorf("partial v1: got %+v", k)
	}
	// A malformed v2 memory.stat.
	if err := os.WriteFile(filepath.Join(dir, "memory.stat"), []byte("kernel 12\nslab x12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Cgroup{Path: dir, Version: V2}.ReadKmem()
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "memory.stat")) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("malformed memory.stat: err = %v", err)
	}
}

func TestParseKmemStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    KmemStat
		wantErr bool
	}{
		{"empty", "", KmemStat{}, false},
		{"no trailing newline", "kernel 5", KmemStat{Kernel: procfs.Some(5)}, false},
		{"zero is present", "sock 0\n", KmemStat{Sock: procfs.Some(0)}, false},
		{"unknown fields ignored", "anon 1\nfoo_bar 2\nvmalloc 3\n", KmemStat{Vmalloc: procfs.Some(3)}, false},
		{"blank lines", "\n\npercpu 7\n\n", KmemStat{Percpu: procfs.Some(7)}, false},
		{"max uint64", "kernel 18446744073709551615\n", KmemStat{Kernel: procfs.Some(^uint64(0))}, false},
		{"overflow", "kernel 18446744073709551616\n", KmemStat{}, true},
		{"negative", "kernel -1\n", KmemStat{}, true},
		{"no value", "kernel\n", KmemStat{}, true},
		{"trailing space", "kernel \n", KmemStat{}, true},
		{"two spaces", "kernel  1\n", KmemStat{}, true},
		{"malformed unknown field", "anon x\n", KmemStat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got KmemStat
			err := ParseKmemStat([]byte(tt.in), &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil {
				if d := cmp.Diff(tt.want, got); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
			}
		})
	}
}

func TestKmemStatTotalFallback(t *testing.T) {
	// Only the two slab halves: summed.
	s := KmemStat{SlabReclaimable: procfs.Some(10), SlabUnreclaimable: procfs.Some(20), KernelStack: procfs.Some(5)}
	if got, derived := s.Total(); got != procfs.Some(35) || !derived {
		t.Errorf("Total() = %v, %v; want 35, derived", got, derived)
	}
	// Sock is not kernel memory in the kernel's own sense.
	s = KmemStat{Sock: procfs.Some(100)}
	if got, _ := s.Total(); got.OK {
		t.Errorf("Total() of sock only = %v, want absent", got)
	}
}

func TestKmemReaderDoesNotAllocate(t *testing.T) {
	for _, c := range []Cgroup{testdataCgroup(t, V1, "kmem", "v1/kernel-6.18"), testdataCgroup(t, V2, "kmem", "v2/kernel-6.x-container")} {
		r := c.KmemReader()
		var k Kmem
		if err := r.Read(&k); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(50, func() {
			if _, _, err := r.Usage(); err != nil {
				t.Fatal(err)
			}
			if err := r.Read(&k); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per Usage+Read, want 0", c.Version, n)
		}
	}
}

func FuzzParseKmemStat(f *testing.F) {
	for _, d := range []string{"v2/kernel-6.1-arm64", "v2/kernel-6.x-container", "v2/kernel-5.10-edited"} {
		b, err := os.ReadFile(filepath.Join("testdata", "kmem", d, "memory.stat"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("kernel 1\nslab 2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s KmemStat
		if err := ParseKmemStat(b, &s); err != nil {
			return
		}
		// Whatever parsed must be consistent with the text: every present
		// field's line is in the input.
		if s.Kernel.OK && !strings.Contains(string(b), "kernel ") {
			t.Errorf("kernel present without a kernel line in %q", b)
		}
		if tot, derived := s.Total(); derived && s.Kernel.OK || tot.OK && !s.Kernel.OK && !derived {
			t.Errorf("Total inconsistent: %v derived=%v for %+v", tot, derived, s)
		}
	})
}

func FuzzParseUintFile(f *testing.F) {
	for _, s := range []string{"0\n", "839680\n", "9223372036854771712\n", "max\n", "", "-1", " 12 "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseUintFile(b)
		if err != nil {
			return
		}
		if got := strings.TrimSpace(string(b)); got != formatUint(n) && strings.TrimLeft(got, "0") != formatUint(n) && n != 0 {
			t.Errorf("parseUintFile(%q) = %d", b, n)
		}
	})
}

func formatUint(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

func TestReadSummaryV1(t *testing.T) {
	var full, sum Kmem
	r := testdataCgroup(t, V1, "kmem", "v1/kernel-6.18").KmemReader()
	if err := r.Read(&full); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadSummary(&sum); err != nil {
		t.Fatal(err)
	}
	want := Kmem{Version: V1, Usage: full.Usage, V1: KmemCounters{Usage: full.V1.Usage, MaxUsage: full.V1.MaxUsage}}
	if d := cmp.Diff(want, sum); d != "" {
		t.Errorf("ReadSummary (-want +got):\n%s", d)
	}
}
