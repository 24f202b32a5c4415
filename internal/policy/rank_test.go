package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	kiB = 1024
	miB = 1024 * kiB
	giB = 1024 * miB
)

// loadSnap reads a recorded snapshot from testdata.
func loadSnap(t *testing.T, name string) *Snapshot {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("testdata/%s: %v", name, err)
	}
	return &s
}

// pages converts bytes to 4 KiB pages.
func pages(b uint64) int64 { return int64(b / 4096) }

// row is the part of a Candidate the ranking tables compare.
type row struct {
	PIDs      []int
	Victim    int
	Badness   int64
	Protected bool
	Skipped   bool
}

func rows(cs []Candidate) []row {
	out := make([]row, len(cs))
	for i, c := range cs {
		out[i] = row{c.PIDs, c.Victim, c.Badness, c.Protected, c.Skipped}
	}
	return out
}

func proc(s *Snapshot, pid int) *Process {
	for i := range s.Processes {
		if s.Processes[i].PID == pid {
			return &s.Processes[i]
		}
	}
	panic("no such pid in fixture")
}

func res(exprs ...string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(exprs))
	for i, e := range exprs {
		out[i] = regexp.MustCompile(e)
	}
	return out
}

func TestRank(t *testing.T) {
	// desktop.json: MemTotal 16 GiB + SwapTotal 2 GiB = 4718592 pages.
	const deskPerMille = 4718592 / 1000
	deskDefault := []row{
		{[]int{2100}, 2100, pages(653*miB) + 233*deskPerMille, false, false},
		{[]int{3100}, 3100, pages(1536 * miB), false, false},
		{[]int{2000}, 2000, pages(1004 * miB), false, false},
		{[]int{1200}, 1200, pages(452 * miB), false, false},
		{[]int{900}, 900, pages(191 * miB), false, false},
		{[]int{3001}, 3001, pages(30 * miB), false, false},
		{[]int{3000}, 3000, pages(5 * miB), false, false},
		{[]int{1}, 1, pages(12 * miB), true, false},
		{[]int{812}, 812, pages(6 * miB), true, false},
		// Kernel threads tie at 0: the younger (kworker) first.
		{[]int{45}, 45, 0, true, false},
		{[]int{2}, 2, 0, true, false},
		{[]int{400}, 400, pages(8*miB) - 1000*deskPerMille, true, false},
	}
	reorder := func(base []row, pids ...int) []row {
		var out []row
		for _, p := range pids {
			for _, r := range base {
				if r.Victim == p {
					out = append(out, r)
				}
			}
		}
		return out
	}
	tests := []struct {
		name    string
		fixture string
		rules   Rules
		mutate  func(*Snapshot)
		want    []row
		reasons map[int]string // victim (or first) PID -> substring of its reason
	}{
		{
			name: "desktop default", fixture: "desktop.json", want: deskDefault,
			reasons: map[int]string{
				2100: "+ oom_score_adj 233 × 4718 (totalpages 4718592/1000)",
				1:    "protected: PID 1 (systemd) is PID 1 (global init)",
				2:    "protected: PID 2 (kthreadd) is a kernel thread",
				812:  "protected: PID 812 (oomguard) is oomguard itself",
				400:  "protected: PID 400 (sshd) has oom_score_adj -1000",
			},
		},
		{
			// Its command line blocked (mmap_lock): rules.protect could
			// name it by its executable, so it waits for that read.
			name: "an unread command line is not judged while protect names exist", fixture: "desktop.json",
			rules:  Rules{Protected: []string{"nothing-here"}},
			mutate: func(s *Snapshot) { unread(s, 3100) },
			want: func() []row {
				out := reorder(deskDefault, 2100, 2000, 1200, 900, 3001, 3000, 3100, 1, 812, 45, 2, 400)
				out[6].Skipped = true
				return out
			}(),
			reasons: map[int]string{
				3100: "skipped: PID 3100 (cc1plus) has a command line that could not be read yet",
			},
		},
		{
			name: "an unread command line is not judged while ignore rules exist", fixture: "desktop.json",
			rules:  Rules{Ignore: res(`^nothing-here$`)},
			mutate: func(s *Snapshot) { unread(s, 3100) },
			want: func() []row {
				out := reorder(deskDefault, 2100, 2000, 1200, 900, 3001, 3000, 3100, 1, 812, 45, 2, 400)
				out[6].Skipped = true
				return out
			}(),
		},
		{
			name: "an unread command line is not judged while avoid rules exist", fixture: "desktop.json",
			rules:  Rules{Avoid: res(`^nothing-here$`)},
			mutate: func(s *Snapshot) { unread(s, 3100) },
			want: func() []row {
				out := reorder(deskDefault, 2100, 2000, 1200, 900, 3001, 3000, 3100, 1, 812, 45, 2, 400)
				out[6].Skipped = true
				return out
			}(),
		},
		{
			// Past scan.CmdlineHold the scanner reads its executable: the
			// rules judge it by that, argv[0] being its base name.
			name: "an unread command line is judged by the executable once read", fixture: "desktop.json",
			rules: Rules{Protected: []string{"compiler"}},
			mutate: func(s *Snapshot) {
				p := proc(s, 3100)
				p.Cmdline, p.CmdlineUnread, p.Exe = "", true, "/usr/libexec/compiler"
			},
			want: func() []row {
				out := reorder(deskDefault, 2100, 2000, 1200, 900, 3001, 3000, 3100, 1, 812, 45, 2, 400)
				out[6].Protected = true
				return out
			}(),
			reasons: map[int]string{
				3100: `protected: PID 3100 (cc1plus) is named "compiler" in the protected list`,
			},
		},
		{
			name: "an ignore rule matches the executable of an unread command line", fixture: "desktop.json",
			rules: Rules{Ignore: res(`^/usr/libexec/`)},
			mutate: func(s *Snapshot) {
				p := proc(s, 3100)
				p.Cmdline, p.CmdlineUnread, p.Exe = "", true, "/usr/libexec/compiler"
			},
			want: func() []row {
				out := reorder(deskDefault, 2100, 2000, 1200, 900, 3001, 3000, 3100, 1, 812, 45, 2, 400)
				out[6].Skipped = true
				return out
			}(),
			reasons: map[int]string{
				3100: `ignored: PID 3100 (cc1plus) matches --ignore "^/usr/libexec/"`,
			},
		},
		{
			// With no rule that could name it, nothing is left unknown:
			// its badness alone decides, as for any process.
			name: "an unread command line changes nothing without protect or ignore rules", fixture: "desktop.json",
			rules:  Rules{Prefer: res(`^vim$`)},
			mutate: func(s *Snapshot) { unread(s, 3100) },
			want:   reorder(deskDefault, 3001, 2100, 3100, 2000, 1200, 900, 3000, 1, 812, 45, 2, 400),
		},
		{
			// Protected by its comm, it stays protected, not skipped.
			name: "an unread command line of a process protected by comm", fixture: "desktop.json",
			rules:  Rules{Protected: []string{"cc1plus"}},
			mutate: func(s *Snapshot) { unread(s, 3100) },
			want: func() []row {
				out := reorder(deskDefault, 2100, 2000, 1200, 900, 3001, 3000, 3100, 1, 812, 45, 2, 400)
				out[6].Protected = true
				return out
			}(),
			reasons: map[int]string{
				3100: `protected: PID 3100 (cc1plus) is named "cc1plus" in the protected list`,
			},
		},
		{
			name: "prefer moves a small process to the front", fixture: "desktop.json",
			rules: Rules{Prefer: res(`^vim$`)},
			want:  reorder(deskDefault, 3001, 2100, 3100, 2000, 1200, 900, 3000, 1, 812, 45, 2, 400),
			reasons: map[int]string{
				3001: `preferred: PID 3001 (vim) matches --prefer "^vim$"`,
			},
		},
		{
			name: "avoid matches the cmdline and moves groups to the back", fixture: "desktop.json",
			rules: Rules{Avoid: res(`/firefox`)},
			want:  reorder(deskDefault, 3100, 1200, 900, 3001, 3000, 2100, 2000, 1, 812, 45, 2, 400),
			reasons: map[int]string{
				2100: `avoided: PID 2100 (Isolated Web Co) matches --avoid "/firefox"`,
			},
		},
		{
			name: "prefer and avoid on one group: preferred, behind other preferred", fixture: "desktop.json",
			rules: Rules{Prefer: res(`^(vim|firefox)$`), Avoid: res(`^firefox$`)},
			want:  reorder(deskDefault, 3001, 2000, 2100, 3100, 1200, 900, 3000, 1, 812, 45, 2, 400),
		},
		{
			name: "ignore skips a group with a reason", fixture: "desktop.json",
			rules: Rules{Ignore: res(`^Xorg$`)},
			want: func() []row {
				r := reorder(deskDefault, 2100, 3100, 2000, 1200, 3001, 3000, 900, 1, 812, 45, 2, 400)
				r[6].Skipped = true
				return r
			}(),
			reasons: map[int]string{900: `skipped: ignored: PID 900 (Xorg) matches --ignore "^Xorg$"`},
		},
		{
			name: "configured protected name", fixture: "desktop.json",
			rules: Rules{Protected: []string{"gnome-shell"}},
			want: func() []row {
				r := reorder(deskDefault, 2100, 3100, 2000, 900, 3001, 3000, 1200, 1, 812, 45, 2, 400)
				r[6].Protected = true
				return r
			}(),
			reasons: map[int]string{1200: `protected: PID 1200 (gnome-shell) is named "gnome-shell" in the protected list`},
		},
		{
			name: "kill-cgroup mode protects groups sharing a cgroup with a protected process", fixture: "desktop.json",
			rules: Rules{KillCgroup: true},
			mutate: func(s *Snapshot) {
				proc(s, 3100).Cgroup = "/user.slice/build"
			},
			want: func() []row {
				// Everything but 3100 is in "/" with PID 1: protected, and
				// ordered by badness among the protected.
				r := reorder(deskDefault, 3100, 2100, 2000, 1200, 900, 3001, 1, 812, 3000, 45, 2, 400)
				for i := 1; i < len(r); i++ {
					r[i].Protected = true
				}
				return r
			}(),
			reasons: map[int]string{
				2100: "protected: kill-cgroup mode and cgroup / also holds PID 1 (systemd) which is PID 1",
			},
		},
		{
			// Its cgroup would be killed with it: a member whose
			// protection is not known yet holds it up too.
			name: "kill-cgroup mode waits on a cgroup that holds an unjudged process", fixture: "desktop.json",
			rules: Rules{KillCgroup: true, Protected: []string{"nothing-here"}},
			mutate: func(s *Snapshot) {
				proc(s, 3100).Cgroup = "/user.slice/build"
				proc(s, 3001).Cgroup = "/user.slice/build"
				p := proc(s, 3001)
				p.Cmdline, p.CmdlineUnread = "", true
			},
			want: func() []row {
				r := reorder(deskDefault, 3100, 3001, 2100, 2000, 1200, 900, 1, 812, 3000, 45, 2, 400)
				r[0].Skipped, r[1].Skipped = true, true
				for i := 2; i < len(r); i++ {
					r[i].Protected = true
				}
				return r
			}(),
			reasons: map[int]string{
				3100: "skipped: kill-cgroup mode and cgroup /user.slice/build also holds PID 3001 (vim), which cannot be judged yet",
				3001: "skipped: PID 3001 (vim) has a command line that could not be read yet",
			},
		},
		{
			// totalpages is the scope's limit: 256 MiB = 65536 pages.
			name: "scope hog and bystander", fixture: "scope_hog.json",
			want: []row{
				{[]int{5002}, 5002, pages(230*miB + 480*kiB), false, false},
				{[]int{5001}, 5001, pages(20*miB + 64*kiB), false, false},
				{[]int{5000}, 5000, pages(2 * miB), false, false},
			},
		},
		{
			name: "oom_score_adj scales with the scope limit", fixture: "scope_hog.json",
			mutate: func(s *Snapshot) {
				proc(s, 5001).OOMScoreAdj = 1000 // +1000 × 65 pages
			},
			want: []row{
				{[]int{5001}, 5001, pages(20*miB+64*kiB) + 1000*65, false, false},
				{[]int{5002}, 5002, pages(230*miB + 480*kiB), false, false},
				{[]int{5000}, 5000, pages(2 * miB), false, false},
			},
		},
		{
			// The CLONE_VM pair counts its 400 MiB once (summed it would
			// outrank the 500 MiB worker).
			name: "CLONE_VM group counts its memory once", fixture: "clone_vm.json",
			want: []row{
				{[]int{6002}, 6002, pages(500*miB + 600*kiB), false, false},
				{[]int{6000, 6001}, 6000, pages(400*miB + 800*kiB), false, false},
			},
			reasons: map[int]string{6000: "one mm counted once for 2 sharers"},
		},
		{
			name: "CLONE_VM group with one member exiting is still chosen", fixture: "clone_vm.json",
			mutate: func(s *Snapshot) {
				proc(s, 6000).Exiting = true
				proc(s, 6002).RSS = 100 * miB
			},
			want: []row{
				{[]int{6001, 6000}, 6001, pages(400*miB + 800*kiB), false, false},
				{[]int{6002}, 6002, pages(100*miB + 600*kiB), false, false},
			},
		},
		{
			name: "CLONE_VM group all exiting is skipped", fixture: "clone_vm.json",
			mutate: func(s *Snapshot) {
				proc(s, 6000).Exiting = true
				proc(s, 6001).State = 'Z'
			},
			want: []row{
				{[]int{6002}, 6002, pages(500*miB + 600*kiB), false, false},
				{[]int{6000, 6001}, 6000, pages(400*miB + 800*kiB), false, true},
			},
			reasons: map[int]string{6000: "skipped: all 2 members are already exiting"},
		},
		{
			name: "vfork child is never the victim", fixture: "vfork.json",
			want: []row{
				{[]int{7000, 7001}, 7000, pages(50 * miB), false, false},
				{[]int{7200}, 7200, pages(10 * miB), false, false},
				{[]int{7100}, 0, pages(80 * miB), false, true},
			},
			reasons: map[int]string{
				7100: "skipped: only vfork children are left (7100); a vfork child is never chosen by itself",
			},
		},
		{
			name: "vfork child whose parent is exiting is skipped", fixture: "vfork.json",
			mutate: func(s *Snapshot) {
				proc(s, 7000).Exiting = true
			},
			want: []row{
				{[]int{7200}, 7200, pages(10 * miB), false, false},
				{[]int{7100}, 0, pages(80 * miB), false, true},
				{[]int{7000, 7001}, 7000, pages(50 * miB), false, true},
			},
		},
		{
			// totalpages 8 GiB = 2097152 pages.
			name: "protected groups name the member and why", fixture: "protected.json",
			rules: Rules{Protected: []string{"guard", "long-process-name-x"}},
			want: []row{
				{[]int{8200}, 8200, pages(100 * miB), false, false},
				{[]int{8000, 8001}, 8000, pages(902 * miB), true, false},
				{[]int{8301}, 8301, pages(300 * miB), true, false},
				{[]int{8300}, 8300, pages(200 * miB), true, false},
				{[]int{1, 8100}, 1, pages(4 * miB), true, false},
			},
			reasons: map[int]string{
				8000: "protected: PID 8001 (dbwriter) has oom_score_adj -1000 (the whole mm group of 2 is protected)",
				8301: `protected: PID 8301 (long-process-na) is named "long-process-name-x"`,
				8300: `protected: PID 8300 (guard) is named "guard"`,
				1:    "protected: PID 1 (init) is PID 1 (global init) (the whole mm group of 2 is protected)",
			},
		},
		{
			name: "ties: larger RSS, then younger, then lower PID", fixture: "ties.json",
			want: []row{
				{[]int{9003}, 9003, pages(100 * miB), false, false},
				{[]int{9004}, 9004, pages(100 * miB), false, false},
				{[]int{9001}, 9001, pages(100 * miB), false, false},
				{[]int{9005}, 9005, pages(100 * miB), false, false},
				{[]int{9002}, 9002, pages(100 * miB), false, false},
			},
			reasons: map[int]string{
				9004: "ties with PID 9003, which ranks first by lower PID",
				9001: "ties with PID 9004, which ranks first by younger (larger start time)",
				9005: "ties with PID 9001, which ranks first by larger RSS",
				9002: "ties with PID 9005, which ranks first by younger (larger start time)",
			},
		},
		{
			name: "ties are not reported across a badness difference", fixture: "ties.json",
			mutate: func(s *Snapshot) {
				proc(s, 9004).RSS = 99 * miB
			},
			want: []row{
				{[]int{9003}, 9003, pages(100 * miB), false, false},
				{[]int{9001}, 9001, pages(100 * miB), false, false},
				{[]int{9005}, 9005, pages(100 * miB), false, false},
				{[]int{9002}, 9002, pages(100 * miB), false, false},
				{[]int{9004}, 9004, pages(99 * miB), false, false},
			},
			reasons: map[int]string{
				9001: "ties with PID 9003, which ranks first by younger",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := loadSnap(t, tc.fixture)
			if tc.mutate != nil {
				tc.mutate(snap)
			}
			got := Rank(snap, tc.rules)
			if diff := cmp.Diff(tc.want, rows(got)); diff != "" {
				t.Errorf("ranking (-want +got):\n%s", diff)
			}
			for pid, sub := range tc.reasons {
				found := false
				for i := range got {
					if pidKey(&got[i]) == pid {
						found = true
						if !strings.Contains(got[i].Reason, sub) {
							t.Errorf("reason of PID %d = %q, want it to contain %q", pid, got[i].Reason, sub)
						}
					}
				}
				if !found {
					t.Errorf("no candidate for PID %d", pid)
				}
			}
			for i := range got {
				if got[i].Reason == "" {
					t.Errorf("candidate %v has no reason", got[i].PIDs)
				}
				for _, m := range got[i].Members {
					if m.VforkChild && got[i].Victim == m.PID {
						t.Errorf("vfork child %d reported as victim", m.PID)
					}
				}
			}
			if strings.Contains(tc.name, "ties") && tc.mutate == nil {
				if strings.Contains(got[0].Reason, "ties") {
					t.Errorf("first candidate's reason mentions a tie: %q", got[0].Reason)
				}
			}
		})
	}
}

