package memlock

import (
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/testbed"
)

// TestInjectionPaths injects mlockall into a small stopped process through
// each injection path directly: the one-stop trap code and the
// syscall-stop fallback (the only path on arm64).
func TestInjectionPaths(t *testing.T) {
	testbed.Require(t)
	bin := testbed.CompileC(t, "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n")
	for _, path := range []string{"trap", "syscall"} {
		t.Run(path, func(t *testing.T) {
			if _, ok := trapCode(unix.SYS_MLOCKALL); !ok && path == "trap" {
				t.Skip("no trap code on " + runtime.GOARCH)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cmd := exec.Command(bin)
			cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := cmd.Process.Pid
			defer func() {
				unix.Kill(pid, unix.SIGKILL)
				cmd.Wait()
			}()
			var ws unix.WaitStatus
			if _, err := wait4(pid, &ws); err != nil || !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
				t.Fatalf("no exec SIGTRAP stop: %v %v", ws, err)
			}
			if err := unix.PtraceSetOptions(pid, unix.PTRACE_O_TRACESYSGOOD); err != nil {
				t.Fatal(err)
			}
			tr := newTracer(&Options{Lock: LockAll}, "/proc", func(string, ...any) {})
			var before, after regs
			if err := getRegs(pid, &before); err != nil {
				t.Fatal(err)
			}
			var ret int64
			var gone bool
			var err error
			if path == "trap" {
				code, _ := trapCode(unix.SYS_MLOCKALL)
				var tried bool
				ret, _, gone, err, tried = tr.injectTrap(pid, code, syscallArgs{uintptr(tr.flags)}, false)
				if !tried {
					t.Fatal("trap code was not planted")
				}
			} else {
				ret, _, gone, err = tr.injectSyscall(pid, unix.SYS_MLOCKALL, syscallArgs{uintptr(tr.flags)})
			}
			if err != nil || gone || ret != 0 {
				t.Fatalf("inject: ret %d gone %v err %v", ret, gone, err)
			}
			if err := getRegs(pid, &after); err != nil {
				t.Fatal(err)
			}
			if before != after {
				t.Errorf("registers not restored:\nbefore %+v\nafter  %+v", before, after)
			}
			st, err := readStatus("/proc", strconv.Itoa(pid), make([]byte, 4096))
			if err != nil {
				t.Fatal(err)
			}
			if st.VmLck == 0 {
				t.Errorf("VmLck is 0 after the injection")
			}
			// The process still runs correctly: it reaches pause().
			if err := unix.PtraceCont(pid, 0); err != nil {
				t.Fatal(err)
			}
		})
	}
}
