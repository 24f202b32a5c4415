package memlock

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/sys"
)

// mlockall(2) flags.
const (
	mclCurrent = 1
	mclFuture  = 2
	mclOnFault = 4
)

// proc is one process (thread group) under the tracer.
type proc struct {
	pid    int
	gen    int
	parent *proc
	comm   string
	// sharesMM is set while the process runs in the address space it was
	// born into (vfork, CLONE_VM); an exec clears it.
	sharesMM bool
	lock     LockState
	lockErr  error
	execs    int
	peakLck  uint64
	peakRSS  uint64
}

// task is one traced thread.
type task struct {
	tid int
	p   *proc
	// thread is set for a CLONE_THREAD task that is not its group's leader.
	thread bool
	// known: the parent's fork/clone event told what the task is.
	known bool
	// waiting: the task's initial stop came before its parent's event, and
	// it is held stopped until that event arrives.
	waiting bool
	// started: the initial stop was handled.
	started bool
	// initSig is the signal of the initial stop (SIGTRAP, or a stop signal
	// when the task was born into a stopping group).
	initSig unix.Signal
	// swallowCont drops the one SIGCONT oomguard itself sent to end the
	// command's start-up stop.
	swallowCont bool
}

// tracer is the ptrace engine. Every method runs on one locked OS thread.
type tracer struct {
	// started is the release helper that became the command, when the
	// command was started through one (see startReleased).
	started     *exec.Cmd
	flags       int // mlockall flags; 0 for no locking
	maxLockGen  int
	maxTraceGen int
	report      bool
	opts        int // PTRACE_O_* options of traced processes
	procRoot    string
	warn        func(format string, args ...any)

	root    *proc
	rootPid int
	tasks   map[int]*task
	procs   []*proc // every traced process, kept for the report only
	failed  int
	statBuf []byte

	rootDone   bool
	rootStatus unix.WaitStatus

	// notifier is set when the seccomp notifier (notify.go) is to run
	// instead of tracing every process; it is cleared if it cannot be
	// installed. notifyFD is its notification descriptor, or -1.
	notifier bool
	notifyFD int
	// gadgetOff is where in a vDSO lockAtEntry plants its gadget; 0 when
	// it cannot.
	gadgetOff uintptr
	// lockedAtEntry counts the images lockAtEntry locked.
	lockedAtEntry int
	// section is held by the notifier while it holds a process seized.
	section sync.Mutex

	// rootSig[s] is the time (UnixNano) the command last received signal s
	// from anyone but oomguard; the forwarder reads it.
	rootSig [65]atomic.Int64
	// stopped is called (from the tracer thread) when the command enters a
	// group-stop.
	stopped func()
	// rootAlive is cleared when the command has exited.
	rootAlive atomic.Bool
}

func newTracer(o *Options, procRoot string, warn func(string, ...any)) *tracer {
	t := &tracer{
		maxLockGen:  -1,
		maxTraceGen: -1,
		report:      o.Report,
		procRoot:    procRoot,
		warn:        warn,
		tasks:       make(map[int]*task),
		statBuf:     make([]byte, 4096),
		notifier:    notifierWanted(o),
		notifyFD:    -1,
	}
	switch o.Lock {
	case LockAll:
		t.flags = mclCurrent | mclFuture
	case LockOnFault:
		t.flags = mclCurrent | mclFuture | mclOnFault
	}
	if t.flags != 0 {
		t.maxLockGen = o.Scope.maxGen()
	}
	if t.flags != 0 || o.Trace {
		t.maxTraceGen = o.Scope.maxGen()
	}
	if o.Report {
		t.maxTraceGen = math.MaxInt
	}
	t.opts = unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_EXITKILL | unix.PTRACE_O_TRACESYSGOOD
	if t.maxTraceGen >= 1 {
		t.opts |= unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK
	}
	if o.Report {
		t.opts |= unix.PTRACE_O_TRACEEXIT
	}
	return t
}

// tracing reports whether the command must stay traced after start-up.
func (t *tracer) tracing() bool { return t.maxTraceGen >= 0 }

// rootTraced reports whether the command stays traced while it runs: under
// the full ptrace engine, not under the notifier. It is final once the
// command has started.
func (t *tracer) rootTraced() bool { return t.tracing() && !t.notifier }

