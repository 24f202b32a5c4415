package kmemguard

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/policy/kmembudget"
)

func TestNewValidates(t *testing.T) {
	scope := cgroupfs.Cgroup{Path: "/sys/fs/cgroup/memory/scope", Version: cgroupfs.V1}
	b := func(pattern string) Budget { return Budget{Pattern: pattern, Max: 1 << 20, Action: kmembudget.Report} }
	if _, err := New(Config{}, nil, nil); err == nil {
		t.Errorf("no budgets: no error")
	}
	if _, err := New(Config{Budgets: []Budget{b("jobs")}}, nil, nil); err == nil {
		t.Errorf("relative budget without scope: no error")
	}
	if _, err := New(Config{Scopes: []cgroupfs.Cgroup{scope}, Budgets: []Budget{b("/sys/fs/cgroup/memory/other")}}, nil, nil); err == nil || !strings.Contains(err.Error(), "outside every --scope") {
		t.Errorf("budget outside the scope: err = %v", err)
	}
	g, err := New(Config{Scopes: []cgroupfs.Cgroup{scope}, Budgets: []Budget{b("jobs/*")}}, nil, nil)
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
