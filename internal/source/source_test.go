package source

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/testbed"
)

// growSource: "grow MIB" touches MIB MiB at about 1 MiB per millisecond,
// then sleeps.
const growSource = `
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	size_t mib = strtoul(argv[1], 0, 10);
	char *m = mmap(0, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) return 1;
	struct timespec ms = {0, 1000000};
	for (size_t i = 0; i < mib; i++) {
		for (size_t o = 0; o < (1 << 20); o += 4096) m[(i << 20) + o] = 1;
		nanosleep(&ms, 0);
	}
	for (;;) pause();
}
`

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tw{t}, nil))
}

type tw struct{ t *testing.T }

func (w tw) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func waitFor(t *testing.T, w *Waker, d time.Duration) (Wake, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return w.Wait(ctx)
}

func newWaker(t *testing.T, srcs ...Source) *Waker {
	t.Helper()
	w, err := NewWaker(testLog(t), srcs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestTickerAndPoke(t *testing.T) {
	tick, err := NewTicker(20 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	w := newWaker(t, tick)
	begin := time.Now()
	wake, err := waitFor(t, w, 2*time.Second)
	if err != nil || !wake.Fired(0) || wake.Poked() {
		t.Fatalf("tick: wake %b, %v", wake, err)
	}
	if d := time.Since(begin); d < 10*time.Millisecond {
		t.Fatalf("first tick after %v, want about 20ms", d)
	}
	w.Poke()
	w.Poke()
	wake, err = waitFor(t, w, time.Second)
	if err != nil || !wake.Poked() {
		t.Fatalf("poke: wake %b, %v", wake, err)
	}
}

func TestWaitDoesNotAllocate(t *testing.T) {
	tick, err := NewTicker(time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	w := newWaker(t, tick)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := w.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Wait on ticks allocates %.1f times per wake", allocs)
	}
	allocs = testing.AllocsPerRun(50, func() {
		w.Poke()
		if _, err := w.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Poke+Wait allocates %.1f times per wake", allocs)
	}
}

func TestWakerClose(t *testing.T) {
	tick, err := NewTicker(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWaker(nil, tick)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitFor(t, w, 20*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with nothing firing: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := waitFor(t, w, time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close: %v", err)
	}
}

func TestUsageThresholdFires(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 128 << 20, PidsMax: 20})
	grow := testbed.CompileC(t, growSource)
	const threshold = 64 << 20
	ev, err := OpenUsageThreshold(g.Memory, threshold)
	if err != nil {
		t.Fatal(err)
	}
	w := newWaker(t, ev)
	if wake, err := waitFor(t, w, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("threshold fired with an empty cgroup: %b, %v", wake, err)
	}
	g.Start(grow, "100")
	wake, err := waitFor(t, w, 10*time.Second)
	if err != nil || !wake.Fired(0) {
		t.Fatalf("threshold %d never fired: %v", threshold, err)
	}
	u, err := g.Memory.ReadUint("memory.usage_in_bytes")
	if err != nil {
		t.Fatal(err)
	}
	// The kernel checks thresholds every 128 page events per CPU: allow a
	// little under, and the hog keeps growing meanwhile.
	if u < threshold-2<<20 {
		t.Fatalf("fired at usage %d, below the threshold %d", u, threshold)
	}
	t.Logf("fired at usage %d MiB (threshold 64 MiB)", u>>20)
}

func TestOOMNotifierFires(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, OOMKillDisable: true, PidsMax: 20})
	grow := testbed.CompileC(t, growSource)
	ev, err := OpenOOMNotifier(g.Memory)
	if err != nil {
		t.Fatal(err)
	}
	w := newWaker(t, ev)
	g.Start(grow, "128")
	wake, err := waitFor(t, w, 10*time.Second)
	if err != nil || !wake.Fired(0) {
		t.Fatalf("OOM notification never came: %v", err)
	}
	b, err := g.Memory.ReadFile("memory.oom_control")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "under_oom 1") {
		t.Fatalf("notified, but memory.oom_control says:\n%s", b)
	}
	// A task waiting on a paused memcg OOM cannot be frozen (the v1
	// freezer never reaches FROZEN), so KillAll's freeze would time out:
	// kill the hog, which is not a fork bomb, directly; it is killable.
	for _, pid := range g.Procs() {
		unix.Kill(pid, unix.SIGKILL)
	}
	if err := g.KillAll(); err != nil {
		t.Fatal(err)
	}
}

func TestCgroupEventNeedsV1(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 16 << 20, PidsMax: 20, V2: true})
	if _, err := OpenUsageThreshold(*g.V2Cgroup, 1<<20); !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("threshold on v2: %v, want ErrNotAvailable", err)
	}
	_, err := WatchMemoryEvents(*g.V2Cgroup)
	if g.V2Cgroup.Has("memory.events") {
		if err != nil {
			t.Fatal(err)
		}
	} else if !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("memory.events without the v2 memory controller: %v, want ErrNotAvailable", err)
	}
}

func TestWatchCgroupEvents(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 16 << 20, PidsMax: 20, V2: true})
	v2 := *g.V2Cgroup
	fw, err := WatchFile(v2.File("cgroup.events"))
	if err != nil {
		t.Fatal(err)
	}
	w := newWaker(t, fw)
	if wake, err := waitFor(t, w, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cgroup.events fired with nothing changed: %b, %v", wake, err)
	}
	g.Start("sleep", "60")
	if wake, err := waitFor(t, w, 5*time.Second); err != nil || !wake.Fired(0) {
		t.Fatalf("populated 0 -> 1 did not fire: %v", err)
	}
	// Let any notice still in flight from the start arrive, then freeze.
	for {
		if _, err := waitFor(t, w, 100*time.Millisecond); err != nil {
			break
		}
	}
	if err := v2.Freeze(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if wake, err := waitFor(t, w, 5*time.Second); err != nil || !wake.Fired(0) {
		t.Fatalf("frozen 0 -> 1 did not fire: %v", err)
	}
	for {
		if _, err := waitFor(t, w, 100*time.Millisecond); err != nil {
			break
		}
	}
	v2.Thaw()
	if wake, err := waitFor(t, w, 5*time.Second); err != nil || !wake.Fired(0) {
		t.Fatalf("frozen 1 -> 0 did not fire: %v", err)
	}
}

func TestWatchMemoryEvents(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, PidsMax: 20, V2: true})
	v2 := *g.V2Cgroup
	if !v2.Has("memory.events") || !v2.Has("memory.high") {
		t.Skipf("%s has no memory.events: the v2 hierarchy here has no memory controller (runs on the VM with cgroup v2 memory)", v2.Path)
	}
	fw, err := WatchMemoryEvents(v2)
	if err != nil {
		t.Fatal(err)
	}
	w := newWaker(t, fw)
	if err := v2.WriteFile("memory.high", "33554432"); err != nil {
		t.Fatal(err)
	}
	g.Start(testbed.CompileC(t, growSource), "64")
	if wake, err := waitFor(t, w, 10*time.Second); err != nil || !wake.Fired(0) {
		t.Fatalf("memory.events did not fire when usage passed memory.high: %v", err)
	}
}