// attachRoot takes over the command, which is stopped by PTRACE_TRACEME at
// its first instruction: it re-attaches with PTRACE_SEIZE (so group-stops can
// be left in place with PTRACE_LISTEN), injects mlockall, and resumes it.
func (t *tracer) attachRoot(pid int, comm string) error {
	t.rootPid = pid
	t.root = &proc{pid: pid, comm: comm}
	t.procs = append(t.procs, t.root)
	t.rootAlive.Store(true)
	// Hand the command a SIGSTOP on the way out, so it cannot run a single
	// instruction untraced, then seize it.
	if err := sys.PtraceDetach(pid, unix.SIGSTOP); err != nil {
		return fmt.Errorf("%w: %v", ErrPtrace, err)
	}
	if err := sys.PtraceSeize(pid, t.opts); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return fmt.Errorf("%w: %v", ErrPtrace, err)
	}
	tk := &task{tid: pid, p: t.root, known: true, started: true}
	t.tasks[pid] = tk
	var ws unix.WaitStatus
	if _, err := wait4(pid, &ws); err != nil {
		return fmt.Errorf("%w: wait for pid %d: %v", ErrPtrace, pid, err)
	}
	if !ws.Stopped() {
		t.handle(pid, ws)
		return nil
	}
	groupStop := event(ws) == sys.PtraceEventStop
	if t.maxLockGen >= 0 {
		if gone := t.lock(tk); gone {
			return nil
		}
	}
	if t.report {
		t.sample(t.root)
	}
	if groupStop {
		// The command sits in a job-control stop of our making: end it.
		tk.swallowCont = true
		unix.Kill(pid, unix.SIGCONT)
	}
	t.cont(pid, 0)
	return nil
}

// loop handles ptrace stops and reaps children until none is left.
func (t *tracer) loop() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil { // ECHILD: everything is gone
			return
		}
		t.handle(pid, ws)
	}
}

func wait4(pid int, ws *unix.WaitStatus) (int, error) {
	for {
		p, err := rawWait4(pid, ws, unix.WALL)
		if err == unix.EINTR {
			continue
		}
		return p, err
	}
}

