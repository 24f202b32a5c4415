package main

import (
	"runtime/debug"
	"syscall"
	"unsafe"
)

const (
	pollPri = 0x2
	pollErr = 0x8
)

type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

func poll(fds []pollFd, timeoutMs int) (int, error) {
	n, _, e := syscall.Syscall(syscall.SYS_POLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)), uintptr(timeoutMs))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func debugSetMaxThreads(n int) {
	if n > 10000 {
		debug.SetMaxThreads(n)
	}
}
