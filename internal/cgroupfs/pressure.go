package cgroupfs

import (
	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/procfs"
)

// Pressure reads the cgroup's own PSI file RESOURCE.pressure (resource is
// "memory", "io" or "cpu"). Only v2 cgroups have these files (and v1
// hierarchies never do): on v1 it fails with an error for which
// errors.Is(err, fs.ErrNotExist) holds. MemoryReader.Read reads them without
// allocating.
func (c Cgroup) Pressure(resource string) (policy.PressureFile, error) {
	var p policy.PressureFile
	name := resource + ".pressure"
	b, err := c.ReadFile(name)
	if err != nil {
		return p, err
	}
	return p, procfs.WithPath(c.File(name), procfs.ParsePressure(b, &p))
}
