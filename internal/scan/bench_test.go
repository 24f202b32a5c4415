package scan

import (
	"os"
	"testing"

	"github.com/oomguard/oomguard/internal/policy"
)

// BenchmarkProcesses is an unscoped pass over this machine's /proc; the
// comparison with prometheus/procfs at 5,000 processes is bench/scan.
func BenchmarkProcesses(b *testing.B) {
	for _, k := range []Keep{KeepDefault, KeepAll, KeepNone} {
		b.Run(k.String(), func(b *testing.B) { benchProcesses(b, k) })
	}
}

func benchProcesses(b *testing.B, keep Keep) {
	s := New(Config{SelfPID: os.Getpid(), KeepOpen: keep})
	defer s.Close()
	var snap policy.Snapshot
	if err := s.Processes(&snap); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		if err := s.Processes(&snap); err != nil {
			b.Fatal(err)
		}
		n += len(snap.Processes)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/process")
}
