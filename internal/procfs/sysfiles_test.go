package procfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func openFDs(t *testing.T) int {
	t.Helper()
	d, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(d)
}

// Kept system files are read again from offset 0 (new contents show), cost
// one descriptor each, and are closed by CloseSystemFiles.
func TestKeepSystemFiles(t *testing.T) {
	root := t.TempDir()
	meminfo := filepath.Join(root, "meminfo")
	write := func(avail string) {
		t.Helper()
		// Large enough that a read must grow the buffer past minBuf.
		pad := strings.Repeat("Padding:         1 kB\n", 300)
		if err := os.WriteFile(meminfo, []byte("MemTotal: 1000 kB\nMemAvailable: "+avail+" kB\n"+pad), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("400")
	r := NewFS(root).NewReader()
	r.KeepSystemFiles()
	before := openFDs(t)
	var m Meminfo
	if err := r.Meminfo(&m); err != nil {
		t.Fatal(err)
	}
	if m.MemAvailable.N != 400<<10 {
		t.Fatalf("MemAvailable = %d", m.MemAvailable.N)
	}
	if got := openFDs(t); got != before+1 {
		t.Errorf("open descriptors %d, want %d (meminfo kept)", got, before+1)
	}
	write("300")
	allocs := testing.AllocsPerRun(20, func() {
		if err := r.Meminfo(&m); err != nil {
			t.Fatal(err)
		}
	})
	if m.MemAvailable.N != 300<<10 {
		t.Errorf("after rewrite MemAvailable = %d, want %d", m.MemAvailable.N, 300<<10)
	}
	if allocs != 0 {
		t.Errorf("kept read allocates %.1f times", allocs)
	}
	if got := openFDs(t); got != before+1 {
		t.Errorf("open descriptors %d after rereads, want %d", got, before+1)
	}
	r.CloseSystemFiles()
	if got := openFDs(t); got != before {
		t.Errorf("open descriptors %d after CloseSystemFiles, want %d", got, before)
	}
	// A file that cannot be opened is reported by the usual read.
	os.Remove(meminfo)
	if err := r.Meminfo(&m); !os.IsNotExist(err) {
		t.Errorf("missing meminfo: err %v, want not-exist", err)
	}
}
