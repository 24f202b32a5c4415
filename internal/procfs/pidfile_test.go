package procfs

import (
	"os"
	"os/exec"
	"testing"
)

func TestPIDFile(t *testing.T) {
	r := NewFS("").NewReader()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	pid := cmd.Process.Pid
	stat, err := r.OpenPIDFile(pid, "stat")
	if err != nil {
		t.Fatal(err)
	}
	defer stat.Close()
	status, err := r.OpenPIDFile(pid, "status")
	if err != nil {
		t.Fatal(err)
	}
	defer status.Close()
	oom, err := r.OpenPIDFile(pid, "oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	defer oom.Close()
	var st Stat
	var ss Status
	for i := 0; i < 2; i++ { // the second read re-reads fresh content
		if err := r.ReadStat(&stat, &st); err != nil || st.PID != pid || string(st.Comm) != "sleep" {
			t.Fatalf("ReadStat: %+v, %v", st, err)
		}
		if err := r.ReadStatus(&status, &ss); err != nil || ss.Tgid.N != uint64(pid) || !ss.VmRSS.OK {
			t.Fatalf("ReadStatus: %+v, %v", ss, err)
		}
		if v, err := r.ReadOOMScoreAdj(&oom); err != nil || v != i*100 {
			t.Fatalf("ReadOOMScoreAdj = %d, %v; want %d", v, err, i*100)
		}
		if err := os.WriteFile("/proc/"+itoa(pid)+"/oom_score_adj", []byte("100"), 0); err != nil {
			t.Skip(err)
		}
	}
	if n := testing.AllocsPerRun(20, func() {
		r.ReadStat(&stat, &st)
		r.ReadStatus(&status, &ss)
		r.ReadOOMScoreAdj(&oom)
	}); n != 0 {
		t.Errorf("reads through PIDFiles allocate %v times", n)
	}
	cmd.Process.Kill()
	cmd.Wait()
	// The process is gone: its files say so, even if the PID is reused.
	if err := r.ReadStat(&stat, &st); !IsGone(err) {
		t.Errorf("ReadStat after exit: %v, want gone", err)
	}
	if _, err := r.ReadOOMScoreAdj(&oom); !IsGone(err) {
		t.Errorf("ReadOOMScoreAdj after exit: %v, want gone", err)
	}
	stat.Close()
	if stat.IsOpen() || stat.Close() != nil {
		t.Error("Close twice")
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
