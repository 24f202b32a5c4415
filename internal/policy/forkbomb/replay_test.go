package forkbomb

import (
	"bufio"
	"compress/gzip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/lineage"
)

// TestReplayRecorded replays event sequences recorded from real workloads on
// the real kernel (see bench/forkbomb/record_test.go) through the recorder,
// running the detector every 10 ms of event time, as the daemon does.
// bomb-* files must be found before their family reaches 1,000 live
// members; legit-* files must never be flagged.
func TestReplayRecorded(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.events.gz"))
	if len(files) == 0 {
		t.Fatal("no recorded sequences in testdata; record them with bench/forkbomb TestRecordEventSequences")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".events.gz")
		t.Run(name, func(t *testing.T) {
			rec := lineage.New(lineage.Config{})
			// The machine as a seed scan sees it: init and an old shell
			// that is the workload's subreaper's parent.
			base := 1000 * time.Second
			rec.Reconcile([]lineage.Proc{{PID: 1}}, base)
			det := New(Config{})
			// The replication rule's margin: a legitimate workload has not
			// even one exited parent of two or more lines of descendants,
			// so a detector that flags a single such generation finds
			// nothing either.
			loose := New(Config{ReplicatingFamily: 2, ReplicatingGenerations: 1})
			// The cloning rule's margin: no legitimate workload has even
			// two copies nested (of CopyAge or more) in a family of four.
			looseClones := New(Config{CloningFamily: 4, CloningGenerations: 2})
			bomb := strings.HasPrefix(name, "bomb-")
			var found, looseFound []Verdict
			var last time.Duration
			var peak, events int
			sc := gzipLines(t, file)
			for sc.Scan() && len(found) == 0 {
				f := strings.Fields(sc.Text())
				if len(f) < 3 || f[0] == "#" {
					continue
				}
				num := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
				var now time.Duration
				switch f[0] {
				case "f":
					now = base + time.Duration(num(3))*time.Microsecond
					rec.Fork(int32(num(1)), int32(num(2)), now)
				case "e":
					now = base + time.Duration(num(2))*time.Microsecond
					comm := ""
					if len(f) > 3 {
						comm = f[3]
					}
					rec.Exec(int32(num(1)), now, []byte(comm))
				case "x":
					now = base + time.Duration(num(2))*time.Microsecond
					rec.Exit(int32(num(1)), now)
				default:
					continue
				}
				events++
				peak = max(peak, rec.LiveCount())
				if now-last >= 10*time.Millisecond {
					last = now
					found = det.Detect(Input{Lineage: rec, Now: now}, nil)
					if !bomb && len(looseFound) == 0 {
						looseFound = loose.Detect(Input{Lineage: rec, Now: now}, nil)
					}
					if !bomb && len(looseFound) == 0 {
						looseFound = looseClones.Detect(Input{Lineage: rec, Now: now}, nil)
					}
				}
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d events, peak %d live, found %d", events, peak, len(found))
			switch {
			case bomb && len(found) == 0:
				t.Fatalf("bomb not found (peak live %d)", peak)
			case bomb && found[0].Live >= 1000:
				t.Fatalf("bomb found only at %d live members", found[0].Live)
			case !bomb && len(found) > 0:
				t.Fatalf("false positive: %+v", found[0])
			case !bomb && len(looseFound) > 0:
				t.Fatalf("within the margin of the replication or cloning rule: %+v", looseFound[0])
			}
			if bomb {
				t.Logf("found: %+v", found[0])
			}
		})
	}
}

// gzipLines returns a scanner over the lines of the gzip file, closed when
// the test ends.
func gzipLines(t *testing.T, file string) *bufio.Scanner {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return bufio.NewScanner(z)
}
