package kmem

import (
	"errors"
	"os"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/procfs"
)

// Summary is one cgroup's kernel-memory summary from a ranking pass.
type Summary struct {
	Cgroup cgroupfs.Cgroup
	Kmem   cgroupfs.Kmem
}

// Scan walks each root and reads the kernel memory in use of every cgroup
// below it, the root included: one file per cgroup (v1
// memory.kmem.usage_in_bytes, v2 memory.stat), enough to rank them; read
// the details of the ones shown with ReadCgroup. Cgroups without kernel-memory
// files (ErrNoKmem) and cgroups removed during the walk are skipped.
func Scan(roots []cgroupfs.Cgroup) ([]Summary, error) {
	var out []Summary
	for _, root := range roots {
		err := root.Walk(func(c cgroupfs.Cgroup) error {
			k := cgroupfs.Kmem{Version: c.Version}
			var err error
			r := c.KmemReader()
			if c.Version == cgroupfs.V1 {
				var u uint64
				if u, _, err = r.Usage(); err == nil {
					k.Usage, k.V1.Usage = procfs.Some(u), procfs.Some(u)
				}
			} else {
				err = r.ReadSummary(&k)
			}
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
