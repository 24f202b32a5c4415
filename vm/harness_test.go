package vm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// require skips only where qemu is missing; a missing kernel is a failure of
// vm/setup.sh.
func require(t *testing.T) {
	t.Helper()
	if err := Available(""); err != nil {
		if errors.Is(err, ErrNoQemu) {
			t.Skipf("vm: %v", err)
		}
		t.Fatalf("vm: %v", err)
	}
}

func TestBootReportsVerdictAndOutput(t *testing.T) {
	require(t)
	res, err := Run(context.Background(), Config{
		Script: `
echo "hello from $(uname -r)"
cat /sys/fs/cgroup/cgroup.subtree_control
echo "swap=$(grep -c zram /proc/swaps)"
exit 7
`,
		ZramMiB: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot took %v\n%s", res.Elapsed, res.Output)
	if res.ExitCode != 7 {
		t.Errorf("exit code = %d, want 7\n%s", res.ExitCode, res.Console)
	}
	out := string(res.Output)
	for _, want := range []string{"hello from ", "memory", "pids", "cpu", "swap=1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s\nconsole:\n%s", want, out, res.Console)
		}
	}
}

// TestCancelledRunSaysSo: a run whose context ends (the benchmark got
// SIGINT or SIGTERM) kills its guest and says it was cancelled, not that
// the deadline passed.
func TestCancelledRunSaysSo(t *testing.T) {
	require(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(3*time.Second, cancel)
	start := time.Now()
	_, err := Run(ctx, Config{Script: "sleep 1000", Timeout: time.Minute})
	if !errors.Is(err, ErrNoVerdict) || !strings.Contains(err.Error(), "run cancelled") || strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v, want ErrNoVerdict, saying the run was cancelled", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("killing the guest took %v", d)
	}
}

func TestHungGuestIsKilledAtDeadline(t *testing.T) {
	require(t)
	start := time.Now()
	_, err := Run(context.Background(), Config{Script: "sleep 1000", Timeout: 10 * time.Second})
	if !errors.Is(err, ErrNoVerdict) {
		t.Fatalf("err = %v, want ErrNoVerdict", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("killing the guest took %v", d)
	}
	if !strings.Contains(err.Error(), "deadline") || !strings.Contains(err.Error(), "guest console") {
		t.Errorf("error does not name the deadline and carry the console: %v", err)
	}
	if strings.Contains(err.Error(), "never started its test") {
		t.Errorf("the guest started its test (it hung in it), but the error says it did not: %v", err)
	}
}

// TestBootHangIsRetriedOnce: a guest that never starts its test (here its
// init is a shell waiting on the console) is killed at BootTimeout and
// booted once more, not left to the deadline; hanging again, the run fails
// saying so, well before the deadline.
func TestBootHangIsRetriedOnce(t *testing.T) {
	require(t)
	start := time.Now()
	res, err := Run(context.Background(), Config{Script: "true", KernelArgs: []string{"rdinit=/bin/sh"},
		BootTimeout: 10 * time.Second, Timeout: 5 * time.Minute})
	took := time.Since(start)
	t.Logf("took %v: %v", took, err)
	if !errors.Is(err, ErrNoVerdict) || !strings.Contains(err.Error(), "had not started its test within 10s") ||
		!strings.Contains(err.Error(), "the first boot was given up on too") {
		t.Fatalf("err = %v, want ErrNoVerdict for a boot that never started its test, twice", err)
	}
	if res == nil || res.Reboots != 1 {
		t.Errorf("result %+v, want one reboot", res)
	}
	if took > 2*time.Minute {
		t.Errorf("two hung boots took %v: the watchdog did not end them", took)
	}
}

// TestTailTellsABootHang: a run whose console lacks the init's line before
// the test says that the guest never got there.
func TestTailTellsABootHang(t *testing.T) {
	if got := tail(&Result{}, nil); !strings.Contains(got, "never started its test") {
		t.Errorf("tail of an empty console = %q, want it to say the test never started", got)
	}
	started := &Result{Console: []byte("vm-init: running the test\nhog 123: holding 16 MiB\n")}
	if got := tail(started, nil); strings.Contains(got, "never started") || !strings.Contains(got, "hog 123") {
		t.Errorf("tail of a started test's console = %q, want its console and no boot hang", got)
	}
}

func TestDiskRoot(t *testing.T) {
	require(t)
	res, err := Run(context.Background(), Config{
		Root:    RootDisk,
		DiskBPS: 32 << 20,
		Files:   []File{{Path: "/test/data", Data: []byte("on disk\n"), Mode: 0o644}},
		Script: `
set -e
grep -E ' / ext4 ' /proc/mounts
cat /test/data
cat /sys/fs/cgroup/cgroup.subtree_control
`,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot took %v\n%s", res.Elapsed, res.Output)
	if res.ExitCode != 0 {
		t.Fatalf("exit code %d\n%s\nconsole:\n%s", res.ExitCode, res.Output, res.Console)
	}
	if !strings.Contains(string(res.Output), "on disk") {
		t.Errorf("disk file not read:\n%s", res.Output)
	}
}

// TestHarnessCatchesBrokenKiller shows that the suite can fail: the same
// killer scenario passes with a stand-in killer that kills the largest
// process and fails with one that kills the largest bystander instead.
func TestHarnessCatchesBrokenKiller(t *testing.T) {
	require(t)
	good := scenario(t, "killer-scoped", `KILLER="env RANK=1 sh /test/fake-killer.sh"`+"\n")
	good.Name = "killer-good"
	broken := scenario(t, "killer-scoped", `KILLER="env RANK=2 sh /test/fake-killer.sh"`+"\n")
	broken.Name = "killer-broken"
	results, res, err := RunScenarios(context.Background(), Config{Files: guestFiles(t)}, []Scenario{good, broken})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot and 2 scenarios took %v", res.Elapsed)
	if !results[0].Passed() {
		t.Errorf("the scenario failed with a correct killer (exit %d):\n%s\nconsole:\n%s", results[0].ExitCode, results[0].Output, res.Console)
	}
	if !results[1].Ran || results[1].Passed() {
		t.Errorf("the scenario did not catch the broken killer (ran %v, exit %d):\n%s", results[1].Ran, results[1].ExitCode, results[1].Output)
	}
	if !strings.Contains(string(results[1].Output), "FAIL: bystander") {
		t.Errorf("the broken killer's failure does not name the hurt bystander:\n%s", results[1].Output)
	}
	t.Logf("broken killer, as the suite reports it:\n%s", results[1].Output)
}
