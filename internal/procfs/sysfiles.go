package procfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// keptFile is a file a Buffer with KeepFiles keeps open, named by the two
// strings its path was built from (dir and name, or the path and "").
type keptFile struct {
	dir, name string
	fd        int
}

// KeepFiles makes b keep the files ReadFile reads open after their first
// read, and read them again with one pread(2) each instead of open, read
// and close. For files that are produced whole by one read and without
// sleeping on another process: system-wide counters (meminfo, vmstat,
// pressure) and cgroup control files. The pread is a raw system call: it
// does not tell Go's scheduler that the thread entered the kernel, which
// after an idle period would wake the runtime's monitor thread into a
// burst of polling. For a daemon that reads a few such files once a second
// and otherwise sleeps, that burst costs more CPU than the reads. A kept
// file that fails to read (a removed cgroup) is closed and read the usual
// way, so errors are those of an open. Each kept file holds some kernel
// memory (a page-sized buffer for seq_files) until CloseFiles.
func (b *Buffer) KeepFiles() { b.keep = true }

// CloseFiles closes the files b kept open; with KeepFiles on, the next
// read of each opens it again.
func (b *Buffer) CloseFiles() {
	for _, f := range b.kept {
		unix.Close(f.fd)
	}
	b.kept = b.kept[:0]
}

// KeepSystemFiles makes r keep the system-wide files it reads (meminfo,
// vmstat, pressure/*) open: see Buffer.KeepFiles.
func (r *Reader) KeepSystemFiles() { r.buf.KeepFiles() }

// CloseSystemFiles closes the files KeepSystemFiles kept open.
func (r *Reader) CloseSystemFiles() { r.buf.CloseFiles() }

// readKept reads the file whose NUL-terminated path is in b.path, named
// dir and name, through a kept descriptor, opening it on first use. ok is
// false when it cannot be read that way; the caller then reads it the
// usual way, which reports the error.
func (b *Buffer) readKept(dir, name string) (data []byte, ok bool) {
	i := 0
	for ; i < len(b.kept); i++ {
		if b.kept[i].dir == dir && b.kept[i].name == name {
			break
		}
	}
	if i == len(b.kept) {
		fd, err := openat(b.path)
		if err != nil {
			return nil, false
		}
		b.kept = append(b.kept, keptFile{dir: dir, name: name, fd: fd})
	}
	fd := b.kept[i].fd
	d, err := b.preadAll(fd, true)
	if err != nil {
		unix.Close(fd)
		b.kept = append(b.kept[:i], b.kept[i+1:]...)
		return nil, false
	}
	return d, true
}

// preadAll reads the file open as fd from offset 0 into b.data, growing
// it as needed. A read that does not fill the buffer is the whole file:
// the files read this way are produced whole by one read. raw makes each
// pread a raw system call (see KeepFiles).
func (b *Buffer) preadAll(fd int, raw bool) ([]byte, error) {
	if cap(b.data) < minBuf {
		b.data = make([]byte, minBuf)
	}
	b.data = b.data[:cap(b.data)]
	n := 0
	for {
		if n == len(b.data) {
			grown := make([]byte, 2*len(b.data))
			copy(grown, b.data)
			b.data = grown
		}
		var m int
		var err error
		if raw {
			r, _, e := unix.RawSyscall6(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&b.data[n])),
				uintptr(len(b.data)-n), uintptr(n), 0, 0)
			if m = int(r); e != 0 {
				err = e
			}
		} else {
			m, err = unix.Pread(fd, b.data[n:], int64(n))
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		n += m
		if m == 0 || n < len(b.data) {
			return b.data[:n], nil
		}
	}
}
