package procscan

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/oomguard/oomguard/internal/lineage"
)

const ms = time.Millisecond

func TestParseStat(t *testing.T) {
	line := []byte("4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 127 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
	p, ok := ParseStat(line)
	want := lineage.Proc{PID: 4242, PPID: 17, Born: 123450 * ms}
	copy(want.Comm[:], "a) b (c)")
	if !ok || !cmp.Equal(p, want) {
		t.Fatalf("ParseStat = %+v, %v; want %+v", p, ok, want)
	}
	kt := []byte("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
	if p, ok := ParseStat(kt); !ok || !p.Kthread {
		t.Fatalf("kthreadd not a kthread: %+v", p)
	}
	z := []byte("77 (zz) Z 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
	if _, ok := ParseStat(z); ok {
		t.Fatal("zombie parsed as live")
	}
	// The same with num_threads (field 20) 2 and 12: a leader that exited
	// while other threads of its process run. The process lives.
	for _, threads := range []string{"2", "12"} {
		lz := []byte("77 (zz) Z 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 " + threads + " 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
		if p, ok := ParseStat(lz); !ok || p.PID != 77 || p.PPID != 1 {
			t.Errorf("leader exited with %s threads: ParseStat = %+v, %v; want a live process", threads, p, ok)
		}
	}
	for _, bad := range []string{"", "1 (x", "x (y) S 1", "1 (y) S"} {
		if _, ok := ParseStat([]byte(bad)); ok {
			t.Errorf("ParseStat(%q) ok", bad)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) { ParseStat(b) })
}

func TestScanSelf(t *testing.T) {
	procs, err := Scan("/proc", 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range procs {
		if p.PID == 1 {
			found = true
		}
	}
	if !found || len(procs) < 2 {
		t.Fatalf("scan of /proc found %d processes, pid 1 %v", len(procs), found)
	}
}
