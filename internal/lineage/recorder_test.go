package lineage

import (
	"testing"
	"time"
)

const ms = time.Millisecond

// shape renders the tree under Root as "pid[flags](children...)" for
// comparison: '+' alive, '-' dead, 'x' exec image.
func shape(r *Recorder) string {
	var walk func(id ID) string
	walk = func(id ID) string {
		c := r.Get(id)
		s := ""
		if id != Root {
			s = itoa(int(c.PID))
			if c.Exec {
				s += "x"
			}
			if c.Alive {
				s += "+"
			} else {
				s += "-"
			}
		}
		var kids []string
		for ch := c.FirstChild; ch != None; ch = r.Get(ch).NextSibling {
			kids = append([]string{walk(ch)}, kids...) // oldest first
		}
		if len(kids) > 0 {
			s += "("
			for i, k := range kids {
				if i > 0 {
					s += " "
				}
				s += k
			}
			s += ")"
		}
		return s
	}
	return walk(Root)
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

type step struct {
	op   byte // 'f' fork, 'e' exec, 'x' exit
	a, b int32
	t    time.Duration
}

func run(r *Recorder, steps []step) {
	for _, s := range steps {
		switch s.op {
		case 'f':
			r.Fork(s.a, s.b, s.t)
		case 'e':
			r.Exec(s.a, s.t, []byte("x"))
		case 'x':
			r.Exit(s.a, s.t)
		}
	}
}

func TestRecorderLifetimes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
		want  string
		live  int
	}{
		{
			name: "dead parent kept while a child lives (bash bomb generation)",
			steps: []step{
				{'f', 1, 10, 1 * ms}, {'f', 10, 11, 2 * ms}, {'f', 10, 12, 3 * ms},
				{'x', 10, 0, 4 * ms}, {'f', 11, 13, 5 * ms}, {'x', 11, 0, 6 * ms},
			},
			want: "(10-(11-(13+) 12+))",
			live: 2,
		},
		{
			name: "dead chain freed when the last descendant dies",
			steps: []step{
				{'f', 1, 10, 1 * ms}, {'f', 10, 11, 2 * ms}, {'x', 10, 0, 3 * ms},
				{'f', 11, 12, 4 * ms}, {'x', 11, 0, 5 * ms}, {'x', 12, 0, 6 * ms},
			},
			want: "",
		},
		{
			name: "exec links the new image to the old; exit frees both",
			steps: []step{
				{'f', 1, 10, 1 * ms}, {'e', 10, 0, 2 * ms}, {'f', 10, 11, 3 * ms}, {'e', 11, 0, 4 * ms},
				{'e', 11, 0, 5 * ms},
			},
			want: "(10-(10x+(11-(11x-(11x+)))))",
			live: 2,
		},
		{
			name:  "thread-less short jobs leave nothing behind (shell loop)",
			steps: []step{{'f', 1, 10, 1}, {'e', 10, 0, 2}, {'x', 10, 0, 3}, {'f', 1, 11, 4}, {'e', 11, 0, 5}, {'x', 11, 0, 6}},
			want:  "",
		},
		{
			name:  "unknown parent hangs from the root",
			steps: []step{{'f', 99, 10, 1 * ms}},
			want:  " 10+",
			live:  1,
		},
		{
			name:  "pid reuse after a lost exit replaces the stale record",
			steps: []step{{'f', 1, 10, 1 * ms}, {'f', 1, 10, 500 * ms}},
			want:  "(10+)",
			live:  1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New(Config{})
			// Process 1 comes from a seed scan.
			r.Reconcile([]Proc{{PID: 1, Born: 0}}, 0)
			run(r, tc.steps)
			got := shape(r)
			want := "(1+" + tc.want + ")"
			if tc.want == "" {
				want = "(1+)"
			} else if tc.want[0] == ' ' {
				want = "(1+" + tc.want + ")"
			}
			if got != want {
				t.Errorf("tree = %s, want %s", got, want)
			}
			if n := r.LiveCount(); n != tc.live+1 {
				t.Errorf("live = %d, want %d", n, tc.live+1)
			}
		})
	}
}

