package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/oomguard/oomguard/internal/control"
	"github.com/oomguard/oomguard/internal/forkguard"
)

var cmdTree = &Command{
	Name:    "tree",
	Summary: "show the process lineage, dead ancestors included",
	Run:     runTree,
}

func runTree(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "tree", "[--socket PATH] [--json] [--scope CGROUP] [--timeout D]")
	socket := fs.String("socket", control.DefaultSocket, "control socket of the running daemon")
	asJSON := fs.Bool("json", false, `print one JSON object {"nodes": [...]}`)
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the daemon's answer (tens of thousands of processes on a slow machine can take longer)")
	scope := fs.String("scope", "", "show only the processes of this cgroup directory and their ancestors")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	var res forkguard.TreeResult
	callCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := control.Call(callCtx, *socket, "tree", forkguard.TreeParams{Scope: *scope}, &res); err != nil {
		return err
	}
	if res.Nodes == nil {
		res.Nodes = []forkguard.Node{}
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		return enc.Encode(res)
	}
	printTree(env.Stdout, res.Nodes)
	return nil
}

// printTree writes the nodes as an indented tree, oldest child first, with
// dead ancestors marked "(dead)" and exec images "[exec]".
func printTree(w io.Writer, nodes []forkguard.Node) {
	ids := make(map[int]bool, len(nodes))
	for _, n := range nodes {
		ids[n.ID] = true
	}
	kids := map[int][]forkguard.Node{}
	var roots []forkguard.Node
	for _, n := range nodes {
		if ids[n.Parent] {
			kids[n.Parent] = append(kids[n.Parent], n)
		} else {
			roots = append(roots, n)
		}
	}
	order := func(s []forkguard.Node) {
		sort.SliceStable(s, func(i, j int) bool { return s[i].AgeSeconds > s[j].AgeSeconds })
	}
	var walk func(n forkguard.Node, depth int)
	walk = func(n forkguard.Node, depth int) {
		var b strings.Builder
		b.WriteString(strings.Repeat("  ", depth))
		fmt.Fprintf(&b, "%d %s", n.PID, n.Comm)
		if n.CommGuessed {
			b.WriteString("?") // a guess: see Node.CommGuessed
		}
		if n.Exec {
			b.WriteString(" [exec]")
		}
		if !n.Alive {
			b.WriteString(" (dead)")
		}
		fmt.Fprintf(&b, "  ppid=%d age=%.1fs", n.PPID, n.AgeSeconds)
		if n.Scanned {
			b.WriteString(" scanned")
		}
		fmt.Fprintln(w, b.String())
		k := kids[n.ID]
		order(k)
		for _, c := range k {
			walk(c, depth+1)
		}
	}
	order(roots)
	for _, r := range roots {
		walk(r, 0)
	}
}
