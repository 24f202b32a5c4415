package scan

import (
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/procfs"
	"github.com/oomguard/oomguard/internal/sys"
)

// maxCmdlineReaders bounds the command-line reads a Scanner may have out
// at once (see Config.CmdlineWait). Past it, a process new to the cache is
// taken without its command line until a reader is free. A read out for
// longer than cmdlineStuck (a process in D state on a dead NFS or FUSE
// mount never gives its lock back) no longer counts, so that such
// processes cannot take every reader for good; hardCmdlineReaders bounds
// the readers, stuck ones included.
const (
	maxCmdlineReaders  = 4
	hardCmdlineReaders = 16
	cmdlineStuck       = 10 * time.Second
)

// CmdlineHold is Config.CmdlineHold's default: how long a process may go
// without its command line, its read blocked, before the Scanner reads
// the path of its executable
// instead (policy.Process.Exe, /proc/PID/exe, whose read takes no
// mmap_lock), by which the rules then judge it. Until then the killer
// waits for it rather than choose a smaller process in its place (see
// policy.Candidate.Unjudged).
const CmdlineHold = time.Second

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
	// out says a request was sent whose reply has not been taken; key
	// names its process and image, sent when it was sent, and pass the
	// pass that sent it (Scanner.waitPass).
	out  bool
	key  cmdlineKey
	sent time.Time
	pass uint64
	// tid is the reader's thread, once locked to one (for tests).
	tid atomic.Int64
}

// cmdlineKey names a process (PID, start time) running one image (the
// layout hash of its stat): a reply read before an exec is not the new
// image's command line.
type cmdlineKey struct {
	pid           int
	start, layout uint64
}

type cmdlineRequest struct {
	pid, tid, max int
	// realtime: the pass that waits runs at SCHED_FIFO, and so must the
	// read (see cmdlineReader.run).
	realtime bool
}

type cmdlineReply struct {
	raw []byte // the reader's buffer: valid until its next request
	err error
}

func newCmdlineReader(fs procfs.FS, priority int) *cmdlineReader {
	c := &cmdlineReader{r: fs.NewReader(), req: make(chan cmdlineRequest), reply: make(chan cmdlineReply, 1)}
	go c.run(priority)
	return c
}

// run serves requests. With priority > 0 it does so on a thread of its
// own, at SCHED_FIFO priority while it reads for a pass that runs at
// SCHED_FIFO itself (Config.CmdlinePriority; the daemon's memory loop
// while memory stalls or a kill is due), and at normal priority for the
// others (Warm, which the loop runs at normal priority so as not to take
// the CPU from others). A reader left at normal priority while a real-time
// pass waited for it waited for a CPU behind the hog under a thrash: in
// bench/vm's guest paging to zram, the pass that decided a fast hog's kill
// took 73 to 99 ms, against 16 when it read in place. Where the policy
// cannot be set, it reads at normal priority.
func (c *cmdlineReader) run(priority int) {
	if priority > 0 {
		runtime.LockOSThread() // for good: the thread ends with the reader
		c.tid.Store(int64(unix.Gettid()))
	}
	for q := range c.req {
		rt := priority > 0 && q.realtime && sys.SetFIFO(priority) == nil
		var rep cmdlineReply
		if q.tid != 0 {
			rep.raw, rep.err = c.r.TaskCmdline(q.pid, q.tid, q.max)
		} else {
			rep.raw, rep.err = c.r.Cmdline(q.pid, q.max)
		}
		if rt {
			sys.SetNormal() // back at normal priority between reads
		}
		c.reply <- rep
	}
}

// readCmdline reads the command line of the process key names, through
// its thread tid when tid is not 0. With Config.CmdlineWait at 0 it reads
// in place. Otherwise a reader goroutine reads it while the pass waits, at
// most until the pass's deadline (see startWaits): done is false when the
// reply has not come by then. The read stays out, and a later call for
// the same process takes its reply, without waiting for it again
// (collectCmdlines files replies that come meanwhile in the cache); a
// process is never read twice at once. done is also false when every
// reader is out. raw is valid until the next call.
func (s *Scanner) readCmdline(key cmdlineKey, tid int) (raw []byte, done bool, err error) {
	return s.readCmdlineWaiting(key, tid, true)
}

