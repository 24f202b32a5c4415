package procfs

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ReadMem reads len(dst) bytes of process pid's memory at addr through
// /proc/PID/mem. It needs ptrace access to the process. A short read (an
// unmapped address) is an error wrapping io.ErrUnexpectedEOF.
func (r *Reader) ReadMem(pid int, addr uint64, dst []byte) error {
	r.setPIDPath(pid, "mem")
	fd, err := openat(r.buf.path)
	if err != nil {
		return &os.PathError{Op: "open", Path: string(r.buf.path[:len(r.buf.path)-1]), Err: err}
	}
	defer unix.Close(fd)
	n := 0
	for n < len(dst) {
		m, err := unix.Pread(fd, dst[n:], int64(addr)+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "read", Path: string(r.buf.path[:len(r.buf.path)-1]), Err: err}
		}
		if m == 0 {
			return &os.PathError{Op: "read", Path: string(r.buf.path[:len(r.buf.path)-1]), Err: io.ErrUnexpectedEOF}
		}
		n += m
	}
	return nil
}
