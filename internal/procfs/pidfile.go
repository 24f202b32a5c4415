package procfs

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PIDFile is a /proc/PID file kept open to be read again with pread(2): one
// system call per read instead of open, read and close. The descriptor is
// tied to the process it was opened for, never to a later process that
// reuses the PID: once that process is gone, reads fail with ESRCH (IsGone).
// Each open file costs kernel memory: a struct file, and for seq_file
// files (stat, status) a page-sized buffer that lives until Close. The zero
// value is a closed PIDFile.
type PIDFile struct {
	fd   int // descriptor + 1; 0 when closed
	pid  int
	name string
}

// OpenPIDFile opens /proc/PID/name to be read with ReadStat, ReadStatus or
// ReadOOMScoreAdj. name must be a constant or otherwise long-lived string.
func (r *Reader) OpenPIDFile(pid int, name string) (PIDFile, error) {
	r.setPIDPath(pid, name)
	fd, err := openat(r.buf.path)
	if err != nil {
		return PIDFile{}, &os.PathError{Op: "open", Path: string(r.buf.path[:len(r.buf.path)-1]), Err: err}
	}
	return PIDFile{fd: fd + 1, pid: pid, name: name}, nil
}

// IsOpen reports whether f holds a descriptor.
func (f *PIDFile) IsOpen() bool { return f.fd != 0 }

// Close closes f; closing a closed PIDFile does nothing.
func (f *PIDFile) Close() error {
	if f.fd == 0 {
		return nil
	}
	err := unix.Close(f.fd - 1)
	*f = PIDFile{}
	return err
}

// pread reads all of f from offset 0 into r's buffer. A read that does not
// fill the buffer is the whole file (the files read this way are produced
// whole by one read).
func (r *Reader) pread(f *PIDFile) ([]byte, error) {
	d, err := r.buf.preadAll(f.fd-1, false)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: r.fs.Root + "/" + strconv.Itoa(f.pid) + "/" + f.name, Err: err}
	}
	return d, nil
}

// setFilePath points r's error path at f (only when a parse fails).
func (r *Reader) setFilePath(f *PIDFile) { r.setPIDPath(f.pid, f.name) }

// ReadStat is Stat through an open /proc/PID/stat.
func (r *Reader) ReadStat(f *PIDFile, s *Stat) error {
	b, err := r.pread(f)
	if err != nil {
		return err
	}
	if err := parseStat(b, s); err != nil {
		r.setFilePath(f)
		return r.parsed(err)
	}
	return nil
}

// ReadStatus is Status through an open /proc/PID/status.
func (r *Reader) ReadStatus(f *PIDFile, s *Status) error {
	b, err := r.pread(f)
	if err != nil {
		return err
	}
	if err := parseStatus(b, s); err != nil {
		r.setFilePath(f)
		return r.parsed(err)
	}
	return nil
}

// ReadOOMScoreAdj is OOMScoreAdj through an open /proc/PID/oom_score_adj.
func (r *Reader) ReadOOMScoreAdj(f *PIDFile) (int, error) {
	b, err := r.pread(f)
	if err != nil {
		return 0, err
	}
	v, err := parseOOMScoreAdj(b)
	if err != nil {
		r.setFilePath(f)
		return 0, r.parsed(err)
	}
	return v, nil
}
