package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/control"
	"github.com/oomguard/oomguard/internal/kmem/kmemtest"
	"github.com/oomguard/oomguard/internal/kmemguard"
	"github.com/oomguard/oomguard/internal/policy/kmembudget"
	"github.com/oomguard/oomguard/internal/testbed"
)

type kmemJSON struct {
	Cgroups []struct {
		Path          string  `json:"path"`
		Usage         *uint64 `json:"usage"`
		MaxUsage      *uint64 `json:"max_usage"`
		Limit         *uint64 `json:"limit"`
		Failcnt       *uint64 `json:"failcnt"`
		FailcntSource string  `json:"failcnt_source"`
		Breakdown     map[string]struct {
			Bytes    *uint64 `json:"bytes"`
			Count    *uint64 `json:"count"`
			Accuracy string  `json:"accuracy"`
		} `json:"breakdown"`
		Processes []struct {
			PID        int    `json:"pid"`
			PageTables uint64 `json:"pagetables"`
			Accuracy   map[string]string
		} `json:"processes"`
		Error string `json:"error"`
	} `json:"cgroups"`
}

func runKmemCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"kmem"}, args...), Env{Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), code
}

// TestKmemCLIReportsGrowth: `oomguard kmem --json DIR` shows the kernel
// memory a process inflated, by kind; then, with a daemon answering on the
// socket, its budget and breach count.
func TestKmemCLIReportsGrowth(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 512 << 20})
	nosock := filepath.Join(t.TempDir(), "none.sock")
	read := func(args ...string) kmemJSON {
		t.Helper()
		out, errs, code := runKmemCLI(t, append([]string{"--json", "--socket", nosock}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var r kmemJSON
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("bad JSON %v:\n%s", err, out)
		}
		if len(r.Cgroups) != 1 || r.Cgroups[0].Path != g.Memory.Path {
			t.Fatalf("cgroups %+v", r.Cgroups)
		}
		return r
	}
	before := read(g.Memory.Path)
	in := kmemtest.Start(t, g, kmemtest.Spec{Files: 10000, Pipes: 1000, PipeData: 4096, Maps: 3000, Threads: 100})
	in.WaitReady(t, 60*time.Second)
	after := read(g.Memory.Path)
	b, a := before.Cgroups[0], after.Cgroups[0]
	if a.Usage == nil || *a.Usage < *b.Usage+20<<20 {
		t.Errorf("usage %v -> %v, want +20 MiB", *b.Usage, a.Usage)
	}
	if a.Limit != nil || a.Failcnt == nil || *a.Failcnt != 0 || a.FailcntSource != "kernel memory.kmem.failcnt" || a.MaxUsage == nil {
		t.Errorf("without a daemon: limit %v failcnt %v (%s) max %v", a.Limit, a.Failcnt, a.FailcntSource, a.MaxUsage)
	}
	want := map[string]struct {
		min uint64
		acc string
	}{
		"pagetables":   {3000 * 4096, "exact"},
		"kernel_stack": {100 * 16384, "estimate"},
		"pipes":        {1000 * 4096, "estimate"},
		"unattributed": {10000 * 700, "estimate"},
		"kmem":         {20 << 20, "exact"},
	}
	for k, w := range want {
		got, ok := a.Breakdown[k]
		if !ok || got.Bytes == nil || *got.Bytes < w.min || got.Accuracy != w.acc {
			t.Errorf("breakdown %s = %+v, want >= %d, %s", k, got, w.min, w.acc)
		}
	}
	if len(a.Processes) == 0 || a.Processes[0].PageTables < 3000*4096 || a.Processes[0].Accuracy["pagetables"] != "exact" {
		t.Errorf("processes %+v", a.Processes)
	}

	// Human output: the tree under our own memory cgroup shows the group.
	out, errs, code := runKmemCLI(t, "--socket", nosock, "--root", filepath.Dir(g.Memory.Path), "--top", "50")
	if code != 0 || !strings.Contains(out, filepath.Base(g.Memory.Path)) || !strings.Contains(out, "MiB") {
		t.Errorf("tree (exit %d, %s):\n%s", code, errs, out)
	}
	out, _, _ = runKmemCLI(t, "--socket", nosock, g.Memory.Path)
	for _, s := range []string{"pagetables", "exact", "estimate", "unattributed", "no daemon answered"} {
		if !strings.Contains(out, s) {
			t.Errorf("detail lacks %q:\n%s", s, out)
		}
	}

	// A daemon with a report budget on the group: limit and failcnt come
	// from it.
	guard, err := kmemguard.New(kmemguard.Config{Scopes: []cgroupfs.Cgroup{g.Memory},
		Budgets: []kmemguard.Budget{{Pattern: g.Memory.Path, Max: 8 << 20, Action: kmembudget.Report}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := control.NewServer(nil)
	guard.RegisterControl(srv)
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := control.Listen(sock, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx, l)
	guard.Check(ctx, time.Now())
	out, errs, code = runKmemCLI(t, "--json", "--socket", sock, g.Memory.Path)
	var r kmemJSON
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("exit %d %s:\n%s", code, errs, out)
	}
	c := r.Cgroups[0]
	if c.Limit == nil || *c.Limit != 8<<20 || c.Failcnt == nil || *c.Failcnt != 1 || c.FailcntSource != "daemon" {
		t.Errorf("with daemon: limit %v failcnt %v (%s)", c.Limit, c.Failcnt, c.FailcntSource)
	}
}

func TestKmemCLIErrors(t *testing.T) {
	nosock := filepath.Join(t.TempDir(), "none.sock")
	if _, errs, code := runKmemCLI(t, "--top", "0"); code != 2 {
		t.Errorf("--top 0: exit %d %s", code, errs)
	}
	out, errs, code := runKmemCLI(t, "--json", "--socket", nosock, "/nonexistent/cgroup")
	if code != 1 || !strings.Contains(errs, "/nonexistent/cgroup") {
		t.Errorf("missing cgroup: exit %d, stderr %q", code, errs)
	}
	var r kmemJSON
	if json.Unmarshal([]byte(out), &r) != nil || len(r.Cgroups) != 1 || r.Cgroups[0].Error == "" || r.Cgroups[0].Usage != nil {
		t.Errorf("missing cgroup JSON:\n%s", out)
	}
}
