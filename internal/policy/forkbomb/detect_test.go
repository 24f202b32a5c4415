package forkbomb

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oomguard/oomguard/internal/lineage"
)

const ms = time.Millisecond

// sim generates event sequences shaped like real workloads into a recorder
// and runs the detector every 10 ms of simulated time.
type sim struct {
	t       *testing.T
	rec     *lineage.Recorder
	det     *Detector
	now     time.Duration
	nextPID int32
	rng     *rand.Rand
	found   []Verdict
	// atLive is the live count of the first verdict's family.
	lastCheck time.Duration
	scope     *PIDSet
}

func newSim(t *testing.T) *sim {
	s := &sim{t: t, rec: lineage.New(lineage.Config{}), det: New(Config{}), now: 100 * time.Second,
		nextPID: 1000, rng: rand.New(rand.NewPCG(1, 2))}
	// init (old), a login shell (old) and a subreaper (old).
	s.rec.Reconcile([]lineage.Proc{{PID: 1}, {PID: 500, PPID: 1, Born: time.Second}}, s.now)
	return s
}

func (s *sim) fork(parent int32) int32 {
	s.nextPID++
	s.rec.Fork(parent, s.nextPID, s.now)
	return s.nextPID
}
func (s *sim) exec(pid int32, comm string) { s.rec.Exec(pid, s.now, []byte(comm)) }
func (s *sim) exit(pid int32)              { s.rec.Exit(pid, s.now) }

// advance moves time on and runs the detector on every 10 ms boundary.
func (s *sim) advance(d time.Duration) {
	s.now += d
	if s.now-s.lastCheck < 10*ms {
		return
	}
	s.lastCheck = s.now
	if len(s.found) > 0 {
		return
	}
	s.found = s.det.Detect(Input{Lineage: s.rec, Now: s.now, Scope: s.scope, Self: 999}, nil)
}

func (s *sim) live() int { return s.rec.LiveCount() }

// doubleAndExit makes each process of frontier fork two children and exit,
// and returns the children: one generation of a bomb whose parents exit.
func (s *sim) doubleAndExit(frontier []int32) []int32 {
	var next []int32
	for _, p := range frontier {
		a, b := s.fork(p), s.fork(p)
		s.exit(p)
		next = append(next, a, b)
	}
	return next
}

type workload struct {
	name string
	bomb bool
	run  func(s *sim) // runs until done or s.found is set
	// rootPID tells the expected root of the bomb family (0: any).
	rootPID func(s *sim) int32
}

func bashBomb(s *sim) {
	shell := s.fork(500)
	s.exec(shell, "bash")
	s.advance(ms)
	frontier := []int32{shell}
	for len(s.found) == 0 && s.live() < 5000 {
		var next []int32
		for _, p := range frontier {
			sub := s.fork(p) // background subshell for `b|b &`
			s.exit(p)
			a, b := s.fork(sub), s.fork(sub)
			s.exit(sub)
			next = append(next, a, b)
			s.advance(200 * time.Microsecond)
			if len(s.found) > 0 {
				return
			}
		}
		frontier = next
	}
}

func forkLoop(s *sim) {
	root := s.fork(500)
	s.exec(root, "forkloop")
	members := []int32{root}
	for len(s.found) == 0 && s.live() < 5000 {
		p := members[s.rng.IntN(len(members))]
		members = append(members, s.fork(p))
		s.advance(70 * time.Microsecond) // ~14,000 forks/s
	}
}

func execChain(s *sim) {
	root := s.fork(500)
	s.exec(root, "sh")
	frontier := []int32{root}
	for len(s.found) == 0 && s.live() < 5000 {
		var next []int32
		for _, p := range frontier {
			for i := 0; i < 2; i++ {
				c := s.fork(p)
				s.exec(c, "sh")
				s.exec(c, "sh")
				next = append(next, c)
			}
			s.exit(p)
			s.advance(300 * time.Microsecond)
			if len(s.found) > 0 {
				return
			}
		}
		frontier = next
	}
}

func slowDoubling(s *sim) {
	root := s.fork(500)
	s.exec(root, "slow")
	members := []int32{root}
	for len(s.found) == 0 && s.live() < 5000 {
		for _, p := range append([]int32(nil), members...) {
			members = append(members, s.fork(p))
		}
		s.advance(200 * ms)
	}
}

// makeJ16 is make -j16 over 300 targets: make forks sh -c, which execs gcc,
// which forks cc1 and as in turn; 16 jobs at a time.
func makeJ16(s *sim) {
	mk := s.fork(500)
	s.exec(mk, "make")
	type job struct{ sh, child int32 }
	var running []job
	for done, started := 0, 0; done < 300; {
		for len(running) < 16 && started < 300 {
			sh := s.fork(mk)
			s.exec(sh, "sh")
			s.exec(sh, "gcc")
			c := s.fork(sh)
			s.exec(c, "cc1")
			running = append(running, job{sh, c})
			started++
			s.advance(500 * time.Microsecond)
		}
		j := running[0]
		running = running[1:]
		s.exit(j.child)
		as := s.fork(j.sh)
		s.exec(as, "as")
		s.advance(2 * ms)
		s.exit(as)
		s.exit(j.sh)
		done++
		s.advance(3 * ms)
	}
	s.exit(mk)
	s.advance(20 * ms)
}

// xargs32 is xargs -P 32 over 5,000 jobs of sh -c 'cmd'.
func xargs32(s *sim) {
	x := s.fork(500)
	s.exec(x, "xargs")
	var running []int32
	for done := 0; done < 5000; done++ {
		for len(running) < 32 {
			c := s.fork(x)
			s.exec(c, "sh")
			running = append(running, c)
		}
		s.exit(running[0])
		running = running[1:]
		s.advance(150 * time.Microsecond)
	}
	s.advance(20 * ms)
}

func shellLoop(s *sim) {
	sh := s.fork(500)
	s.exec(sh, "sh")
	for i := 0; i < 10000; i++ {
		c := s.fork(sh)
		s.exec(c, "true")
		s.advance(100 * time.Microsecond)
		s.exit(c)
	}
	s.advance(20 * ms)
}

