package cgroupfs

import (
	"errors"
	"io/fs"
	"testing"
)

func TestCgroupPressure(t *testing.T) {
	p, err := testdataCgroup(t, V2, "memory", "v2/app").Pressure("io")
	if err != nil || !p.Valid || p.Some.Avg10 != 75 || p.Full.Total != 88123456 {
		t.Errorf("io.pressure = %+v, %v", p, err)
	}
	if _, err := testdataCgroup(t, V1, "memory", "v1/hog").Pressure("memory"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("v1 has no pressure files: err = %v", err)
	}
}
