package action

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomguard/oomguard/internal/sys"
	"github.com/oomguard/oomguard/internal/testbed"
)

// Seed 004: reaping must never corrupt data. Writers append checksummed
// records to files with write(2) straight from a large anonymous buffer, in
// big chunks; they are killed mid-write with process_mrelease on. Each file
// must then be whole records followed at most by a strict prefix of the next
// record, never a zero-filled or foreign block.

const (
	recSize   = 4000 // as REC in writerSource; not a multiple of the page size, so cuts show
	recHeader = 32
	recWords  = (recSize - recHeader) / 8
)

// writerSource: "writer MODE DIR ID". MODE single: one process, one file.
// threads: three threads of one process, one file each. clonevm: a process
// and a clone(CLONE_VM) sharer (no CLONE_THREAD), one file each. Every unit
// owns a slice of one 32 MiB anonymous mapping, lays records 0..N-1 out in
// it as it goes (each chunk just before its first write), and appends them
// to its file in ~1 MB write(2) calls; after the last record it truncates
// the file and starts over, to bound disk use. Record: u64 magic, u32 id,
// u32 size, u64 seq, u64 checksum (h = (h ^ word) * FNV prime over the
// payload words), then payload words splitmix64(id<<48 | seq<<12 | i).
const writerSource = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define REC 4000
#define HDR 32
#define WORDS ((REC - HDR) / 8)
#define MAGIC 0x31434552474f4f4dULL
#define CHUNK 256
#define BUF (32UL << 20)