// goBuild is go build -p 2 of 40 packages plus go vet's per-package tools.
func goBuild(s *sim) {
	g := s.fork(500)
	s.exec(g, "go")
	for i := 0; i < 40; i++ {
		var kids []int32
		for j := 0; j < 2; j++ {
			c := s.fork(g)
			s.exec(c, "compile")
			kids = append(kids, c)
		}
		s.advance(30 * ms)
		for _, c := range kids {
			s.exit(c)
		}
	}
	l := s.fork(g)
	s.exec(l, "link")
	s.advance(100 * ms)
	s.exit(l)
	s.advance(20 * ms)
}

// preforkPool is a server forking 400 workers at start: large and young,
// but one level deep with a live parent. Not a bomb.
func preforkPool(s *sim) {
	m := s.fork(500)
	s.exec(m, "httpd")
	for i := 0; i < 400; i++ {
		s.fork(m)
		s.advance(100 * time.Microsecond)
	}
	s.advance(time.Second)
}

// nestedSubshells is a script that runs, 20 at a time and 10 times over,
// `( ( a | b ) ) &`: a subshell in a subshell (copies of the script, for as
// long as the pipeline runs) forks the pipeline's halves, which are copies
// too until they exec a millisecond later. Three copies nest, but the
// innermost never runs CopyAge without exec.
func nestedSubshells(s *sim) {
	sh := s.fork(500)
	s.exec(sh, "bash")
	for round := 0; round < 10; round++ {
		var procs []int32
		var halves []int32
		for i := 0; i < 20; i++ {
			outer := s.fork(sh)
			inner := s.fork(outer)
			a, b := s.fork(inner), s.fork(inner)
			procs = append(procs, outer, inner, a, b)
			halves = append(halves, a, b)
		}
		s.advance(ms)
		for i, p := range halves {
			s.exec(p, []string{"gzip", "wc"}[i%2])
		}
		s.advance(50 * ms)
		for i := len(procs) - 1; i >= 0; i-- {
			s.exit(procs[i])
		}
		s.advance(5 * ms)
	}
	s.advance(time.Second)
}

// preforkHelpers is a server that forks 50 workers, each of which forks
// one helper copy of itself: two copies nest, 101 members, none exec'd.
func preforkHelpers(s *sim) {
	m := s.fork(500)
	s.exec(m, "server")
	var workers []int32
	for i := 0; i < 50; i++ {
		workers = append(workers, s.fork(m))
		s.advance(ms)
	}
	for _, w := range workers {
		s.fork(w)
		s.advance(ms)
	}
	s.advance(time.Second)
}

// daemonizers: 300 services double-forking into the background: each
// leaves one orphan whose parent died, but under many different roots.
func daemonizers(s *sim) {
	for i := 0; i < 300; i++ {
		a := s.fork(500)
		b := s.fork(a)
		s.exit(a)
		c := s.fork(b)
		s.exit(b)
		_ = c
		s.advance(ms)
	}
	s.advance(time.Second)
}

// backgroundLauncher is a script that starts 150 background jobs and exits:
// all orphans, but one level deep.
func backgroundLauncher(s *sim) {
	sh := s.fork(500)
	s.exec(sh, "sh")
	for i := 0; i < 150; i++ {
		c := s.fork(sh)
		s.exec(c, "sleep")
		s.advance(200 * time.Microsecond)
	}
	s.exit(sh)
	s.advance(time.Second)
}

// serviceLauncher is a boot script that starts 5 service scripts in the
// background and exits; each starts 2 daemons in the background and exits,
// and each daemon double-forks and starts 10 workers. Exited parents of
// several children nest two deep (the launcher, the service scripts), one
// short of ReplicatingGenerations; the daemonising forks leave exited
// parents of one child, which do not count.
func serviceLauncher(s *sim) {
	boot := s.fork(500)
	s.exec(boot, "sh")
	for i := 0; i < 5; i++ {
		svc := s.fork(boot)
		s.exec(svc, "sh")
		s.advance(ms)
		for j := 0; j < 2; j++ {
			a := s.fork(svc)
			s.exec(a, "daemon")
			b := s.fork(a)
			s.exit(a)
			s.advance(ms)
			for k := 0; k < 10; k++ {
				s.fork(b)
				s.advance(500 * time.Microsecond)
			}
		}
		s.exit(svc)
		s.advance(ms)
	}
	s.exit(boot)
	s.advance(time.Second)
}

func TestDetector(t *testing.T) {
	for _, w := range []workload{
		{name: "bash bomb with exiting parents", bomb: true, run: bashBomb},
		{name: "C fork loop", bomb: true, run: forkLoop},
		{name: "sh -c exec chains", bomb: true, run: execChain},
		{name: "slow bomb doubling every 200ms", bomb: true, run: slowDoubling},
		{name: "make -j16 of 300 targets", run: makeJ16},
		{name: "xargs -P 32 over 5000 jobs", run: xargs32},
		{name: "shell loop of /bin/true x10000", run: shellLoop},
		{name: "parallel go build", run: goBuild},
		{name: "prefork pool of 400", run: preforkPool},
		{name: "300 double-forking daemons", run: daemonizers},
		{name: "script backgrounding 150 jobs and exiting", run: backgroundLauncher},
		{name: "boot script starting services that daemonise", run: serviceLauncher},
		{name: "script running pipelines in nested subshells", run: nestedSubshells},
		{name: "prefork pool whose workers fork a helper", run: preforkHelpers},
	} {
		t.Run(w.name, func(t *testing.T) {
			s := newSim(t)
			w.run(s)
			if !w.bomb {
				if len(s.found) > 0 {
					t.Fatalf("false positive: %+v", s.found[0])
				}
				return
			}
			if len(s.found) != 1 {
				t.Fatalf("bomb not found (live %d): %+v", s.live(), s.found)
			}
			v := s.found[0]
			cfg := s.det.Config()
			if least := min(cfg.OrphanFamily, cfg.ReplicatingFamily, cfg.CloningFamily); v.Live >= 1000 || v.Live < least {
				t.Errorf("detected at family size %d, want [%d, 1000)", v.Live, least)
			}
			t.Logf("found at %d live: %+v", v.Live, v)
			// The family is everything the bomb started: its root is the
			// first process of the bomb (child of the login shell 500).
			if r := s.rec.Get(v.Root); r.PPID != 500 {
				t.Errorf("root %+v is not the bomb's first process", r)
			}
			if v.Live != s.live()-2 {
				t.Errorf("family has %d live members, bomb has %d", v.Live, s.live()-2)
			}
			if got := len(Members(s.rec, v.Root, nil, nil)); got != v.Live {
				t.Errorf("Members = %d, verdict live %d", got, v.Live)
			}
		})
	}
}

