package sys

import "golang.org/x/sys/unix"

// KcmpErrno is Kcmp returning the bare errno (0 on success) instead of a
// wrapped error, so that hot loops that expect failures (processes exiting
// during a scan) allocate nothing.
func KcmpErrno(pid1, pid2, typ int, idx1, idx2 uintptr) (int, unix.Errno) {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), uintptr(typ), idx1, idx2, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), 0
}