// rawWait4 is wait4(2) through RawSyscall, for the same reason as rawPoll.
// It serves the waits for a stop that is about to come (an injection, a
// seized process's exec or fork); a signal that interrupts it restarts it
// (the runtime's handlers are SA_RESTART), so the runtime's stop-the-world
// can wait as long as such a wait. The full engine's main loop, which waits
// on the command for its whole life, uses the plain call.
func rawWait4(pid int, ws *unix.WaitStatus, opts int) (int, error) {
	var st int32
	r, _, e := unix.RawSyscall6(unix.SYS_WAIT4, uintptr(pid), uintptr(unsafe.Pointer(&st)), uintptr(opts), 0, 0, 0)
	*ws = unix.WaitStatus(st)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func event(ws unix.WaitStatus) int { return int(uint32(ws)>>16) & 0xff }

func isStopSignal(s unix.Signal) bool {
	return s == unix.SIGSTOP || s == unix.SIGTSTP || s == unix.SIGTTIN || s == unix.SIGTTOU
}

// handle acts on one wait status.
func (t *tracer) handle(pid int, ws unix.WaitStatus) {
	if ws.Exited() || ws.Signaled() {
		t.exited(pid, ws)
		return
	}
	if !ws.Stopped() {
		return
	}
	tk := t.tasks[pid]
	if tk == nil {
		// A new child whose parent's fork event has not been seen yet.
		tk = &task{tid: pid}
		t.tasks[pid] = tk
	}
	sig := ws.StopSignal()
	switch ev := event(ws); {
	case ev == unix.PTRACE_EVENT_FORK || ev == unix.PTRACE_EVENT_VFORK || ev == unix.PTRACE_EVENT_CLONE:
		t.onChild(tk)
	case ev == unix.PTRACE_EVENT_EXEC:
		t.onExec(tk)
	case ev == unix.PTRACE_EVENT_EXIT:
		if t.report && tk.p != nil && !tk.thread {
			t.sample(tk.p)
		}
		t.cont(pid, 0)
	case ev == sys.PtraceEventStop:
		t.onEventStop(tk, sig)
	case sig == unix.SIGTRAP|0x80:
		t.cont(pid, 0) // a stray syscall stop
	default:
		t.onSignal(tk, sig)
	}
}

// onChild handles a PTRACE_EVENT_FORK/VFORK/CLONE stop of a parent.
func (t *tracer) onChild(parent *task) {
	msg, err := sys.PtraceGetEventMsg(parent.tid)
	if err != nil || parent.p == nil {
		t.cont(parent.tid, 0)
		return
	}
	cpid := int(msg)
	flags, err := cloneFlags(parent.tid)
	if err != nil {
		flags = 0
	}
	t.cont(parent.tid, 0)
	child := t.tasks[cpid]
	if child == nil {
		child = &task{tid: cpid}
		t.tasks[cpid] = child
	}
	child.known = true
	if flags&unix.CLONE_THREAD != 0 {
		child.thread = true
		child.p = parent.p
	} else {
		p := &proc{
			pid:      cpid,
			gen:      parent.p.gen + 1,
			parent:   parent.p,
			comm:     parent.p.comm,
			sharesMM: flags&unix.CLONE_VM != 0,
		}
		child.p = p
		if t.report {
			t.procs = append(t.procs, p)
		}
	}
	if child.waiting {
		t.start(child)
	}
}

// onEventStop handles PTRACE_EVENT_STOP: a task's initial stop, a group-stop,
// or the wake-up of a listening task.
func (t *tracer) onEventStop(tk *task, sig unix.Signal) {
	if !tk.started {
		tk.initSig = sig
		if !tk.known {
			tk.waiting = true
			return
		}
		t.start(tk)
		return
	}
	if isStopSignal(sig) {
		// A group-stop: leave the task stopped until SIGCONT.
		if err := sys.PtraceListen(tk.tid); err != nil {
			t.cont(tk.tid, 0)
		}
		if tk.tid == t.rootPid && t.stopped != nil {
			t.stopped()
		}
		return
	}
	t.cont(tk.tid, 0)
}

// start handles the initial stop of a new task whose kind is known.
func (t *tracer) start(tk *task) {
	tk.started, tk.waiting = true, false
	p := tk.p
	if !tk.thread {
		if p.gen > t.maxTraceGen {
			// Outside the traced generations: let it go, with everything
			// it will start.
			sys.PtraceDetach(tk.tid, 0)
			delete(t.tasks, tk.tid)
			return
		}
		if p.gen == t.maxTraceGen && t.opts&(unix.PTRACE_O_TRACEFORK|unix.PTRACE_O_TRACEVFORK) != 0 {
			// Its children are out of scope: do not even stop them.
			unix.PtraceSetOptions(tk.tid, t.opts&^(unix.PTRACE_O_TRACEFORK|unix.PTRACE_O_TRACEVFORK))
		}
		if p.sharesMM {
			p.lock = SharedMM
		} else if p.gen <= t.maxLockGen {
			if gone := t.lock(tk); gone {
				return
			}
		}
	}
	t.resume(tk)
}

// resume restarts a task after its initial stop, leaving it in group-stop if
// it was born into one.
func (t *tracer) resume(tk *task) {
	if isStopSignal(tk.initSig) {
		if sys.PtraceListen(tk.tid) == nil {
			return
		}
	}
	t.cont(tk.tid, 0)
}

// onExec handles PTRACE_EVENT_EXEC: a new image, to be locked again.
func (t *tracer) onExec(tk *task) {
	pid := tk.tid
	if former, err := sys.PtraceGetEventMsg(pid); err == nil && int(former) != pid {
		// A non-leader thread exec'd and took over the leader's PID.
		if ft := t.tasks[int(former)]; ft != nil && ft.p != nil && tk.p == nil {
			tk.p = ft.p
		}
		delete(t.tasks, int(former))
		tk.thread = false
	}
	p := tk.p
	if p == nil {
		t.cont(pid, 0)
		return
	}
	p.execs++
	p.sharesMM = false
	p.lock = NotLocked
	p.lockErr = nil
	if p.gen <= t.maxLockGen {
		if gone := t.lockAt(tk, true); gone {
			return
		}
	}
	if t.report {
		t.sample(p)
	}
	t.cont(pid, 0)
}

// onSignal handles a signal-delivery-stop: the signal is delivered as is.
func (t *tracer) onSignal(tk *task, sig unix.Signal) {
	if tk.swallowCont && sig == unix.SIGCONT {
		tk.swallowCont = false
		t.cont(tk.tid, 0)
		return
	}
	if tk.tid == t.rootPid && int(sig) < len(t.rootSig) {
		if info, err := sys.PtraceGetSiginfo(tk.tid); err == nil && siginfoPid(&info) != selfPid {
			t.rootSig[sig].Store(time.Now().UnixNano())
		}
	}
	t.cont(tk.tid, sig)
}

var selfPid = unix.Getpid()

// siginfoPid returns si_pid of a kill()-style siginfo: the int after the
// three int32 header fields and their padding.
func siginfoPid(info *unix.Siginfo) int {
	b := (*[128]byte)(unsafe.Pointer(info))
	if info.Code > 0 && info.Code != 0x80 { // SI_KERNEL and fault codes carry no pid
		return 0
	}
	return int(int32(uint32(b[16]) | uint32(b[17])<<8 | uint32(b[18])<<16 | uint32(b[19])<<24))
}

// exited handles the death of a traced task or the reaping of any child.
func (t *tracer) exited(pid int, ws unix.WaitStatus) {
	tk := t.tasks[pid]
	delete(t.tasks, pid)
	if tk != nil && !tk.thread && tk.p != nil && tk.p.pid == pid {
		t.adoptWaiting(tk.p)
	}
	if pid == t.rootPid && !t.rootDone {
		t.rootDone = true
		t.rootStatus = ws
		t.rootAlive.Store(false)
	}
}

// adoptWaiting resolves the new tasks still held for their parent's fork
// event after process dead exited: a parent killed by SIGKILL inside fork
// never reports the event. A held task that is not a thread of a traced
// process, and whose parent is no longer traced, is taken to be dead's child.
func (t *tracer) adoptWaiting(dead *proc) {
	for tid, tk := range t.tasks {
		if !tk.waiting {
			continue
		}
		st, err := readStatus(t.procRoot, strconv.Itoa(tid), t.statBuf)
		if err != nil {
			continue // gone: its exit will be reported
		}
		if owner := t.tasks[st.Tgid]; st.Tgid != tid && owner != nil && owner.p != nil {
			tk.known, tk.thread, tk.p = true, true, owner.p
		} else if parent := t.tasks[st.PPid]; parent == nil || parent.p == nil {
			p := &proc{pid: tid, gen: dead.gen + 1, parent: dead, comm: dead.comm}
			tk.known, tk.p = true, p
			if t.report {
				t.procs = append(t.procs, p)
			}
		} else {
			continue
		}
		t.start(tk)
	}
}

func (t *tracer) cont(pid int, sig unix.Signal) {
	sys.PtraceCont(pid, sig) // ESRCH: it died meanwhile; its exit comes later
}

// lock injects mlockall into the task, which is in a stop where its
// registers are final. It reports whether the task died meanwhile (its
// status has then been handled).
func (t *tracer) lock(tk *task) (gone bool) { return t.lockAt(tk, false) }

// lockAt is lock; atExec says the task is at its PTRACE_EVENT_EXEC stop.
func (t *tracer) lockAt(tk *task, atExec bool) (gone bool) {
	p := tk.p
	if class, err := elfClass(t.procRoot, tk.tid); err == nil && class != elfClass64 {
		// Its registers come in another layout and its system calls have
		// other numbers and another instruction: injecting would read a
		// zero pc, or run the wrong call.
		p.lock, p.lockErr = LockFailed, errors.New("a 32-bit program (i386 or x32): only 64-bit programs can be locked")
		t.failed++
		t.warn("pid %d (%s) is NOT locked: %v", p.pid, t.comm(p.pid), p.lockErr)
		return false
	}
	ret, deferred, gone, err := t.inject(tk.tid, unix.SYS_MLOCKALL, syscallArgs{uintptr(t.flags)}, atExec)
	if gone {
		return true
	}
	switch {
	case err != nil:
		p.lock, p.lockErr = LockFailed, err
	case ret < 0:
		p.lock, p.lockErr = LockFailed, fmt.Errorf("mlockall: %w", unix.Errno(-ret))
	default:
		p.lock, p.lockErr = Locked, nil
	}
	if p.lock == LockFailed {
		t.failed++
		t.warn("pid %d (%s) is NOT locked: %v%s", p.pid, t.comm(p.pid), p.lockErr, lockHint(p.lockErr))
	}
	for _, s := range deferred {
		unix.Tgkill(p.pid, tk.tid, s)
	}
	return false
}

// elfClass64 is EI_CLASS of a 64-bit ELF image (ELFCLASS64).
const elfClass64 = 2

// elfClass returns EI_CLASS of the image that task tid runs (the interpreter
// for a script): 1 for 32-bit, 2 for 64-bit.
func elfClass(procRoot string, tid int) (byte, error) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(tid), "exe"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [5]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, err
	}
	if string(h[:4]) != "\x7fELF" {
		return 0, fmt.Errorf("pid %d: not an ELF image", tid)
	}
	return h[4], nil
}