// TestExitReportsOrphans: Exit tells whether the process left children,
// forked by its current image or an earlier one (before an exec).
func TestExitReportsOrphans(t *testing.T) {
	r := New(Config{})
	run(r, []step{{'f', 0, 10, 1}, {'f', 10, 11, 2}, {'e', 10, 0, 3}, {'f', 0, 20, 4}, {'f', 20, 21, 5}, {'f', 0, 30, 6}, {'e', 30, 0, 7}})
	for _, tc := range []struct {
		pid  int32
		want bool
	}{
		{10, true},  // its first image forked 11, then it exec'd
		{21, false}, // childless
		{20, false}, // its child 21 has exited
		{30, false}, // only its own exec image below it
	} {
		if got := r.Exit(tc.pid, 10); got != tc.want {
			t.Errorf("Exit(%d) = %v, want %v", tc.pid, got, tc.want)
		}
	}
}

func TestExitedMarksEveryImage(t *testing.T) {
	r := New(Config{})
	run(r, []step{{'f', 0, 10, 1}, {'f', 10, 11, 2}, {'e', 10, 0, 3}, {'x', 10, 0, 4}})
	// 10's first image stays (child 11 lives) and must know its process
	// exited, so 11 counts as an orphan.
	id, _ := r.Lookup(11)
	p := r.ForkParent(id)
	if p == None || !r.Get(p).Exited || r.Get(p).PID != 10 {
		t.Fatalf("fork parent of 11 = %+v, want exited pid 10", r.Get(p))
	}
	run(r, []step{{'f', 11, 12, 5}, {'e', 12, 0, 6}})
	id, _ = r.Lookup(12)
	if p := r.ForkParent(id); r.Get(p).PID != 11 || r.Get(p).Exited {
		t.Fatalf("fork parent of exec image 12 = %+v, want live 11", r.Get(p))
	}
}

func TestReconcile(t *testing.T) {
	r := New(Config{})
	seed := []Proc{{PID: 1, Born: 0}, {PID: 50, PPID: 1, Born: 100 * ms}, {PID: 60, PPID: 50, Born: 200 * ms}}
	if d := r.Reconcile(seed, time.Second); d != 3 {
		t.Fatalf("seed diff = %d, want 3", d)
	}
	if got := shape(r); got != "(1+(50+(60+)))" {
		t.Fatalf("seeded tree %s", got)
	}
	// Events go on; then a resync after loss: 60 died unseen, 70 was
	// forked unseen, 50's PID was reused by an unrelated process.
	r.Fork(60, 61, 2*time.Second)
	if d := r.Reconcile([]Proc{{PID: 1}, {PID: 50, PPID: 1, Born: 3 * time.Second}, {PID: 61, PPID: 1, Born: 2*time.Second + 5*ms}, {PID: 70, PPID: 61, Born: 2500 * ms}}, 4*time.Second); d != 4 {
		t.Fatalf("resync diff = %d, want 4 (50 stale, 60 gone, 50 new, 70 new)", d)
	}
	if got := shape(r); got != "(1+(50-(60-(61+(70+))) 50+))" {
		t.Fatalf("resynced tree %s", got)
	}
	if d := r.Reconcile([]Proc{{PID: 1}, {PID: 50, PPID: 1, Born: 3 * time.Second}, {PID: 61, PPID: 1, Born: 2 * time.Second}, {PID: 70, PPID: 61, Born: 2500 * ms}}, 5*time.Second); d != 0 {
		t.Fatalf("consistent resync diff = %d, want 0", d)
	}
}

func TestReconcileChildBeforeParent(t *testing.T) {
	// Same start tick, and the child's PID is lower (PIDs wrapped).
	r := New(Config{})
	r.Reconcile([]Proc{{PID: 1}, {PID: 300, PPID: 1, Born: time.Second}, {PID: 5, PPID: 300, Born: time.Second}}, 2*time.Second)
	if got := shape(r); got != "(1+(300+(5+)))" {
		t.Fatalf("tree %s", got)
	}
}

