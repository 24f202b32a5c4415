// Command vmtool is the static multi-call workload and probe program of the
// VM test bed: memory hogs, kernel-memory loads, PSI triggers and a latency
// probe, run inside the guest.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// init keeps main on the main thread, so that a blocking syscall of a
// subcommand (dwrite's D state) shows in /proc/PID/stat, which reports
// the thread-group leader.
func init() { runtime.LockOSThread() }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vmtool hog|psi|dentries|pipes|pagetables|threads|probe|json ...")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"hog":        hog,
		"psi":        psi,
		"dentries":   dentries,
		"pipes":      pipes,
		"pagetables": pagetables,
		"threads":    threads,
		"probe":      probe,
		"json":       jsonGet,
		"reader":     reader,
		"dwrite":     dwrite,
		"bench":      bench,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "vmtool: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "vmtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

const page = 4096

// hog maps anonymous memory and touches it at a rate, then holds it (or
// keeps re-touching it with -loop). -fill writes partly random pages (about
// 2.5:1 for zram, like real data) instead of one byte per page. -stop-avail stops
// growing once MemAvailable falls to that percentage of MemTotal and
// creates -marker.
func hog(args []string) error {
	fs := flag.NewFlagSet("hog", flag.ExitOnError)
	mb := fs.Int("mb", 64, "MiB to allocate")
	rate := fs.Int("rate", 0, "MiB per second (0: as fast as possible)")
	loop := fs.Bool("loop", false, "keep touching the memory after allocating it")
	fill := fs.Bool("fill", false, "fill pages with half-random data")
	stopAvail := fs.Int("stop-avail", 0, "stop growing at this MemAvailable percentage")
	marker := fs.String("marker", "", "file created when the hog stops growing")
	touchEvery := fs.Duration("touch-every", 0, "re-touch the memory at this period (an active bystander)")
	fs.Parse(args)
	size := *mb << 20
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		return fmt.Errorf("mmap %d MiB: %w", *mb, err)
	}
	var total int64
	if *stopAvail > 0 {
		total, _ = meminfo("MemTotal:")
	}
	var rnd []byte
	if *fill {
		// 1 MiB of noise; each page gets 1536 bytes of it at a moving
		// offset, so pages differ and compress about 2.5:1.
		rnd = make([]byte, 1<<20+page)
		x := uint64(os.Getpid())*2654435761 + 1
		for i := 0; i+8 <= len(rnd); i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			*(*uint64)(unsafe.Pointer(&rnd[i])) = x
		}
	}
	start := time.Now()
	end := size
	for off := 0; off < size; off += page {
		if *fill {
			o := (off/page*1544 + off>>20) % (1 << 20)
			copy(mem[off:off+1536], rnd[o:o+1536])
		} else {
			mem[off] = byte(off>>12) | 1
		}
		if off%(1<<20) == 0 {
			if *rate > 0 {
				want := time.Duration(float64(off) / float64(*rate<<20) * float64(time.Second))
				if d := want - time.Since(start); d > 0 {
					time.Sleep(d)
				}
			}
			if *stopAvail > 0 && off%(4<<20) == 0 {
				if avail, err := meminfo("MemAvailable:"); err == nil && avail*100 <= total*int64(*stopAvail) {
					end = off + page
					break
				}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "hog %d: holding %d MiB after %v\n", os.Getpid(), end>>20, time.Since(start).Round(time.Millisecond))
	if *marker != "" {
		os.WriteFile(*marker, nil, 0o644)
	}
	for {
		switch {
		case *loop:
		case *touchEvery > 0:
			time.Sleep(*touchEvery)
		default:
			time.Sleep(time.Hour)
			continue
		}
		for off := 0; off < end; off += page {
			mem[off]++
		}
	}
}

// meminfo returns a /proc/meminfo field in kB.
func meminfo(key string) (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	i := strings.Index(string(b), key)
	if i < 0 {
		return 0, fmt.Errorf("no %s in /proc/meminfo", key)
	}
	f := strings.Fields(string(b[i+len(key):]))
	if len(f) == 0 {
		return 0, fmt.Errorf("bad %s in /proc/meminfo", key)
	}
	return strconv.ParseInt(f[0], 10, 64)
}

// psi writes a trigger to a pressure file and waits for its first event,
// printing the delay. It exits 1 when no event comes before -timeout.
func psi(args []string) error {
	fs := flag.NewFlagSet("psi", flag.ExitOnError)
	file := fs.String("file", "/proc/pressure/memory", "pressure file")
	trig := fs.String("trigger", "some 100000 500000", "trigger: some|full STALL_US WINDOW_US")
	timeout := fs.Duration("timeout", 20*time.Second, "how long to wait")
	ready := fs.String("ready", "", "file to create once the trigger is armed")
	fs.Parse(args)
	fd, err := syscall.Open(*file, syscall.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", *file, err)
	}
	if _, err := syscall.Write(fd, append([]byte(*trig), 0)); err != nil {
		return fmt.Errorf("write trigger %q to %s: %w", *trig, *file, err)
	}
	if *ready != "" {
		os.WriteFile(*ready, nil, 0o644)
	}
	start := time.Now()
	fmt.Printf("psi: armed %q on %s\n", *trig, *file)
	for time.Since(start) < *timeout {
		pfd := []pollFd{{fd: int32(fd), events: pollPri}}
		n, err := poll(pfd, 200)
		if err != nil && err != syscall.EINTR {
			return fmt.Errorf("poll %s: %w", *file, err)
		}
		if n > 0 {
			if pfd[0].revents&pollErr != 0 {
				return fmt.Errorf("poll %s: POLLERR (file gone?)", *file)
			}
			if pfd[0].revents&pollPri != 0 {
				fmt.Printf("psi: event after %d ms\n", time.Since(start).Milliseconds())
				return nil
			}
		}
	}
	return fmt.Errorf("no event on %s within %v", *file, *timeout)
}

// dentries creates n empty files in a new directory under dir (dentries
// and inodes, both charged to the memory cgroup), or with -negative looks
// up n names that do not exist (negative dentries, kept only by file
// systems that cache them).
func dentries(args []string) error {
	fs := flag.NewFlagSet("dentries", flag.ExitOnError)
	n := fs.Int("n", 20000, "files or lookups")
	dir := fs.String("dir", "/tmp", "parent directory")
	negative := fs.Bool("negative", false, "look up missing names instead of creating files")
	hold := fs.Bool("hold", false, "sleep afterwards")
	fs.Parse(args)
	d, err := os.MkdirTemp(*dir, "dentries-")
	if err != nil {
		return err
	}
	var st syscall.Stat_t
	for i := 0; i < *n; i++ {
		name := d + "/dentry-" + strconv.Itoa(i) + "-with-a-name-long-enough-to-need-external-storage"
		if *negative {
			syscall.Stat(name, &st)
			continue
		}
		fd, err := syscall.Open(name, syscall.O_CREAT|syscall.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		syscall.Close(fd)
	}
	fmt.Printf("dentries: %d names in %s\n", *n, d)
	if *hold {
		time.Sleep(time.Hour)
	}
	return nil
}

// pipes creates n pipes, fills each, and holds them.
func pipes(args []string) error {
	fs := flag.NewFlagSet("pipes", flag.ExitOnError)
	n := fs.Int("n", 200, "pipes")
	fs.Parse(args)
	lim := syscall.Rlimit{Cur: uint64(2**n + 64), Max: uint64(2**n + 64)}
	if lim.Cur > 1024 {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", lim.Cur, err)
		}
	}
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i)
	}
	var fds [2]int
	for i := 0; i < *n; i++ {
		if err := syscall.Pipe2(fds[:], syscall.O_NONBLOCK); err != nil {
			fmt.Printf("pipes: pipe %d: %v; holding\n", i, err)
			break
		}
		for {
			if _, err := syscall.Write(fds[1], buf); err != nil {
				break
			}
		}
	}
	fmt.Printf("pipes: %d full pipes\n", *n)
	time.Sleep(time.Hour)
	return nil
}

