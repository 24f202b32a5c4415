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

// TestRecordEventSequences records the proc connector events of real bombs
// and legitimate workloads into internal/policy/forkbomb/testdata, where the
// detector's replay tests read them. Regenerate with:
//
//	OOMGUARD_RECORD=1 go test ./bench/forkbomb -run TestRecordEventSequences -v -timeout 60m
//
// Only the workload's own subtree (by fork ancestry from its subreaper) is
// kept. Format, one event per line, times in µs from the first event:
// "f PARENT CHILD T", "e PID T COMM", "x PID T".
func TestRecordEventSequences(t *testing.T) {
	if os.Getenv("OOMGUARD_RECORD") == "" {
		t.Skip("set OOMGUARD_RECORD=1 to record event sequences")
	}
	testbed.Require(t)
	forkLoop := testbed.CompileC(t, forkLoopC)
	slow := testbed.CompileC(t, slowBombC)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	chain := filepath.Join(dir, "bomb.sh")
	os.WriteFile(chain, []byte("#!/bin/sh\nsh -c \"exec sh $0\" &\nsh -c \"exec sh $0\" &\n"), 0o755)
	var mk strings.Builder
	mk.WriteString("all:")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&mk, " f%d.o", i)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.c", i)), []byte(fmt.Sprintf("int f%d(int x) { return x * %d; }\n", i, i)), 0o644)
	}
	mk.WriteString("\n%.o: %.c\n\tcc -O0 -c $< -o $@\n")
	os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk.String()), 0o644)
	mod := filepath.Join(dir, "mod")
	os.MkdirAll(mod, 0o755)
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/gen\n\ngo 1.22\n"), 0o644)
	for i := 0; i < 24; i++ {
		pd := filepath.Join(mod, fmt.Sprintf("p%d", i))
		os.MkdirAll(pd, 0o755)
		os.WriteFile(filepath.Join(pd, "p.go"), []byte(fmt.Sprintf("package p%d\n\n// F computes.\nfunc F(x int) int { return x * %d }\n", i, i)), 0o644)
	}
	for _, w := range []struct {
		file string
		argv []string
		dir  string
		bomb bool
	}{
		{"bomb-bash.events.gz", []string{"bash", "-c", "b(){ b|b & }; b"}, dir, true},
		{"bomb-forkloop.events.gz", []string{forkLoop}, dir, true},
		{"bomb-execchain.events.gz", []string{"sh", chain}, dir, true},
		{"bomb-slow.events.gz", []string{slow}, dir, true},
		{"legit-make-j16.events.gz", []string{"make", "-s", "-j16"}, dir, false},
		{"legit-xargs-P32.events.gz", []string{"sh", "-c", "seq 5000 | xargs -P 32 -n 1 true"}, dir, false},
		{"legit-shell-loop.events.gz", []string{"sh", "-c", "i=0; while [ $i -lt 10000 ]; do /bin/true; i=$((i+1)); done"}, dir, false},
		{"legit-go-build.events.gz", []string{"go", "build", "-p", "4", "./..."}, mod, false},
	} {
		g := testbed.New(t, testbed.Options{PidsMax: 2000, MemoryLimit: 1 << 30})
		c, err := procconn.Open(procconn.Options{})
		if err != nil {
			t.Fatal(err)
		}
		cmd := g.Command("timeout", append([]string{"600"}, w.argv...)...)
		cmd.Dir = w.dir
		cmd.Env = append(os.Environ(), "GOCACHE="+filepath.Join(mod, ".cache"), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		in := map[int32]bool{int32(cmd.Process.Pid): true}
		var lines []string
		var t0 time.Duration
		evs := make([]procconn.Event, 256)
		forks := 0
		finished := false
		limit := time.Now().Add(10 * time.Minute)
		for !finished && time.Now().Before(limit) {
			select {
			case <-done:
				finished = true
			default:
			}
			if w.bomb && forks >= 3000 {
				break
			}
			n, err := c.Read(evs, 50*time.Millisecond)
			if err != nil {
				t.Logf("%s: %v", w.file, err)
			}
			for _, e := range evs[:n] {
				if e.IsThread() {
					continue
				}
				if t0 == 0 {
					t0 = e.Time
				}
				us := (e.Time - t0).Microseconds()
				switch e.What {
				case procconn.WhatFork:
					if in[e.ParentTGID] {
						in[e.TGID] = true
						forks++
						lines = append(lines, fmt.Sprintf("f %d %d %d", e.ParentTGID, e.TGID, us))
					}
				case procconn.WhatExec:
					if in[e.TGID] {
						comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", e.TGID))
						lines = append(lines, fmt.Sprintf("e %d %d %s", e.TGID, us, strings.TrimSpace(string(comm))))
					}
				case procconn.WhatExit:
					if in[e.TGID] {
						lines = append(lines, fmt.Sprintf("x %d %d", e.TGID, us))
					}
				}
			}
		}
		c.Close()
		g.KillAll()
		<-done
		path := filepath.Join("..", "..", "internal", "policy", "forkbomb", "testdata", w.file)
		os.MkdirAll(filepath.Dir(path), 0o755)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		z := gzip.NewWriter(f)
		fmt.Fprintf(z, "# %s: recorded %s on %s; %d events\n", strings.Join(w.argv, " "), time.Now().UTC().Format(time.RFC3339), kernel(), len(lines))
		z.Write([]byte(strings.Join(lines, "\n") + "\n"))
		z.Close()
		f.Close()
		t.Logf("%s: %d events, %d forks", w.file, len(lines), forks)
	}
}
