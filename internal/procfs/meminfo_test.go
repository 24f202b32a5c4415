package procfs

import (
	"errors"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		check   func(t *testing.T, m *Meminfo)
	}{
		{name: "recorded", in: string(readFixture(t, "meminfo")), check: func(t *testing.T, m *Meminfo) {
			if m.MemTotal != (Val{24683620 << 10, true}) {
				t.Errorf("MemTotal = %+v", m.MemTotal)
			}
			if m.MemAvailable != (Val{24277492 << 10, true}) {
				t.Errorf("MemAvailable = %+v", m.MemAvailable)
			}
			if !m.SwapTotal.OK || m.SwapTotal.N != 0 || !m.SwapFree.OK {
				t.Errorf("swap = %+v %+v: present as 0 on this machine", m.SwapTotal, m.SwapFree)
			}
			if !m.InactiveFile.OK || !m.ActiveFile.OK || !m.SReclaimable.OK || !m.KernelStack.OK {
				t.Errorf("cheap fields missing: %+v", m)
			}
		}},
		{name: "absent is not zero", in: "MemTotal: 100 kB\nMemFree: 0 kB\n", check: func(t *testing.T, m *Meminfo) {
			if m.MemTotal.N != 100<<10 || !m.MemFree.OK || m.MemFree.N != 0 || m.MemAvailable.OK {
				t.Errorf("got %+v", m)
			}
		}},
		{name: "page counts have no unit", in: "MemTotal: 1 kB\nHugePages_Total:       7\n"},
		{name: "no trailing newline", in: "MemTotal: 3 kB", check: func(t *testing.T, m *Meminfo) {
			if m.MemTotal.N != 3<<10 {
				t.Errorf("MemTotal = %v", m.MemTotal)
			}
		}},
		{name: "no MemTotal", in: "MemFree: 1 kB\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "no colon", in: "MemTotal 1 kB\n", wantErr: true},
		{name: "not a number", in: "MemTotal: x kB\n", wantErr: true},
		{name: "bad unit", in: "MemTotal: 1 MB\n", wantErr: true},
		{name: "overflow", in: "MemTotal: 99999999999999999999 kB\n", wantErr: true},
		{name: "kB overflow", in: "MemTotal: 18446744073709551615 kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Meminfo
			err := parseMeminfo([]byte(tt.in), &m)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, &m)
			}
		})
	}
}

func TestReaderMeminfo(t *testing.T) {
	r := fixtureFS(t).NewReader()
	var m Meminfo
	if err := r.Meminfo(&m); err != nil {
		t.Fatal(err)
	}
	if m.MemTotal.N != 24683620<<10 {
		t.Errorf("MemTotal = %d", m.MemTotal.N)
	}
	bad := NewFS(t.TempDir()).NewReader()
	err := bad.Meminfo(&m)
	if !IsGone(err) {
		t.Errorf("missing file: err = %v, want ENOENT", err)
	}
}

func TestMeminfoErrorNamesFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/meminfo", "MemTotal: lots\n")
	var m Meminfo
	err := NewFS(dir).NewReader().Meminfo(&m)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Path != dir+"/meminfo" || pe.Line != 1 {
		t.Fatalf("err = %v, want a ParseError for %s line 1", err, dir+"/meminfo")
	}
}

func FuzzParseMeminfo(f *testing.F) {
	f.Add(readFixture(f, "meminfo"))
	f.Add([]byte("MemTotal: 1 kB\nMemAvailable: 2 kB"))
	f.Add([]byte("MemTotal:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Meminfo
		checkFuzzErr(t, "/proc/meminfo", parseMeminfo(b, &m))
	})
}
