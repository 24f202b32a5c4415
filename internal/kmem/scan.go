package kmem

import (
	"errors"
	"os"

	"github.com/oomguard/oomguard/internal/cgroupfs"
)

// Summary is one cgroup's kernel-memory summary from a ranking pass.
type Summary struct {
	Cgroup cgroupfs.Cgroup
	Kmem   cgroupfs.Kmem
}

// Scan walks each root and reads the summary (cgroupfs.KmemReader.ReadSummary)
// of every cgroup below it, the root included. Cgroups without kernel-memory
// files (ErrNoKmem) and cgroups removed during the walk are skipped.
func Scan(roots []cgroupfs.Cgroup) ([]Summary, error) {
	var out []Summary
	for _, root := range roots {
		err := root.Walk(func(c cgroupfs.Cgroup) error {
			var k cgroupfs.Kmem
			err := c.KmemReader().ReadSummary(&k)
			if errors.Is(err, cgroupfs.ErrNoKmem) || errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			out = append(out, Summary{Cgroup: c, Kmem: k})
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