// TestRankDoesNotModifySnapshot checks Rank treats the snapshot as read-only.
func TestRankDoesNotModifySnapshot(t *testing.T) {
	for _, f := range []string{"desktop.json", "vfork.json", "clone_vm.json", "protected.json"} {
		snap := loadSnap(t, f)
		before := loadSnap(t, f)
		Rank(snap, Rules{Prefer: res("a"), Protected: []string{"guard"}})
		if diff := cmp.Diff(before, snap); diff != "" {
			t.Errorf("%s: Rank modified the snapshot (-before +after):\n%s", f, diff)
		}
	}
}

// TestCandidateJSON checks the fields `oomguard ps --json` promises.
func TestCandidateJSON(t *testing.T) {
	b, err := json.Marshal(map[string]any{"candidates": Rank(loadSnap(t, "clone_vm.json"), Rules{})})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Candidates []map[string]any `json:"candidates"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Candidates) != 2 {
		t.Fatalf("got %d candidates, want 2: %s", len(doc.Candidates), b)
	}
	c := doc.Candidates[1]
	pids, ok := c["pids"].([]any)
	if !ok || len(pids) != 2 || pids[0] != 6000.0 || pids[1] != 6001.0 {
		t.Errorf(`"pids" = %#v, want [6000 6001]`, c["pids"])
	}
	if _, ok := c["badness"].(float64); !ok {
		t.Errorf(`"badness" = %#v, want a number`, c["badness"])
	}
	if p, ok := c["protected"].(bool); !ok || p {
		t.Errorf(`"protected" = %#v, want false`, c["protected"])
	}
	if r, ok := c["reason"].(string); !ok || r == "" {
		t.Errorf(`"reason" = %#v, want a non-empty string`, c["reason"])
	}
	if m, ok := c["members"].([]any); !ok || len(m) != 2 {
		t.Errorf(`"members" = %#v, want 2 members`, c["members"])
	}
}