func lockHint(err error) string {
	switch {
	case errors.Is(err, unix.ENOMEM), errors.Is(err, unix.EPERM):
		return " (RLIMIT_MEMLOCK too low for its address space: raise it with ulimit -l / LimitMEMLOCK=, or grant CAP_IPC_LOCK)"
	case errors.Is(err, unix.EAGAIN):
		return " (some memory could not be locked)"
	}
	return ""
}

// syscallArgs are the first three arguments of an injected system call.
type syscallArgs [3]uintptr

// inject runs system call nr(args) in a stopped tracee and restores it.
// atExec says the tracee is at its PTRACE_EVENT_EXEC stop, still inside
// execve. Signals that arrive meanwhile are held back and returned, to be
// sent again once the tracee runs. gone reports that the tracee died (its
// status has been handled).
func (t *tracer) inject(pid int, nr uintptr, args syscallArgs, atExec bool) (ret int64, deferred []unix.Signal, gone bool, err error) {
	if code, ok := trapCode(nr); ok {
		ret, deferred, gone, err, tried := t.injectTrap(pid, code, args, atExec)
		if tried {
			return ret, deferred, gone, err
		}
	}
	if atExec {
		// execve's return value would overwrite the injected syscall
		// number: step to its syscall-exit stop first, where the registers
		// are final.
		if err := sys.PtraceSyscall(pid, 0); err != nil {
			return 0, nil, false, err
		}
		var ws unix.WaitStatus
		if _, err := wait4(pid, &ws); err != nil {
			return 0, nil, false, err
		}
		if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP|0x80 {
			t.handle(pid, ws)
			return 0, nil, true, nil
		}
	}
	return t.injectSyscall(pid, nr, args)
}

