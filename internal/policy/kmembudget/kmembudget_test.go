package kmembudget

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseAction(t *testing.T) {
	for _, s := range []string{"kill-heaviest", "kill-cgroup", "report"} {
		if a, err := ParseAction(s); err != nil || string(a) != s {
			t.Errorf("ParseAction(%q) = %q, %v", s, a, err)
		}
	}
	if _, err := ParseAction("kill"); err == nil || !strings.Contains(err.Error(), "kill-heaviest, kill-cgroup or report") {
		t.Errorf("ParseAction(kill): %v", err)
	}
}

func TestValidateAndMatch(t *testing.T) {
	ok := Budget{Pattern: "/sys/fs/cgroup/memory/jobs/*", Max: 1 << 20, Action: Report}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, b := range []Budget{
		{Pattern: "jobs", Max: 1, Action: Report},
		{Pattern: "/a[", Max: 1, Action: Report},
		{Pattern: "/a", Max: 0, Action: Report},
		{Pattern: "/a", Max: 10, Low: 11, Action: Report},
		{Pattern: "/a", Max: 10, Action: "nuke"},
		{Pattern: "/a", Max: 10, Action: Report, Cooldown: -1},
	} {
		if err := b.Validate(); err == nil {
			t.Errorf("Validate(%+v): no error", b)
		}
	}
	for dir, want := range map[string]bool{
		"/sys/fs/cgroup/memory/jobs/a":   true,
		"/sys/fs/cgroup/memory/jobs/a/":  true,
		"/sys/fs/cgroup/memory/jobs":     false,
		"/sys/fs/cgroup/memory/jobs/a/b": false,
		"/sys/fs/cgroup/memory/other":    false,
	} {
		if got := ok.Matches(dir); got != want {
			t.Errorf("Matches(%q) = %v", dir, got)
		}
	}
	exact := Budget{Pattern: "/x/y/", Max: 1, Action: Report}
	if !exact.Matches("/x/y") {
		t.Errorf("exact pattern does not match its own directory")
	}
	if (Budget{Max: 1000}).LowMark() != 900 || (Budget{Max: 1000, Low: 100}).LowMark() != 100 {
		t.Errorf("LowMark defaults wrong")
	}
}

func TestTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := Budget{Pattern: "/cg", Max: 100, Low: 80, Action: KillHeaviest, Cooldown: 5 * time.Second}
	type step struct {
		at    time.Duration
		usage uint64
		act   bool // a decision is expected
		fail  uint64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"below budget never acts", []step{{0, 50, false, 0}, {time.Second, 100, false, 0}}},
		{"one spike acts once", []step{
			{0, 50, false, 0}, {100 * time.Millisecond, 150, true, 1},
			{200 * time.Millisecond, 160, false, 1}, // still the same breach
			{10 * time.Second, 140, false, 1},       // cooldown over, but not re-armed
			{11 * time.Second, 90, false, 1},        // below max, above low: still disarmed
			{12 * time.Second, 120, false, 1},       // so this is not a new breach
		}},
		// The band between the low mark (80) and the budget (100) is 20.
		{"a breach still growing after its decision acts again after the cooldown", []step{
			{0, 150, true, 1}, {time.Second, 175, false, 1}, // growing, but inside the cooldown
			{5 * time.Second, 165, false, 1},  // grew 15 since the decision: within the band
			{6 * time.Second, 172, true, 2},   // grew 22: another decision
			{12 * time.Second, 180, false, 2}, // grew 8 since that one
		}},
		{"re-arms below the low mark", []step{
			{0, 150, true, 1}, {6 * time.Second, 79, false, 1}, {7 * time.Second, 101, true, 2},
		}},
		{"a second breach inside the cooldown waits for it", []step{
			{0, 150, true, 1}, {time.Second, 10, false, 1}, {2 * time.Second, 150, false, 1},
			{4900 * time.Millisecond, 150, false, 1}, {5 * time.Second, 150, true, 2},
		}},
		{"a breach that ends inside the cooldown is dropped", []step{
			{0, 150, true, 1}, {time.Second, 10, false, 1}, {2 * time.Second, 150, false, 1},
			{3 * time.Second, 10, false, 1}, {6 * time.Second, 10, false, 1},
		}},
		{"exactly max is not a breach", []step{{0, 100, false, 0}, {time.Second, 101, true, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr Tracker
			for i, s := range tt.steps {
				d, act := tr.Observe(t0.Add(s.at), Observation{Cgroup: "/cg", Budget: b, Usage: s.usage,
					Breakdown: map[string]uint64{"pagetables": s.usage / 2}})
				if act != s.act {
					t.Fatalf("step %d (usage %d at %v): act = %v, want %v", i, s.usage, s.at, act, s.act)
				}
				st, _ := tr.State("/cg")
				if st.Failcnt != s.fail {
					t.Fatalf("step %d: failcnt %d, want %d", i, st.Failcnt, s.fail)
				}
				if act {
					want := Decision{Time: t0.Add(s.at), Cgroup: "/cg", Budget: b, Action: KillHeaviest, Usage: s.usage, Failcnt: s.fail,
						Breakdown: map[string]uint64{"pagetables": s.usage / 2}}
					if d := cmp.Diff(want, d, cmpIgnoreReason); d != "" {
						t.Errorf("step %d decision (-want +got):\n%s", i, d)
					}
					if !strings.Contains(d.Reason, "above its budget of 100 B") || !strings.Contains(d.Reason, "pagetables=") {
						t.Errorf("reason %q", d.Reason)
					}
				}
			}
		})
	}
}