func TestReconcileTakesInForksOfUnknownParents(t *testing.T) {
	// A fork event applied before the seed scan hangs under Root; the
	// scan then brings its parent.
	r := New(Config{})
	r.Fork(300, 301, time.Second)
	r.Reconcile([]Proc{{PID: 1}, {PID: 300, PPID: 1, Born: 500 * ms}, {PID: 301, PPID: 300, Born: time.Second}}, 2*time.Second)
	if got := shape(r); got != "(1+(300+(301+)))" {
		t.Fatalf("tree %s", got)
	}
}

func TestAgingQuiescence(t *testing.T) {
	setup := func() *Recorder {
		r := New(Config{AgeInterval: 30 * time.Second})
		r.Reconcile([]Proc{{PID: 1}}, 0)
		run(r, []step{{'f', 1, 10, 1 * ms}, {'f', 10, 11, 2 * ms}, {'x', 10, 0, 3 * ms}})
		r.Tick(time.Second, false)
		return r
	}
	t.Run("quiet interval forgets old dead records", func(t *testing.T) {
		r := setup()
		r.Tick(20*time.Second, false)
		if n := r.Tick(32*time.Second, false); n != 1 {
			t.Fatalf("aged %d, want 1", n)
		}
		if got := shape(r); got != "(1+(11+))" {
			t.Fatalf("tree %s", got)
		}
		id, _ := r.Lookup(11)
		if r.Get(id).PPID != 10 {
			t.Fatalf("recorded ppid lost: %+v", r.Get(id))
		}
	})
	t.Run("reclaim blocks aging", func(t *testing.T) {
		r := setup()
		r.Tick(20*time.Second, true)
		if n := r.Tick(32*time.Second, false); n != 0 {
			t.Fatalf("aged %d during reclaim", n)
		}
		if n := r.Tick(63*time.Second, false); n != 1 {
			t.Fatalf("aged %d after a quiet interval, want 1", n)
		}
	})
	t.Run("growth blocks aging", func(t *testing.T) {
		r := setup()
		r.Fork(1, 20, 10*time.Second)
		if n := r.Tick(32*time.Second, false); n != 0 {
			t.Fatalf("aged %d while the count grew", n)
		}
	})
	t.Run("records younger than the interval stay", func(t *testing.T) {
		r := New(Config{AgeInterval: 30 * time.Second})
		r.Tick(time.Second, false)
		run(r, []step{{'f', 0, 10, 25 * time.Second}, {'f', 10, 11, 25 * time.Second}, {'x', 10, 0, 26 * time.Second}})
		r.Exit(99, 0)
		r.Tick(50*time.Second, false) // interval saw growth
		if n := r.Tick(81*time.Second, false); n != 1 {
			t.Fatalf("aged %d, want 1 after a quiet interval", n)
		}
	})
}

func TestCap(t *testing.T) {
	r := New(Config{MaxRecords: 32})
	// A chain of 20 dead ancestors with one live leaf, then 30 live
	// processes: dead ancestors go first, then new ones are dropped.
	for i := int32(1); i <= 20; i++ {
		r.Fork(i-1, i, time.Duration(i))
		if i > 1 {
			r.Exit(i-1, time.Duration(i))
		}
	}
	for i := int32(100); i < 140; i++ {
		r.Fork(0, i, time.Second)
	}
	s := r.Stats()
	if s.Records > 32 || s.Evicted == 0 || s.Dropped == 0 {
		t.Fatalf("stats %+v: want <= 32 records, some evicted, some dropped", s)
	}
	if _, ok := r.Lookup(20); !ok {
		t.Fatal("live leaf of the evicted chain was lost")
	}
}

func TestSteadyStateDoesNotAllocate(t *testing.T) {
	r := New(Config{})
	r.Reconcile([]Proc{{PID: 1}}, 0)
	comm := []byte("true")
	pid := int32(1000)
	step := func() {
		pid++
		if pid > 30000 {
			pid = 1001
		}
		r.Fork(1, pid, time.Second)
		r.Exec(pid, time.Second, comm)
		r.Exit(pid, time.Second)
	}
	for i := 0; i < 10000; i++ {
		step()
	}
	if a := testing.AllocsPerRun(1000, step); a != 0 {
		t.Fatalf("fork+exec+exit allocates %v times", a)
	}
}

