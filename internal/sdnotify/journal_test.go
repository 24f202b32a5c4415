package sdnotify

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestJournalHandler(t *testing.T) {
	var b strings.Builder
	log := slog.New(NewJournalHandler(&b, slog.LevelDebug)).With("pid", 42)
	log.Debug("scan")
	log.Info("ready", "triggers", 3)
	log.Warn("hook failed", "err", "exit status 1")
	log.Error("kill failed\nsecond line")
	log.Log(context.Background(), slog.LevelError+4, "event source lost")
	want := []string{
		"<7>level=DEBUG msg=scan pid=42",
		"<6>level=INFO msg=ready pid=42 triggers=3",
		`<4>level=WARN msg="hook failed" pid=42 err="exit status 1"`,
		`<3>level=ERROR msg="kill failed\nsecond line" pid=42`,
		`<2>level=ERROR+4 msg="event source lost" pid=42`,
	}
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var q strings.Builder
	slog.New(NewJournalHandler(&q, slog.LevelWarn)).Info("hidden")
	if q.Len() != 0 {
		t.Errorf("info logged at warn level: %q", q.String())
	}
}

func TestIsJournalStream(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	unix.Fstat(int(f.Fd()), &st)
	env := func(v string) func(string) string { return func(string) string { return v } }
	if !IsJournalStream(env(fmt.Sprintf("%d:%d", st.Dev, st.Ino)), f) {
		t.Error("matching JOURNAL_STREAM not recognised")
	}
	if IsJournalStream(env(fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)), f) || IsJournalStream(env(""), f) {
		t.Error("non-matching JOURNAL_STREAM accepted")
	}
}
