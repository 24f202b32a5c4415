package kmemguard

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/policy/kmembudget"
)

func TestParseBudget(t *testing.T) {
	tests := []struct {
		in   string
		want Budget
		err  string
	}{
		{"/sys/fs/cgroup/memory/jobs/*=64M:kill-heaviest", Budget{Pattern: "/sys/fs/cgroup/memory/jobs/*", Max: 64 << 20, Action: kmembudget.KillHeaviest}, ""},
		{"/a/b/=1G:kill-cgroup", Budget{Pattern: "/a/b", Max: 1 << 30, Action: kmembudget.KillCgroup}, ""},
		{"jobs=123456:report", Budget{Pattern: "jobs", Max: 123456, Action: kmembudget.Report}, ""},
		{"/a", Budget{}, "want DIR=SIZE:ACTION"},
		{"=64M:report", Budget{}, "no cgroup directory"},
		{"/a=64M", Budget{}, "want SIZE:ACTION"},
		{"/a=64Q:report", Budget{}, "size \"64Q\""},
		{"/a=0:report", Budget{}, "above 0"},
		{"/a=64M:kill", Budget{}, "kill-heaviest, kill-cgroup or report"},
	}
	for _, tt := range tests {
		got, err := ParseBudget(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("ParseBudget(%q) err = %v, want one containing %q and the input", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseBudget(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	scope := cgroupfs.Cgroup{Path: "/sys/fs/cgroup/memory/scope", Version: cgroupfs.V1}
	b := func(s string) Budget {
		bb, err := ParseBudget(s)
		if err != nil {
			t.Fatal(err)
		}
		return bb
	}
	if _, err := New(Config{}, nil, nil); err == nil {
		t.Errorf("no budgets: no error")
	}
	if _, err := New(Config{Budgets: []Budget{b("jobs=1M:report")}}, nil, nil); err == nil {
		t.Errorf("relative budget without scope: no error")
	}
	if _, err := New(Config{Scopes: []cgroupfs.Cgroup{scope}, Budgets: []Budget{b("/sys/fs/cgroup/memory/other=1M:report")}}, nil, nil); err == nil || !strings.Contains(err.Error(), "outside every --scope") {
		t.Errorf("budget outside the scope: err = %v", err)
	}
	g, err := New(Config{Scopes: []cgroupfs.Cgroup{scope}, Budgets: []Budget{b("jobs/*=1M:report")}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := g.cfg.Budgets[0].Pattern; got != "/sys/fs/cgroup/memory/scope/jobs/*" {
		t.Errorf("relative budget resolved to %q", got)
	}
	if g.cfg.Interval != DefaultInterval || g.cfg.Interval > 250*time.Millisecond {
		t.Errorf("default interval %v", g.cfg.Interval)
	}
}

// TestCheckIgnoresMissingAndForeign: budgets naming nothing, or non-cgroup
// directories, are polled without error or action.
func TestCheckIgnoresMissing(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "x"), 0o755)
	g, err := New(Config{Budgets: []Budget{{Pattern: dir + "/*", Max: 1, Action: kmembudget.KillCgroup},
		{Pattern: "/nonexistent/oomguard", Max: 1, Action: kmembudget.KillCgroup}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.Check(context.Background(), time.Now())
	if len(g.targets) != 0 || len(g.Report()) != 0 {
		t.Errorf("targets %v, report %v", g.targets, g.Report())
	}
}

func FuzzParseBudget(f *testing.F) {
	for _, s := range []string{"/a/*=64M:kill-heaviest", "jobs=1G:report", "/a=0:report", "=:", "/a=64M"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBudget(s)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Errorf("error %q does not quote the input %q", err, s)
			}
			return
		}
		if b.Max == 0 || b.Pattern == "" {
			t.Errorf("ParseBudget(%q) = %+v", s, b)
		}
		if _, err := kmembudget.ParseAction(string(b.Action)); err != nil {
			t.Errorf("ParseBudget(%q) action %q", s, b.Action)
		}
	})
}
