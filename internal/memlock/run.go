package memlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/lineage/procscan"
	"github.com/oomguard/oomguard/internal/sys"
)

// StartError says the command could not be started at all.
type StartError struct {
	Name string
	Err  error
}

// Error says which command could not be started, and why.
func (e *StartError) Error() string { return fmt.Sprintf("cannot run %s: %v", e.Name, e.Err) }

// Unwrap returns the error of the failed start.
func (e *StartError) Unwrap() error { return e.Err }

// ExitCode is the status a shell would give: 127 when the command is not
// found, 126 when it cannot be executed.
func (e *StartError) ExitCode() int {
	if errors.Is(e.Err, exec.ErrNotFound) || errors.Is(e.Err, os.ErrNotExist) {
		return 127
	}
	return 126
}

// forwarded are the signals Run passes on to the command.
var forwarded = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGWINCH, unix.SIGALRM, unix.SIGCONT,
}

// ttySignals are the signals a terminal sends to its whole foreground process
// group, so the command gets them without oomguard's help.
func ttySignal(s unix.Signal) bool {
	switch s {
	case unix.SIGINT, unix.SIGQUIT, unix.SIGTSTP, unix.SIGWINCH, unix.SIGHUP, unix.SIGCONT:
		return true
	}
	return false
}

// Run runs argv as oomguard's lock prefix and returns when the command and
// every process it left behind have ended.
//
// The command starts stopped at its first instruction (PTRACE_TRACEME),
// joins the cgroup created for it, gets its oom_score_adj and a raised
// RLIMIT_MEMLOCK, and is then seized with PTRACE_SEIZE when anything is to be
// locked, traced or reported; mlockall is injected at each new image and each
// new child of the covered generations. When nothing is, and
// Options.ReleaseHelper is set, it starts without ptrace instead: the
// helper gets those settings and then execs it. The command shares oomguard's
// process group and terminal; the signals oomguard receives are forwarded to
// it unless the command received them itself (a terminal's Ctrl-C reaches
// both).
//
// Run makes the calling process a child subreaper and reaps every child it
// has, so it must own all of the process's children: call it from a process
// of its own (the oomguard CLI), not from a library user with other
// children. Run errors before the command runs when locking, ptrace or the
// cgroup is impossible, with the knob that fixes it; a *StartError when the
// command cannot be executed. ctx is not used to stop the command (signals
// are forwarded instead), but a ctx already ended keeps it from starting.
func Run(ctx context.Context, argv []string, o Options) (*Result, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command given")
	}
	o.Paths = o.Paths.withDefaults()
	warnw := o.Warn
	if warnw == nil {
		warnw = io.Discard
	}
	warn := func(format string, args ...any) {
		fmt.Fprintf(warnw, "oomguard run: warning: "+format+"\n", args...)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, &StartError{Name: argv[0], Err: err}
	}
	if err := preflight(&o, warn); err != nil {
		return nil, err
	}
	var cgs *runCgroups
	if o.Limits.any() {
		cgs, err = createCgroups(o.Paths, o.Limits, fmt.Sprintf("oomguard-run-%d", os.Getpid()))
		if err != nil {
			return nil, err
		}
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		warn("PR_SET_CHILD_SUBREAPER: %v: orphans of the command will not be waited for", err)
	} else {
		defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	}

	t := newTracer(&o, o.Paths.Proc, warn)
	interactive := foregroundTTY()
	sigs := forwarded
	if t.tracing() {
		// The tracer must not stop on Ctrl-Z while the command is still in
		// its signal-delivery-stop: take SIGTSTP, let the command stop, and
		// stop ourselves after it (mirroring its state for the shell). The
		// notifier stops once no process is held seized (see below).
		sigs = append(sigs[:len(sigs):len(sigs)], unix.SIGTSTP)
	}
	if t.tracing() && interactive {
		t.stopped = func() { unix.Kill(selfPid, unix.SIGSTOP) }
	}
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, sigs...)
	defer signal.Stop(sigc)
	// A SIGINT or SIGTERM that came before the line above ended ctx (the
	// CLI's) and would be lost: the command must not start then.
	if err := ctx.Err(); err != nil {
		if cgs != nil {
			cgs.remove(time.Second)
		}
		return nil, fmt.Errorf("interrupted before %s started: %w", argv[0], err)
	}

	cmd := exec.Command(path, argv[1:]...)
	cmd.Args = argv
	cmd.Env = o.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}

	type started struct {
		pid int
		err error
	}
	startc := make(chan started, 1)
	done := make(chan struct{})
	go func() {
		// Every ptrace request must come from the thread that traces.
		runtime.LockOSThread()
		defer close(done)
		var pid int
		var err error
		if !t.tracing() && len(o.ReleaseHelper) > 0 {
			pid, err = t.startReleased(cmd, cgs, &o)
		} else {
			pid, err = t.startRoot(cmd, cgs, &o)
		}
		startc <- started{pid, err}
		if err != nil {
			return
		}
		if t.notifyFD >= 0 {
			t.serve()
		} else {
			t.loop()
		}
	}()
	st := <-startc
	if st.err != nil {
		<-done
		if cgs != nil {
			cgs.remove(time.Second)
		}
		if t.started != nil {
			cmd = t.started
		}
		cmd.Wait()
		return nil, st.err
	}

	fwdDone := make(chan struct{})
	go func() {
		defer close(fwdDone)
		for {
			select {
			case s := <-sigc:
				if !t.rootAlive.Load() {
					// The command has exited; what it left behind (which
					// Run waits for) gets the signal, once: its cgroup,
					// which holds the orphans too, or without one the
					// orphans Run adopted as their subreaper.
					if cgs != nil {
						cgs.signal(s.(unix.Signal))
					} else {
						signalChildren(o.Paths.Proc, s.(unix.Signal))
					}
					continue
				}
				if s == unix.SIGTSTP && interactive && t.notifier {
					// The terminal stopped the command's processes; stop
					// with them, but not while one is held seized: it
					// would wait for oomguard, and take the stop only
					// after the job had been continued.
					t.section.Lock()
					unix.Kill(selfPid, unix.SIGSTOP)
					t.section.Unlock()
					continue
				}
				t.forward(st.pid, s.(unix.Signal), interactive)
			case <-done:
				return
			}
		}
	}()
	<-done
	<-fwdDone
	if t.started != nil {
		cmd = t.started
	}
	cmd.Wait() // the stdio copies; the process itself was reaped by the tracer

	res := &Result{LockFailures: t.failed, Engine: "none", LockedAtEntry: t.lockedAtEntry}
	switch {
	case t.notifier:
		res.Engine = "notifier"
	case t.tracing():
		res.Engine = "ptrace"
	}
	ws := t.rootStatus
	switch {
	case ws.Signaled():
		res.Signal = int(ws.Signal())
		res.ExitCode = 128 + res.Signal
	default:
		res.ExitCode = ws.ExitStatus()
	}
	if o.Report {
		res.Processes = t.results()
	}
	if cgs != nil {
		if err := cgs.remove(5 * time.Second); err != nil {
			warn("%v", err)
		}
	}
	return res, nil
}

