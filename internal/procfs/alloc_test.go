package procfs

import (
	"os"
	"testing"

	"github.com/oomguard/oomguard/internal/policy"
)

// TestReaderAllocs shows that reading and parsing the periodic files again
// allocates nothing once a Reader's buffers have grown.
func TestReaderAllocs(t *testing.T) {
	r := NewFS("").NewReader()
	pid := os.Getpid()
	var (
		m  Meminfo
		p  policy.PressureFile
		v  Vmstat
		st Stat
		ss Status
		sc Syscall
		d  DirReader
	)
	pids := make([]int, 0, 4096)
	pass := func() {
		must(t, r.Meminfo(&m))
		must(t, r.Pressure("memory", &p))
		must(t, r.Pressure("io", &p))
		must(t, r.Vmstat(&v))
		must(t, r.Stat(pid, &st))
		must(t, r.Status(pid, &ss))
		_, err := r.OOMScoreAdj(pid)
		must(t, err)
		_, err = r.Cmdline(pid, 4096)
		must(t, err)
		_, err = r.Cgroup(pid, "memory")
		must(t, err)
		must(t, r.Syscall(pid, &sc))
		pids, err = d.PIDs(r.FS(), pids[:0])
		must(t, err)
	}
	pass()
	if n := testing.AllocsPerRun(20, pass); n != 0 {
		t.Errorf("a pass of every reader allocates %v times, want 0", n)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkFiles(b *testing.B) {
	r := NewFS("").NewReader()
	pid := os.Getpid()
	var st Stat
	var ss Status
	b.Run("stat", func(b *testing.B) {
		for b.Loop() {
			r.Stat(pid, &st)
		}
	})
	b.Run("status", func(b *testing.B) {
		for b.Loop() {
			r.Status(pid, &ss)
		}
	})
	b.Run("oom_score_adj", func(b *testing.B) {
		for b.Loop() {
			r.OOMScoreAdj(pid)
		}
	})
	b.Run("cmdline", func(b *testing.B) {
		for b.Loop() {
			r.Cmdline(pid, 4096)
		}
	})
	b.Run("cgroup", func(b *testing.B) {
		for b.Loop() {
			r.Cgroup(pid, "memory")
		}
	})
	b.Run("stat-readonly", func(b *testing.B) {
		for b.Loop() {
			r.readPID(pid, "stat", 0, true)
		}
	})
	b.Run("stat-read-to-eof", func(b *testing.B) {
		for b.Loop() {
			r.readPID(pid, "stat", 0, false)
		}
	})
	b.Run("status-readonly", func(b *testing.B) {
		for b.Loop() {
			r.readPID(pid, "status", 0, true)
		}
	})
}
