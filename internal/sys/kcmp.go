package sys

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// KcmpVM is kcmp(2)'s KCMP_VM type: compare the address spaces (mm) of two
// processes.
const KcmpVM = 1

// Kcmp calls kcmp(2) and returns its result: 0 when the compared resources
// are the same, 1 or 2 for an ordering, 3 when they differ without order.
func Kcmp(pid1, pid2, typ int, idx1, idx2 uintptr) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), uintptr(typ), idx1, idx2, 0)
	if e != 0 {
		return -1, fmt.Errorf("kcmp(%d, %d, %d): %w", pid1, pid2, typ, e)
	}
	return int(r), nil
}

// SameMM reports whether two processes share one address space, as
// kcmp(pid1, pid2, KCMP_VM, 0, 0) == 0 tells. kcmp also orders mms, so its
// result (0 equal, 1 less, 2 greater) can sort processes into mm groups.
func SameMM(pid1, pid2 int) (bool, error) {
	r, err := Kcmp(pid1, pid2, KcmpVM, 0, 0)
	if err != nil {
		return false, err
	}
	return r == 0, nil
}
