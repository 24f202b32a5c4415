package scan

import (
	"time"

	"github.com/oomguard/oomguard/internal/procfs"
)

// maxCmdlineReaders bounds the command-line reads a Scanner may have
// blocked at once (see Config.CmdlineWait). Past it, a process new to the
// cache is taken without its command line until a blocked read returns.
const maxCmdlineReaders = 4

// cmdlineReader reads command lines on a goroutine of its own, so that a
// read that blocks holds that goroutine and not the pass. Reading
// /proc/PID/cmdline takes the process's mmap_lock for reading
// (access_remote_vm), and may have to page the arguments back in: a
// process whose lock a writer holds or waits for (mmap, munmap or brk in
// direct reclaim, under a thrash) blocks its reader for as long as that
// lasts, with no bound. The daemon's memory loop must not wait on it.
type cmdlineReader struct {
	r     *procfs.Reader // the goroutine's own: buffers are not shared
	req   chan cmdlineRequest
	reply chan cmdlineReply
	// out says a request was sent whose reply has not been taken; pid and
	// start name its process.
	out   bool
	pid   int
	start uint64
}

type cmdlineRequest struct {
	pid, tid, max int
}

type cmdlineReply struct {
	raw []byte // the reader's buffer: valid until its next request
	err error
}

func newCmdlineReader(fs procfs.FS) *cmdlineReader {
	c := &cmdlineReader{r: fs.NewReader(), req: make(chan cmdlineRequest), reply: make(chan cmdlineReply, 1)}
	go c.run()
	return c
}

func (c *cmdlineReader) run() {
	for q := range c.req {
		var rep cmdlineReply
		if q.tid != 0 {
			rep.raw, rep.err = c.r.TaskCmdline(q.pid, q.tid, q.max)
		} else {
			rep.raw, rep.err = c.r.Cmdline(q.pid, q.max)
		}
		c.reply <- rep
	}
}

// readCmdline reads the command line of process pid, whose start time is
// start, through its thread tid when tid is not 0. With Config.CmdlineWait
// at 0 it reads in place. Otherwise a reader goroutine reads it, and the
// pass waits at most CmdlineWait for it. done is false when the read did
// not end in time (the reader stays blocked on it, and its reply, when it
// comes, is taken by the next readCmdline of the same process), when a read
// of this process is blocked already, or when maxCmdlineReaders are. raw is
// valid until the next call.
func (s *Scanner) readCmdline(pid, tid int, start uint64) (raw []byte, done bool, err error) {
	if s.cfg.CmdlineWait <= 0 {
		if tid != 0 {
			raw, err = s.r.TaskCmdline(pid, tid, s.cfg.CmdlineMax)
		} else {
			raw, err = s.r.Cmdline(pid, s.cfg.CmdlineMax)
		}
		return raw, true, err
	}
	var idle *cmdlineReader
	for _, c := range s.cmdlines {
		if !c.out {
			idle = c
			continue
		}
		select {
		case rep := <-c.reply:
			c.out = false
			if c.pid == pid && c.start == start {
				// The read left blocked in an earlier pass ended.
				return rep.raw, true, rep.err
			}
			idle = c
		default:
			if c.pid == pid && c.start == start {
				s.stats.CmdlineUnread++
				return nil, false, nil // still blocked: not again
			}
		}
	}
	if idle == nil {
		if len(s.cmdlines) >= maxCmdlineReaders {
			s.stats.CmdlineUnread++
			return nil, false, nil
		}
		idle = newCmdlineReader(s.fs)
		s.cmdlines = append(s.cmdlines, idle)
	}
	idle.req <- cmdlineRequest{pid: pid, tid: tid, max: s.cfg.CmdlineMax}
	if s.cmdlineTimer == nil {
		s.cmdlineTimer = time.NewTimer(s.cfg.CmdlineWait)
	} else {
		s.cmdlineTimer.Reset(s.cfg.CmdlineWait)
	}
	select {
	case rep := <-idle.reply:
		s.cmdlineTimer.Stop()
		return rep.raw, true, rep.err
	case <-s.cmdlineTimer.C:
		idle.out, idle.pid, idle.start = true, pid, start
		s.stats.CmdlineUnread++
		return nil, false, nil
	}
}

// closeCmdlineReaders ends the reader goroutines: an idle one at once, a
// blocked one when its read returns.
func (s *Scanner) closeCmdlineReaders() {
	for _, c := range s.cmdlines {
		close(c.req)
	}
	s.cmdlines = nil
}
