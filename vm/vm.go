// Package vm boots Debian's kernel under qemu to test oomguard on a kernel of
// the project's own: cgroup v2 with the memory controller, full root, swap.
package vm

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

//go:embed guest/init.sh
var guestInit []byte

// Root says where the guest's root filesystem lives.
type Root int

const (
	// RootRAM keeps everything in the initramfs. Its pages can never be
	// evicted, so the guest never thrashes on code or file pages.
	RootRAM Root = iota
	// RootDisk puts the root filesystem on an ext4 virtio-blk disk, so
	// program code and file cache are paged from it as on a real machine.
	RootDisk
)

// File is one file placed into the guest.
type File struct {
	// Path is the absolute path inside the guest.
	Path string
	// Data is the content; when nil, Source is read instead.
	Data []byte
	// Source is a host path whose content is copied.
	Source string
	// Mode holds the permission bits; 0 means 0755.
	Mode os.FileMode
}

// Config describes one boot. The zero value (with a Script) boots 2 vCPUs
// with 512 MiB, an initramfs root and no swap, and allows 3 minutes.
type Config struct {
	// CacheDir holds the unpacked packages and the cached base images.
	// "" means DefaultCacheDir().
	CacheDir string
	// CPUs is the number of vCPUs (default 2).
	CPUs int
	// MemoryMiB is the guest's RAM (default 512).
	MemoryMiB int
	// Script is the shell script the guest runs as /test/run.sh. What it
	// writes to stdout comes back in Result.Output; stderr goes to the
	// console. Its exit status is the verdict.
	Script string
	// Files are placed into the guest before the script runs.
	Files []File
	// Env is exported to the script.
	Env map[string]string
	// Root chooses an initramfs or a disk root.
	Root Root
	// DiskMiB is the size of the disk root (default 256).
	DiskMiB int
	// DiskBPS throttles the disk to this many bytes per second (0: none).
	DiskBPS int64
	// ScratchMiB, when positive, adds an empty raw virtio disk of this
	// size (no file system); the guest finds its device in $SCRATCH_DEV.
	ScratchMiB int
	// ScratchBPS throttles the scratch disk to this many bytes per second.
	ScratchBPS int64
	// ZramMiB, when positive, gives the guest swap on a zram device of
	// this size.
	ZramMiB int
	// Timeout is the deadline for the whole boot, after which qemu is
	// killed (default 3 minutes).
	Timeout time.Duration
	// BootTimeout bounds the boot itself: a guest that has not started its
	// test (the init's line before it, on the console) this long after
	// qemu started is killed and booted once more, with a deadline of its
	// own. Under TCG, a guest has hung before its init ran, console empty,
	// twice in about 60 boots (sessions 20 and 21); a boot takes seconds.
	// Default 2 minutes.
	BootTimeout time.Duration
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string
	// WorkDir receives console.log, result and the images; "" means a
	// fresh temporary directory that Run removes.
	WorkDir string
}

// Result is what came back from one boot.
type Result struct {
	// Output is what the script wrote to stdout, without the verdict line.
	Output []byte
	// Console is the guest's console log (kernel messages and stderr).
	Console []byte
	// ExitCode is the script's exit status as the guest reported it.
	ExitCode int
	// Elapsed is the wall time from starting qemu until it exited, the
	// last time.
	Elapsed time.Duration
	// Reboots counts boots given up on because the guest had not started
	// its test within Config.BootTimeout.
	Reboots int
}

// ErrNoVerdict is wrapped by Run's error when the guest ended (or was killed
// at the deadline) without reporting a verdict.
var ErrNoVerdict = errors.New("guest reported no verdict")

// ErrNoQemu is returned when qemu-system-x86_64 is not installed.
var ErrNoQemu = errors.New("qemu-system-x86_64 is not installed; run scripts/setup.sh (it runs vm/setup.sh)")

// DefaultCacheDir returns $OOMGUARD_VM_CACHE, else /var/tmp/oomguard-vm,
// the directory vm/setup.sh fills.
func DefaultCacheDir() string {
	if d := os.Getenv("OOMGUARD_VM_CACHE"); d != "" {
		return d
	}
	return "/var/tmp/oomguard-vm"
}