// maxInjectStops bounds the stops one injection may take: a tracee that
// keeps receiving signals is given up on (and restored) rather than spun.
const maxInjectStops = 64

var errInjectStops = errors.New("injection interrupted by too many signals")

// injectTrap plants trapCode over the word at the tracee's pc, runs it to
// its int3 and restores text and registers: one stop per injection. tried
// is false when the code could not be planted (nothing was changed then).
func (t *tracer) injectTrap(pid int, code uint64, args syscallArgs, atExec bool) (ret int64, deferred []unix.Signal, gone bool, err error, tried bool) {
	var saved regs
	if err := getRegs(pid, &saved); err != nil {
		return 0, nil, false, err, true
	}
	addr := pc(&saved)
	orig, err := sys.PtracePeekData(pid, addr)
	if err != nil {
		return 0, nil, false, nil, false
	}
	if err := sys.PtracePokeData(pid, addr, code); err != nil {
		return 0, nil, false, nil, false
	}
	r := saved
	setupTrap(&r, addr, args)
	if err := setRegs(pid, &r); err != nil {
		sys.PtracePokeData(pid, addr, orig)
		return 0, nil, false, err, true
	}
	for stops := 0; ; stops++ {
		if stops == maxInjectStops {
			sys.PtracePokeData(pid, addr, orig)
			setRegs(pid, &saved)
			return 0, deferred, false, errInjectStops, true
		}
		if err := sys.PtraceCont(pid, 0); err != nil {
			return 0, deferred, false, err, true
		}
		var ws unix.WaitStatus
		if _, err := wait4(pid, &ws); err != nil {
			return 0, deferred, false, err, true
		}
		if !ws.Stopped() || event(ws) == unix.PTRACE_EVENT_EXIT {
			t.handle(pid, ws)
			return 0, nil, true, nil, true
		}
		if event(ws) != 0 {
			continue
		}
		sig := ws.StopSignal()
		if sig == unix.SIGTRAP {
			if err := getRegs(pid, &r); err != nil {
				return 0, deferred, false, err, true
			}
			if pc(&r) == addr+trapLen {
				break
			}
		}
		// A signal arrived before the injected code ran: hold it.
		deferred = append(deferred, sig)
	}
	ret = syscallResult(&r)
	if atExec {
		setExecReturn(&saved)
	}
	if err := sys.PtracePokeData(pid, addr, orig); err != nil {
		return ret, deferred, false, err, true
	}
	return ret, deferred, false, setRegs(pid, &saved), true
}