// signalChildren sends sig to every child of this process: once the
// command has exited, those are the orphans it left, which Run adopted as
// their subreaper and waits for. Each is pinned with a pidfd and checked
// to be a child still (its parent this process) before the signal, since
// the tracer reaps children meanwhile and a PID it freed may be reused.
func signalChildren(procRoot string, sig unix.Signal) {
	self := os.Getpid()
	tasks, _ := os.ReadDir(filepath.Join(procRoot, "self", "task"))
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(procRoot, "self", "task", task.Name(), "children"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			fd, err := sys.PidfdOpen(pid)
			if err != nil {
				continue
			}
			// Read after the pin; a zombie (not ok) needs no signal.
			stat, err := os.ReadFile(filepath.Join(procRoot, f, "stat"))
			if st, ok := procscan.ParseStat(stat); err == nil && ok && int(st.PPID) == self {
				fd.SendSignal(sig)
			}
			fd.Close()
		}
	}
}

// ReleaseFD is the file descriptor on which ExecWhenReleased waits.
const ReleaseFD = 3

// ExecWhenReleased is the body of Options.ReleaseHelper: it waits until
// file descriptor ReleaseFD reads end of file (Run closes its end once the
// process has its cgroup, oom_score_adj and RLIMIT_MEMLOCK), closes it, and
// execs path with argv and the process's environment. It returns only when
// it fails, with the exit status to use: 127 when path does not exist, 126
// otherwise, or 125 when the release never came (Run failed and closed its
// end without releasing, or the wait itself failed).
func ExecWhenReleased(path string, argv []string) int {
	var b [1]byte
	for {
		n, err := unix.Read(ReleaseFD, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n != 0 {
			// Run writes a byte when it gives up: never exec then.
			if err != nil {
				fmt.Fprintf(os.Stderr, "oomguard run: wait for the release on fd %d: %v\n", ReleaseFD, err)
			}
			return 125
		}
		break
	}
	unix.Close(ReleaseFD)
	err := unix.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "oomguard run: exec %s: %v\n", path, err)
	if errors.Is(err, unix.ENOENT) {
		return 127
	}
	return 126
}

