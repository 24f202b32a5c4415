package kmem

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
)

// Slab is one cache of /proc/slabinfo.
type Slab struct {
	Name string `json:"name"`
	// ActiveObjs and NumObjs are the objects in use and allocated.
	ActiveObjs uint64 `json:"active_objs"`
	NumObjs    uint64 `json:"num_objs"`
	// ObjSize is the object size in bytes.
	ObjSize uint64 `json:"objsize"`
	// Bytes is the memory of the cache's slabs: num_slabs × pagesperslab
	// pages.
	Bytes uint64 `json:"bytes"`
}

// Slabinfo is the system-wide slab usage, the only per-cache view this
// kernel gives (v1 memory.kmem.slabinfo is empty on current kernels). It is
// context for a cgroup's figures, not part of them.
type Slabinfo struct {
	// Source is the file read.
	Source string `json:"source"`
	// Total is the memory of all caches, in bytes.
	Total uint64 `json:"total"`
	// Top are the largest caches, largest first.
	Top []Slab `json:"top"`
}

// ReadSlabinfo reads path (normally /proc/slabinfo, readable by root only)
// and keeps the top largest caches.
func ReadSlabinfo(path string, top int) (*Slabinfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	slabs, err := ParseSlabinfo(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	si := &Slabinfo{Source: path}
	for _, s := range slabs {
		si.Total += s.Bytes
	}
	sort.SliceStable(slabs, func(i, j int) bool { return slabs[i].Bytes > slabs[j].Bytes })
	if len(slabs) > top {
		slabs = slabs[:top]
	}
	si.Top = slabs
	return si, nil
}

// ParseSlabinfo parses /proc/slabinfo version 2.1.
func ParseSlabinfo(b []byte) ([]Slab, error) {
	var out []Slab
	line := 0
	for len(b) > 0 {
		line++
		var l []byte
		l, b, _ = bytes.Cut(b, []byte("\n"))
		if line == 1 {
			if !bytes.HasPrefix(l, []byte("slabinfo - version: 2.")) {
				return nil, fmt.Errorf("line 1: unsupported header %q", clip(l))
			}
			continue
		}
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		f := bytes.Fields(l)
		// name active num objsize objperslab pagesperslab : tunables l b s : slabdata active num shared
		if len(f) != 16 || string(f[6]) != ":" || string(f[11]) != ":" || string(f[12]) != "slabdata" {
			return nil, fmt.Errorf("line %d: unexpected format %q", line, clip(l))
		}
		var n [5]uint64
		for i, idx := range []int{1, 2, 3, 5, 14} {
			v, err := strconv.ParseUint(string(f[idx]), 10, 64)
			if err != nil || v > 1<<40 {
				return nil, fmt.Errorf("line %d: bad number %q", line, f[idx])
			}
			n[i] = v
		}
		out = append(out, Slab{
			Name: string(f[0]), ActiveObjs: n[0], NumObjs: n[1], ObjSize: n[2],
			Bytes: n[4] * n[3] * pageSize,
		})
	}
	return out, nil
}
