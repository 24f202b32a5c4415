package forkbomb_bench

import (
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/procconn"
	"github.com/oomguard/oomguard/internal/testbed"
)

// recorder captures the proc connector events of one workload's subtree
// (by fork ancestry from its subreaper) for the detector's replay tests in
// internal/policy/forkbomb/testdata. Format, one event per line, times in µs
// from the first event: "f PARENT CHILD T", "e PID T COMM", "x PID T".
type recorder struct {
	c     *procconn.Conn
	in    map[int32]bool
	lines []string
	t0    time.Duration
	forks int
	stop  chan struct{}
	done  chan struct{}
}

func startRecorder(t *testing.T) *recorder {
	c, err := procconn.Open(procconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{c: c, in: map[int32]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// follow records the subtree of root until Finish; maxForks > 0 stops
// recording after that many forks.
func (r *recorder) follow(root int, maxForks int) {
	r.in[int32(root)] = true
	go func() {
		defer close(r.done)
		evs := make([]procconn.Event, 256)
		for {
			select {
			case <-r.stop:
				return
			default:
			}
			if maxForks > 0 && r.forks >= maxForks {
				return
			}
			n, _ := r.c.Read(evs, 20*time.Millisecond)
			for _, e := range evs[:n] {
				if e.IsThread() {
					continue
				}
				if r.t0 == 0 {
					r.t0 = e.Time
				}
				us := (e.Time - r.t0).Microseconds()
				switch e.What {
				case procconn.WhatFork:
					if r.in[e.ParentTGID] {
						r.in[e.TGID] = true
						r.forks++
						r.lines = append(r.lines, fmt.Sprintf("f %d %d %d", e.ParentTGID, e.TGID, us))
					}
				case procconn.WhatExec:
					if r.in[e.TGID] {
						comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", e.TGID))
						r.lines = append(r.lines, fmt.Sprintf("e %d %d %s", e.TGID, us, strings.TrimSpace(string(comm))))
					}
				case procconn.WhatExit:
					if r.in[e.TGID] {
						r.lines = append(r.lines, fmt.Sprintf("x %d %d", e.TGID, us))
					}
				}
			}
		}
	}()
}

// finish stops recording and writes the file.
func (r *recorder) finish(t *testing.T, file, what string) {
	close(r.stop)
	<-r.done
	r.c.Close()
	path := filepath.Join("..", "..", "internal", "policy", "forkbomb", "testdata", file)
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	z := gzip.NewWriter(f)
	fmt.Fprintf(z, "# %s: recorded %s on Linux %s; %d events, %d forks\n", what, time.Now().UTC().Format(time.RFC3339), kernel(), len(r.lines), r.forks)
	z.Write([]byte(strings.Join(r.lines, "\n") + "\n"))
	z.Close()
	f.Close()
	t.Logf("%s: %d events, %d forks", file, len(r.lines), r.forks)
}

// TestRecordBombSequences records the bombs' event sequences (the
// legitimate workloads are recorded by TestForkbombBench, during its
// with-guard runs, when OOMGUARD_RECORD is set). Regenerate with:
//
//	OOMGUARD_RECORD=1 go test ./bench/forkbomb -run TestRecordBombSequences -v
func TestRecordBombSequences(t *testing.T) {
	if os.Getenv("OOMGUARD_RECORD") == "" {
		t.Skip("set OOMGUARD_RECORD=1 to record event sequences")
	}
	testbed.Require(t)
	for _, b := range bombList(t) {
		if b.atCap {
			continue
		}
		g := testbed.New(t, testbed.Options{PidsMax: 2000})
		rec := startRecorder(t)
		cmd := g.Command("timeout", append([]string{"30"}, b.argv...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		rec.follow(cmd.Process.Pid, 3000)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && len(g.Procs()) < 1500 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		rec.finish(t, "bomb-"+b.file+".events.gz", strings.Join(b.argv, " "))
		g.KillAll()
		cmd.Wait()
	}
}
