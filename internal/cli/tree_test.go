package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oomguard/oomguard/internal/control"
	"github.com/oomguard/oomguard/internal/forkguard"
)

func TestTreeNoDaemon(t *testing.T) {
	var out, errb bytes.Buffer
	sock := filepath.Join(t.TempDir(), "none.sock")
	code := Run(context.Background(), []string{"tree", "--socket", sock}, Env{Stdout: &out, Stderr: &errb})
	if code == 0 || !strings.Contains(errb.String(), "no daemon is running there") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

func TestTreeOutput(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	srv := control.NewServer(nil)
	var gotScope string
	srv.Handle("tree", func(ctx context.Context, p json.RawMessage) (any, error) {
		var tp forkguard.TreeParams
		json.Unmarshal(p, &tp)
		gotScope = tp.Scope
		return forkguard.TreeResult{Nodes: []forkguard.Node{
			{ID: 3, PID: 10, PPID: 1, Comm: "bash", AgeSeconds: 5},
			{ID: 4, Parent: 3, PID: 11, PPID: 10, Comm: "bash", Alive: true, AgeSeconds: 4},
			{ID: 5, Parent: 4, PID: 11, PPID: 10, Comm: "sleep", Alive: true, Exec: true, AgeSeconds: 4},
			// A child that exec'd and exited before its name was read.
			{ID: 6, Parent: 4, PID: 12, PPID: 11, Comm: "bash", CommGuessed: true, Exec: true, AgeSeconds: 3},
		}}, nil
	})
	l, err := control.Listen(sock, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, l)
	var out, errb bytes.Buffer
	if code := Run(ctx, []string{"tree", "--socket", sock, "--scope", "/x"}, Env{Stdout: &out, Stderr: &errb}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := "10 bash (dead)  ppid=1 age=5.0s\n  11 bash  ppid=10 age=4.0s\n    11 sleep [exec]  ppid=10 age=4.0s\n    12 bash? [exec] (dead)  ppid=11 age=3.0s\n"
	if out.String() != want || gotScope != "/x" {
		t.Fatalf("got %q (scope %q), want %q", out.String(), gotScope, want)
	}
	out.Reset()
	if code := Run(ctx, []string{"tree", "--socket", sock, "--json"}, Env{Stdout: &out, Stderr: &errb}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var m map[string][]map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || len(m["nodes"]) != 4 {
		t.Fatalf("json %q: %v", out.String(), err)
	}
	n := m["nodes"][0]
	if n["pid"] != 10.0 || n["ppid"] != 1.0 || n["comm"] != "bash" || n["alive"] != false || n["comm_guessed"] != nil {
		t.Fatalf("node %v", n)
	}
	if n := m["nodes"][3]; n["pid"] != 12.0 || n["comm_guessed"] != true {
		t.Fatalf("node %v, want pid 12 with comm_guessed", n)
	}
}