func TestEventsBeforeTheirFork(t *testing.T) {
	// The kernel sends a fork event after waking the child, so the child's
	// exec or exit can arrive first.
	r := New(Config{})
	r.Reconcile([]Proc{{PID: 1}}, 0)
	run(r, []step{{'f', 1, 10, 1 * ms}, {'e', 11, 0, 3 * ms}, {'f', 11, 12, 4 * ms}, {'f', 10, 11, 2 * ms}})
	if got := shape(r); got != "(1+(10+(11+(12+))))" {
		t.Fatalf("exec before fork: tree %s", got)
	}
	id, _ := r.Lookup(11)
	if c := r.Get(id); c.PPID != 10 || c.Born != 2*ms || c.Scanned {
		t.Fatalf("relinked record %+v", c)
	}
	// An exit before the fork leaves no phantom live process.
	run(r, []step{{'x', 20, 0, 6 * ms}, {'f', 10, 20, 5 * ms}})
	if _, ok := r.Lookup(20); ok || r.LiveCount() != 4 {
		t.Fatalf("phantom process after exit-before-fork: live %d, tree %s", r.LiveCount(), shape(r))
	}
}

func TestLateForkEventTakesBackItsChildren(t *testing.T) {
	// Parent 10 is preempted between waking child 11 and sending the fork
	// event: 11 forks 12 and exits before the event arrives.
	r := New(Config{})
	r.Reconcile([]Proc{{PID: 1}}, 0)
	run(r, []step{{'f', 1, 10, 1 * ms}, {'f', 11, 12, 3 * ms}, {'x', 11, 0, 4 * ms}, {'f', 10, 11, 2 * ms}})
	if got := shape(r); got != "(1+(10+(11-(12+))))" {
		t.Fatalf("tree %s", got)
	}
	if r.LiveCount() != 3 {
		t.Fatalf("live %d, want 3 (no phantom 11)", r.LiveCount())
	}
	// A late fork of a childless process that already exited leaves
	// nothing.
	run(r, []step{{'x', 20, 0, 6 * ms}, {'f', 10, 20, 5 * ms}})
	if _, ok := r.Lookup(20); ok || r.Stats().Records != 4 {
		t.Fatalf("late fork of an exited process: %+v, tree %s", r.Stats(), shape(r))
	}
	// The same PID reused later is a new, live process.
	r.Fork(10, 20, 10*ms)
	if _, ok := r.Lookup(20); !ok {
		t.Fatal("reused PID not recorded")
	}
}

// TestStaleCommIsCorrectedThroughAChild: a process exec'd bash and exited
// before its exec was applied, so the exec could not name it; its child,
// forked before the exit, names both.
func TestStaleCommIsCorrectedThroughAChild(t *testing.T) {
	r := New(Config{})
	r.Reconcile([]Proc{{PID: 1}, {PID: 10, PPID: 1, Comm: [16]byte{'t', 'i', 'm', 'e', 'o', 'u', 't'}}}, time.Second)
	r.Fork(10, 11, 2*time.Second)
	r.Exec(11, 2*time.Second, nil) // bash, but already gone when read
	r.Fork(11, 12, 3*time.Second)
	r.Exit(11, 3*time.Second)
	comm := func(pid int32) (string, bool) {
		id, _ := r.Lookup(pid)
		return r.Get(id).CommString(), r.Get(id).CommStale
	}
	if c, stale := comm(12); c != "timeout" || !stale {
		t.Fatalf("child before SetComm: %q stale %v; want the copied, stale name", c, stale)
	}
	r.SetComm(12, []byte("bash"))
	if c, stale := comm(12); c != "bash" || stale {
		t.Fatalf("child after SetComm: %q stale %v", c, stale)
	}
	parent := r.Get(r.Get(mustLookup(t, r, 12)).Parent)
	if parent.PID != 11 || parent.CommString() != "bash" || parent.CommStale {
		t.Fatalf("the exited parent's image = pid %d %q stale %v; want 11 named bash", parent.PID, parent.CommString(), parent.CommStale)
	}
	if prev := r.Get(parent.Parent); prev.CommString() != "timeout" {
		t.Fatalf("the image before the exec was renamed %q", prev.CommString())
	}
}