func TestScopeAndProtection(t *testing.T) {
	s := newSim(t)
	// The bomb's parent shell is young but outside the scope: the root
	// must stop below it; and nothing is found when the scope excludes
	// the bomb altogether.
	sh := s.fork(500)
	s.exec(sh, "sh")
	s.advance(ms)
	var inScope []int
	members := []int32{s.fork(sh)}
	for len(members) < 400 {
		p := members[s.rng.IntN(len(members))]
		members = append(members, s.fork(p))
	}
	for _, m := range members {
		inScope = append(inScope, int(m))
	}
	s.now += 20 * ms
	det := New(Config{})
	got := det.Detect(Input{Lineage: s.rec, Now: s.now, Scope: NewPIDSet(inScope)}, nil)
	if len(got) != 1 || got[0].RootPID != members[0] || got[0].Live != 400 {
		t.Fatalf("scoped detect = %+v, want root %d with 400 live", got, members[0])
	}
	// Unscoped, the young shell is in reach, but it only started the bomb
	// and waits: a live parent with one child is stepped past, so it is
	// spared.
	got = det.Detect(Input{Lineage: s.rec, Now: s.now}, nil)
	if len(got) != 1 || got[0].RootPID != members[0] {
		t.Fatalf("unscoped detect = %+v, want root %d (the bomb below the waiting shell %d)", got, members[0], sh)
	}
	got = det.Detect(Input{Lineage: s.rec, Now: s.now, Scope: NewPIDSet([]int{1, 500})}, nil)
	if len(got) != 0 {
		t.Fatalf("detect outside scope = %+v", got)
	}
	got = det.Detect(Input{Lineage: s.rec, Now: s.now, Self: sh}, nil)
	if len(got) != 1 || got[0].RootPID != members[0] {
		t.Fatalf("self excluded detect = %+v", got)
	}
	// Much later, the same family is old and static: left alone.
	got = det.Detect(Input{Lineage: s.rec, Now: s.now + 10*time.Minute}, nil)
	if len(got) != 0 {
		t.Fatalf("old static family flagged: %+v", got)
	}
}

func TestDetectDoesNotAllocateWhenWarm(t *testing.T) {
	s := newSim(t)
	for i := 0; i < 100; i++ {
		s.fork(500)
	}
	det := New(Config{})
	out := make([]Verdict, 0, 4)
	in := Input{Lineage: s.rec, Now: s.now}
	det.Detect(in, out)
	if a := testing.AllocsPerRun(100, func() { det.Detect(in, out[:0]) }); a != 0 {
		t.Fatalf("Detect allocates %v times per pass", a)
	}
}

func TestOldSiblingUnderDeadAncestorIsSpared(t *testing.T) {
	s := newSim(t)
	s.now = 10 * time.Second
	bash := s.fork(500)
	s.now = 20 * time.Second
	daemon := s.fork(bash)
	s.now = 200 * time.Second
	bomb := s.fork(bash)
	s.exit(bash)
	members := []int32{bomb}
	for len(members) < 300 {
		members = append(members, s.fork(members[s.rng.IntN(len(members))]))
	}
	got := New(Config{}).Detect(Input{Lineage: s.rec, Now: s.now}, nil)
	if len(got) != 1 || got[0].RootPID != bomb {
		t.Fatalf("detect = %+v, want root %d", got, bomb)
	}
	for _, m := range Members(s.rec, got[0].Root, nil, nil) {
		if m.PID == daemon {
			t.Fatal("old daemon under the dead ancestor is in the family")
		}
	}
}

// TestNoIO keeps the detector pure: nothing it depends on does I/O.
func TestNoIO(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "os", "os/exec", "net", "golang.org/x/sys/unix": // (time pulls in syscall)
			t.Errorf("detector depends on %s", dep)
		}
	}
}

// TestNeverClimbsIntoOomguardsFamily: a young test runner started the
// bystanders, oomguard itself and a bomb. The verdict's root is the bomb's
// shell, never the runner, so neither oomguard nor the bystanders are in the
// family that gets killed.
func TestNeverClimbsIntoOomguardsFamily(t *testing.T) {
	s := newSim(t)
	s.now += 10 * time.Second
	runner := s.fork(500)
	s.exec(runner, "vmtool")
	var bystanders []int32
	for _, name := range []string{"shell", "editor", "probe"} {
		b := s.fork(runner)
		s.exec(b, name)
		bystanders = append(bystanders, b)
	}
	self := s.fork(runner)
	s.exec(self, "oomguard")
	s.advance(ms)
	shell := s.fork(runner)
	s.exec(shell, "bash")
	frontier := []int32{shell}
	for len(s.found) == 0 && s.live() < 3000 {
		var next []int32
		for _, p := range frontier {
			a, b := s.fork(p), s.fork(p)
			if p != shell {
				s.exit(p)
			}
			next = append(next, a, b)
		}
		frontier = next
		s.advance(5 * ms)
	}
	s.found = s.det.Detect(Input{Lineage: s.rec, Now: s.now, Self: self}, nil)
	if len(s.found) == 0 {
		t.Fatalf("the bomb was not found (%d live)", s.live())
	}
	for _, v := range s.found {
		if v.RootPID == runner {
			t.Fatalf("verdict rooted at the runner %d, whose family holds oomguard %d and bystanders %v", runner, self, bystanders)
		}
		for _, m := range Members(s.rec, v.Root, nil, nil) {
			if m.PID == self || m.PID == runner || m.PID == bystanders[0] || m.PID == bystanders[1] || m.PID == bystanders[2] {
				t.Fatalf("family of %d includes %d (runner %d, oomguard %d, bystanders %v)", v.RootPID, m.PID, runner, self, bystanders)
			}
		}
	}
}

