package hooks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func victim() Event {
	return Event{
		PID: 4242, PIDs: []int{4242, 4243}, UID: 1000, Comm: "hog", Cgroup: "/sys/fs/cgroup/user.slice/x",
		Trigger: "psi", Reason: "memory some avg10 41% > 30%", RSSBytes: 123 << 20, Result: "killed",
	}
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "OOMGUARD_") {
			m[k] = v
		}
	}
	return m
}

func TestHookSeesEnv(t *testing.T) {
	dir := t.TempDir()
	r := &Runner{
		PreKillCmd:  "env > " + filepath.Join(dir, "pre"),
		PostKillCmd: "env > " + filepath.Join(dir, "post"),
		Timeout:     10 * time.Second,
	}
	if err := r.PreKill(context.Background(), victim()); err != nil {
		t.Fatal(err)
	}
	r.PostKill(victim())
	r.Wait()
	want := map[string]string{
		"OOMGUARD_EVENT": "pre-kill", "OOMGUARD_PID": "4242", "OOMGUARD_PIDS": "4242 4243", "OOMGUARD_UID": "1000",
		"OOMGUARD_COMM": "hog", "OOMGUARD_CGROUP": "/sys/fs/cgroup/user.slice/x", "OOMGUARD_TRIGGER": "psi",
		"OOMGUARD_REASON": "memory some avg10 41% > 30%", "OOMGUARD_RSS_BYTES": strconv.Itoa(123 << 20), "OOMGUARD_DRY_RUN": "0",
	}
	if diff := cmp.Diff(want, readEnv(t, filepath.Join(dir, "pre"))); diff != "" {
		t.Errorf("pre-kill env (-want +got):\n%s", diff)
	}
	want["OOMGUARD_EVENT"] = "post-kill"
	want["OOMGUARD_RESULT"] = "killed"
	if diff := cmp.Diff(want, readEnv(t, filepath.Join(dir, "post"))); diff != "" {
		t.Errorf("post-kill env (-want +got):\n%s", diff)
	}
}

// gone reports whether pid has exited (absent, or a zombie not yet reaped by
// its new parent).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && strings.HasPrefix(string(b[i+1:]), " Z")
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if gone(pid) {
			return
		}
	}
	t.Errorf("process %d of the hook still runs after its deadline", pid)
}

func readPIDs(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p)
	}
	return pids
}

// A hook that hangs, with a background child, is killed with its process
// group at the deadline, and PreKill returns then.
func TestHangingPreKillHookKilledAtDeadline(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	var mu sync.Mutex
	var failed []string
	r := &Runner{
		PreKillCmd: "sleep 300 & echo $$ $! > " + pids + "; sleep 300",
		Timeout:    300 * time.Millisecond,
		OnFailure: func(stage string, err error) {
			mu.Lock()
			failed = append(failed, stage)
			mu.Unlock()
		},
	}
	start := time.Now()
	err := r.PreKill(context.Background(), victim())
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("PreKill = %v, want ErrTimeout", err)
	}
	// The deadline is 300ms; allow a generous margin for a loaded machine,
	// far below the hook's 300s.
	if took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("PreKill returned after %v, want about 300ms", took)
	}
	for _, p := range readPIDs(t, pids) {
		waitGone(t, p)
	}
	if diff := cmp.Diff([]string{"pre-kill"}, failed); diff != "" {
		t.Errorf("OnFailure stages (-want +got):\n%s", diff)
	}
}

func TestPostKillIsAsynchronous(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	failures := make(chan error, 10)
	r := &Runner{
		PostKillCmd: "echo $$ > " + pids + "; exec sleep 300",
		Timeout:     500 * time.Millisecond,
		MaxPending:  1,
		OnFailure:   func(stage string, err error) { failures <- err },
	}
	start := time.Now()
	r.PostKill(victim())
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Errorf("PostKill blocked for %v", took)
	}
	// A second hook while one runs with MaxPending 1 is dropped, not queued.
	r.PostKill(victim())
	select {
	case err := <-failures:
		if !errors.Is(err, ErrDropped) {
			t.Errorf("second hook: %v, want ErrDropped", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("second hook neither dropped nor reported")
	}
	r.Wait()
	select {
	case err := <-failures:
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("first hook: %v, want ErrTimeout", err)
		}
	default:
		t.Error("the hanging post-kill hook was not reported")
	}
	for _, p := range readPIDs(t, pids) {
		waitGone(t, p)
	}
}

func TestFailingHook(t *testing.T) {
	r := &Runner{PreKillCmd: "echo oops >&2; exit 3", Timeout: 5 * time.Second}
	err := r.PreKill(context.Background(), victim())
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("PreKill = %v, want exit status 3", err)
	}
}

func TestCancelledPreKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r := &Runner{PreKillCmd: "exec sleep 300", Timeout: time.Minute}
	start := time.Now()
	if err := r.PreKill(ctx, victim()); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("cancelled PreKill = %v after %v", err, time.Since(start))
	}
}

func TestNoHooks(t *testing.T) {
	var r Runner
	if err := r.PreKill(context.Background(), victim()); err != nil {
		t.Error(err)
	}
	r.PostKill(victim())
	r.Wait()
}

func TestEnvDropsNUL(t *testing.T) {
	ev := victim()
	ev.Comm = "a\x00b"
	for _, e := range ev.Env(PreKill) {
		if strings.ContainsRune(e, 0) {
			t.Errorf("NUL in %q", e)
		}
	}
}
