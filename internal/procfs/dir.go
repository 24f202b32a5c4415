package procfs

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// DirReader lists directories with getdents64(2) into a buffer it keeps, so
// listing /proc or a cgroup tree again allocates nothing (os.ReadDir
// allocates a string per entry). The zero value is ready to use. A DirReader
// is not safe for concurrent use.
type DirReader struct {
	buf  []byte
	path []byte
}

// Entries calls fn with the name and d_type (unix.DT_DIR, …) of every entry of
// the directory at path except "." and "..". name is valid only during the
// call. An error from fn stops the listing and is returned.
func (d *DirReader) Entries(path string, fn func(name []byte, typ uint8) error) error {
	d.path = append(append(d.path[:0], path...), 0)
	return d.entries(fn)
}

// EntriesBytes is Entries for a path held in a byte slice.
func (d *DirReader) EntriesBytes(path []byte, fn func(name []byte, typ uint8) error) error {
	d.path = append(append(d.path[:0], path...), 0)
	return d.entries(fn)
}

// entries lists the directory whose NUL-terminated path is in d.path.
func (d *DirReader) entries(fn func(name []byte, typ uint8) error) error {
	path := d.path[:len(d.path)-1]
	fd, err := openDir(d.path)
	if err != nil {
		return &os.PathError{Op: "open", Path: string(path), Err: err}
	}
	defer unix.Close(fd)
	if len(d.buf) == 0 {
		d.buf = make([]byte, 32<<10)
	}
	for {
		n, err := unix.Getdents(fd, d.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "getdents", Path: string(path), Err: err}
		}
		if n <= 0 {
			return nil
		}
		if err := eachDirent(d.buf[:n], fn); err != nil {
			return err
		}
	}
}

// eachDirent walks the linux_dirent64 records in b: u64 d_ino, s64 d_off,
// u16 d_reclen, u8 d_type, NUL-terminated d_name.
func eachDirent(b []byte, fn func(name []byte, typ uint8) error) error {
	for len(b) >= 19 {
		reclen := int(b[16]) | int(b[17])<<8
		if reclen < 19 || reclen > len(b) {
			return nil
		}
		rec := b[:reclen]
		b = b[reclen:]
		name := rec[19:]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		if len(name) == 0 || (name[0] == '.' && (len(name) == 1 || (len(name) == 2 && name[1] == '.'))) {
			continue
		}
		if err := fn(name, rec[18]); err != nil {
			return err
		}
	}
	return nil
}

// PIDs appends to dst the PID of every process directory in fs's root (the
// numeric entries of /proc) and returns the extended slice.
func (d *DirReader) PIDs(fs FS, dst []int) ([]int, error) {
	err := d.Entries(fs.Root, func(name []byte, typ uint8) error {
		if pid, ok := ParsePID(name); ok {
			dst = append(dst, pid)
		}
		return nil
	})
	return dst, err
}

// ParsePID parses b as a positive decimal process or thread ID of at most
// ten digits, as /proc entry names and cgroup.procs lines hold them. ok is
// false for anything else, zero included. It does not allocate.
func ParsePID(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n > 0
}

// Tasks appends to dst the thread IDs of process pid (the entries of
// /proc/PID/task) and returns the extended slice.
func (d *DirReader) Tasks(fs FS, pid int, dst []int) ([]int, error) {
	p := append(d.path[:0], fs.Root...)
	p = append(p, '/')
	p = strconv.AppendInt(p, int64(pid), 10)
	p = append(p, "/task"...)
	d.path = append(p, 0)
	err := d.entries(func(name []byte, typ uint8) error {
		if tid, ok := ParsePID(name); ok {
			dst = append(dst, tid)
		}
		return nil
	})
	return dst, err
}
