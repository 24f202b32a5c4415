package procfs

import "testing"

func TestParseStatus(t *testing.T) {
	var s Status
	if err := parseStatus(readFixture(t, "15042/status"), &s); err != nil {
		t.Fatal(err)
	}
	want := Status{
		Tgid: Val{15042, true}, PPid: Val{15030, true}, UID: Val{0, true}, EUID: Val{0, true}, Kthread: Val{0, true},
		VmPeak: Val{2920 << 10, true}, VmSize: Val{2920 << 10, true}, VmLck: Val{0, true}, VmPin: Val{0, true},
		VmHWM: Val{1820 << 10, true}, VmRSS: Val{1820 << 10, true}, RssAnon: Val{112 << 10, true},
		RssFile: Val{1708 << 10, true}, RssShmem: Val{0, true}, VmData: Val{224 << 10, true}, VmStk: Val{132 << 10, true},
		VmExe: Val{20 << 10, true}, VmLib: Val{1528 << 10, true},
	}
	// Lines after VmLib come from the fixture itself.
	want.VmPTE, want.VmSwap, want.HugetlbPages = s.VmPTE, s.VmSwap, s.HugetlbPages
	want.Threads, want.CoreDumping = Val{1, true}, Val{0, true}
	if !s.VmPTE.OK || !s.VmSwap.OK || s.VmSwap.N != 0 {
		t.Errorf("VmPTE %v VmSwap %v", s.VmPTE, s.VmSwap)
	}
	if s != want {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}

	// A kernel thread and a zombie have no mm: absent, not zero.
	for _, name := range []string{"2/status", "15088/status"} {
		if err := parseStatus(readFixture(t, name), &s); err != nil {
			t.Fatal(err)
		}
		if s.VmRSS.OK || s.VmSize.OK || s.VmPTE.OK || s.RssAnon.OK || !s.Threads.OK {
			t.Errorf("%s: %+v", name, s)
		}
	}
	if err := parseStatus(readFixture(t, "2/status"), &s); err != nil || s.Kthread != (Val{1, true}) {
		t.Errorf("kthreadd: Kthread = %v, err %v", s.Kthread, err)
	}

	for _, bad := range []string{"VmRSS: many kB\n", "Uid:\tx\t0\t0\t0\n", "Uid:\t0\n", "garbage line\n", "VmRSS: 1 kB extra\n"} {
		if err := parseStatus([]byte(bad), &s); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
	// Lines oomguard does not use are not checked.
	if err := parseStatus([]byte("SigQ:\tnot/checked\nVmRSS:\t4 kB\n"), &s); err != nil || s.VmRSS.N != 4096 {
		t.Errorf("err %v, VmRSS %v", err, s.VmRSS)
	}
}

func TestReaderStatus(t *testing.T) {
	var s Status
	if err := fixtureFS(t).NewReader().Status(15042, &s); err != nil {
		t.Fatal(err)
	}
	if s.VmRSS.N != 1820<<10 {
		t.Errorf("VmRSS = %v", s.VmRSS)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add(readFixture(f, "15042/status"))
	f.Add(readFixture(f, "2/status"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Status
		checkFuzzErr(t, "/proc/1/status", parseStatus(b, &s))
	})
}