static uint64_t splitmix(uint64_t x) {
	uint64_t z = x + 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

struct unit { char *mem; size_t n; int fd; uint32_t id; };

static void fill(struct unit *u, size_t from, size_t to) {
	for (size_t s = from; s < to; s++) {
		unsigned char *r = (unsigned char *)u->mem + s * REC;
		uint64_t *w = (uint64_t *)(r + HDR);
		uint64_t h = 0xcbf29ce484222325ULL;
		for (int i = 0; i < WORDS; i++) {
			w[i] = splitmix(((uint64_t)u->id << 48) | ((uint64_t)s << 12) | (uint64_t)i);
			h = (h ^ w[i]) * 0x100000001b3ULL;
		}
		uint64_t magic = MAGIC, seq = s;
		uint32_t id = u->id, size = REC;
		memcpy(r, &magic, 8); memcpy(r + 8, &id, 4); memcpy(r + 12, &size, 4);
		memcpy(r + 16, &seq, 8); memcpy(r + 24, &h, 8);
	}
}

static void *run(void *arg) {
	struct unit *u = arg;
	size_t filled = 0;
	for (;;) {
		size_t s = 0;
		while (s < u->n) {
			size_t n = CHUNK;
			if (n > u->n - s) n = u->n - s;
			if (filled < s + n) { fill(u, filled, s + n); filled = s + n; }
			char *p = u->mem + s * REC;
			size_t len = n * REC;
			while (len > 0) {
				ssize_t w = syscall(SYS_write, u->fd, p, len);
				if (w < 0) _exit(3);
				p += w; len -= w;
			}
			s += n;
		}
		if (ftruncate(u->fd, 0) != 0 || lseek(u->fd, 0, SEEK_SET) != 0) _exit(4);
	}
	return 0;
}

static int run_clone(void *arg) { run(arg); return 0; }

int main(int argc, char **argv) {
	if (argc != 4) { fprintf(stderr, "usage: writer single|threads|clonevm DIR ID\n"); return 2; }
	int units = strcmp(argv[1], "threads") == 0 ? 3 : strcmp(argv[1], "clonevm") == 0 ? 2 : 1;
	char *mem = mmap(0, BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) { perror("mmap"); return 1; }
	/* Fault the buffer in at once: single faults are slow on these VMs. */
	madvise(mem, BUF, 23 /* MADV_POPULATE_WRITE */);
	static struct unit us[3];
	size_t per = BUF / units / REC;
	for (int i = 0; i < units; i++) {
		char path[4096];
		us[i].id = atoi(argv[3]) * 16 + i;
		snprintf(path, sizeof path, "%s/w%u.dat", argv[2], us[i].id);
		us[i].fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (us[i].fd < 0) { perror(path); return 1; }
		us[i].mem = mem + (size_t)i * per * REC;
		us[i].n = per;
	}
	for (int i = 1; i < units; i++) {
		if (argv[1][0] == 't') {
			pthread_t t;
			if (pthread_create(&t, 0, run, &us[i]) != 0) return 1;
		} else {
			size_t ss = 1 << 20;
			char *stack = malloc(ss);
			if (clone(run_clone, stack + ss, CLONE_VM | SIGCHLD, &us[i]) < 0) { perror("clone"); return 1; }
		}
	}
	run(&us[0]);
	return 0;
}
`

func splitmix(x uint64) uint64 {
	z := x + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// record returns the bytes record seq of writer id must have.
func record(buf []byte, id uint32, seq uint64) []byte {
	buf = buf[:recSize]
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < recWords; i++ {
		w := splitmix(uint64(id)<<48 | seq<<12 | uint64(i))
		binary.LittleEndian.PutUint64(buf[recHeader+8*i:], w)
		h = (h ^ w) * 0x100000001b3
	}
	binary.LittleEndian.PutUint64(buf[0:], 0x31434552474f4f4d)
	binary.LittleEndian.PutUint32(buf[8:], id)
	binary.LittleEndian.PutUint32(buf[12:], recSize)
	binary.LittleEndian.PutUint64(buf[16:], seq)
	binary.LittleEndian.PutUint64(buf[24:], h)
	return buf
}

// verifyRecords checks that b is records 0..n-1 of writer id followed by at
// most a strict prefix of record n, and returns n and the torn tail's length.
func verifyRecords(b []byte, id uint32) (whole int, torn int, err error) {
	want := make([]byte, recSize)
	for seq := 0; len(b) > 0; seq++ {
		rec := record(want, id, uint64(seq))
		n := min(len(b), recSize)
		if !bytes.Equal(b[:n], rec[:n]) {
			i := 0
			for i < n && b[i] == rec[i] {
				i++
			}
			what := "foreign bytes"
			if end := min(n, i+512); bytes.Count(b[i:end], []byte{0}) == end-i {
				what = "a zero-filled block"
			}
			return seq, 0, fmt.Errorf("record %d (file offset %d): %s at byte %d of the record", seq, seq*recSize+i, what, i)
		}
		if n < recSize {
			return seq, n, nil
		}
		b = b[recSize:]
		whole = seq + 1
	}
	return whole, 0, nil
}

// streams caches, per writer id, the bytes its file must start with.
type streams map[uint32][]byte

// verify is verifyRecords with a fast path: compare b with the cached
// expected stream in one go.
func (c streams) verify(b []byte, id uint32) (whole, torn int, err error) {
	exp := c[id]
	if len(exp) < len(b) {
		buf := make([]byte, recSize)
		for seq := len(exp) / recSize; len(exp) < len(b); seq++ {
			exp = append(exp, record(buf, id, uint64(seq))...)
		}
		c[id] = exp
	}
	if bytes.Equal(b, exp[:len(b)]) {
		return len(b) / recSize, len(b) % recSize, nil
	}
	return verifyRecords(b, id)
}

func TestVerifyRecords(t *testing.T) {
	var f []byte
	buf := make([]byte, recSize)
	for seq := 0; seq < 3; seq++ {
		f = append(f, record(buf, 7, uint64(seq))...)
	}
	f = append(f, record(buf, 7, 3)[:1234]...)
	if n, torn, err := verifyRecords(f, 7); err != nil || n != 3 || torn != 1234 {
		t.Fatalf("valid file: %d whole, %d torn, %v", n, torn, err)
	}
	zeroed := bytes.Clone(f)
	clear(zeroed[recSize+100 : recSize+4096])
	if _, _, err := verifyRecords(zeroed, 7); err == nil || !strings.Contains(err.Error(), "zero-filled") {
		t.Fatalf("zero-filled block not reported: %v", err)
	}
	c := streams{}
	if n, torn, err := c.verify(f, 7); err != nil || n != 3 || torn != 1234 {
		t.Fatalf("valid file, cached: %d whole, %d torn, %v", n, torn, err)
	}
	if _, _, err := c.verify(zeroed, 7); err == nil {
		t.Fatal("cached: zero-filled block accepted")
	}
	if _, _, err := verifyRecords(f, 8); err == nil {
		t.Fatal("another writer's records accepted")
	}
	skipped := append(bytes.Clone(f[:recSize]), f[2*recSize:]...)
	if _, _, err := verifyRecords(skipped, 7); err == nil {
		t.Fatal("a missing record accepted")
	}
}

func TestWriterIntegrityUnderKillAndReap(t *testing.T) {
	const cycles = 50
	g := testbed.New(t, testbed.Options{MemoryLimit: 1 << 30, PidsMax: 50})
	writer := testbed.CompileC(t, writerSource, "-pthread")
	var st unix.Statfs_t
	base := t.TempDir()
	if err := unix.Statfs(base, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		t.Logf("note: %s is tmpfs; set TMPDIR to a disk filesystem to test one", base)
	}
	k := &Killer{Mrelease: true, Deadline: 10 * time.Second}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	var totalTorn, totalFiles, totalRecords int
	var tStart, tKill, tVerify, tRemove time.Duration
	expected := streams{}
	stuck := 0
	begin := time.Now()
	for c := 0; c < cycles; c++ {
		dir := filepath.Join(base, strconv.Itoa(c))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Every cycle has CLONE_VM sharers (the case seed 004 is about),
		// and alternately a multi-threaded or a single-threaded writer.
		modes := []string{"clonevm", "threads"}
		wantFiles := 2 + 3
		if c%2 == 1 {
			modes[1], wantFiles = "single", 2+1
		}
		var cmds []*exec.Cmd
		for i, m := range modes {
			cmd := g.Command(writer, m, dir, strconv.Itoa(i))
			// A file, not a pipe: Wait then never waits on a copier.
			f, err := os.Create(filepath.Join(dir, m+".stderr"))
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = f
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			cmds = append(cmds, cmd)
		}
		// Wait until every unit has written at least one record (files
		// are truncated when they wrap, so remember each one), then a
		// little more. A loaded disk can stall writers in dirty-page
		// throttling; then kill them wherever they are.
		t0 := time.Now()
		seen := map[string]bool{}
		ok := waitFor(30*time.Second, func() bool {
			ents, _ := filepath.Glob(filepath.Join(dir, "*.dat"))
			for _, e := range ents {
				if fi, err := os.Stat(e); err == nil && fi.Size() >= recSize {
					seen[e] = true
				}
			}
			return len(seen) == wantFiles
		})
		if !ok {
			t.Logf("cycle %d: only %d of %d writer units wrote a record within 30s; killing them anyway", c, len(seen), wantFiles)
		}
		tStart += time.Since(t0)
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		t0 = time.Now()
		victims := mmGroups(t, g.Procs())
		if len(victims) != len(modes) {
			t.Fatalf("cycle %d: %d mm groups %v, want %d", c, len(victims), victims, len(modes))
		}
		for _, v := range victims {
			res := k.Kill(context.Background(), v)
			if res.Err != nil {
				t.Fatalf("cycle %d: Kill %v: %v", c, v.Members, res.Err)
			}
			if len(res.StillAlive) != 0 {
				// A victim in uninterruptible sleep (for example truncate
				// waiting for writeback on a loaded disk) cannot die until
				// it wakes: wait longer, as the daemon's retry would.
				for _, pid := range res.StillAlive {
					wchan, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/wchan")
					stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
					t.Logf("cycle %d: pid %d still alive %v after SIGKILL, wchan %q, stat %q", c, pid, k.Deadline, wchan, stat)
				}
				stuck++
				var again Victim
				for _, m := range v.Members {
					if slices.Contains(res.StillAlive, m.PID) {
						again.Members = append(again.Members, m)
					}
				}
				slow := *k
				slow.Deadline = 2 * time.Minute
				if res := slow.Kill(context.Background(), again); len(res.StillAlive) != 0 {
					t.Fatalf("cycle %d: %v still alive 2 minutes after SIGKILL", c, res.StillAlive)
				}
			}
		}
		if !g.WaitProcs(10*time.Second, func(p []int) bool { return len(p) == 0 }) {
			t.Fatalf("cycle %d: writers left: %v", c, g.Procs())
		}
		for i, cmd := range cmds {
			// The reaper reports the workload's status: killed by SIGKILL.
			if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "137") {
				msg, _ := os.ReadFile(filepath.Join(dir, modes[i]+".stderr"))
				t.Fatalf("cycle %d: writer %s ended with %v, want status 137 (SIGKILL); stderr %q", c, modes[i], err, msg)
			}
		}
		tKill += time.Since(t0)
		t0 = time.Now()
		ents, _ := filepath.Glob(filepath.Join(dir, "*.dat"))
		for _, e := range ents {
			id, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(e), "w"), ".dat"), 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(e)
			if err != nil {
				t.Fatal(err)
			}
			n, torn, err := expected.verify(b, uint32(id))
			if err != nil {
				t.Fatalf("cycle %d: %s (%d bytes) is corrupt after kill and reap: %v", c, e, len(b), err)
			}
			totalFiles++
			totalRecords += n
			if torn > 0 {
				totalTorn++
			}
		}
		tVerify += time.Since(t0)
		t0 = time.Now()
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		tRemove += time.Since(t0)
	}
	t.Logf("time spent: writers starting %v, killing %v, verifying %v, removing %v", tStart, tKill, tVerify, tRemove)
	t.Logf("%d cycles in %v: %d files, %d whole records, %d files ending in a torn record, %d victims that outlived the first deadline; no corruption",
		cycles, time.Since(begin).Round(time.Millisecond), totalFiles, totalRecords, totalTorn, stuck)
	if totalTorn == 0 {
		t.Fatalf("no file ended in a torn record: the writers were never killed mid-write, so the test proved nothing")
	}
}

// mmGroups groups pids into victims by shared address space, as the daemon
// does, each member pinned to its start time.
func mmGroups(t *testing.T, pids []int) []Victim {
	t.Helper()
	var out []Victim
next:
	for _, pid := range pids {
		m, err := MemberOf("", pid)
		if err != nil {
			t.Fatal(err)
		}
		for i := range out {
			if same, err := sys.SameMM(out[i].Members[0].PID, pid); err == nil && same {
				out[i].Members = append(out[i].Members, m)
				continue next
			}
		}
		out = append(out, Victim{Members: []Member{m}, Reason: "seed 004 writer"})
	}
	return out
}

func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}