// startReleased starts the command through o.ReleaseHelper: the helper
// waits on a pipe while the settings that must hold from the command's
// first instruction are applied to it, then execs the command untraced.
// It runs on the tracer thread.
func (t *tracer) startReleased(cmd *exec.Cmd, cgs *runCgroups, o *Options) (int, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("start %s: pipe for the release: %w", cmd.Path, err)
	}
	defer w.Close()
	helper := exec.Command(o.ReleaseHelper[0], append(append(o.ReleaseHelper[1:len(o.ReleaseHelper):len(o.ReleaseHelper)], cmd.Path), cmd.Args...)...)
	helper.Env, helper.Stdin, helper.Stdout, helper.Stderr = cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr
	helper.ExtraFiles = []*os.File{r} // fd 3: ReleaseFD
	err = helper.Start()
	r.Close()
	if err != nil {
		return 0, fmt.Errorf("start %s through %s: %w", cmd.Path, o.ReleaseHelper[0], err)
	}
	t.started = helper // Run waits on it for the stdio copies
	pid := helper.Process.Pid
	if err := setupRoot(pid, cgs, o); err != nil {
		w.Write([]byte{1}) // never exec
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		wait4(pid, &ws)
		return 0, err
	}
	t.rootPid = pid
	t.root = &proc{pid: pid}
	t.rootAlive.Store(true)
	if err := w.Close(); err != nil {
		return 0, fmt.Errorf("release pid %d to exec %s: %w", pid, cmd.Path, err)
	}
	return pid, nil
}

// startRoot starts the command stopped under PTRACE_TRACEME, applies the
// settings that must hold from its first instruction, and hands it to the
// tracer (or lets it go when nothing is traced). It runs on the tracer
// thread.
func (t *tracer) startRoot(cmd *exec.Cmd, cgs *runCgroups, o *Options) (int, error) {
	if err := cmd.Start(); err != nil {
		if errors.Is(err, unix.EPERM) {
			return 0, fmt.Errorf("%w: start %s under PTRACE_TRACEME: %v (ptrace is refused here: check kernel.yama.ptrace_scope, seccomp and LSM policy)", ErrPtrace, cmd.Path, err)
		}
		return 0, &StartError{Name: cmd.Args[0], Err: err}
	}
	pid := cmd.Process.Pid
	var ws unix.WaitStatus
	if _, err := wait4(pid, &ws); err != nil || !ws.Stopped() {
		if err == nil {
			t.exited(pid, ws)
			t.rootPid = pid
			t.rootDone, t.rootStatus = true, ws
			return pid, nil
		}
		return 0, fmt.Errorf("%w: wait for pid %d: %v", ErrPtrace, pid, err)
	}
	if err := setupRoot(pid, cgs, o); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		wait4(pid, &ws)
		return 0, err
	}
	if !t.tracing() {
		t.rootPid = pid
		t.root = &proc{pid: pid}
		t.rootAlive.Store(true)
		if err := sysDetach(pid); err != nil {
			return 0, err
		}
		return pid, nil
	}
	if t.notifier {
		installed, err := t.startNotifier(pid, filepath.Base(cmd.Path))
		if err != nil {
			unix.Kill(pid, unix.SIGKILL)
			wait4(pid, &ws)
			return 0, err
		}
		if installed {
			return pid, nil
		}
		t.notifier = false
	}
	return pid, t.attachRoot(pid, filepath.Base(cmd.Path))
}

func sysDetach(pid int) error {
	if err := unix.PtraceDetach(pid); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return fmt.Errorf("%w: ptrace(PTRACE_DETACH, %d): %v", ErrPtrace, pid, err)
	}
	return nil
}

// setupRoot applies the cgroup, oom_score_adj and RLIMIT_MEMLOCK to the
// stopped command.
func setupRoot(pid int, cgs *runCgroups, o *Options) error {
	if cgs != nil {
		if err := cgs.join(pid); err != nil {
			return fmt.Errorf("move the command into its cgroup: %w", err)
		}
	}
	if o.OOMScoreAdj != nil {
		path := filepath.Join(o.Paths.Proc, strconv.Itoa(pid), "oom_score_adj")
		if err := os.WriteFile(path, []byte(strconv.Itoa(*o.OOMScoreAdj)), 0); err != nil {
			hint := ""
			if errors.Is(err, os.ErrPermission) {
				hint = " (lowering oom_score_adj needs CAP_SYS_RESOURCE)"
			}
			return fmt.Errorf("--oom-score-adj %d: %w%s", *o.OOMScoreAdj, err, hint)
		}
	}
	if o.Lock != LockNone {
		raiseMemlock(pid)
	}
	return nil
}

