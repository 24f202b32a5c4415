package procfs

import "testing"

func TestParseVmstat(t *testing.T) {
	var v Vmstat
	if err := parseVmstat(readFixture(t, "vmstat"), &v); err != nil {
		t.Fatal(err)
	}
	if v.WorkingsetRefaultFile != (Val{145130, true}) || v.OOMKill != (Val{0, true}) || !v.PgscanKswapd.OK || !v.Pswpin.OK {
		t.Errorf("recorded vmstat: %+v", v)
	}
	// An older kernel (before 5.9) has workingset_refault, not _file.
	if err := parseVmstat([]byte("workingset_refault 12\noom_kill 3\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.WorkingsetRefaultFile.OK || v.OOMKill != (Val{3, true}) {
		t.Errorf("absent counter must not read as present: %+v", v)
	}
	for _, bad := range []string{"oom_kill\n", "oom_kill x\n", "oom_kill 1 2\n", "oom_kill -1\n"} {
		if err := parseVmstat([]byte(bad), &v); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func TestReaderVmstat(t *testing.T) {
	var v Vmstat
	if err := fixtureFS(t).NewReader().Vmstat(&v); err != nil {
		t.Fatal(err)
	}
	if v.WorkingsetRefaultFile.N != 145130 {
		t.Errorf("refaults = %v", v.WorkingsetRefaultFile)
	}
}

func FuzzParseVmstat(f *testing.F) {
	f.Add(readFixture(f, "vmstat"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v Vmstat
		checkFuzzErr(t, "/proc/vmstat", parseVmstat(b, &v))
	})
}
