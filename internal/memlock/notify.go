package memlock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/sys"
)

// The notifier is the engine of --mlock and --mlock --recursive (without
// --trace or --report). The full ptrace engine keeps every covered process
// traced for its whole life, so each fork+exec+exit of a shell loop costs
// it five or six ptrace stops (the parent's fork event, the child's first
// stop, its exec, the injection, its exit, and the parent's SIGCHLD
// delivery). The notifier installs a seccomp filter in the command instead,
// which every descendant inherits across fork and exec, and which hands
// oomguard the calls that make a new address space, through a
// user-notification descriptor: execve and execveat, and under --recursive
// fork, and clone or clone3 without CLONE_VM or CLONE_THREAD. Only for such
// a call is the caller seized, and only until the new image (or the new
// child) is locked; then it is detached again. Exits, signals and job
// control are never seen, and a vfork child (which shares its parent's
// locked memory until it execs) costs nothing until its exec. Under plain
// --mlock the execs of processes other than the command are let go at once.
//
// Each handled exec takes the notification and one ptrace stop: the new
// image of a process with CAP_IPC_LOCK calls mlockall from a gadget as its
// first act (lockAtEntry); any other takes the checked injection's stop
// too. A call whose outcome brings no stop of its own (an execve that
// fails, say while a shell searches PATH) is caught by a PTRACE_INTERRUPT
// issued before the call resumes; detaching at the exec stop cancels it.
// The filter asks for SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19),
// so that the interrupt cannot abort a notified execve; a fork it does turn
// back is rerun (awaitFork). Where the filter cannot be installed (an
// older kernel, no PTRACE_O_SUSPEND_SECCOMP, or no CAP_SYS_ADMIN, which
// seccomp needs unless no_new_privs is set, and no_new_privs would break
// setuid programs) the full ptrace engine runs instead.

// seccompData mirrors struct seccomp_data.
type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

// seccompNotif mirrors struct seccomp_notif.
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  seccompData
}

// seccompNotifResp mirrors struct seccomp_notif_resp.
type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

const (
	seccompSetModeFilter         = 1
	seccompFilterFlagNewListener = 1 << 3
)

// notifierFilter is the seccomp program: notify execve, execveat, fork,
// clone3 (whose flags are in memory, so oomguard reads them) and clone
// without CLONE_THREAD or CLONE_VM; allow everything else, and every call
// of another ABI (i386, x32), whose processes are therefore not covered.
// With commandOnly (plain --mlock, which covers the command alone across
// its execs), only execve and execveat are notified, and oomguard lets
// those of other processes go at once.
func notifierFilter(commandOnly bool) []unix.SockFilter {
	const (
		ld      = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq     = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jset    = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret     = unix.BPF_RET | unix.BPF_K
		offNr   = 0
		offArch = 4
		offArg0 = 16 // low half of args[0] (little-endian)
	)
	if commandOnly {
		return []unix.SockFilter{
			0: {Code: ld, K: offArch},
			1: {Code: jeq, K: auditArch, Jf: 3}, // → 5
			2: {Code: ld, K: offNr},
			3: {Code: jeq, K: nrExecve, Jt: 2}, // → 6
			4: {Code: jeq, K: nrExecveat, Jt: 1},
			5: {Code: ret, K: unix.SECCOMP_RET_ALLOW},
			6: {Code: ret, K: unix.SECCOMP_RET_USER_NOTIF},
		}
	}
	return []unix.SockFilter{
		0:  {Code: ld, K: offArch},
		1:  {Code: jeq, K: auditArch, Jf: 8}, // → 10
		2:  {Code: ld, K: offNr},
		3:  {Code: jeq, K: nrExecve, Jt: 7}, // → 11
		4:  {Code: jeq, K: nrExecveat, Jt: 6},
		5:  {Code: jeq, K: nrFork, Jt: 5},
		6:  {Code: jeq, K: nrClone3, Jt: 4},
		7:  {Code: jeq, K: nrClone, Jf: 2}, // not clone → 10
		8:  {Code: ld, K: offArg0},
		9:  {Code: jset, K: unix.CLONE_THREAD | unix.CLONE_VM, Jf: 1}, // set → 10, clear → 11
		10: {Code: ret, K: unix.SECCOMP_RET_ALLOW},
		11: {Code: ret, K: unix.SECCOMP_RET_USER_NOTIF},
	}
}

