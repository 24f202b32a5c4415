package logging

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestJournalPriorities(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelDebug, Journal).With("scope", "/sys/fs/cgroup/x y")
	log.Debug("scan", "pids", 3)
	log.Info("kill", "pid", 42)
	log.Warn("cannot set oom_score_adj")
	log.Error("reap failed")
	want := []string{
		`<7>scan scope="/sys/fs/cgroup/x y" pids=3`,
		`<6>kill scope="/sys/fs/cgroup/x y" pid=42`,
		`<4>cannot set oom_score_adj scope="/sys/fs/cgroup/x y"`,
		`<3>reap failed scope="/sys/fs/cgroup/x y"`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLevelFilterAndParse(t *testing.T) {
	var buf bytes.Buffer
	l, err := ParseLevel("warn")
	if err != nil {
		t.Fatal(err)
	}
	New(&buf, l, Journal).Info("hidden")
	if buf.Len() != 0 {
		t.Fatalf("info written at warn level: %q", buf.String())
	}
	if _, err := ParseLevel("loud"); err == nil || !strings.Contains(err.Error(), `"loud"`) {
		t.Fatalf("ParseLevel(loud) = %v", err)
	}
}

func TestIsJournalStream(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string { return func(string) string { return v } }
	match := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	if !IsJournalStream(env(match), f) {
		t.Errorf("JOURNAL_STREAM=%s names the file, but it was not recognised", match)
	}
	for _, v := range []string{"", "garbage", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)} {
		if IsJournalStream(env(v), f) {
			t.Errorf("JOURNAL_STREAM=%q wrongly taken for the journal", v)
		}
	}
}