// readCmdlineWaiting is readCmdline; with mayWait false, a read it sends is
// not waited for either, only looked at once.
func (s *Scanner) readCmdlineWaiting(key cmdlineKey, tid int, mayWait bool) (raw []byte, done bool, err error) {
	if s.cfg.CmdlineWait <= 0 {
		if tid != 0 {
			raw, err = s.r.TaskCmdline(key.pid, tid, s.cfg.CmdlineMax)
		} else {
			raw, err = s.r.Cmdline(key.pid, s.cfg.CmdlineMax)
		}
		return raw, true, err
	}
	var idle, mine *cmdlineReader
	for _, c := range s.cmdlines {
		switch {
		case c.out && c.key == key:
			mine = c
		case !c.out && idle == nil:
			idle = c
		}
	}
	if mine == nil {
		if idle == nil {
			// Replies that came free their readers.
			s.collectCmdlines()
			for _, c := range s.cmdlines {
				if !c.out {
					idle = c
					break
				}
			}
		}
		if idle == nil {
			if !s.mayAddCmdlineReader() {
				return nil, false, nil
			}
			idle = newCmdlineReader(s.fs, s.cfg.CmdlinePriority)
			s.cmdlines = append(s.cmdlines, idle)
		}
		mine = idle
		// Asked of the calling thread only when a read is sent (a system
		// call and an allocation), not in every pass.
		rt := s.cfg.CmdlinePriority > 0 && sys.ThreadIsFIFO()
		mine.req <- cmdlineRequest{pid: key.pid, tid: tid, max: s.cfg.CmdlineMax, realtime: rt}
		mine.out, mine.key, mine.sent, mine.pass = true, key, time.Now(), s.waitPass
	}
	if !mayWait || mine.pass != s.waitPass {
		// Out since an earlier pass, which waited for it already, or
		// not to be waited for: this one only looks.
		select {
		case rep := <-mine.reply:
			mine.out = false
			return rep.raw, true, rep.err
		default:
			return nil, false, nil
		}
	}
	wait := s.cfg.CmdlineWait
	if s.waitUntil.IsZero() {
		s.waitUntil = time.Now().Add(wait)
	} else {
		wait = max(time.Until(s.waitUntil), minCmdlineWait)
	}
	t := s.cmdlineTimer
	if t == nil {
		t = time.NewTimer(wait)
		s.cmdlineTimer = t
	} else {
		t.Reset(wait)
	}
	select {
	case rep := <-mine.reply:
		if !t.Stop() {
			select { // a tick already sent (GODEBUG=asynctimerchan=1)
			case <-t.C:
			default:
			}
		}
		mine.out = false
		return rep.raw, true, rep.err
	case <-t.C:
		return nil, false, nil
	}
}

// minCmdlineWait is the least a read waits for its reply once the pass's
// deadline has passed: a read that does not block takes microseconds.
const minCmdlineWait = 5 * time.Millisecond

// startWaits begins a pass: the reads it sends wait for their replies
// until the time until, all of them together, or when until is zero, until
// CmdlineWait after the first wait; once that is past, minCmdlineWait each.
// Reads sent by earlier passes are not waited for again. Replies that came
// since the last pass are filed first.
func (s *Scanner) startWaits(until time.Time) {
	s.waitUntil = until
	s.waitPass++
	s.collectCmdlines()
}

// mayAddCmdlineReader reports whether a reader may be added: fewer than
// maxCmdlineReaders are idle or out for less than cmdlineStuck, and fewer
// than hardCmdlineReaders exist.
func (s *Scanner) mayAddCmdlineReader() bool {
	if len(s.cmdlines) >= hardCmdlineReaders {
		return false
	}
	live := 0
	for _, c := range s.cmdlines {
		if !c.out || time.Since(c.sent) < cmdlineStuck {
			live++
		}
	}
	return live < maxCmdlineReaders
}

// collectCmdlines files every reply that has come, without waiting, in
// the cache entry of its process, when that entry still waits for it (the
// same process and image), and frees the reader.
func (s *Scanner) collectCmdlines() {
	for _, c := range s.cmdlines {
		if !c.out {
			continue
		}
		select {
		case rep := <-c.reply:
			c.out = false
			e, ok := s.cache[c.key.pid]
			if !ok || !e.cmdlinePending || e.start != c.key.start || e.layout != c.key.layout {
				continue
			}
			if rep.err != nil {
				continue // gone, most likely: the next pass finds out
			}
			s.line = procfs.AppendCmdline(s.line[:0], rep.raw)
			e.cmdline, e.cmdlinePending, e.exe = string(s.line), false, ""
			s.cache[c.key.pid] = e
		default:
		}
	}
}

// closeCmdlineReaders ends the reader goroutines: an idle one at once, one
// whose read is out when that read returns.
func (s *Scanner) closeCmdlineReaders() {
	for _, c := range s.cmdlines {
		close(c.req)
	}
	s.cmdlines = nil
}