// injectSyscall writes a syscall instruction over the word at the tracee's
// pc, points the registers at it, runs the tracee through the call's
// syscall-entry and -exit stops, and restores text and registers. The tracee
// must be in a stop where its registers are final.
func (t *tracer) injectSyscall(pid int, nr uintptr, args syscallArgs) (ret int64, deferred []unix.Signal, gone bool, err error) {
	var saved regs
	if err := getRegs(pid, &saved); err != nil {
		return 0, nil, false, err
	}
	addr := pc(&saved)
	orig, err := sys.PtracePeekData(pid, addr)
	if err != nil {
		return 0, nil, false, err
	}
	if err := sys.PtracePokeData(pid, addr, orig&^syscallInsnMask|syscallInsn); err != nil {
		return 0, nil, false, err
	}
	r := saved
	setupSyscall(&r, addr, nr, args)
	if err := setRegs(pid, &r); err != nil {
		sys.PtracePokeData(pid, addr, orig)
		return 0, nil, false, err
	}
	restore := func() error {
		if err := sys.PtracePokeData(pid, addr, orig); err != nil {
			return err
		}
		return setRegs(pid, &saved)
	}
	for phase, stops := 0, 0; phase < 2; stops++ {
		if stops == maxInjectStops {
			restore()
			return 0, deferred, false, errInjectStops
		}
		if err := sys.PtraceSyscall(pid, 0); err != nil {
			return 0, deferred, false, err
		}
		var ws unix.WaitStatus
		if _, err := wait4(pid, &ws); err != nil {
			return 0, deferred, false, err
		}
		switch {
		case !ws.Stopped():
			t.handle(pid, ws)
			return 0, nil, true, nil
		case ws.StopSignal() == unix.SIGTRAP|0x80:
			phase++
		case event(ws) == unix.PTRACE_EVENT_EXIT:
			// Killed meanwhile (SIGKILL): let it die.
			t.handle(pid, ws)
			return 0, nil, true, nil
		case event(ws) == 0:
			// A signal arrived before the injected call ran: hold it.
			deferred = append(deferred, ws.StopSignal())
		}
	}
	if err := getRegs(pid, &r); err != nil {
		return 0, deferred, false, err
	}
	ret = syscallResult(&r)
	if err := restore(); err != nil {
		return ret, deferred, false, err
	}
	return ret, deferred, false, nil
}

// comm returns /proc/PID/comm, or "?".
func (t *tracer) comm(pid int) string {
	st, err := readStatus(t.procRoot, strconv.Itoa(pid), t.statBuf)
	if err != nil {
		return "?"
	}
	return st.Name
}

// sample records the process's VmLck and VmHWM peaks and its name.
func (t *tracer) sample(p *proc) {
	st, err := readStatus(t.procRoot, strconv.Itoa(p.pid), t.statBuf)
	if err != nil || !st.HasVm {
		return
	}
	p.comm = st.Name
	p.peakLck = max(p.peakLck, st.VmLck)
	p.peakRSS = max(p.peakRSS, st.VmHWM, st.VmRSS)
}

// results returns the report rows.
func (t *tracer) results() []ProcessReport {
	out := make([]ProcessReport, 0, len(t.procs))
	for _, p := range t.procs {
		out = append(out, ProcessReport{
			PID: p.pid, Command: p.comm, Generation: p.gen, Lock: p.lock, LockErr: p.lockErr,
			Execs: p.execs, PeakVmLck: p.peakLck, PeakVmRSS: p.peakRSS,
		})
	}
	return out
}
