package procfs

import (
	"errors"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		check   func(t *testing.T, s *Stat)
	}{
		{name: "comm with spaces and parens", in: string(readFixture(t, "15042/stat")), check: func(t *testing.T, s *Stat) {
			if s.PID != 15042 || string(s.Comm) != "a b) (c" || s.State != 'S' || s.PPID != 15030 {
				t.Errorf("got pid %d comm %q state %c ppid %d", s.PID, s.Comm, s.State, s.PPID)
			}
			if s.StartTime != 82472 || s.VSize != 2990080 || s.RSS != 411 || s.NumThreads != 1 {
				t.Errorf("got start %d vsize %d rss %d threads %d", s.StartTime, s.VSize, s.RSS, s.NumThreads)
			}
			want := [10]uint64{94858509017088, 94858509035017, 140736931308176, 94858509049104, 94858509050368,
				94859241725952, 140736931314108, 140736931314139, 140736931314139, 140736931315676}
			if !s.HasLayout || s.Layout != want {
				t.Errorf("layout = %v, want %v", s.Layout, want)
			}
			if s.KernelThread() || s.Exiting() {
				t.Error("a sleeping user process is neither a kernel thread nor exiting")
			}
		}},
		{name: "kernel thread", in: string(readFixture(t, "2/stat")), check: func(t *testing.T, s *Stat) {
			if !s.KernelThread() || s.PPID != 0 || string(s.Comm) != "kthreadd" {
				t.Errorf("got %+v", s)
			}
			if s.Layout != [10]uint64{} {
				t.Errorf("kernel thread layout = %v, want zeros", s.Layout)
			}
		}},
		{name: "zombie", in: string(readFixture(t, "15088/stat")), check: func(t *testing.T, s *Stat) {
			if s.State != 'Z' || !s.Exiting() || s.KernelThread() || s.LeaderExited() {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "leader exited, another thread runs", in: "11640 (lz) Z 11639 11630 2 0 -1 4227148 0 0 0 0 0 0 0 0 20 0 2 0 82527 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n", check: func(t *testing.T, s *Stat) {
			if !s.LeaderExited() || s.NumThreads != 2 || s.RSS != 0 {
				t.Errorf("got %+v; want a leader that exited, with 2 threads and no RSS of its own", s)
			}
		}},
		{name: "PF_EXITING", in: "7 (x) R 1 1 1 0 -1 4 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 1\n", check: func(t *testing.T, s *Stat) {
			if !s.Exiting() || s.HasLayout {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "empty comm", in: "7 () R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 1", check: func(t *testing.T, s *Stat) {
			if len(s.Comm) != 0 || s.StartTime != 5 {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "empty", in: "", wantErr: true},
		{name: "no parens", in: "7 x R 1", wantErr: true},
		{name: "no space before paren", in: "7(x) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 1", wantErr: true},
		{name: "reversed parens", in: ")7 (x R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 1", wantErr: true},
		{name: "truncated", in: "7 (x) R 1 1 1 0 -1 0 0 0", wantErr: true},
		{name: "long state", in: "7 (x) RS 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 1", wantErr: true},
		{name: "bad number", in: "7 (x) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5x 0 0 1", wantErr: true},
		{name: "negative pid", in: "-7 (x) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Stat
			err := parseStat([]byte(tt.in), &s)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, &s)
			}
		})
	}
}

func TestReaderStat(t *testing.T) {
	r := fixtureFS(t).NewReader()
	var s Stat
	if err := r.Stat(15042, &s); err != nil {
		t.Fatal(err)
	}
	if string(s.Comm) != "a b) (c" {
		t.Errorf("comm = %q", s.Comm)
	}
	if err := r.Stat(99999, &s); !IsGone(err) {
		t.Errorf("missing process: err = %v, want gone", err)
	}
	dir := t.TempDir()
	writeFile(t, dir+"/5/stat", "5 (x) R")
	err := NewFS(dir).NewReader().Stat(5, &s)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Path != dir+"/5/stat" {
		t.Errorf("err = %v, want a ParseError naming %s/5/stat", err, dir)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add(readFixture(f, "15042/stat"))
	f.Add(readFixture(f, "2/stat"))
	f.Add([]byte("1 ((()) R 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Stat
		checkFuzzErr(t, "/proc/1/stat", parseStat(b, &s))
	})
}