// notifierWanted reports whether o asks for what the notifier does.
func notifierWanted(o *Options) bool {
	return notifierArch && o.Lock != LockNone && (o.Scope == ScopeRecursive || o.Scope == ScopeCommand) && !o.Trace && !o.Report
}

// errNotifierHalfInstalled: the filter is in the command but its listener
// could not be taken over; every exec in the command would fail.
var errNotifierHalfInstalled = errors.New("seccomp filter installed in the command, but its notification descriptor could not be taken over")

// startNotifier installs the filter in the command, stopped at its first
// instruction under PTRACE_TRACEME, locks it and lets it go. installed is
// false when the filter could not be installed (the full ptrace engine must
// take over then; nothing was changed in the command).
func (t *tracer) startNotifier(pid int, comm string) (installed bool, err error) {
	t.rootPid = pid
	t.root = &proc{pid: pid, comm: comm}
	t.rootAlive.Store(true)
	// A fork that the interrupt turned back is run again past the filter
	// (awaitFork), which needs PTRACE_O_SUSPEND_SECCOMP: try it now.
	if unix.PtraceSetOptions(pid, unix.PTRACE_O_SUSPEND_SECCOMP) != nil {
		return false, nil
	}
	if unix.PtraceSetOptions(pid, 0) != nil {
		return false, nil
	}
	if entryGadgetArch {
		t.gadgetOff = vdsoPadding(t.procRoot)
	}
	fd, installed, err := t.installNotifier(pid)
	if !installed || err != nil {
		return installed, err
	}
	t.notifyFD = fd
	if t.rootDone {
		return true, nil // the command died meanwhile
	}
	tk := &task{tid: pid, p: t.root, known: true, started: true}
	if gone := t.lock(tk); gone {
		return true, nil
	}
	if err := sys.PtraceDetach(pid, 0); err != nil {
		return true, fmt.Errorf("%w: %v", ErrPtrace, err)
	}
	return true, nil
}

// installNotifier injects seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER |
// WAIT_KILLABLE_RECV, prog) into the stopped command, takes the listener
// over with pidfd_getfd and closes it in the command. The program is written
// below the stack pointer, where nothing lives at a program's first
// instruction.
func (t *tracer) installNotifier(pid int) (fd int, installed bool, err error) {
	var r regs
	if err := getRegs(pid, &r); err != nil {
		return -1, false, nil
	}
	filter := notifierFilter(t.maxLockGen == 0)
	base := (sp(&r) - 1024) &^ 15
	buf := make([]byte, 16+8*len(filter))
	binary.LittleEndian.PutUint16(buf[0:], uint16(len(filter)))
	binary.LittleEndian.PutUint64(buf[8:], uint64(base+16))
	for i, f := range filter {
		o := 16 + 8*i
		binary.LittleEndian.PutUint16(buf[o:], f.Code)
		buf[o+2], buf[o+3] = f.Jt, f.Jf
		binary.LittleEndian.PutUint32(buf[o+4:], f.K)
	}
	for o := 0; o < len(buf); o += 8 {
		if err := sys.PtracePokeData(pid, base+uintptr(o), binary.LittleEndian.Uint64(buf[o:])); err != nil {
			return -1, false, nil
		}
	}
	ret, deferred, gone, err := t.inject(pid, unix.SYS_SECCOMP,
		syscallArgs{seccompSetModeFilter, seccompFilterFlagNewListener | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, base}, false)
	defer func() {
		for _, s := range deferred {
			unix.Kill(pid, s)
		}
	}()
	switch {
	case gone:
		return -1, true, nil
	case err != nil || ret < 0:
		return -1, false, nil
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		fd, err = unix.PidfdGetfd(pidfd, int(ret), 0)
		unix.Close(pidfd)
	}
	if _, _, gone, cerr := t.inject(pid, unix.SYS_CLOSE, syscallArgs{uintptr(ret)}, false); gone {
		if err == nil {
			unix.Close(fd)
		}
		return -1, true, nil
	} else if err == nil && cerr != nil {
		err = fmt.Errorf("close it in the command: %w", cerr)
	}
	if err != nil {
		return -1, true, fmt.Errorf("%w: %w (pid %d)", errNotifierHalfInstalled, err, pid)
	}
	return fd, true, nil // pidfd_getfd sets O_CLOEXEC
}

