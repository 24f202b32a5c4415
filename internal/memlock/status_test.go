package memlock

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseStatus(t *testing.T) {
	in := "Name:\tcc1\nUmask:\t0022\nState:\tR (running)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\nPPid:\t4200\n" +
		"VmPeak:\t   20000 kB\nVmLck:\t   12345 kB\nVmHWM:\t    9000 kB\nVmRSS:\t    8000 kB\n" +
		"CapEff:\t000001fffeffffff\nbroken line\n"
	got := parseStatus([]byte(in))
	want := procStatus{Name: "cc1", VmLck: 12345 << 10, VmHWM: 9000 << 10, VmRSS: 8000 << 10,
		CapEff: 0x1fffeffffff, Tgid: 4242, PPid: 4200, HasVm: true, EUID: -1}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseStatus (-want +got):\n%s", d)
	}
	if !got.hasCap(capIPCLock) || got.hasCap(capSysResource) {
		t.Errorf("caps: ipc_lock %v sys_resource %v", got.hasCap(capIPCLock), got.hasCap(capSysResource))
	}
	// A zombie has no Vm lines: absent is not zero.
	z := parseStatus([]byte("Name:\tsh\nState:\tZ (zombie)\n"))
	if z.HasVm {
		t.Errorf("zombie reported an address space: %+v", z)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Name:\tx\nVmLck:\t1 kB\n"))
	f.Add([]byte("VmLck:"))
	f.Fuzz(func(t *testing.T, b []byte) { parseStatus(b) })
}

func TestParseProcCgroup(t *testing.T) {
	in := "9:name=systemd:/\n8:pids:/a\n6:cpu,cpuacct:/b\n4:memory:/process_api/x\n0::/u\n"
	got := parseProcCgroup([]byte(in))
	want := map[string]string{"name=systemd": "/", "pids": "/a", "cpu": "/b", "cpuacct": "/b", "memory": "/process_api/x", "": "/u"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseProcCgroup (-want +got):\n%s", d)
	}
}

// fakeProc writes a /proc fixture with the files preflight reads.
func fakeProc(t *testing.T, uid, capEff, capAmb, ptraceScope, oomAdj string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"self/status":                  "Name:\toomguard\nUid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid + "\nCapEff:\t" + capEff + "\nCapAmb:\t" + capAmb + "\n",
		"self/oom_score_adj":           oomAdj + "\n",
		"sys/kernel/yama/ptrace_scope": ptraceScope + "\n",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPreflight(t *testing.T) {
	all := "000001ffffffffff"
	noResource := "000001fffeffffff"
	adj := func(v int) *int { return &v }
	none, ipcLock := "0000000000000000", "0000000000004000"
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl); err != nil {
		t.Fatal(err)
	}
	lowMemlock := rl.Max != unix.RLIM_INFINITY && rl.Max < minUsefulMemlock
	cases := []struct {
		name        string
		uid         string
		capEff      string
		capAmb      string
		ptraceScope string
		ownAdj      string
		o           Options
		wantErr     string // "" for success
		needLow     bool   // the case needs this machine's RLIMIT_MEMLOCK low
	}{
		{"plain", "0", noResource, none, "3", "0", Options{}, "", false},
		{"yama-3-blocks-mlock", "0", all, none, "3", "0", Options{Lock: LockAll}, "ptrace_scope is 3", false},
		{"yama-3-blocks-report", "0", all, none, "3", "0", Options{Report: true}, "ptrace_scope is 3", false},
		{"yama-1-ok", "0", all, none, "1", "0", Options{Lock: LockAll}, "", false},
		{"raise-adj-ok", "0", noResource, none, "0", "0", Options{OOMScoreAdj: adj(500)}, "", false},
		{"lower-adj-needs-cap", "0", noResource, none, "0", "100", Options{OOMScoreAdj: adj(0)}, "CAP_SYS_RESOURCE", false},
		{"lower-adj-with-cap", "0", all, none, "0", "100", Options{OOMScoreAdj: adj(-1000)}, "", false},
		{"adj-range", "0", all, none, "0", "0", Options{OOMScoreAdj: adj(1001)}, "-1000..1000", false},
		// A user's oomguard with CAP_IPC_LOCK as a file capability: the
		// command does not inherit it, so mlockall would fail there.
		{"file-capability-does-not-count", "1000", noResource, none, "0", "0", Options{Lock: LockAll}, "AmbientCapabilities", true},
		// Where RLIMIT_MEMLOCK is high, the check passes whatever the caps:
		// the case proves something only where it is low.
		{"ambient-capability-counts", "1000", noResource, ipcLock, "0", "0", Options{Lock: LockAll}, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needLow && !lowMemlock {
				t.Skipf("RLIMIT_MEMLOCK hard limit %d is not low here", rl.Max)
			}
			c.o.Paths = Paths{Proc: fakeProc(t, c.uid, c.capEff, c.capAmb, c.ptraceScope, c.ownAdj)}.withDefaults()
			err := preflight(&c.o, func(string, ...any) {})
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}

// TestReadStatusPastTheBuffer: a status file longer than the buffer (a
// Groups line of hundreds of supplementary groups puts CapEff past 4 KiB)
// is read to its end; read once, CapEff came out 0, and preflight refused
// root.
func TestReadStatusPastTheBuffer(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "42"), 0o755); err != nil {
		t.Fatal(err)
	}
	var groups strings.Builder
	for g := 100000; g < 101000; g++ {
		groups.WriteString(" ")
		groups.WriteString(strconv.Itoa(g))
	}
	in := "Name:\tsh\nGroups:\t" + groups.String() + "\nVmLck:\t       4 kB\nCapEff:\t000001fffeffffff\n"
	if len(in) <= 4096 {
		t.Fatalf("status of %d bytes proves nothing", len(in))
	}
	if err := os.WriteFile(filepath.Join(root, "42", "status"), []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := readStatus(root, "42", make([]byte, 4096))
	if err != nil {
		t.Fatal(err)
	}
	if !st.hasCap(capIPCLock) || st.VmLck != 4<<10 || st.Name != "sh" {
		t.Errorf("read %+v: want CapEff and VmLck from past the first 4 KiB", st)
	}
}
