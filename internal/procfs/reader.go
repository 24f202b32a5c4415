package procfs

import "strconv"

// Reader reads the files of one proc filesystem into buffers it keeps, so a
// periodic scan that reads the same files again allocates nothing. Values a
// method returns as []byte point into those buffers and stay valid only until
// the Reader's next read. Errors allocate; a missing file is an
// *os.PathError for which errors.Is(err, fs.ErrNotExist) holds (a process that
// exited reads as ESRCH or ENOENT, see IsGone). A Reader is not safe for
// concurrent use; use one per goroutine.
type Reader struct {
	fs  FS
	buf Buffer
}

// NewReader returns a Reader of fs.
func (fs FS) NewReader() *Reader { return &Reader{fs: fs} }

// FS returns the filesystem r reads.
func (r *Reader) FS() FS { return r.fs }

// readRoot reads the file dir+name under the root ("", "meminfo" or
// "pressure/", "cpu"), in two parts so that callers need not concatenate.
func (r *Reader) readRoot(dir, name string, single bool) ([]byte, error) {
	p := append(r.buf.path[:0], r.fs.Root...)
	p = append(p, '/')
	p = append(p, dir...)
	p = append(append(p, name...), 0)
	r.buf.path = p
	if r.buf.keep {
		if b, ok := r.buf.readKept(dir, name); ok {
			return b, nil
		}
	}
	return r.buf.read(0, single)
}

// readPID reads /proc/PID/name, at most max bytes when max > 0. single is
// true for files the kernel produces in one read (see Buffer.read).
func (r *Reader) readPID(pid int, name string, max int, single bool) ([]byte, error) {
	r.setPIDPath(pid, name)
	return r.buf.read(max, single)
}

// setPIDPath writes the NUL-terminated path of /proc/PID/name to r.buf.path.
func (r *Reader) setPIDPath(pid int, name string) {
	p := append(r.buf.path[:0], r.fs.Root...)
	p = append(p, '/')
	p = strconv.AppendInt(p, int64(pid), 10)
	p = append(p, '/')
	p = append(append(p, name...), 0)
	r.buf.path = p
}

// readTask reads /proc/PID/task/TID/name, as readPID reads /proc/PID/name.
func (r *Reader) readTask(pid, tid int, name string, max int, single bool) ([]byte, error) {
	p := append(r.buf.path[:0], r.fs.Root...)
	p = append(p, '/')
	p = strconv.AppendInt(p, int64(pid), 10)
	p = append(p, "/task/"...)
	p = strconv.AppendInt(p, int64(tid), 10)
	p = append(p, '/')
	r.buf.path = append(append(p, name...), 0)
	return r.buf.read(max, single)
}

// parsed names the file of the last read in a parser's error.
func (r *Reader) parsed(err error) error {
	if err == nil {
		return nil
	}
	return withPath(string(r.buf.path[:len(r.buf.path)-1]), err)
}