var cmpIgnoreReason = cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Reason" }, cmp.Ignore())

func TestTrackerStates(t *testing.T) {
	var tr Tracker
	now := time.Unix(1000, 0)
	b := Budget{Pattern: "/a/*", Max: 10, Action: Report}
	tr.Observe(now, Observation{Cgroup: "/a/2", Budget: b, Usage: 5})
	tr.Observe(now, Observation{Cgroup: "/a/1", Budget: b, Usage: 20})
	tr.Observe(now, Observation{Cgroup: "/a/1", Budget: b, Usage: 15})
	st := tr.States()
	if len(st) != 2 || st[0].Cgroup != "/a/1" || st[0].Peak != 20 || st[0].Usage != 15 || st[0].Failcnt != 1 || st[0].Armed {
		t.Errorf("States = %+v", st)
	}
	tr.Forget("/a/1")
	if _, ok := tr.State("/a/1"); ok {
		t.Errorf("Forget kept the state")
	}
}

func TestHeaviest(t *testing.T) {
	tests := []struct {
		name string
		cs   []Candidate
		want int
		err  bool
	}{
		{"largest wins", []Candidate{{PID: 10, KernelMemory: 5}, {PID: 11, KernelMemory: 50}, {PID: 12, KernelMemory: 7}}, 11, false},
		{"tie goes to lower pid", []Candidate{{PID: 12, KernelMemory: 5}, {PID: 11, KernelMemory: 5}}, 11, false},
		{"pid 1 protected", []Candidate{{PID: 1, KernelMemory: 500}, {PID: 11, KernelMemory: 5}}, 11, false},
		{"self protected", []Candidate{{PID: 99, KernelMemory: 500}, {PID: 11, KernelMemory: 5}}, 11, false},
		{"-1000 protected", []Candidate{{PID: 20, OOMScoreAdj: -1000, KernelMemory: 500}, {PID: 11, KernelMemory: 5}}, 11, false},
		{"exiting skipped", []Candidate{{PID: 20, Exiting: true, KernelMemory: 500}, {PID: 11, KernelMemory: 5}}, 11, false},
		{"kernel thread skipped", []Candidate{{PID: 20, KernelThread: true, KernelMemory: 500}}, 0, true},
		{"configured name protected", []Candidate{{PID: 20, ProtectedBy: "protected name postgres", KernelMemory: 500}, {PID: 11, KernelMemory: 5}}, 11, false},
		{"none", nil, 0, true},
	}
	for _, tt := range tests {
		got, err := Heaviest(tt.cs, 99)
		if (err != nil) != tt.err || got.PID != tt.want {
			t.Errorf("%s: Heaviest = %d, %v", tt.name, got.PID, err)
		}
	}
}

func TestContenders(t *testing.T) {
	pids := func(cs []Candidate) []int {
		var out []int
		for _, c := range cs {
			out = append(out, c.PID)
		}
		return out
	}
	tests := []struct {
		name string
		cs   []Candidate
		want []int
	}{
		{"exact figures: only the heaviest", []Candidate{{PID: 10, KernelMemory: 50}, {PID: 11, KernelMemory: 5}}, []int{10}},
		{"a small upper bound cannot win", []Candidate{{PID: 10, KernelMemory: 50, UpperBound: 900}, {PID: 11, KernelMemory: 5, UpperBound: 49}}, []int{10}},
		{"an upper bound that reaches the best contends", []Candidate{{PID: 10, KernelMemory: 50}, {PID: 11, KernelMemory: 5, UpperBound: 60}}, []int{10, 11}},
		{"protected and exiting never contend", []Candidate{{PID: 1, KernelMemory: 500}, {PID: 12, Exiting: true, KernelMemory: 400},
			{PID: 10, KernelMemory: 50}, {PID: 11, KernelMemory: 5, UpperBound: 40}}, []int{10}},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		if got := pids(Contenders(tt.cs, 99)); !cmp.Equal(got, tt.want) {
			t.Errorf("%s: Contenders = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 64 << 20: "64.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestPure keeps the package free of I/O: no direct import of a package
// that does I/O, and no oomguard package outside policy.
func TestPure(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "os", p == "net", p == "syscall", p == "os/exec", p == "io/ioutil",
			strings.HasPrefix(p, "golang.org/x/sys"),
			strings.HasPrefix(p, "github.com/oomguard/oomguard/") && !strings.HasPrefix(p, "github.com/oomguard/oomguard/internal/policy"):
			t.Errorf("kmembudget imports %s", p)
		}
	}
}