// pagetables touches one page every 2 MiB over a large sparse mapping, so
// that every touched page needs its own page-table page.
func pagetables(args []string) error {
	fs := flag.NewFlagSet("pagetables", flag.ExitOnError)
	gb := fs.Int("gb", 8, "GiB of address space to span")
	fs.Parse(args)
	size := *gb << 30
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		return fmt.Errorf("mmap %d GiB: %w", *gb, err)
	}
	for off := 0; off < size; off += 2 << 20 {
		mem[off] = 1
	}
	fmt.Printf("pagetables: touched %d pages\n", size/(2<<20))
	time.Sleep(time.Hour)
	return nil
}

// threads starts n OS threads that block.
func threads(args []string) error {
	fs := flag.NewFlagSet("threads", flag.ExitOnError)
	n := fs.Int("n", 500, "threads")
	fs.Parse(args)
	debugSetMaxThreads(*n + 100)
	started := make(chan struct{})
	for i := 0; i < *n; i++ {
		go func() {
			runtime.LockOSThread()
			started <- struct{}{}
			var ts syscall.Timespec
			ts.Sec = 3600
			for {
				syscall.Nanosleep(&ts, nil)
			}
		}()
		<-started
	}
	fmt.Printf("threads: %d threads\n", *n)
	time.Sleep(time.Hour)
	return nil
}