func mustLookup(t *testing.T, r *Recorder, pid int32) ID {
	t.Helper()
	id, ok := r.Lookup(pid)
	if !ok {
		t.Fatalf("pid %d not live", pid)
	}
	return id
}

// TestLastImage: a process that forked and then exec'd twice is named by
// its third image; a process that never exec'd is its own last image.
func TestLastImage(t *testing.T) {
	r := New(Config{})
	r.Reconcile([]Proc{{PID: 1}, {PID: 100, PPID: 1, Born: time.Second}}, 2*time.Second)
	r.Fork(100, 200, 3*time.Second)
	first, _ := r.Lookup(200)
	r.Exec(200, 4*time.Second, []byte("timeout"))
	r.Exec(200, 5*time.Second, []byte("bash"))
	last, _ := r.Lookup(200)
	if first == last || r.LastImage(first) != last || r.Get(last).CommString() != "bash" {
		t.Fatalf("LastImage(%d) = %d, want %d (bash)", first, r.LastImage(first), last)
	}
	parent, _ := r.Lookup(100)
	if r.LastImage(parent) != parent {
		t.Fatalf("LastImage of a process that never exec'd = %d, want itself %d", r.LastImage(parent), parent)
	}
}

// TestReconcileSeesLostExec: a fork seen, its exec lost. The scan shows the
// process under another name: it runs another program, and is no longer a
// copy of its parent under the parent's name.
func TestReconcileSeesLostExec(t *testing.T) {
	var sh, loop [16]byte
	copy(sh[:], "timeout")
	copy(loop[:], "forkloop")
	r := New(Config{})
	r.Reconcile([]Proc{{PID: 1}, {PID: 50, PPID: 1, Born: 100 * ms, Comm: sh}}, time.Second)
	r.Fork(50, 51, 2*time.Second)
	id, _ := r.Lookup(51)
	if c := r.Get(id); c.Comm != sh || c.Exec {
		t.Fatalf("forked record %+v, want a copy named timeout", c)
	}
	scan := []Proc{{PID: 1}, {PID: 50, PPID: 1, Born: 100 * ms, Comm: sh}, {PID: 51, PPID: 50, Born: 2 * time.Second, Comm: loop}}
	if d := r.Reconcile(scan, 3*time.Second); d != 1 {
		t.Fatalf("resync diff = %d, want 1 (the lost exec)", d)
	}
	img, _ := r.Lookup(51)
	c := r.Get(img)
	if c.Comm != loop || !c.Exec || !c.Alive || c.Parent != id || c.Born != 2*time.Second {
		t.Fatalf("live image of 51: %+v, want an exec image named forkloop below record %d, born at 2s", c, id)
	}
	if got := shape(r); got != "(1+(50+(51-(51x+))))" {
		t.Fatalf("tree %s", got)
	}
	if d := r.Reconcile(scan, 4*time.Second); d != 0 {
		t.Fatalf("consistent resync diff = %d, want 0", d)
	}
	// A fork of a parent not on record has no name yet: the scan names
	// it, and that is no exec.
	r.Fork(52, 53, 5*time.Second)
	scan = append(scan, Proc{PID: 52, PPID: 1, Born: 4500 * ms, Comm: loop}, Proc{PID: 53, PPID: 52, Born: 5 * time.Second, Comm: loop})
	if d := r.Reconcile(scan, 6*time.Second); d != 1 {
		t.Fatalf("resync diff = %d, want 1 (52 new)", d)
	}
	id53, _ := r.Lookup(53)
	if c := r.Get(id53); c.Comm != loop || c.Exec || c.CommStale || r.Get(c.Parent).PID != 52 {
		t.Fatalf("record of 53: %+v, want the fork named forkloop below 52", c)
	}
}
