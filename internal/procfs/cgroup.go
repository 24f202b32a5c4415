package procfs

import "errors"

// ErrNoCgroupLine says /proc/PID/cgroup has no line for the hierarchy asked
// for.
var ErrNoCgroupLine = errors.New("no line for that hierarchy")

// Cgroup reads /proc/PID/cgroup and returns the process's cgroup path in the
// hierarchy of controller (for example "memory" or "name=systemd"), or in the
// v2 hierarchy (the "0::" line) when controller is "". The path points into
// r's buffer. A missing line gives an error wrapping ErrNoCgroupLine.
func (r *Reader) Cgroup(pid int, controller string) ([]byte, error) {
	b, err := r.readPID(pid, "cgroup", 0, true)
	return r.cgroupOf(b, err, controller)
}

// TaskCgroup is Cgroup read from /proc/PID/task/TID/cgroup, one thread's:
// the way to the cgroup of a process whose leader exited before its other
// threads (the leader's reads "/" on v1 hierarchies, and goes stale on v2
// when the process moves).
func (r *Reader) TaskCgroup(pid, tid int, controller string) ([]byte, error) {
	b, err := r.readTask(pid, tid, "cgroup", 0, true)
	return r.cgroupOf(b, err, controller)
}

// cgroupOf parses b, the cgroup file just read (or err), for controller.
func (r *Reader) cgroupOf(b []byte, err error, controller string) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	p, err := cgroupPath(b, controller)
	if err == ErrNoCgroupLine {
		return nil, &pathErr{path: string(r.buf.path[:len(r.buf.path)-1]), err: err}
	}
	return p, r.parsed(err)
}

// pathErr is an error about a file that is no syntax error.
type pathErr struct {
	path string
	err  error
}

func (e *pathErr) Error() string { return e.path + ": " + e.err.Error() }
func (e *pathErr) Unwrap() error { return e.err }

// cgroupPath parses /proc/PID/cgroup, lines of
// "hierarchy-ID:controller-list:path", and returns the path of the line
// whose controller list holds controller, or of the v2 line ("0::path")
// when controller is "". Every line is checked.
func cgroupPath(b []byte, controller string) ([]byte, error) {
	var found []byte
	ok := false
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b = nextLine(b)
		if len(line) == 0 {
			continue
		}
		id, rest, ok1 := splitKey(line)
		ctrls, path, ok2 := splitKey(rest)
		if !ok1 || !ok2 {
			return nil, errAt(n, "not \"id:controllers:path\"")
		}
		if _, isNum := ParseUint(id); !isNum {
			return nil, errAt(n, "hierarchy ID is not a number")
		}
		if len(path) == 0 || path[0] != '/' {
			return nil, errAt(n, "path is not absolute")
		}
		if ok {
			continue
		}
		if controller == "" {
			if string(id) == "0" && len(ctrls) == 0 {
				found, ok = path, true
			}
			continue
		}
		for len(ctrls) > 0 {
			c, next := ctrls, []byte(nil)
			for i, x := range ctrls {
				if x == ',' {
					c, next = ctrls[:i], ctrls[i+1:]
					break
				}
			}
			ctrls = next
			if string(c) == controller {
				found, ok = path, true
				break
			}
		}
	}
	if !ok {
		return nil, ErrNoCgroupLine
	}
	return found, nil
}