// probe reads a file and runs a program every interval, recording each
// iteration's latency; it prints the longest stall and a line per sample
// with -v. It runs until -duration passes or it is killed (SIGTERM prints
// the summary).
func probe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	interval := fs.Duration("interval", 100*time.Millisecond, "period")
	duration := fs.Duration("duration", 30*time.Second, "how long to run")
	file := fs.String("file", "/etc/vm/env", "file to read")
	prog := fs.String("exec", "/bin/true", "program to run")
	out := fs.String("out", "", "file to append samples to (unix_ms latency_ms)")
	fs.Parse(args)
	var w io.Writer = io.Discard
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	var worst time.Duration
	end := time.Now().Add(*duration)
	next := time.Now()
	for time.Now().Before(end) {
		t0 := time.Now()
		os.ReadFile(*file)
		exec.Command(*prog).Run()
		lat := time.Since(t0)
		// A late wake-up is a stall too.
		if late := t0.Sub(next); late > 0 {
			lat += late
		}
		if lat > worst {
			worst = lat
		}
		fmt.Fprintf(w, "%d %.1f\n", t0.UnixMilli(), float64(lat.Microseconds())/1000)
		next = next.Add(*interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now()
		}
	}
	fmt.Printf("probe: worst %d ms\n", worst.Milliseconds())
	return nil
}

// jsonGet validates JSON on stdin and prints the value at a dotted path
// (numbers index arrays); "-count" prints an array's or object's length.
func jsonGet(args []string) error {
	fs := flag.NewFlagSet("json", flag.ExitOnError)
	count := fs.Bool("count", false, "print the length instead")
	fs.Parse(args)
	var v any
	dec := json.NewDecoder(os.Stdin)
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("stdin is not JSON: %w", err)
	}
	if fs.NArg() > 0 && fs.Arg(0) != "." {
		for _, k := range strings.Split(fs.Arg(0), ".") {
			switch x := v.(type) {
			case map[string]any:
				var ok bool
				if v, ok = x[k]; !ok {
					return fmt.Errorf("no key %q", k)
				}
			case []any:
				i, err := strconv.Atoi(k)
				if err != nil || i < 0 || i >= len(x) {
					return fmt.Errorf("bad index %q", k)
				}
				v = x[i]
			default:
				return fmt.Errorf("cannot index %T with %q", v, k)
			}
		}
	}
	if *count {
		switch x := v.(type) {
		case map[string]any:
			fmt.Println(len(x))
		case []any:
			fmt.Println(len(x))
		default:
			return fmt.Errorf("not a collection: %T", v)
		}
		return nil
	}
	b, _ := json.Marshal(v)
	if s, ok := v.(string); ok {
		fmt.Println(s)
		return nil
	}
	fmt.Println(string(b))
	return nil
}

// dwrite writes -kb KiB to a block device with O_DIRECT|O_SYNC in 1 MiB
// requests: on a throttled disk the writer sits in D state.
func dwrite(args []string) error {
	fs := flag.NewFlagSet("dwrite", flag.ExitOnError)
	dev := fs.String("dev", "/dev/vdb", "block device")
	kb := fs.Int("kb", 256, "KiB to write")
	fs.Parse(args)
	fd, err := syscall.Open(*dev, syscall.O_WRONLY|syscall.O_DIRECT|syscall.O_SYNC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", *dev, err)
	}
	buf, err := syscall.Mmap(-1, 0, 1<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	for off := 0; off < *kb<<10; off += 1 << 20 {
		if _, err := syscall.Pwrite(fd, buf, int64(off)); err != nil {
			return fmt.Errorf("write %s at %d: %w", *dev, off, err)
		}
	}
	return nil
}