// raiseMemlock raises the command's RLIMIT_MEMLOCK to unlimited where
// permitted (CAP_SYS_RESOURCE), else its soft limit to the hard one.
func raiseMemlock(pid int) {
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if unix.Prlimit(pid, unix.RLIMIT_MEMLOCK, &inf, nil) == nil {
		return
	}
	var cur unix.Rlimit
	if unix.Prlimit(pid, unix.RLIMIT_MEMLOCK, nil, &cur) == nil && cur.Cur < cur.Max {
		cur.Cur = cur.Max
		unix.Prlimit(pid, unix.RLIMIT_MEMLOCK, &cur, nil)
	}
}

// minUsefulMemlock is the smallest RLIMIT_MEMLOCK with which locking is worth
// trying without CAP_IPC_LOCK: mlockall(MCL_CURRENT) needs the whole address
// space to fit, and even a shell's is a few MiB.
const minUsefulMemlock = 64 << 20

// preflight checks, before anything runs, that what o asks for can work.
func preflight(o *Options, warn func(string, ...any)) error {
	st, err := readStatus(o.Paths.Proc, "self", make([]byte, 4096))
	if err != nil {
		return err
	}
	if o.Lock != LockNone || o.Trace || o.Report {
		if b, err := os.ReadFile(filepath.Join(o.Paths.Proc, "sys/kernel/yama/ptrace_scope")); err == nil && strings.TrimSpace(string(b)) == "3" {
			return fmt.Errorf("%w: kernel.yama.ptrace_scope is 3 (ptrace disabled); --mlock and --report need ptrace of the command: set it to 0, 1 or 2 (it cannot be lowered from 3 without a reboot)", ErrPtrace)
		}
	}
	if o.Lock != LockNone && syscallInsn == 0 {
		return errArch
	}
	// mlockall runs in the command, so it is the command's CAP_IPC_LOCK
	// that counts, not oomguard's own (a file capability of oomguard is
	// not passed on); raising the command's RLIMIT_MEMLOCK is oomguard's
	// own act, under its CAP_SYS_RESOURCE.
	if o.Lock != LockNone && !st.childHasCap(capIPCLock) {
		var rl unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl); err != nil {
			return fmt.Errorf("getrlimit(RLIMIT_MEMLOCK): %w", err)
		}
		if !st.hasCap(capSysResource) && rl.Max != unix.RLIM_INFINITY {
			if rl.Max < minUsefulMemlock {
				return fmt.Errorf("--mlock: RLIMIT_MEMLOCK is %s (hard limit) and CAP_IPC_LOCK is missing, so mlockall would fail in the command: run as root or with CAP_IPC_LOCK in the ambient set, which the command inherits (AmbientCapabilities=CAP_IPC_LOCK; a file capability of oomguard, setcap, is not passed on to the command, and does not count), or raise the hard limit (ulimit -l unlimited, memlock in limits.conf, LimitMEMLOCK=infinity)", fmtBytes(rl.Max))
			}
			warn("RLIMIT_MEMLOCK is %s and CAP_IPC_LOCK is missing: processes with a larger address space will not be locked (each is reported)", fmtBytes(rl.Max))
		}
	}
	if o.OOMScoreAdj != nil {
		v := *o.OOMScoreAdj
		if v < -1000 || v > 1000 {
			return fmt.Errorf("--oom-score-adj %d: must be within -1000..1000", v)
		}
		if !st.hasCap(capSysResource) {
			b, err := os.ReadFile(filepath.Join(o.Paths.Proc, "self", "oom_score_adj"))
			if err == nil {
				if own, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v < own {
					return fmt.Errorf("--oom-score-adj %d: lower than oomguard's own %d, which needs CAP_SYS_RESOURCE: run with that capability or use a value >= %d", v, own, own)
				}
			}
		}
	}
	return nil
}

func fmtBytes(v uint64) string {
	switch {
	case v >= 1<<30 && v%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", v>>30)
	case v >= 1<<20 && v%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", v>>20)
	case v >= 1<<10 && v%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", v>>10)
	}
	return fmt.Sprintf("%d bytes", v)
}

// foregroundTTY reports whether oomguard runs in the foreground process group
// of its terminal, where the terminal's signals reach the command directly.
func foregroundTTY() bool {
	for _, fd := range []int{0, 1, 2} {
		pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
		if err == nil {
			return pgrp == unix.Getpgrp()
		}
	}
	return false
}

// forward passes signal s, which oomguard received, to the command, unless
// the command got it from the same source (a terminal or a kill of the whole
// process group).
func (t *tracer) forward(pid int, s unix.Signal, interactive bool) {
	if !t.rootAlive.Load() {
		return
	}
	if t.rootTraced() {
		recv := time.Now()
		for deadline := recv.Add(30 * time.Millisecond); time.Now().Before(deadline); {
			if int(s) < len(t.rootSig) && t.rootSig[s].Load() >= recv.Add(-200*time.Millisecond).UnixNano() {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	} else if interactive && ttySignal(s) {
		return
	}
	unix.Kill(pid, s)
}