// TestSparesLiveLauncher: `sh -c 'sh -c "b(){ b|b & }; b; sleep 1000" & wait'`:
// the outer shell only waits for its one child; the family to kill is the
// inner shell's, not the launcher's.
func TestSparesLiveLauncher(t *testing.T) {
	s := newSim(t)
	launcher := s.fork(500)
	s.exec(launcher, "sh")
	inner := s.fork(launcher)
	s.exec(inner, "sh")
	sleeper := s.fork(inner)
	s.exec(sleeper, "sleep")
	frontier := []int32{s.fork(inner)}
	for len(s.found) == 0 && s.live() < 3000 {
		frontier = s.doubleAndExit(frontier)
		s.advance(5 * ms)
	}
	if len(s.found) == 0 {
		t.Fatalf("the bomb was not found (%d live)", s.live())
	}
	for _, v := range s.found {
		for _, m := range Members(s.rec, v.Root, nil, nil) {
			if m.PID == launcher {
				t.Fatalf("family of %d includes the live launcher %d", v.RootPID, launcher)
			}
		}
	}
}

// TestReplicationGenerations checks the count behind ReplicatingGenerations
// on the boot script above: two nested generations, so the default (3)
// leaves it alone and a threshold of 2 would not.
func TestReplicationGenerations(t *testing.T) {
	s := newSim(t)
	serviceLauncher(s)
	if len(s.found) != 0 {
		t.Fatalf("default thresholds flagged the boot script: %+v", s.found[0])
	}
	s.now -= 900 * ms // back to when the services were young and starting
	got := New(Config{ReplicatingGenerations: 2}).Detect(Input{Lineage: s.rec, Now: s.now}, nil)
	if len(got) != 1 || got[0].Generations != 2 || got[0].Live != 110 {
		t.Fatalf("detect with 2 generations = %+v, want one family of 110 live with 2 generations", got)
	}
}

// TestWrapperIsSparedAtThreshold: a young wrapper (timeout) waits for a bomb
// whose family just reached ReplicatingFamily counting the wrapper itself.
// The wrapper is stepped past even though the family below it is one short
// of the threshold alone.
func TestWrapperIsSparedAtThreshold(t *testing.T) {
	s := newSim(t)
	wrapper := s.fork(500)
	s.exec(wrapper, "timeout")
	s.now += ms
	root := s.fork(wrapper)
	s.exec(root, "bash")
	frontier := []int32{root}
	for gen := 0; gen < 3; gen++ {
		frontier = s.doubleAndExit(frontier)
		s.now += 50 * ms
	}
	// 8 live bomb members; 7 more make 15, and the wrapper the 16th.
	for _, p := range frontier[:7] {
		s.fork(p)
	}
	s.now += ms
	det := New(Config{})
	got := det.Detect(Input{Lineage: s.rec, Now: s.now, Self: 999}, nil)
	if len(got) != 1 {
		t.Fatalf("detect = %+v, want one family", got)
	}
	if got[0].RootPID != root || got[0].Live != 15 || got[0].Generations != 3 {
		t.Fatalf("verdict = %+v, want root %d (not the wrapper %d) with 15 live and 3 generations", got[0], root, wrapper)
	}
}

// runnerWithBystanders starts a young runner (vmtool in the VM benchmark)
// with two long-running bystanders and, 1.5 s later, the shell that will
// run a bomb.
func runnerWithBystanders(s *sim) (runner int32, bystanders []int32, shell int32) {
	runner = s.fork(500)
	s.exec(runner, "vmtool")
	for _, name := range []string{"shell", "editor"} {
		b := s.fork(runner)
		s.exec(b, name)
		bystanders = append(bystanders, b)
	}
	s.now += 1500 * ms
	shell = s.fork(runner)
	s.exec(shell, "sh")
	return runner, bystanders, shell
}

// TestSparesLauncherWithBystanders: a young runner (a test harness, a CI
// job script) started two long-running bystanders and a probe that forks
// now and then, and then a shell that runs a bash bomb. The runner's family
// qualifies first, top down; the verdict must step down to the bomb's shell
// and leave the runner and its bystanders out, while holding every live
// member of the bomb. The shell stays in: both its bomb children qualify.
func TestSparesLauncherWithBystanders(t *testing.T) {
	s := newSim(t)
	runner, bystanders, shell := runnerWithBystanders(s)
	// sh -c 'b(){ b|b & }; b; sleep 1000': the shell itself forks the
	// first pipeline's two subshells, then sleeps.
	frontier := []int32{s.fork(shell), s.fork(shell)}
	sleeper := s.fork(shell)
	s.exec(sleeper, "sleep")
	probes := 0
	for len(s.found) == 0 && s.live() < 3000 {
		frontier = s.doubleAndExit(frontier)
		if probes%2 == 0 {
			p := s.fork(runner) // the probe's /bin/true, every other step
			s.exec(p, "true")
			bystanders = append(bystanders, p)
		}
		probes++
		s.advance(10 * ms)
	}
	if len(s.found) != 1 {
		t.Fatalf("detect = %+v, want one family", s.found)
	}
	v := s.found[0]
	if v.RootPID != shell {
		t.Errorf("verdict root = %d, want the bomb's shell %d (runner %d)", v.RootPID, shell, runner)
	}
	members := Members(s.rec, v.Root, nil, nil)
	in := map[int32]bool{}
	for _, m := range members {
		in[m.PID] = true
	}
	for _, p := range append([]int32{runner}, bystanders...) {
		if in[p] {
			t.Errorf("family of %d includes %d, which is not the bomb's", v.RootPID, p)
		}
	}
	for _, p := range append([]int32{sleeper}, frontier...) {
		if !in[p] {
			t.Errorf("family of %d misses bomb member %d", v.RootPID, p)
		}
	}
}

