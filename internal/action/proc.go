package action

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/procfs"
)

// ReadStartTime returns field 22 (starttime, clock ticks after boot) of
// procRoot/PID/stat. A process that no longer exists yields an error
// wrapping ENOENT.
func ReadStartTime(procRoot string, pid int) (uint64, error) {
	path := procRoot + "/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return 0, fmt.Errorf("read %s: %w", path, unix.ENOENT)
		}
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	st, err := parseStartTime(b)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return st, nil
}

// parseStartTime extracts field 22 of a /proc/PID/stat line. The command
// name (field 2) is in parentheses and may itself contain spaces and ')', so
// fields are counted from the last ')'.
func parseStartTime(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	rest := b[i+1:]
	// rest starts with " S ppid ...": field 3 is the first after ')'.
	field := 2
	for len(rest) > 0 {
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			break
		}
		j := bytes.IndexAny(rest, " \n")
		if j < 0 {
			j = len(rest)
		}
		field++
		if field == 22 {
			v, err := strconv.ParseUint(string(rest[:j]), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("field 22 (starttime) %q: %w", rest[:j], err)
			}
			return v, nil
		}
		rest = rest[j:]
		if len(rest) > 0 && rest[0] == '\n' {
			break
		}
	}
	return 0, fmt.Errorf("only %d fields, need 22", field)
}

// leaderExited reports whether b, the /proc/PID/stat of a thread-group
// leader, says the leader exited while other threads of its process run
// (procfs.Stat.LeaderExited).
func leaderExited(b []byte) bool {
	var st procfs.Stat
	return procfs.ParseStat(b, &st) == nil && st.LeaderExited()
}

// mmTask returns an ID through which the address space of process pid can
// be compared with kcmp(KCMP_VM): pid itself, or, when its leader exited
// before its other threads (leaderExited), one of those that is not
// exiting; pid when none is found.
func mmTask(procRoot string, pid int) int {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil || !leaderExited(b) {
		return pid
	}
	if tid, ok := procfs.LiveThread(procRoot, pid); ok {
		return tid
	}
	return pid
}

// MemberOf returns a Member for pid pinned to its current start time.
func MemberOf(procRoot string, pid int) (Member, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	st, err := ReadStartTime(procRoot, pid)
	if err != nil {
		return Member{}, err
	}
	return Member{PID: pid, StartTime: st}, nil
}

// ErrNeedCapSysResource is wrapped by ApplyOOMScoreAdj's error when the
// kernel refused to lower an oom_score_adj (EACCES): lowering it below the
// process's floor needs CAP_SYS_RESOURCE.
var ErrNeedCapSysResource = errors.New("lowering oom_score_adj needs CAP_SYS_RESOURCE")

// ApplyOOMScoreAdj writes adj (-1000..1000) to the oom_score_adj of every
// process in pids, normally the members of one mm group, so the group has
// one consistent value (the kernel since 4.8 also propagates a write to the
// processes sharing the writer's mm). If a write fails, the values already
// written are put back, and the error names the PID and the cause; EACCES
// for a negative adj wraps ErrNeedCapSysResource. A process that has exited
// meanwhile is skipped.
func (k *Killer) ApplyOOMScoreAdj(pids []int, adj int) error {
	if adj < -1000 || adj > 1000 {
		return fmt.Errorf("oom_score_adj %d out of range -1000..1000", adj)
	}
	root := k.procRoot()
	val := strconv.Itoa(adj)
	type old struct {
		pid int
		val []byte
	}
	var done []old
	for _, pid := range pids {
		path := root + "/" + strconv.Itoa(pid) + "/oom_score_adj"
		prev, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			continue
		}
		if err == nil {
			err = writeOnce(path, val)
		}
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			continue
		}
		if err != nil {
			for _, o := range done {
				writeOnce(root+"/"+strconv.Itoa(o.pid)+"/oom_score_adj", string(bytes.TrimSpace(o.val)))
			}
			if errors.Is(err, unix.EACCES) && adj < 0 {
				err = fmt.Errorf("%w: %w", ErrNeedCapSysResource, err)
			}
			k.log().Warn("oom_score_adj", "pid", pid, "adj", adj, "err", err.Error())
			return fmt.Errorf("set oom_score_adj of pid %d to %d: %w", pid, adj, err)
		}
		done = append(done, old{pid, prev})
		k.log().Info("oom_score_adj", "pid", pid, "adj", adj, "was", string(bytes.TrimSpace(prev)))
	}
	return nil
}

func writeOnce(path, val string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(val))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
