package procfs

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Buffer reads kernel pseudo-files into memory it keeps for the next read, so
// that reading the same files again allocates nothing. The bytes a read
// returns are valid until the next read through the same Buffer. The zero
// value is ready to use. A Buffer is not safe for concurrent use.
type Buffer struct {
	data []byte
	path []byte // NUL-terminated path scratch
	// keep and kept: see KeepFiles.
	keep bool
	kept []keptFile
}

// minBuf is the first size of a Buffer's data: enough for /proc/PID/status.
const minBuf = 4096

// ReadFile reads the whole file at path, to end of file, growing the buffer
// when the file is larger than it.
func (b *Buffer) ReadFile(path string) ([]byte, error) {
	b.path = append(append(b.path[:0], path...), 0)
	if b.keep {
		if d, ok := b.readKept(path, ""); ok {
			return d, nil
		}
	}
	return b.read(0, false)
}

// ReadFileBytes is ReadFile for a path held in a byte slice.
func (b *Buffer) ReadFileBytes(path []byte) ([]byte, error) {
	b.path = append(append(b.path[:0], path...), 0)
	return b.read(0, false)
}

// ReadFileMax reads at most max bytes of the file at path.
func (b *Buffer) ReadFileMax(path string, max int) ([]byte, error) {
	b.path = append(append(b.path[:0], path...), 0)
	return b.read(max, false)
}

// readPath reads the file whose NUL-terminated path is in b.path. max > 0
// caps the bytes read. single says the file is produced whole by one read
// (a single_open seq_file or /proc/PID/cmdline), so a read that does not fill
// the buffer is the end of the file and the closing zero-length read is
// skipped.
func (b *Buffer) read(max int, single bool) ([]byte, error) {
	fd, err := openat(b.path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: string(b.path[:len(b.path)-1]), Err: err}
	}
	defer unix.Close(fd)
	if cap(b.data) < minBuf {
		b.data = make([]byte, minBuf)
	}
	b.data = b.data[:cap(b.data)]
	n := 0
	for {
		if max > 0 && n >= max {
			return b.data[:max], nil
		}
		if n == len(b.data) {
			grown := make([]byte, 2*len(b.data))
			copy(grown, b.data)
			b.data = grown
		}
		end := len(b.data)
		if max > 0 && end > max {
			end = max
		}
		m, err := unix.Read(fd, b.data[n:end])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: string(b.path[:len(b.path)-1]), Err: err}
		}
		if m == 0 {
			return b.data[:n], nil
		}
		n += m
		if single && n < end {
			return b.data[:n], nil
		}
	}
}

// openat opens the NUL-terminated path read-only. It calls openat(2)
// directly because unix.Open copies its string argument to the heap.
func openat(path []byte) (int, error) {
	cwd := unix.AT_FDCWD
	for {
		fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(cwd), uintptr(unsafe.Pointer(&path[0])),
			uintptr(unix.O_RDONLY|unix.O_CLOEXEC), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(fd), nil
	}
}

// openDir opens the NUL-terminated path as a directory.
func openDir(path []byte) (int, error) {
	cwd := unix.AT_FDCWD
	for {
		fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(cwd), uintptr(unsafe.Pointer(&path[0])),
			uintptr(unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECTORY), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(fd), nil
	}
}