// serve answers the filter's notifications and reaps children until none
// is left.
func (t *tracer) serve() {
	defer unix.Close(t.notifyFD)
	fds := []unix.PollFd{{Fd: int32(t.notifyFD), Events: unix.POLLIN}, {Fd: -1, Events: unix.POLLIN}}
	// The command's pidfd wakes the poll when it exits; orphans it leaves
	// behind are reaped within the poll's timeout.
	rootFD, err := unix.PidfdOpen(t.rootPid, 0)
	if err == nil {
		fds[1].Fd = int32(rootFD)
	}
	defer func() {
		if fds[1].Fd >= 0 {
			unix.Close(rootFD)
		}
	}()
	var req seccompNotif
	for {
		if t.reapAll() {
			return
		}
		if fds[1].Fd >= 0 && t.rootDone {
			// A reaped process's pidfd reports POLLHUP, asked or not:
			// leave it out of the poll.
			unix.Close(rootFD)
			fds[1].Fd = -1
		}
		n, err := rawPoll(fds, 100*time.Millisecond)
		if err != nil || n == 0 {
			continue
		}
		switch ev := fds[0].Revents; {
		case ev&unix.POLLIN != 0:
			t.onNotification(&req)
		case ev&(unix.POLLHUP|unix.POLLERR) != 0:
			// No process holds the filter any more.
			t.loop()
			return
		}
	}
}

// rawPoll is poll(2) through RawSyscall: the Go runtime is not told that the
// thread blocks. Told, it hands the thread's P to another thread when the
// call outlasts 20 µs and keeps its monitor thread waking every 20 µs,
// which doubles the context switches per exec of a traced shell loop (and
// costs wall time on this paravirtualised host). A signal (the runtime's
// preemption signal included) ends the call with EINTR.
func rawPoll(fds []unix.PollFd, timeout time.Duration) (int, error) {
	ts := unix.NsecToTimespec(int64(timeout))
	r, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)), uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// reapAll reaps every child that has exited, and reports whether no child
// is left. A stopped task it finds is a new child whose parent died inside
// fork, before its fork event: it is locked and released.
func (t *tracer) reapAll() (none bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return true
		case pid == 0:
			return false
		case ws.Stopped():
			t.startChild(pid)
		default:
			t.exited(pid, ws)
		}
	}
}