// TestForkLoopRootStaysBesideOneQualifyingChild: a live root whose first
// child's family alone qualifies stays the verdict's root when its other
// children hold as many recent births, or are copies of it born after the
// first (a fork loop forking into every child): stepping down would leave
// part of the bomb running. Siblings that run other programs, and are few
// and quiet, are a runner's bystanders.
func TestForkLoopRootStaysBesideOneQualifyingChild(t *testing.T) {
	for _, tc := range []struct {
		name     string
		siblings int // other children of the root, each forking once
		// exec has the siblings run another program (a runner's
		// bystanders) rather than stay copies of the root.
		exec     bool
		wantRoot func(root, first int32) int32
	}{
		{"busy siblings", 40, false, func(root, _ int32) int32 { return root }},
		{"quiet copies born after the first child", 2, false, func(root, _ int32) int32 { return root }},
		{"quiet siblings running other programs", 2, true, func(_, first int32) int32 { return first }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t)
			root := s.fork(500)
			s.exec(root, "forkloop")
			first := s.fork(root)
			// The first child's family: 4 generations of doubling parents
			// that exit, 16 live members, so it qualifies by itself.
			frontier := []int32{first}
			for gen := 0; gen < 4; gen++ {
				frontier = s.doubleAndExit(frontier)
			}
			for i := 0; i < tc.siblings; i++ {
				c := s.fork(root)
				if tc.exec {
					s.exec(c, "sleep")
				}
				s.fork(c)
			}
			s.now += 50 * ms // every copy has run CopyAge
			det := New(Config{})
			got := det.Detect(Input{Lineage: s.rec, Now: s.now, Self: 999}, nil)
			if len(got) == 0 {
				t.Fatal("nothing found")
			}
			if want := tc.wantRoot(root, first); got[0].RootPID != want {
				t.Fatalf("verdict root = %d, want %d (root %d, first child %d)", got[0].RootPID, want, root, first)
			}
		})
	}
}

// TestSparesLauncherAtThreshold: as in TestSparesLauncherWithBystanders,
// but the runner and its bystanders are what tip the family over
// ReplicatingFamily: the bomb's shell alone has 13 live members. Seen in
// the VM benchmark with zram, where the bomb was caught earlier.
func TestSparesLauncherAtThreshold(t *testing.T) {
	s := newSim(t)
	runner, bystanders, shell := runnerWithBystanders(s)
	frontier := []int32{shell}
	for gen := 0; gen < 3; gen++ {
		frontier = s.doubleAndExit(frontier)
		s.now += 50 * ms
	}
	// 8 live bomb members; 5 more make 13. With the runner and its two
	// bystanders, the runner's family has 16.
	for _, p := range frontier[:5] {
		s.fork(p)
	}
	s.now += ms
	got := New(Config{}).Detect(Input{Lineage: s.rec, Now: s.now, Self: 999}, nil)
	if len(got) != 1 {
		t.Fatalf("detect = %+v, want one family", got)
	}
	if got[0].RootPID == runner {
		t.Fatalf("verdict root is the runner %d; its bystanders %v would die", runner, bystanders)
	}
	if got[0].RootPID != shell || got[0].Live != 13 || got[0].Generations != 3 {
		t.Fatalf("verdict = %+v, want root %d (the bomb's shell) with 13 live and 3 generations", got[0], shell)
	}
}

// TestCopyAgeSparesPassingCopies: the nested-subshell script has three
// copies nested for the millisecond before its pipeline halves exec; only
// CopyAge keeps the cloning rule from flagging it.
func TestCopyAgeSparesPassingCopies(t *testing.T) {
	s := newSim(t)
	s.det = New(Config{CopyAge: time.Nanosecond})
	nestedSubshells(s)
	if len(s.found) == 0 || s.found[0].Clones < 3 {
		t.Fatalf("without CopyAge the script should look like a cloning bomb: %+v", s.found)
	}
	s = newSim(t)
	nestedSubshells(s)
	if len(s.found) > 0 {
		t.Fatalf("false positive with the default CopyAge: %+v", s.found[0])
	}
}

// TestCloningRecheck: a bomb of copies whose third nested generation was
// just born is not flagged yet, and Recheck asks for a pass when that
// generation has run CopyAge, which flags it without any further event.
func TestCloningRecheck(t *testing.T) {
	rec := lineage.New(lineage.Config{})
	now := 100 * time.Second
	rec.Reconcile([]lineage.Proc{{PID: 1}, {PID: 500, PPID: 1, Born: time.Second}}, now)
	rec.Fork(500, 1000, now)
	rec.Exec(1000, now, []byte("slow"))
	members := []int32{1000}
	next := int32(1001)
	for gen := 0; gen < 3; gen++ {
		now += 200 * ms
		for _, p := range slices.Clone(members) {
			rec.Fork(p, next, now)
			members = append(members, next)
			next++
		}
	}
	det := New(Config{})
	if v := det.Detect(Input{Lineage: rec, Now: now}, nil); len(v) != 0 {
		t.Fatalf("flagged before the newest copies ran CopyAge: %+v", v)
	}
	due := det.Recheck()
	if want := now + det.Config().CopyAge; due != want {
		t.Fatalf("Recheck = %v, want %v", due, want)
	}
	v := det.Detect(Input{Lineage: rec, Now: due}, nil)
	if len(v) != 1 || v[0].Live != 8 || v[0].Clones != 3 || v[0].RootPID != 1000 {
		t.Fatalf("at the recheck: %+v, want the 8-member family of pid 1000 with 3 clone generations", v)
	}
	if det.Recheck() != 0 {
		t.Errorf("Recheck after the family qualified = %v, want 0", det.Recheck())
	}
	if start := 100 * time.Second; v[0].FirstBorn != start || v[0].FirstFork != start+200*ms {
		t.Errorf("FirstBorn %v, FirstFork %v; want the root's birth %v and its first fork 200 ms later", v[0].FirstBorn, v[0].FirstFork, start)
	}
}