// BenchmarkRank ranks 5,000 processes in 4,000 mm groups.
func BenchmarkRank(b *testing.B) {
	snap := &Snapshot{Memory: Memory{Total: 24 * giB}, SelfPID: 2}
	for i := range 5000 {
		mm := 100 + i
		if i%5 == 4 {
			mm = 100 + i - 1 // every fifth process shares its predecessor's mm
		}
		snap.Processes = append(snap.Processes, Process{PID: 100 + i, StartTime: uint64(i), Comm: "worker",
			Cmdline: "/usr/bin/worker --id", State: 'S', RSS: uint64(i%97) * miB, MMGroup: mm})
	}
	r := Rules{Prefer: res(`^nothing$`), Avoid: res(`^sshd$`), Protected: []string{"sshd"}}
	b.ReportAllocs()
	for b.Loop() {
		Rank(snap, r)
	}
}

// TestRankCountsCgroupKernelMemory: a pipe bomb holds 300 MiB of kernel
// memory in its cgroup and 8 MiB of RSS; an editor holds 64 MiB of RSS.
// Counted by RSS alone the editor would die (as the kernel's and earlyoom's
// choice did in the VM test bed); with its cgroup's kernel memory, the bomb
// is the victim, and the reason says why.
func TestRankCountsCgroupKernelMemory(t *testing.T) {
	snap := &Snapshot{
		Memory: Memory{Total: 457 * miB},
		Processes: []Process{
			{PID: 140, PPID: 100, Comm: "pipes", State: 'S', RSS: 8 * miB, MMGroup: 140, Cgroup: "/workload", CgroupKernel: 300 * miB},
			{PID: 120, PPID: 100, Comm: "editor", State: 'S', RSS: 64 * miB, MMGroup: 120, Cgroup: "/bystanders", CgroupKernel: 1 * miB},
			{PID: 121, PPID: 100, Comm: "shell", State: 'S', RSS: 16 * miB, MMGroup: 121, Cgroup: "/bystanders", CgroupKernel: 1 * miB},
		},
	}
	got := Rank(snap, Rules{})
	if got[0].Victim != 140 {
		t.Fatalf("victim %d (%s), want the pipe bomb 140", got[0].Victim, got[0].Reason)
	}
	if want := pages(308 * miB); got[0].Badness != want {
		t.Errorf("badness %d, want %d (RSS + cgroup kernel memory)", got[0].Badness, want)
	}
	if !strings.Contains(got[0].Reason, "+ kernel memory of its cgroup 307200 KiB") {
		t.Errorf("reason %q does not name the cgroup's kernel memory", got[0].Reason)
	}
	// Without the share, RSS alone picks the editor.
	for i := range snap.Processes {
		snap.Processes[i].CgroupKernel = 0
	}
	if got := Rank(snap, Rules{}); got[0].Victim != 120 {
		t.Errorf("without kernel memory the victim is %d, want the editor 120", got[0].Victim)
	}
}

// BenchmarkKillerDecideBesideKernelThreads is a kill decision on a small
// machine: 8 processes beside 52 kernel threads, as in bench/vm's guest.
// The killer does not rank the kernel threads (loneKernelThread).
func BenchmarkKillerDecideBesideKernelThreads(b *testing.B) {
	snap := &Snapshot{Memory: Memory{Total: 480 * miB, Available: 40 * miB}, SelfPID: 114, PageSize: 4096}
	for i := range 52 {
		snap.Processes = append(snap.Processes, Process{PID: 2 + i, PPID: 2, Comm: "kworker/0:1", State: 'I', KernelThread: true})
	}
	for i := range 8 {
		snap.Processes = append(snap.Processes, Process{PID: 100 + i, PPID: 1, StartTime: uint64(i), Comm: "vmtool",
			Cmdline: "/test/bin/vmtool hog", State: 'S', RSS: uint64(i+1) * 10 * miB, MMGroup: 100 + i, Cgroup: "/workload"})
	}
	v := Verdict{Level: LevelKill, Trigger: TriggerMemAvail, Scope: -1, Reason: "test"}
	b.ReportAllocs()
	for b.Loop() {
		NewKiller(KillConfig{}, Rules{}).Decide(snap, v, snap.Time)
	}
}
