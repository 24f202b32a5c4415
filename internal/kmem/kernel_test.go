package kmem_test

import (
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/kmem"
	"github.com/oomguard/oomguard/internal/kmem/kmemtest"
	"github.com/oomguard/oomguard/internal/testbed"
)

// TestInflateV1 inflates kernel memory in a v1 memory cgroup in four ways
// and checks that the report shows the growth and where it went.
func TestInflateV1(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 512 << 20})
	before, err := kmem.ReadCgroup(g.Memory, kmem.Options{Attribute: true, TopProcesses: 5})
	if err != nil {
		t.Fatal(err)
	}
	spec := kmemtest.Spec{Files: 20000, Pipes: 2000, PipeData: 4096, Maps: 4000, Threads: 200}
	in := kmemtest.Start(t, g, spec)
	in.WaitReady(t, 60*time.Second)
	after, err := kmem.ReadCgroup(g.Memory, kmem.Options{Attribute: true, TopProcesses: 5})
	if err != nil {
		t.Fatal(err)
	}
	b := func(c kmem.Cgroup, k string) uint64 {
		kd, ok := c.Breakdown[k]
		if !ok || kd.Bytes == nil {
			t.Fatalf("breakdown has no %s: %+v", k, c.Breakdown)
		}
		return *kd.Bytes
	}
	growth := *after.Usage - *before.Usage
	t.Logf("%s: kmem %d -> %d (+%d MiB); pagetables %d KiB, kernel_stack %d KiB, pipes %d KiB (%d), unattributed %d KiB",
		spec, *before.Usage, *after.Usage, growth>>20, b(after, "pagetables")>>10, b(after, "kernel_stack")>>10,
		b(after, "pipes")>>10, *after.Breakdown["pipes"].Count, b(after, "unattributed")>>10)
	// 4000 touched mappings 2 MiB apart: at least one 4 KiB page table each.
	if pt := b(after, "pagetables"); pt < 4000*4096 {
		t.Errorf("pagetables %d, want >= %d", pt, 4000*4096)
	}
	if n := *after.Breakdown["kernel_stack"].Count; n < 201 {
		t.Errorf("threads %d, want >= 201", n)
	}
	// 2000 of its own, plus its stdout pipe and the like.
	if n := *after.Breakdown["pipes"].Count; n < 2000 || n > 2010 {
		t.Errorf("pipes %d, want 2000 to 2010", n)
	}
	if pb := b(after, "pipes"); pb < 2000*(4096+kmem.PipeOverhead) {
		t.Errorf("pipe bytes %d, want >= %d", pb, 2000*(4096+kmem.PipeOverhead))
	}
	// 20000 tmpfs files: a dentry (192 B) and a shmem inode (~700 B) each,
	// which no process is charged with: the unattributed rest grows.
	if un := b(after, "unattributed") - b(before, "unattributed"); un < 20000*(192+600) {
		t.Errorf("unattributed grew %d, want >= %d (dentries + inodes)", un, 20000*(192+600))
	}
	// The kernel's own counter agrees with the attributed parts.
	if growth < 4000*4096+2000*4096+200*kmem.ThreadStackSize {
		t.Errorf("kmem usage grew only %d", growth)
	}
	if len(after.Processes) == 0 {
		t.Fatal("no processes attributed")
	}
	if p := after.Processes[0]; p.PageTables < 4000*4096 || p.Pipes < 2000 || p.Threads != 201 {
		t.Errorf("heaviest process pid %d (pagetables %d, pipes %d, threads %d) is not the inflater", p.PID, p.PageTables, p.Pipes, p.Threads)
	}
	if after.MaxUsage == nil || *after.MaxUsage < *after.Usage {
		t.Errorf("max_usage %v < usage %d", after.MaxUsage, *after.Usage)
	}
}

// TestProcessLeaderExited: a process whose main thread exited while
// another thread runs is read through that thread (its leader has no page
// tables and no open files of its own): it is not a zombie, and its page
// tables count.
func TestProcessLeaderExited(t *testing.T) {
	testbed.Require(t)
	g := testbed.New(t, testbed.Options{MemoryLimit: 64 << 20, PidsMax: 10})
	pid, _ := g.StartLeaderExited(8, false)
	p, err := kmem.ProcFS{}.Process(pid)
	if err != nil {
		t.Fatal(err)
	}
	if p.State == "Z" || p.PageTables == 0 || p.Threads != 2 {
		t.Errorf("state %q, page tables %d, threads %d; want a live process with its page tables and 2 threads", p.State, p.PageTables, p.Threads)
	}
}