// TestSilentBurstSeenLate: a C fork() loop on a fast machine grows wide,
// not deep (every member forks several copies before its children run):
// 4 or 5 levels at its pids limit, short of MinDepth, and it never exits
// a parent. It fills its limit in a burst, then sits there forking nothing.
// A pass that first looks more than RateWindow later (a guard whose events
// came late, or a deferred verdict checked again) must still flag it: the
// burst is measured from its newest birth, not from now. A family of
// copies that grew slowly to the same shape is no burst, however it is
// looked at.
func TestSilentBurstSeenLate(t *testing.T) {
	for _, tc := range []struct {
		name string
		each time.Duration // between one fork and the next
		// straggler: 2 s after the burst, a member exits and one of the
		// loop's first copies forks another in its slot (a bomb at its
		// pids limit refilling a slot that some other process freed).
		straggler bool
		bomb      bool
	}{
		{"fork loop filling its limit in 50 ms", 25 * time.Microsecond, false, true},
		{"the same loop refilling a slot 2 s later", 25 * time.Microsecond, true, true},
		{"the same copies forked steadily over 50 s", 25 * ms, false, false},
		{"the same, refilling a slot 2 s later", 25 * ms, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := lineage.New(lineage.Config{})
			now := 100 * time.Second
			rec.Reconcile([]lineage.Proc{{PID: 1}, {PID: 500, PPID: 1, Born: time.Second}}, now)
			rec.Fork(500, 1000, now)
			rec.Exec(1000, now, []byte("forkloop"))
			members, next := []int32{1000}, int32(1001)
			// Rounds in which every member forks three copies: 4, 16, 64,
			// 256, 1024, then up to the limit of 2000.
			for len(members) < 2000 {
				for _, p := range slices.Clone(members) {
					for range 3 {
						if len(members) == 2000 {
							break
						}
						now += tc.each
						rec.Fork(p, next, now)
						members = append(members, next)
						next++
					}
				}
			}
			wantBurst := 1999
			if tc.straggler {
				now += 2 * time.Second
				rec.Exit(members[len(members)-1], now)
				rec.Fork(1001, next, now)
				wantBurst = 1998 // the straggler and the one that exited are not in it
			}
			now += 3 * time.Second // silent since
			det := New(Config{})
			v, ok := loopVerdict(t, det, rec, now, tc.bomb, 2000)
			if !ok {
				return
			}
			if v[0].Depth >= det.Config().MinDepth || v[0].Births != 0 || v[0].Burst != wantBurst {
				t.Errorf("depth %d, births %d, burst %d: want a shallow family (under MinDepth %d), silent for 3 s, all 1999 of its forks in the burst",
					v[0].Depth, v[0].Births, v[0].Burst, det.Config().MinDepth)
			}
		})
	}
}

// loopVerdict runs det on rec at now. When bomb, it wants one verdict: the
// loop's root, pid 1000, with all size members, and returns the verdicts
// and true; otherwise it wants none, and returns false.
func loopVerdict(t *testing.T, det *Detector, rec *lineage.Recorder, now time.Duration, bomb bool, size int) ([]Verdict, bool) {
	t.Helper()
	v := det.Detect(Input{Lineage: rec, Now: now}, nil)
	if !bomb {
		if len(v) != 0 {
			t.Fatalf("false positive: %+v", v)
		}
		return nil, false
	}
	if len(v) != 1 || v[0].RootPID != 1000 || v[0].Live != size {
		t.Fatalf("verdicts %+v, want one: the loop's root, pid 1000, with all %d members", v, size)
	}
	return v, true
}

// TestScannedBurstOfNamesakes: a guard that starts after a fast machine's
// fork() loop filled its limit (or resynchronises from /proc after losing
// its events) knows the loop only from a scan: no fork events, so no
// copies and no births, and the loop is 4 levels deep, short of MinDepth.
// What a scan does show: every member carries its parent's name, and all
// started in one burst. Families a scan shows alike but that are not
// bombs: a prefork pool (namesakes one level deep), the same wide tree of
// namesakes started steadily over 50 s, and a smaller one (a shell running
// nested shell scripts in a burst, which a scan cannot tell from a loop).
func TestScannedBurstOfNamesakes(t *testing.T) {
	var loop, other [16]byte
	copy(loop[:], "forkloop")
	copy(other[:], "bash")
	for _, tc := range []struct {
		name   string
		size   int           // members, root included
		fanout int           // children each member starts per round; 0: all from the root
		each   time.Duration // between one start and the next
		// straggler: the last member was started 3 s after the others, by
		// one of the loop's first copies (a slot refilled at the limit).
		straggler bool
		bomb      bool
	}{
		{"fork loop at its limit, started in 50 ms", 2000, 3, 25 * time.Microsecond, false, true},
		{"the same with a slot refilled 3 s later", 2000, 3, 25 * time.Microsecond, true, true},
		{"prefork pool of 400, started in 40 ms", 400, 0, 100 * time.Microsecond, false, false},
		{"the loop's shape, started over 50 s", 2000, 3, 25 * ms, false, false},
		{"the same with a slot refilled 3 s later", 2000, 3, 25 * ms, true, false},
		{"nested shells, 150 started in 15 ms", 150, 3, 100 * time.Microsecond, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := 100 * time.Second
			born := now - 5*time.Second - time.Duration(tc.size)*tc.each
			// Started from a login shell (old, never part of a family):
			// with a young launcher between them the family would be one
			// level deeper, and a tree of three rounds more passes MinDepth.
			procs := []lineage.Proc{{PID: 1}, {PID: 500, PPID: 1, Born: time.Second, Comm: other},
				{PID: 1000, PPID: 500, Born: born, Comm: loop}}
			members, next := []int32{1000}, int32(1001)
			for len(members) < tc.size {
				parents, fanout := slices.Clone(members), tc.fanout
				if fanout == 0 {
					parents, fanout = []int32{1000}, tc.size
				}
				for _, p := range parents {
					for range fanout {
						if len(members) == tc.size {
							break
						}
						born += tc.each
						procs = append(procs, lineage.Proc{PID: next, PPID: p, Born: born, Comm: loop})
						members = append(members, next)
						next++
					}
				}
			}
			if tc.straggler {
				last := &procs[len(procs)-1]
				last.PPID, last.Born = 1001, born+3*time.Second
			}
			rec := lineage.New(lineage.Config{})
			rec.Reconcile(procs, now)
			det := New(Config{})
			v, ok := loopVerdict(t, det, rec, now, tc.bomb, tc.size)
			if !ok {
				return
			}
			if v[0].Depth >= det.Config().MinDepth || v[0].Orphans != 0 {
				t.Errorf("depth %d, orphans %d: want a shallow family without orphans, which only the burst of namesakes gives away", v[0].Depth, v[0].Orphans)
			}
		})
	}
}

