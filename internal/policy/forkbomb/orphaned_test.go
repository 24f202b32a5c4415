package forkbomb

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/lineage"
)

// readScan reads a /proc scan recorded by the forkguard tests' capture: a
// line "now µs", then one line per process, "pid ppid born_µs comm
// in_scope" (born on CLOCK_MONOTONIC).
func readScan(t *testing.T, file string) (procs []lineage.Proc, scope []int, now time.Duration) {
	t.Helper()
	sc := gzipLines(t, file)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		num := func(i int) int64 {
			v, err := strconv.ParseInt(fl[i], 10, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", file, sc.Text(), err)
			}
			return v
		}
		if len(fl) == 2 && fl[0] == "now" {
			now = time.Duration(num(1)) * time.Microsecond
			continue
		}
		if len(fl) != 5 {
			t.Fatalf("%s: malformed line %q", file, sc.Text())
		}
		p := lineage.Proc{PID: int32(num(0)), PPID: int32(num(1)), Born: time.Duration(num(2)) * time.Microsecond}
		copy(p.Comm[:], fl[3])
		procs = append(procs, p)
		if fl[4] == "true" {
			scope = append(scope, int(p.PID))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if now == 0 || len(scope) == 0 {
		t.Fatalf("%s: no time or no process in scope", file)
	}
	return procs, scope, now
}

// verdictMembers returns the PIDs of a verdict's members: its root's line
// and its sibling lines'.
func verdictMembers(rec *lineage.Recorder, v Verdict, scope *PIDSet) []int32 {
	var pids []int32
	for _, ref := range append([]lineage.Ref{v.RootRef}, v.Siblings...) {
		for _, m := range Members(rec, rec.Resolve(ref), scope, nil) {
			pids = append(pids, m.PID)
		}
	}
	slices.Sort(pids)
	return pids
}

// TestRecordedScansOfForkLoopsAtTheirMemoryLimits replays /proc scans taken
// on the real kernel, of a C fork() loop at pids.max 2,000 and a memory
// limit (captured as in the forkguard subtests named below, with the scan
// written out where the guard would start). Each must be one verdict that
// takes every process in scope: the bomb alone is there.
func TestRecordedScansOfForkLoopsAtTheirMemoryLimits(t *testing.T) {
	for _, tc := range []struct {
		file, about string
		// noneAlone: no line is a bomb by itself (the orphaned-lines rule,
		// orphanedBombs, is what finds it); leaving: some lines are
		// headed by copies leaving the scope (see leavingCopy).
		noneAlone, leaving bool
		// exitHeads: this many line heads under the adopter exit after
		// the scan (their exit events come in), as the OOM killer's
		// victims do while the guard runs.
		exitHeads int
	}{
		// "fork loop at its pids and memory limits": 260 MiB, 6 s after
		// the limits (409 kernel OOM kills by then). The killed copies'
		// children head dozens of lines under the testbed's subreaper,
		// the largest of 158 members, 2 levels deep. Before the rule
		// nothing was found.
		{file: "scan-forkloop-at-memory-limit-260MiB.txt.gz", noneAlone: true},
		// "fork loop at pids.max whose root was killed", at 340 MiB (CI's
		// group reaches its 1 GiB limit): 3 s after the test killed the
		// root, with 4 kernel OOM kills. The root's children head lines
		// under the subreaper, two of them bombs alone; three copies had
		// left their cgroup (killed) but not yet handed their children
		// over. In runs like it, before leavingCopy, the first containment
		// took 1,035 to 1,870 of the 2,000, and the rest refilled the
		// slots it freed.
		{file: "scan-forkloop-root-killed-340MiB.txt.gz", leaving: true},
		// The same scan, then two heads of lines die (in a guard run, 114
		// members under such heads were left out of the first
		// containment).
		{file: "scan-forkloop-root-killed-340MiB.txt.gz", leaving: true, exitHeads: 2},
	} {
		t.Run(fmt.Sprintf("%s, %d heads exit", tc.file, tc.exitHeads), func(t *testing.T) {
			procs, scopePIDs, now := readScan(t, filepath.Join("testdata", tc.file))
			rec := lineage.New(lineage.Config{})
			rec.Reconcile(procs, now)
			scopePIDs = exitLineHeads(t, rec, scopePIDs, tc.exitHeads, now+time.Millisecond)
			scope := NewPIDSet(scopePIDs)
			det := New(Config{})
			v := det.Detect(Input{Lineage: rec, Now: now, Scope: scope}, nil)
			if len(v) != 1 {
				t.Fatalf("%d verdicts, want 1: %+v", len(v), v)
			}
			got := verdictMembers(rec, v[0], scope)
			if len(got) != v[0].Live {
				t.Errorf("verdict counts %d live members, its lines hold %d", v[0].Live, len(got))
			}
			// All taken: lone copies (children of a copy that the OOM
			// killer took, with none of their own) and lines below copies
			// leaving the scope included.
			for _, pid := range got {
				if !scope.Contains(pid) {
					t.Fatalf("member %d is outside the scope", pid)
				}
			}
			if len(got) != len(scopePIDs) {
				t.Errorf("the verdict takes %d of the %d processes in scope, want all", len(got), len(scopePIDs))
			}
			var alone, leaving int
			for _, ref := range append([]lineage.Ref{v[0].RootRef}, v[0].Siblings...) {
				id := rec.Resolve(ref)
				if n := len(Members(rec, id, scope, nil)); n >= det.Config().MinFamily {
					alone++
				}
				if !scope.Contains(rec.Get(id).PID) {
					leaving++
				}
			}
			t.Logf("%d lines, %d of MinFamily members or more, %d headed by a copy leaving the scope", 1+len(v[0].Siblings), alone, leaving)
			if tc.noneAlone && alone > 0 {
				t.Errorf("%d lines of MinFamily members or more: the scan does not show the case the rule is for", alone)
			}
			if tc.leaving && leaving == 0 {
				t.Errorf("no line headed by a copy leaving the scope: the scan does not show that case")
			}
		})
	}
}

// exitLineHeads records the exit of n heads of lines (in-scope processes
// with in-scope children, under a parent out of the scope) at now, and
// returns the scope without them.
func exitLineHeads(t *testing.T, rec *lineage.Recorder, scope []int, n int, now time.Duration) []int {
	t.Helper()
	in := NewPIDSet(scope)
	var gone []int
	for _, pid := range scope {
		if len(gone) == n {
			break
		}
		id, _ := rec.Lookup(int32(pid))
		r := rec.Get(id)
		if in.Contains(rec.Get(r.Parent).PID) || r.FirstChild == lineage.None || !in.Contains(rec.Get(r.FirstChild).PID) {
			continue
		}
		rec.Exit(int32(pid), now)
		gone = append(gone, pid)
	}
	if len(gone) < n {
		t.Fatalf("%d line heads found, want %d", len(gone), n)
	}
	return slices.DeleteFunc(slices.Clone(scope), func(p int) bool { return slices.Contains(gone, p) })
}

// TestOrphanedLinesJudgedTogether builds scans of lines under one adopter
// (a subreaper, or PID 1) whose common root is gone, none of them a bomb
// by itself, and checks which are judged one bomb together.
func TestOrphanedLinesJudgedTogether(t *testing.T) {
	var loop, reaper, sh, postgres, ssh [16]byte
	copy(loop[:], "forkloop")
	copy(ssh[:], "ssh")
	copy(reaper[:], "reaper")
	copy(sh[:], "sh")
	copy(postgres[:], "postgres")
	type line struct {
		comm [16]byte
		// chain is how many levels deep the line's head nests namesakes
		// before the rest hang from the last; size its live members.
		chain, size int
	}
	for _, tc := range []struct {
		name    string
		adopter int32 // 900: a young subreaper outside the scope; 1: PID 1
		lines   int
		line    line
		// spacing is between the heads' starts; age the first head's.
		spacing, age time.Duration
		bomb         bool
	}{
		{name: "fork loop's lines at its memory limit, under a subreaper", adopter: 900, lines: 40,
			line: line{loop, 2, 40}, spacing: time.Millisecond, age: 5 * time.Second, bomb: true},
		{name: "the same under PID 1", adopter: 1, lines: 40,
			line: line{loop, 2, 40}, spacing: time.Millisecond, age: 5 * time.Second, bomb: true},
		{name: "two lines", adopter: 900, lines: 2,
			line: line{loop, 2, 150}, spacing: time.Millisecond, age: 5 * time.Second, bomb: true},
		// A launcher that started 40 database instances and exited: each
		// a server and its backends, one level deep.
		{name: "instances of a forking server", adopter: 1, lines: 40,
			line: line{postgres, 1, 20}, spacing: 10 * time.Millisecond, age: 5 * time.Second},
		// Lines started apart: one at a time, each under RateWindow of
		// the bomb's shape.
		{name: "lines started 2 s apart", adopter: 900, lines: 20,
			line: line{loop, 2, 40}, spacing: 2 * time.Second, age: 50 * time.Second},
		{name: "old lines", adopter: 900, lines: 40,
			line: line{loop, 2, 40}, spacing: time.Millisecond, age: 2 * time.Minute},
		{name: "under a parent of their name", adopter: 950, lines: 40,
			line: line{loop, 2, 40}, spacing: time.Millisecond, age: 5 * time.Second},
		{name: "too few members together", adopter: 900, lines: 4,
			line: line{loop, 2, 40}, spacing: time.Millisecond, age: 5 * time.Second},
		// A script that backgrounded 200 ssh sessions and exited: lone
		// processes of one name, forked in a burst, none a line.
		{name: "lone processes of one name", adopter: 1, lines: 200,
			line: line{ssh, 0, 1}, spacing: time.Millisecond, age: 5 * time.Second},
		// The same with each session's privilege-separated child: 200
		// lines of two, one level deep.
		{name: "lines of a server and its one child", adopter: 1, lines: 200,
			line: line{ssh, 1, 2}, spacing: time.Millisecond, age: 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := 1000 * time.Second
			first := now - tc.age
			procs := []lineage.Proc{{PID: 1}, {PID: 500, PPID: 1, Born: time.Second, Comm: sh},
				{PID: 900, PPID: 500, Born: first - 3*time.Minute, Comm: reaper},
				// A parent of the lines' name: the lines are its own,
				// and its family is judged as it stands.
				{PID: 950, PPID: 500, Born: first - 3*time.Minute, Comm: tc.line.comm}}
			next := int32(1001)
			var members []int32
			for l := 0; l < tc.lines; l++ {
				p := tc.adopter
				born := first + time.Duration(l)*tc.spacing
				for i := 0; i < tc.line.size; i++ {
					procs = append(procs, lineage.Proc{PID: next, PPID: p, Born: born, Comm: tc.line.comm})
					members = append(members, next)
					if i < tc.line.chain {
						p = next
					}
					next++
				}
			}
			// A lone copy started with the lines, which is the bomb's; one
			// started 2 s after the last line, and a job shell with its
			// own, which are not.
			last := first + time.Duration(tc.lines-1)*tc.spacing
			procs = append(procs, lineage.Proc{PID: next, PPID: tc.adopter, Born: first, Comm: tc.line.comm},
				lineage.Proc{PID: next + 1, PPID: tc.adopter, Born: last + 2*time.Second, Comm: tc.line.comm},
				lineage.Proc{PID: next + 2, PPID: tc.adopter, Born: first, Comm: sh},
				lineage.Proc{PID: next + 3, PPID: next + 2, Born: first, Comm: sh})
			members = append(members, next)
			var scope []int
			for _, p := range procs {
				if p.PID > 1000 {
					scope = append(scope, int(p.PID))
				}
			}
			rec := lineage.New(lineage.Config{})
			rec.Reconcile(procs, now)
			in := Input{Lineage: rec, Now: now, Scope: NewPIDSet(scope)}
			v := New(Config{}).Detect(in, nil)
			if !tc.bomb {
				if len(v) > 0 {
					t.Fatalf("false positive: %+v", v[0])
				}
				return
			}
			if len(v) != 1 {
				t.Fatalf("%d verdicts, want one on the %d lines together: %+v", len(v), tc.lines, v)
			}
			if got := verdictMembers(rec, v[0], in.Scope); !slices.Equal(got, members) {
				t.Errorf("members: %d, want the %d of the lines and the lone copy %d (not the later one %d nor the job shells)",
					len(got), len(members), next, next+1)
			}
			if len(v[0].Siblings) != tc.lines || v[0].Live != len(members) || v[0].Clones != tc.line.chain+1 {
				t.Errorf("verdict %d siblings, %d live, %d clone generations; want %d (lines and the lone copy), %d, %d",
					len(v[0].Siblings), v[0].Live, v[0].Clones, tc.lines, len(members), tc.line.chain+1)
			}
		})
	}
}
