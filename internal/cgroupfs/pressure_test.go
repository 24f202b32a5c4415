package cgroupfs

import (
	"errors"
	"io/fs"
	"testing"
)

func TestCgroupPressure(t *testing.T) {
	p, err := fixtureCgroup(t, "v2/app", V2).Pressure("io")
	if err != nil || !p.Valid || p.Some.Avg10 != 75 || p.Full.Total != 88123456 {
		t.Errorf("io.pressure = %+v, %v", p, err)
	}
	if _, err := fixtureCgroup(t, "v1/hog", V1).Pressure("memory"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("v1 has no pressure files: err = %v", err)
	}
}