// TestForkLoopAtItsLimitSeenByScanKeepsItsRoot: a guard started after a C
// fork loop filled its pids limit knows the loop only from a /proc scan,
// and nobody is born any more. The loop's first child holds the one family
// big enough to qualify by itself, but the root's other children carry
// most of the bomb: the verdict stays at the root and takes all of it
// (stepping down to the first child left 1,700 members running).
func TestForkLoopAtItsLimitSeenByScanKeepsItsRoot(t *testing.T) {
	for _, tc := range []struct {
		name               string
		first, others, per int // the first child's subtree; the others' count and size
	}{
		{"first child holds a sixth", 300, 10, 150},
		// Seen in TestBombsAreContained: the first child held 1,669 of
		// 1,999, and the others were few enough to pass for bystanders.
		{"first child holds most", 1669, 5, 66},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := 100 * time.Second
			young := now - 5*time.Second
			var loop [16]byte
			copy(loop[:], "forkloop")
			procs := []lineage.Proc{{PID: 1}, {PID: 500, PPID: 1, Born: time.Second},
				{PID: 900, PPID: 500, Born: young}, {PID: 1000, PPID: 900, Born: young, Comm: loop}}
			next := int32(1001)
			// subtree adds n processes below parent: a chain 7 deep, the
			// rest hanging from its end.
			subtree := func(parent int32, n int) {
				p := parent
				for i := 0; i < n; i++ {
					procs = append(procs, lineage.Proc{PID: next, PPID: p, Born: young, Comm: loop})
					if i < 7 {
						p = next
					}
					next++
				}
			}
			subtree(1000, tc.first)
			for i := 0; i < tc.others; i++ {
				subtree(1000, tc.per)
			}
			want := 1 + tc.first + tc.others*tc.per
			rec := lineage.New(lineage.Config{})
			rec.Reconcile(procs, now)
			v := New(Config{}).Detect(Input{Lineage: rec, Now: now}, nil)
			if len(v) != 1 || v[0].RootPID != 1000 || v[0].Live != want {
				t.Fatalf("verdicts %+v, want one: the loop's root, pid 1000, with all %d members", v, want)
			}
		})
	}
}

// TestScriptShellDiesWithItsBomb: sh -c 'b() { b | b & }; b; sleep 1000',
// started by a launcher that waits for it, on a slow machine (the VM test
// bed under load). The script's shell forks the two halves of the first
// pipeline, copies of itself, then execs sleep; one half's family grows
// ahead of the other's and reaches the cloning rule alone. The verdict must
// be the script's shell, sleep and both halves included: stepping down to
// the faster half left the other to be caught later, and the shell (now
// sleep) running forever beside the launcher.
func TestScriptShellDiesWithItsBomb(t *testing.T) {
	// helpers: the script first starts programs in the background, so
	// that its family fails the cloning rule (not all copies) and only the
	// climb from the fast half can reach it.
	// exits: the fast half's members exit a step after forking (caught by
	// the replication rule), or not within the run (the cloning rule).
	for _, helpers := range []int{0, 3} {
		for _, exits := range []bool{true, false} {
			t.Run(fmt.Sprintf("helpers=%d,exits=%v", helpers, exits), func(t *testing.T) { scriptShellDiesWithItsBomb(t, helpers, exits) })
		}
	}
}

func scriptShellDiesWithItsBomb(t *testing.T, helpers int, exits bool) {
	s := newSim(t)
	launcher := s.fork(500)
	s.exec(launcher, "sh")
	s.advance(5 * ms)
	script := s.fork(launcher)
	s.exec(script, "sh")
	s.advance(ms)
	var helperPIDs []int32
	for range helpers {
		h := s.fork(script)
		s.exec(h, "cat")
		helperPIDs = append(helperPIDs, h)
	}
	fast, slow := s.fork(script), s.fork(script)
	s.advance(ms)
	s.exec(script, "sleep")
	// Each step, every member of the fast half's frontier forks two copies
	// and the generation before it exits; the slow half has not run yet
	// when the fast one qualifies (seen in the VM: one half's family at 8
	// members, the other's caught a second later at 39).
	type side struct{ prev, cur []int32 }
	sides := []*side{{cur: []int32{fast}}, {cur: []int32{slow}}}
	for step := 0; len(s.found) == 0 && step < 40; step++ {
		for i, sd := range sides {
			if i == 1 {
				continue // the slow half has not run yet
			}
			var next []int32
			for _, p := range sd.cur {
				next = append(next, s.fork(p), s.fork(p))
			}
			if exits {
				for _, p := range sd.prev {
					s.exit(p)
				}
			}
			sd.prev, sd.cur = sd.cur, next
		}
		s.advance(30 * ms)
	}
	if len(s.found) != 1 {
		t.Fatalf("detect = %+v, want one family", s.found)
	}
	v := s.found[0]
	in := map[int32]bool{}
	for _, m := range Members(s.rec, v.Root, nil, nil) {
		in[m.PID] = true
	}
	if in[launcher] {
		t.Errorf("verdict %+v takes the launcher %d", v, launcher)
	}
	for _, h := range helperPIDs {
		if !in[h] {
			t.Errorf("verdict root %d misses the script's helper %d", v.RootPID, h)
		}
	}
	if !in[script] {
		t.Errorf("verdict root %d misses the script's shell %d, now sleep (halves %d and %d)", v.RootPID, script, fast, slow)
	}
	for _, sd := range sides {
		for _, p := range append(sd.prev, sd.cur...) {
			if !in[p] {
				t.Errorf("verdict root %d misses bomb member %d", v.RootPID, p)
			}
		}
	}
}

