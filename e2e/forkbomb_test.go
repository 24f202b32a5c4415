package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/testbed"
)

// TestDaemonContainsForkBomb: `oomguard daemon --scope PIDS_CGROUP` catches
// a bash bomb whose parents exit at once, leaves nothing of it alive and
// touches no bystander; `oomguard tree` shows the family hanging from its
// dead root while it lives.
func TestDaemonContainsForkBomb(t *testing.T) {
	bystanders := testbed.New(t, testbed.Options{PidsMax: 20})
	by := bystanders.Start("sleep", "600")
	byFD := waitForChildOf(t, bystanders, by.Process.Pid)
	byPID := byFD.PID()

	g := testbed.New(t, testbed.Options{PidsMax: 2000})
	d := startDaemon(t, "--scope", g.Pids.Path)
	bomb := g.Command("timeout", "60", "bash", "-c", "b(){ b|b & }; b")
	begin := time.Now()
	if err := bomb.Start(); err != nil {
		t.Fatal(err)
	}
	if !d.waitLog(20*time.Second, regexpOf(`contain`)) {
		t.Fatalf("no containment logged; log:\n%s", d.Log())
	}
	if !g.WaitProcs(10*time.Second, func(p []int) bool { return len(p) == 0 }) {
		t.Fatalf("%d bomb processes survived; log:\n%s", len(g.Procs()), d.Log())
	}
	t.Logf("bomb contained and gone %v after start; log:\n%s", time.Since(begin), d.Log())
	if !alive(t, byFD) {
		t.Fatalf("bystander %d in a sibling cgroup was killed", byPID)
	}
	out, stderr, code := oomguard(t, "status", "--socket", d.socket, "--json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var st struct {
		Actions []struct {
			Kind    string `json:"kind"`
			Trigger string `json:"trigger"`
		} `json:"actions"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	found := false
	for _, a := range st.Actions {
		found = found || a.Trigger == "forkbomb"
	}
	if !found {
		t.Fatalf("status lists no fork-bomb action: %s", out)
	}
}

// TestTreeShowsDeadRoot: in dry-run the bomb lives (confined by pids.max),
// and `oomguard tree --json` shows live members whose recorded ancestors
// are dead.
func TestTreeShowsDeadRoot(t *testing.T) {
	g := testbed.New(t, testbed.Options{PidsMax: 300})
	d := startDaemon(t, "--scope", g.Pids.Path, "--dry-run")
	bomb := g.Command("timeout", "60", "bash", "-c", "b(){ b|b & }; b")
	if err := bomb.Start(); err != nil {
		t.Fatal(err)
	}
	if !g.WaitProcs(20*time.Second, func(p []int) bool { return len(p) >= 250 }) {
		t.Fatalf("bomb did not grow: %d processes", len(g.Procs()))
	}
	out, stderr, code := oomguard(t, "tree", "--socket", d.socket, "--json")
	if code != 0 {
		t.Fatalf("tree: exit %d: %s", code, stderr)
	}
	var tree struct {
		Nodes []struct {
			PID   int    `json:"pid"`
			PPID  int    `json:"ppid"`
			Comm  string `json:"comm"`
			Alive bool   `json:"alive"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &tree); err != nil {
		t.Fatalf("tree --json: %v\n%.2000s", err, out)
	}
	alive := map[int]bool{}
	for _, n := range tree.Nodes {
		alive[n.PID] = n.Alive
	}
	orphans := 0
	for _, n := range tree.Nodes {
		if n.Alive && n.Comm == "bash" {
			if a, known := alive[n.PPID]; known && !a {
				orphans++
			}
		}
	}
	if orphans < 10 {
		t.Fatalf("want live bash members whose recorded parent is dead, found %d in %d nodes; log:\n%s", orphans, len(tree.Nodes), d.Log())
	}
	if err := g.KillAll(); err != nil {
		t.Fatal(err)
	}
}

// The kernel-side event filter is off unless the configuration asks for
// it, and forkbomb.kernel_filter reaches the proc connector.
func TestKernelFilterSetting(t *testing.T) {
	g := testbed.New(t, testbed.Options{PidsMax: 100})
	for _, c := range []struct {
		config string
		want   string
	}{
		{"", "filter=false"},
		{"[forkbomb]\nkernel_filter = true\n", "filter=true"},
	} {
		args := []string{"--scope", g.Pids.Path, "--no-dbus"}
		if c.config != "" {
			path := filepath.Join(t.TempDir(), "oomguard.toml")
			if err := os.WriteFile(path, []byte(c.config), 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--config", path)
		}
		d := startDaemon(t, args...)
		if !d.waitLog(10*time.Second, regexp.MustCompile(`forkguard: watching.* `+c.want)) {
			t.Errorf("config %q: no %q in the guard's start line; log:\n%s", c.config, c.want, d.Log())
		}
		d.stop()
	}
}