func (t *tracer) ioctl(req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(t.notifyFD), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// onNotification takes one notification and handles it.
func (t *tracer) onNotification(req *seccompNotif) {
	*req = seccompNotif{}
	if err := t.ioctl(unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(req)); err != nil {
		return // ENOENT: the caller was killed meanwhile
	}
	tid := int(req.Pid)
	resp := seccompNotifResp{ID: req.ID, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
	respond := func() { t.ioctl(unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&resp)) }
	nr := uint32(req.Data.Nr)
	isExec := nr == nrExecve || nr == nrExecveat
	var cloneFlags uint64
	switch {
	case nr == nrClone3:
		var err error
		if cloneFlags, err = readWord(tid, uintptr(req.Data.Args[0])); err != nil {
			respond()
			return
		}
	case nr == nrClone:
		cloneFlags = req.Data.Args[0]
	}
	if !isExec && t.maxLockGen == 0 || isExec && t.maxLockGen == 0 && !t.inCommand(tid) {
		// Plain --mlock: only the command's own images are locked.
		respond()
		return
	}
	if cloneFlags&(unix.CLONE_THREAD|unix.CLONE_VM|unix.CLONE_UNTRACED) != 0 {
		// Threads and CLONE_VM children share a locked address space;
		// CLONE_UNTRACED children cannot be attached at birth.
		respond()
		return
	}
	// The notification is still pending, so tid is still its caller (which
	// can only die of SIGKILL before the seize: its exit is then reported
	// to us, or its PID is reused by a process that the interrupt stops and
	// the wait below releases).
	id := req.ID
	if t.ioctl(unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id)) != nil {
		return
	}
	opts := unix.PTRACE_O_EXITKILL | unix.PTRACE_O_TRACEEXEC
	if !isExec {
		opts = forkOpts
	}
	// An injection that cannot plant its trap code steps the system call
	// instead (injectSyscall), and tells its stops by SIGTRAP|0x80: without
	// this option they would read as a SIGTRAP to deliver, which kills.
	opts |= unix.PTRACE_O_TRACESYSGOOD
	t.section.Lock()
	defer t.section.Unlock()
	if err := sys.PtraceSeize(tid, opts); err != nil {
		respond()
		if !errors.Is(err, unix.ESRCH) {
			t.failed++
			t.warn("pid %d (%s) is NOT locked: %v (is it traced by a debugger?)", tid, t.comm(tid), err)
		}
		return
	}
	sys.PtraceInterrupt(tid)
	respond()
	if isExec {
		t.awaitExec(tid)
	} else {
		t.awaitFork(tid)
	}
}

// forkOpts are the ptrace options of a process seized at a fork.
const forkOpts = unix.PTRACE_O_EXITKILL | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK | unix.PTRACE_O_TRACECLONE

// inCommand reports whether thread tid belongs to the command's process.
func (t *tracer) inCommand(tid int) bool {
	if tid == t.rootPid {
		return true
	}
	_, err := os.Stat(filepath.Join(t.procRoot, strconv.Itoa(t.rootPid), "task", strconv.Itoa(tid)))
	return err == nil
}