// Available reports why the VM test bed cannot run here, or nil.
func Available(cacheDir string) error {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return ErrNoQemu
	}
	if _, err := FindKernel(cacheDir); err != nil {
		return err
	}
	return nil
}

func (c *Config) defaults() {
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir()
	}
	if c.CPUs == 0 {
		c.CPUs = 2
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = 512
	}
	if c.DiskMiB == 0 {
		c.DiskMiB = 256
	}
	if c.Timeout == 0 {
		c.Timeout = 3 * time.Minute
	}
	if c.BootTimeout == 0 {
		c.BootTimeout = 2 * time.Minute
	}
}

// Run boots the guest, runs the script and returns the result. A non-zero
// exit status of the script is not an error (see Result.ExitCode); a guest
// that crashes, hangs past the deadline or never reports a verdict is, and
// the error then carries the end of the console log. qemu runs as a child of
// this process and is killed when ctx ends or the deadline passes.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, ErrNoQemu
	}
	k, err := FindKernel(cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	kernelPath, err := bootImage(cfg.CacheDir, k)
	if err != nil {
		return nil, err
	}
	base, err := baseCPIO(cfg.CacheDir, k)
	if err != nil {
		return nil, err
	}
	work := cfg.WorkDir
	if work == "" {
		work, err = os.MkdirTemp("", "oomguard-vm-")
		if err != nil {
			return nil, fmt.Errorf("vm: work dir: %w", err)
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, fmt.Errorf("vm: work dir: %w", err)
	}
	initrd := filepath.Join(work, "initrd")
	if err := writeInitrd(initrd, base, cfg); err != nil {
		return nil, err
	}
	var disk string
	if cfg.Root == RootDisk {
		disk = filepath.Join(work, "root.ext4")
	}
	var scratch string
	if cfg.ScratchMiB > 0 {
		scratch = filepath.Join(work, "scratch.img")
		if err := os.WriteFile(scratch, nil, 0o644); err != nil {
			return nil, fmt.Errorf("vm: scratch disk: %w", err)
		}
		if err := os.Truncate(scratch, int64(cfg.ScratchMiB)<<20); err != nil {
			return nil, fmt.Errorf("vm: scratch disk: %w", err)
		}
	}
	consolePath := filepath.Join(work, "console.log")
	resultPath := filepath.Join(work, "result")
	args := qemuArgs(cfg, kernelPath, initrd, disk, scratch, consolePath, resultPath)

	reboots := 0
	for {
		if disk != "" {
			// Afresh for each boot: one that hung may have written to it.
			if err := buildDisk(disk, cfg, k); err != nil {
				return nil, err
			}
		}
		os.Remove(consolePath)
		os.Remove(resultPath)
		res, hung, err := boot(ctx, cfg, args, consolePath, resultPath)
		res.Reboots = reboots
		if hung && reboots == 0 {
			reboots++
			continue
		}
		if err != nil && reboots > 0 {
			err = fmt.Errorf("%w\n(the first boot was given up on too: no test started within %v)", err, cfg.BootTimeout)
		}
		return res, err
	}
}

// boot runs qemu once. hung reports that it was killed because the guest
// had not started its test within cfg.BootTimeout.
func boot(ctx context.Context, cfg Config, args []string, consolePath, resultPath string) (res *Result, hung bool, err error) {
	runCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var bootHung atomic.Bool
	watch := time.AfterFunc(cfg.BootTimeout, func() {
		if c, _ := os.ReadFile(consolePath); !bytes.Contains(c, []byte(testStarted)) {
			bootHung.Store(true)
			cancel()
		}
	})
	defer watch.Stop()
	cmd := exec.CommandContext(runCtx, "qemu-system-x86_64", args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var qemuOut bytes.Buffer
	cmd.Stdout = &qemuOut
	cmd.Stderr = &qemuOut
	start := time.Now()
	runErr := cmd.Run()
	res = &Result{Elapsed: time.Since(start)}
	res.Console, _ = os.ReadFile(consolePath)
	out, _ := os.ReadFile(resultPath)
	code, body, ok := parseVerdict(out)
	res.Output = body
	res.ExitCode = code
	switch {
	case bootHung.Load() && !ok && ctx.Err() == nil:
		return res, true, fmt.Errorf("vm: guest killed after %v: it had not started its test within %v: %w\n%s",
			res.Elapsed.Round(time.Millisecond), cfg.BootTimeout, ErrNoVerdict, tail(res, qemuOut.Bytes()))
	case ctx.Err() != nil && !ok:
		return res, false, fmt.Errorf("vm: guest killed after %v: run cancelled (%v): %w\n%s", res.Elapsed.Round(time.Millisecond), ctx.Err(), ErrNoVerdict, tail(res, qemuOut.Bytes()))
	case runCtx.Err() != nil && !ok:
		return res, false, fmt.Errorf("vm: guest killed after the %v deadline: %w\n%s", cfg.Timeout, ErrNoVerdict, tail(res, qemuOut.Bytes()))
	case !ok:
		return res, false, fmt.Errorf("vm: qemu exited (%v) without a verdict: %w\n%s", runErr, ErrNoVerdict, tail(res, qemuOut.Bytes()))
	}
	return res, false, nil
}

// testStarted is what the guest init writes to the console right before
// it runs the test (guest/init.sh).
const testStarted = "vm-init: running the test"

// tail formats the end of the console log and qemu's own output for an error.
func tail(res *Result, qemuOut []byte) string {
	c := res.Console
	const max = 16 << 10
	if len(c) > max {
		c = c[len(c)-max:]
	}
	s := "--- guest console (end) ---\n" + string(c)
	if !bytes.Contains(res.Console, []byte(testStarted)) {
		s = "the guest never started its test: no \"" + testStarted + "\" on its console (it hung or crashed while booting)\n" + s
	}
	if len(res.Output) > 0 {
		s += "\n--- result port ---\n" + string(res.Output)
	}
	if len(qemuOut) > 0 {
		s += "\n--- qemu ---\n" + string(qemuOut)
	}
	return s
}

// parseVerdict splits the result port's content into the script's output
// and the verdict the guest init appended.
func parseVerdict(b []byte) (code int, body []byte, ok bool) {
	i := bytes.LastIndex(b, []byte("\n@@vm-verdict rc="))
	if i < 0 {
		return -1, b, false
	}
	rest := string(b[i+len("\n@@vm-verdict rc="):])
	f := strings.Fields(rest)
	if len(f) == 0 {
		return -1, b[:i], false
	}
	code, err := strconv.Atoi(f[0])
	if err != nil {
		return -1, b[:i], false
	}
	return code, b[:i], true
}

func qemuArgs(cfg Config, kernel, initrd, disk, scratch, console, result string) []string {
	cmdline := []string{
		"console=ttyS0", "panic=-1", "oops=panic", "loglevel=4",
		"mitigations=off", "nokaslr", "tsc=reliable", "no_timer_check",
		"random.trust_cpu=on", "i8042.noaux", "i8042.nokbd", "i8042.nopnp",
		"8250.nr_uarts=2", "rdinit=/init",
	}
	cmdline = append(cmdline, cfg.KernelArgs...)
	args := []string{
		"-accel", "tcg,thread=multi",
		"-M", "pc", "-cpu", "max",
		"-smp", strconv.Itoa(cfg.CPUs),
		"-m", strconv.Itoa(cfg.MemoryMiB),
		"-nodefaults", "-display", "none", "-vga", "none",
		"-no-reboot",
		"-kernel", kernel,
		"-initrd", initrd,
		"-append", strings.Join(cmdline, " "),
		"-serial", "file:" + console,
		"-serial", "file:" + result,
	}
	if disk != "" {
		drive := "if=none,id=root,format=raw,cache=unsafe,file=" + disk
		if cfg.DiskBPS > 0 {
			drive += ",throttling.bps-total=" + strconv.FormatInt(cfg.DiskBPS, 10)
		}
		args = append(args, "-drive", drive, "-device", "virtio-blk-pci,drive=root")
	}
	if scratch != "" {
		drive := "if=none,id=scratch,format=raw,cache=none,aio=threads,file=" + scratch
		if cfg.ScratchBPS > 0 {
			drive += ",throttling.bps-total=" + strconv.FormatInt(cfg.ScratchBPS, 10)
		}
		args = append(args, "-drive", drive, "-device", "virtio-blk-pci,drive=scratch")
	}
	return args
}