// TestOrphanedForkLoopSeenByScan: a C fork loop filled its pids limit and
// its memory limit, and the kernel's OOM killer took the loop's root (CI
// saw it). The root's children were adopted by a subreaper outside the
// scope, or by PID 1, before the guard started, so a scan shows sibling
// lines of namesakes and no root. One verdict must take every line (one at
// a time, each containment freed slots that the others refilled, 17
// containments in 19 s), and nothing else beside them: a lone process of
// the loop's name (it has forked no copy: a job shell beside a shell bomb
// looks the same), a line of that name whose member runs another program,
// a line started long before, and a job of another name.
func TestOrphanedForkLoopSeenByScan(t *testing.T) {
	var loop, reaper, sh, cc [16]byte
	copy(loop[:], "forkloop")
	copy(reaper[:], "reaper")
	copy(sh[:], "sh")
	copy(cc[:], "cc1")
	for _, tc := range []struct {
		name               string
		adopter            int32 // 900: a young subreaper outside the scope; 1: PID 1
		first, others, per int   // the first line's size; the other lines' count and size
		// spacing is between the other lines' starts, from the first's;
		// 1 ms when 0. Negative: they started before it, one after
		// another (a loop that took seconds to fill its limit), as far
		// back as 6 s: more than RateWindow, but each within it of the
		// next.
		spacing time.Duration
		// tick: all lines, and the lone copy, started in one clock tick
		// (a scan's start times tick every 10 ms), whatever spacing says.
		tick bool
	}{
		{"first line holds most, adopted by a subreaper", 900, 1669, 5, 66, 0, false},
		{"first line holds a sixth, adopted by a subreaper", 900, 300, 10, 150, 0, false},
		{"adopted by PID 1", 1, 1000, 9, 100, 0, false},
		{"the other lines started seconds before", 900, 1000, 10, 100, -600 * time.Millisecond, false},
		{"all started in one tick", 900, 1000, 10, 100, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := 100 * time.Second
			young := now - 5*time.Second
			procs := []lineage.Proc{{PID: 1}, {PID: 500, PPID: 1, Born: time.Second, Comm: sh},
				{PID: 900, PPID: 500, Born: young - time.Second, Comm: reaper}}
			next := int32(1001)
			var bomb, spared []int32
			// line adds a line of n namesakes under the adopter: a chain
			// 3 deep (a fast machine's loop is shallow), the rest hanging
			// from its end.
			line := func(n int, born time.Duration, comm [16]byte) []int32 {
				var pids []int32
				p := tc.adopter
				for i := 0; i < n; i++ {
					procs = append(procs, lineage.Proc{PID: next, PPID: p, Born: born, Comm: comm})
					pids = append(pids, next)
					if i < 3 {
						p = next
					}
					next++
				}
				return pids
			}
			bomb = append(bomb, line(tc.first, young, loop)...)
			spacing := tc.spacing
			switch {
			case tc.tick:
				spacing = 0
			case spacing == 0:
				spacing = time.Millisecond
			}
			for i := 0; i < tc.others; i++ {
				bomb = append(bomb, line(tc.per, young+time.Duration(i+1)*spacing, loop)...)
			}
			// A lone copy started with the lines (its line's other members
			// gone) is the bomb's; one started seconds after them is
			// spared: a lone process of the name, which has forked no
			// copy, could be a job beside the bomb.
			bomb = append(bomb, line(1, young, loop)...)
			spared = append(spared, line(1, young+3*time.Second, loop)...)
			mixed := line(20, young, loop) // one member runs cc1
			procs[len(procs)-1].Comm = cc
			spared = append(spared, mixed...)
			spared = append(spared, line(20, young-2*time.Minute, loop)...) // old
			job := line(3, young, sh)                                       // a job shell and its own
			spared = append(spared, job...)
			scope := make([]int, 0, len(procs))
			for _, p := range procs {
				if p.PID >= 1000 {
					scope = append(scope, int(p.PID))
				}
			}
			rec := lineage.New(lineage.Config{})
			rec.Reconcile(procs, now)
			v := New(Config{}).Detect(Input{Lineage: rec, Now: now, Scope: NewPIDSet(scope)}, nil)
			slices.Sort(bomb)
			if len(v) != 1 || v[0].Live != len(bomb) || len(v[0].Siblings) != tc.others+1 {
				t.Fatalf("verdicts %+v, want one of %d live members: a line, its %d sibling lines and a lone copy", v, len(bomb), tc.others)
			}
			var got []int32
			for _, ref := range append([]lineage.Ref{v[0].RootRef}, v[0].Siblings...) {
				for _, m := range Members(rec, rec.Resolve(ref), nil, nil) {
					got = append(got, m.PID)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, bomb) {
				t.Errorf("members: %d, want the %d of the bomb's lines; spared %v", len(got), len(bomb), spared)
			}
		})
	}
}

// TestForkLoopResyncedAfterLostEventsKeepsItsRoot: the guard saw a fork()
// loop's root forked and exec'd, then lost the events of its growth, and a
// resync brought the root's children back from /proc as scans. The loop
// grew for 2 s (a slow or loaded machine), so the root's family as a whole
// is no burst, while each line, grown within a second, qualifies alone.
// The verdict must climb to the live root, whose whole family is the
// loop's namesakes, and take all of it (it took the lines one at a time,
// while the root refilled; once, none at all).
func TestForkLoopResyncedAfterLostEventsKeepsItsRoot(t *testing.T) {
	var loop, timeout [16]byte
	copy(loop[:], "forkloop")
	copy(timeout[:], "timeout")
	now := 100 * time.Second
	young := now - 5*time.Second
	rec := lineage.New(lineage.Config{})
	procs := []lineage.Proc{{PID: 1}, {PID: 500, PPID: 1, Born: time.Second}, {PID: 900, PPID: 500, Born: young - time.Second, Comm: timeout}}
	rec.Reconcile(procs, young-time.Second)
	rec.Fork(900, 1000, young)
	rec.Exec(1000, young+ms, loop[:8])
	procs = append(procs, lineage.Proc{PID: 1000, PPID: 900, Born: young, Comm: loop})
	next := int32(1001)
	want := 1
	// Each line: a head forked by the root at start, a chain 3 deep
	// below it, the rest hanging from the chain's end, all within 500 ms.
	for _, line := range []struct {
		n     int
		start time.Duration
	}{{900, 0}, {800, 1500 * ms}} {
		p := int32(1000)
		for i := 0; i < line.n; i++ {
			born := young + line.start + time.Duration(i)*500*ms/time.Duration(line.n)
			procs = append(procs, lineage.Proc{PID: next, PPID: p, Born: born, Comm: loop})
			if i < 3 {
				p = next
			}
			next++
		}
		want += line.n
	}
	rec.Reconcile(procs, now-time.Second)
	v := New(Config{}).Detect(Input{Lineage: rec, Now: now}, nil)
	if len(v) != 1 || v[0].RootPID != 1000 || v[0].Live != want {
		t.Fatalf("verdicts %+v, want one: the loop's root, pid 1000, with all %d members", v, want)
	}
}
