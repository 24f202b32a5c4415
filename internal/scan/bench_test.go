package scan

import (
	"os"
	"testing"

	"github.com/oomguard/oomguard/internal/policy"
)

// BenchmarkProcesses is an unscoped pass over this machine's /proc; the
// comparison with prometheus/procfs at 5,000 processes is bench/scan.
func BenchmarkProcesses(b *testing.B) {
	s := New(Config{SelfPID: os.Getpid()})
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