// readWord reads the 8 bytes at addr in process pid.
func readWord(pid int, addr uintptr) (uint64, error) {
	var b [8]byte
	local := []unix.Iovec{{Base: &b[0], Len: 8}}
	remote := []unix.RemoteIovec{{Base: addr, Len: 8}}
	if _, err := unix.ProcessVMReadv(pid, local, remote, 0); err != nil {
		return 0, fmt.Errorf("read pid %d at %#x: %w", pid, addr, err)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// next waits for the next stop or death among oomguard's children and
// tracees (a death is recorded with exited); ok is false when none is left.
func (t *tracer) next() (pid int, ws unix.WaitStatus, ok bool) {
	for {
		pid, err := wait4(-1, &ws)
		if err != nil {
			return 0, 0, false
		}
		if ws.Exited() || ws.Signaled() {
			t.exited(pid, ws)
			return pid, ws, true
		}
		if ws.Stopped() {
			return pid, ws, true
		}
	}
}

// awaitExec waits for the seized caller of an execve to stop: at its exec
// event (the new image is locked), or, when the call failed, at the
// interrupt or a signal; then releases it. Only this one process is traced
// meanwhile, so any stop is its own (a non-leader thread that execs takes
// its thread group's ID).
func (t *tracer) awaitExec(tid int) {
	for {
		pid, ws, ok := t.next()
		switch {
		case !ok:
			return
		case !ws.Stopped():
			if pid == tid {
				return
			}
			continue
		}
		switch event(ws) {
		case unix.PTRACE_EVENT_EXEC:
			if !t.lockAtEntry(pid) {
				if gone := t.lockAt(&task{tid: pid, p: &proc{pid: pid}, known: true, started: true}, true); gone {
					return
				}
			}
			sys.PtraceDetach(pid, 0) // also cancels the interrupt
			return
		case sys.PtraceEventStop:
			sys.PtraceDetach(pid, 0)
			return
		case 0:
			sys.PtraceDetach(pid, ws.StopSignal())
			return
		default:
			t.cont(pid, 0)
		}
	}
}

// awaitFork waits for the seized caller of a fork to stop at its fork event
// (or, when the call failed, at the interrupt or a signal) and releases it,
// then locks and releases the new child at its first stop.
//
// The interrupt usually turns the fork back: copy_process gives up when a
// signal or trap is pending, and the call is to be restarted. Then the
// caller is run again through the restarted call with seccomp suspended
// for it (so it does not come back to the filter) and with system-call
// stops, so that a fork that fails still ends in a stop.
func (t *tracer) awaitFork(tid int) {
	child, parentDone := 0, false
	rerun := false  // the turned-back fork is being run again
	var early []int // stops seen before the parent's event named the child
	for !parentDone || child != 0 {
		pid, ws, ok := t.next()
		switch {
		case !ok:
			return
		case !ws.Stopped():
			switch pid {
			case tid:
				parentDone = true
			case child:
				child = 0
			}
			continue
		}
		if pid != tid {
			if pid == child {
				t.startChild(pid)
				child = 0
			} else {
				early = append(early, pid)
			}
			continue
		}
		switch ev := event(ws); ev {
		case unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK, unix.PTRACE_EVENT_CLONE:
			msg, err := sys.PtraceGetEventMsg(tid)
			sys.PtraceDetach(tid, 0)
			parentDone = true
			if err == nil {
				child = int(msg)
				if i := slices.Index(early, child); i >= 0 {
					early = slices.Delete(early, i, i+1)
					t.startChild(child)
					child = 0
				}
			}
		case sys.PtraceEventStop:
			if !rerun && restartPending(tid) &&
				unix.PtraceSetOptions(tid, forkOpts|unix.PTRACE_O_TRACESYSGOOD|unix.PTRACE_O_SUSPEND_SECCOMP) == nil &&
				sys.PtraceSyscall(tid, 0) == nil {
				rerun = true
				continue
			}
			sys.PtraceDetach(tid, 0)
			parentDone = true
		case 0:
			if sig := ws.StopSignal(); sig == unix.SIGTRAP|0x80 && rerun {
				// The restarted call's entry stop: let it run to its fork
				// event, or to its exit stop if it fails.
				if entering(tid) {
					if sys.PtraceSyscall(tid, 0) == nil {
						continue
					}
				}
				sys.PtraceDetach(tid, 0)
			} else {
				sys.PtraceDetach(tid, sig)
			}
			parentDone = true
		default:
			t.cont(tid, 0)
		}
	}
	// Stops of no known child: a child of this fork whose event was lost
	// with its parent's death. Lock and release them too.
	for _, pid := range early {
		t.startChild(pid)
	}
}

// restartPending reports whether the stopped pid is on its way out of a
// system call that the kernel will restart.
func restartPending(pid int) bool {
	var r regs
	if getRegs(pid, &r) != nil {
		return false
	}
	switch -syscallResult(&r) {
	case 512, 513, 514, 516: // ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK
		return true
	}
	return false
}

// entering reports whether pid, in a system-call stop, is at the call's
// entry: the kernel reports -ENOSYS as the result until the call has run.
func entering(pid int) bool {
	var r regs
	return getRegs(pid, &r) == nil && syscallResult(&r) == -int64(unix.ENOSYS)
}

// lockAtEntry makes a new image, stopped at its exec event, call mlockall
// as its first act, without another stop: the call runs from a gadget
// planted in unused bytes at the end of its vDSO and returns to the entry
// point (setupEntryCall). The call's result is never seen, so this is done
// only for a process with CAP_IPC_LOCK, for which mlockall cannot fail (no
// RLIMIT_MEMLOCK check, and errors while faulting pages in are ignored);
// any other goes through the checked injection. It reports whether the
// call was set up.
func (t *tracer) lockAtEntry(pid int) bool {
	if t.gadgetOff == 0 {
		return false
	}
	spid := strconv.Itoa(pid)
	if st, err := readStatus(t.procRoot, spid, t.statBuf); err != nil || !st.hasCap(capIPCLock) {
		return false
	}
	if class, err := elfClass(t.procRoot, pid); err != nil || class != elfClass64 {
		return false // a 32-bit image: its vDSO and registers are another ABI's (lockAt says so)
	}
	vdso, err := readAuxv(t.procRoot, spid, atSysinfoEhdr, t.statBuf)
	if err != nil || vdso == 0 {
		return false
	}
	addr := uintptr(vdso) + t.gadgetOff
	var r regs
	if sys.PtracePokeData(pid, addr, entryGadget) != nil || getRegs(pid, &r) != nil {
		return false
	}
	slot, ret := setupEntryCall(&r, addr, uintptr(t.flags))
	if sys.PtracePokeData(pid, slot, ret) != nil || setRegs(pid, &r) != nil {
		return false
	}
	t.lockedAtEntry++
	return true
}

// atSysinfoEhdr is AT_SYSINFO_EHDR, the auxiliary-vector entry holding the
// vDSO's address.
const atSysinfoEhdr = 33

// readAuxv returns the value of auxiliary-vector entry key of pid.
func readAuxv(procRoot, pid string, key uint64, buf []byte) (uint64, error) {
	path := filepath.Join(procRoot, pid, "auxv")
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	for o := 0; o+16 <= n; o += 16 {
		if binary.LittleEndian.Uint64(buf[o:]) == key {
			return binary.LittleEndian.Uint64(buf[o+8:]), nil
		}
	}
	return 0, fmt.Errorf("read %s: no entry %d", path, key)
}

// vdsoPadding returns the offset of the last 8 bytes of the vDSO mapping
// when they lie past everything its ELF image uses (headers, segments,
// section headers) and are zero, as read from oomguard's own vDSO, which is
// the same image in every process; 0 when they cannot be used.
func vdsoPadding(procRoot string) uintptr {
	buf := make([]byte, 4096)
	base, err := readAuxv(procRoot, "self", atSysinfoEhdr, buf)
	if err != nil || base == 0 {
		return 0
	}
	maps, err := os.ReadFile(filepath.Join(procRoot, "self", "maps"))
	if err != nil {
		return 0
	}
	var size uint64
	for _, l := range strings.Split(string(maps), "\n") {
		if !strings.HasSuffix(l, "[vdso]") {
			continue
		}
		var lo, hi uint64
		if _, err := fmt.Sscanf(l, "%x-%x", &lo, &hi); err == nil && lo == base {
			size = hi - lo
		}
	}
	if size < 4096 {
		return 0
	}
	mem, err := os.Open(filepath.Join(procRoot, "self", "mem"))
	if err != nil {
		return 0
	}
	defer mem.Close()
	img := make([]byte, size)
	if _, err := mem.ReadAt(img, int64(base)); err != nil {
		return 0
	}
	if string(img[:4]) != "\x7fELF" || img[4] != 2 { // ELFCLASS64
		return 0
	}
	le := binary.LittleEndian
	phoff, shoff := le.Uint64(img[32:]), le.Uint64(img[40:])
	phentsize, phnum := uint64(le.Uint16(img[54:])), uint64(le.Uint16(img[56:]))
	shentsize, shnum := uint64(le.Uint16(img[58:])), uint64(le.Uint16(img[60:]))
	used := max(uint64(64), phoff+phentsize*phnum, shoff+shentsize*shnum)
	for i := uint64(0); i < phnum; i++ {
		ph := phoff + i*phentsize
		if ph+56 > size {
			return 0
		}
		used = max(used, le.Uint64(img[ph+8:])+le.Uint64(img[ph+32:])) // p_offset + p_filesz
	}
	off := size - 8
	if used > off || le.Uint64(img[off:]) != 0 {
		return 0
	}
	return uintptr(off)
}

// startChild locks a new child, auto-attached by its parent's fork and
// stopped at its first stop, and releases it.
func (t *tracer) startChild(pid int) {
	if gone := t.lock(&task{tid: pid, p: &proc{pid: pid}, known: true, started: true}); gone {
		return
	}
	sys.PtraceDetach(pid, 0)
}
