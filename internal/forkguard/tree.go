package forkguard

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/control"
	"github.com/oomguard/oomguard/internal/lineage"
)

// Node is one record of the lineage as `oomguard tree` shows it.
type Node struct {
	// ID names the record; Parent is the parent record's ID (0 for none).
	// Exec images of one process share its PID, so IDs, not PIDs, make
	// the tree.
	ID     int `json:"id"`
	Parent int `json:"parent"`
	PID    int `json:"pid"`
	// PPID is the recorded parent, even when it is dead.
	PPID int    `json:"ppid"`
	Comm string `json:"comm"`
	// CommGuessed tells that Comm is a guess, the previous image's or the
	// parent's name: the process exited before its own could be read.
	CommGuessed bool `json:"comm_guessed,omitempty"`
	// Alive is false for dead ancestors (and replaced exec images).
	Alive bool `json:"alive"`
	// Exec marks an image created by exec of its parent record's image.
	Exec bool `json:"exec,omitempty"`
	// Scanned marks a record learned from /proc, whose earlier ancestry
	// is unknown.
	Scanned bool `json:"scanned,omitempty"`
	// AgeSeconds is the time since the process was born.
	AgeSeconds float64 `json:"age_seconds"`
}

// Tree returns the lineage in pre-order, parents before children. A
// non-empty scope (a cgroup directory) keeps the live processes inside it
// and their ancestors, dead ones included.
func (g *Guard) Tree(scope string) ([]Node, error) {
	var in map[int32]bool
	if scope != "" {
		cg, err := cgroupfs.Open(scope)
		if err != nil {
			return nil, fmt.Errorf("tree: scope: %w", err)
		}
		in = map[int32]bool{}
		err = cg.Walk(func(c cgroupfs.Cgroup) error {
			pids, err := c.Procs()
			if err != nil && !os.IsNotExist(err) {
				return err
			}
			for _, p := range pids {
				in[int32(p)] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("tree: scope %s: %w", scope, err)
		}
	}
	t := now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var keep []bool
	if in != nil {
		keep = make([]bool, g.rec.Len())
		for id := lineage.ID(1); int(id) < g.rec.Len(); id++ {
			r := g.rec.Get(id)
			if r == nil || !r.Alive || !in[r.PID] {
				continue
			}
			for a := id; a > lineage.Root && !keep[a]; a = g.rec.Get(a).Parent {
				keep[a] = true
			}
		}
	}
	var nodes []Node
	g.rec.Walk(lineage.Root, func(id lineage.ID, _ int) bool {
		if id == lineage.Root {
			return true
		}
		if keep != nil && !keep[id] {
			return false
		}
		r := g.rec.Get(id)
		parent := int(r.Parent)
		nodes = append(nodes, Node{ID: int(id), Parent: parent, PID: int(r.PID), PPID: int(r.PPID),
			Comm: r.CommString(), CommGuessed: r.CommStale, Alive: r.Alive, Exec: r.Exec, Scanned: r.Scanned,
			AgeSeconds: (t - r.Born).Seconds()})
		return true
	})
	return nodes, nil
}

// TreeParams are the parameters of the control method "tree".
type TreeParams struct {
	Scope string `json:"scope,omitempty"`
}

// TreeResult is the result of the control method "tree".
type TreeResult struct {
	Nodes []Node `json:"nodes"`
}

// RegisterControl registers the control method "tree" (params TreeParams,
// result TreeResult) on srv.
func (g *Guard) RegisterControl(srv *control.Server) {
	srv.Handle("tree", func(ctx context.Context, params json.RawMessage) (any, error) {
		var p TreeParams
		if len(params) > 0 {
			if err := json.Unmarshal(params, &p); err != nil {
				return nil, fmt.Errorf("tree: bad params: %w", err)
			}
		}
		nodes, err := g.Tree(p.Scope)
		if err != nil {
			return nil, err
		}
		if nodes == nil {
			nodes = []Node{}
		}
		return TreeResult{Nodes: nodes}, nil
	})
}
