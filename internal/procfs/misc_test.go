package procfs

import (
	"errors"
	"os"
	"slices"
	"testing"
)

func TestParseOOMScoreAdj(t *testing.T) {
	for in, want := range map[string]int{"0\n": 0, "-1000\n": -1000, "1000": 1000, "-17\n": -17} {
		got, err := parseOOMScoreAdj([]byte(in))
		if err != nil || got != want {
			t.Errorf("%q: got %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "\n", "1001\n", "-1001", "x", "1 2"} {
		if _, err := parseOOMScoreAdj([]byte(bad)); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
	got, err := fixtureFS(t).NewReader().OOMScoreAdj(15042)
	if err != nil || got != 0 {
		t.Errorf("fixture: %d, %v", got, err)
	}
}

func FuzzParseOOMScoreAdj(f *testing.F) {
	f.Add([]byte("-1000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseOOMScoreAdj(b)
		checkFuzzErr(t, "/proc/1/oom_score_adj", err)
		if err == nil && (v < -1000 || v > 1000) {
			t.Fatalf("accepted %d", v)
		}
	})
}

func TestCmdline(t *testing.T) {
	r := fixtureFS(t).NewReader()
	raw, err := r.Cmdline(15042, 0)
	if err != nil {
		t.Fatal(err)
	}
	line := string(AppendCmdline(nil, raw))
	want := "/tmp/tmp.FZX0M39yUL/a b) (c 30"
	if line != want {
		t.Errorf("cmdline = %q, want %q", line, want)
	}
	if !EqualCmdline(want, raw) || EqualCmdline(want+" ", raw) || EqualCmdline("/tmp/tmp.FZX0M39yUL/a b) (c 31", raw) {
		t.Error("EqualCmdline disagrees with AppendCmdline")
	}
	capped, err := r.Cmdline(15042, 8)
	if err != nil || string(capped) != "/tmp/tmp" {
		t.Errorf("capped = %q, %v", capped, err)
	}
	if raw, err := r.Cmdline(2, 0); err != nil || len(raw) != 0 {
		t.Errorf("kernel thread cmdline = %q, %v", raw, err)
	}
	if got := string(AppendCmdline(nil, []byte("a\nb\x00c\x00\x00"))); got != "a?b c" {
		t.Errorf("AppendCmdline = %q", got)
	}
}

func FuzzAppendCmdline(f *testing.F) {
	f.Add([]byte("sleep\x0030\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		line := AppendCmdline(nil, b)
		if !EqualCmdline(string(line), b) {
			t.Fatalf("EqualCmdline(AppendCmdline(%q)) is false", b)
		}
		if slices.Contains(line, 0) || slices.Contains(line, '\n') {
			t.Fatalf("line %q has NUL or newline", line)
		}
	})
}

func TestCgroupPath(t *testing.T) {
	rec := readFixture(t, "15042/cgroup")
	tests := []struct {
		in, controller, want string
		wantErr              error
	}{
		{string(rec), "memory", "/process_api/1cfda9e66eecee3e3c23a1cfa47e5531", nil},
		{string(rec), "", "/", nil},
		{string(rec), "cpuacct", "/", nil},
		{string(rec), "name=systemd", "/", nil},
		{string(rec), "hugetlb", "", ErrNoCgroupLine},
		{"4:cpu,cpuacct:/a\n0::/b\n", "cpuacct", "/a", nil},
		{"4:cpu,cpuacct:/a\n0::/b\n", "cpu", "/a", nil},
		{"4:cpu,cpuacct:/a\n0::/b\n", "cpua", "", ErrNoCgroupLine},
		{"0::/user.slice/a:b\n", "", "/user.slice/a:b", nil},
		{"0::/x\n", "memory", "", ErrNoCgroupLine},
		{"4:memory:/a\n", "", "", ErrNoCgroupLine},
		{"4:memory\n", "memory", "", ErrSyntax},
		{"x:memory:/a\n", "memory", "", ErrSyntax},
		{"4:memory:a\n", "memory", "", ErrSyntax},
		{"4:memory:/a\ngarbage\n", "memory", "", ErrSyntax},
	}
	for _, tt := range tests {
		got, err := cgroupPath([]byte(tt.in), tt.controller)
		if tt.wantErr == ErrSyntax {
			if err == nil {
				t.Errorf("%q %q: no error", tt.in, tt.controller)
			} else {
				checkFuzzErr(t, "/proc/1/cgroup", err)
			}
			continue
		}
		if !errors.Is(err, tt.wantErr) || string(got) != tt.want {
			t.Errorf("%q %q: got %q, %v; want %q, %v", tt.in, tt.controller, got, err, tt.want, tt.wantErr)
		}
	}
	r := fixtureFS(t).NewReader()
	if _, err := r.Cgroup(15042, "hugetlb"); !errors.Is(err, ErrNoCgroupLine) {
		t.Errorf("reader: err = %v", err)
	}
}

func FuzzCgroupPath(f *testing.F) {
	f.Add(readFixture(f, "15042/cgroup"), "memory")
	f.Add([]byte("0::/\n"), "")
	f.Fuzz(func(t *testing.T, b []byte, controller string) {
		_, err := cgroupPath(b, controller)
		if err != ErrNoCgroupLine {
			checkFuzzErr(t, "/proc/1/cgroup", err)
		}
	})
}

func TestParseSyscall(t *testing.T) {
	var s Syscall
	if err := parseSyscall(readFixture(t, "15042/syscall"), &s); err != nil {
		t.Fatal(err)
	}
	want := Syscall{Nr: 230, Args: [6]uint64{0, 0, 0x7fffdecc20a0, 0x7fffdecc20e0, 0, 0}, SP: 0x7fffdecc2088, PC: 0x7f4ce6f11503}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	if err := parseSyscall(readFixture(t, "15088/syscall"), &s); err != nil || s != (Syscall{Nr: -1}) {
		t.Errorf("blocked outside a syscall: %+v, %v", s, err)
	}
	if err := parseSyscall([]byte("running\n"), &s); err != nil || !s.Running {
		t.Errorf("running: %+v, %v", s, err)
	}
	if err := parseSyscall([]byte("58 0x4000 0x0 0x0 0x0 0x0 0x0 0x7ffd 0x4011\n"), &s); err != nil || s.Nr != 58 || s.Args[0] != 0x4000 {
		t.Errorf("vfork: %+v, %v", s, err)
	}
	for _, bad := range []string{"", "58", "58 0x1", "-2 0x0 0x0", "-1 0x0", "-1 0x0 0x0 0x0", "58 0x0 0x0 0x0 0x0 0x0 0x0 0x0 zz", "x 0x0 0x0"} {
		if err := parseSyscall([]byte(bad), &s); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func FuzzParseSyscall(f *testing.F) {
	f.Add(readFixture(f, "15042/syscall"))
	f.Add([]byte("running"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Syscall
		checkFuzzErr(t, "/proc/1/syscall", parseSyscall(b, &s))
	})
}

func TestPIDs(t *testing.T) {
	var d DirReader
	pids, err := d.PIDs(fixtureFS(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(pids)
	if !slices.Equal(pids, []int{2, 15042, 15088}) {
		t.Errorf("fixture PIDs = %v", pids)
	}
	live, err := d.PIDs(NewFS(""), pids[:0])
	if err != nil || !slices.Contains(live, os.Getpid()) || !slices.Contains(live, 1) {
		t.Errorf("live /proc: %d PIDs, err %v; own PID %d missing", len(live), err, os.Getpid())
	}
}

func FuzzEachDirent(f *testing.F) {
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		eachDirent(b, func(name []byte, typ uint8) error {
			if len(name) == 0 {
				t.Fatal("empty name")
			}
			return nil
		})
	})
}

// The task readers read one thread's files under /proc/PID/task/TID: here
// every thread of the test process, whose memory lines and command line
// are the process's.
func TestTaskReadersSelf(t *testing.T) {
	fs := NewFS("/proc")
	r, d := fs.NewReader(), &DirReader{}
	pid := os.Getpid()
	tids, err := d.Tasks(fs, pid, nil)
	if err != nil || len(tids) < 2 {
		t.Fatalf("Tasks(%d) = %v, %v; want the test binary's threads", pid, tids, err)
	}
	want, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		var st Stat
		if err := r.TaskStat(pid, tid, &st); err != nil || st.PID != tid || st.RSS <= 0 || st.LeaderExited() {
			t.Errorf("TaskStat(%d, %d) = %+v, %v; want thread %d's stat with the process's RSS", pid, tid, st, err, tid)
		}
		var ss Status
		if err := r.TaskStatus(pid, tid, &ss); err != nil || int(ss.Tgid.N) != pid || !ss.VmRSS.OK {
			t.Errorf("TaskStatus(%d, %d) = Tgid %v, VmRSS %v, %v; want the process's", pid, tid, ss.Tgid, ss.VmRSS, err)
		}
		if raw, err := r.TaskCmdline(pid, tid, 0); err != nil || string(raw) != string(want) {
			t.Errorf("TaskCmdline(%d, %d) = %q, %v; want %q", pid, tid, raw, err, want)
		}
		for _, ctrl := range []string{"memory", ""} {
			whole, err1 := r.Cgroup(pid, ctrl)
			wholeS := string(whole)
			task, err2 := r.TaskCgroup(pid, tid, ctrl)
			if (err1 == nil) != (err2 == nil) || string(task) != wholeS {
				t.Errorf("TaskCgroup(%d, %d, %q) = %q, %v; the process's is %q, %v", pid, tid, ctrl, task, err2, wholeS, err1)
			}
		}
	}
	var st Stat
	if err := r.TaskStat(pid, 1<<30, &st); !IsGone(err) {
		t.Errorf("TaskStat of a thread that does not exist: %v, want one IsGone accepts", err)
	}
}

func TestTaskWchanSelf(t *testing.T) {
	r := NewFS("").NewReader()
	pid := os.Getpid()
	b, err := r.TaskWchan(pid, pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Error("wchan of this process's main thread is empty; want a function name or 0")
	}
}
