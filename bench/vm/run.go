package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oomguard/oomguard/vm"
)

// Config is one guest configuration of the matrix.
type Config struct {
	Name string
	Root vm.Root
	Zram int
}

var configs = []Config{
	{"ram-noswap", vm.RootRAM, 0},
	{"ram-zram", vm.RootRAM, 256},
	{"disk-noswap", vm.RootDisk, 0},
	{"disk-zram", vm.RootDisk, 256},
}

var scenarios = []string{"fasthog", "slowleak", "thrash", "clonevm", "forkbomb", "kmembomb"}

var killers = []string{"kernel", "earlyoom", "oomd", "oomguard"}

// oomguardArgs are extra arguments for the guest's `oomguard daemon`
// (-oomguard-args), and oomguardConfig a config file for it
// (-oomguard-config), for trying a variant; empty in the committed data.
var oomguardArgs, oomguardConfig string

// logTail is how many of the killer log's last lines each run keeps
// (-log-tail): a variant's debug log needs more than the default.
var logTail = 40

// Run is one boot's raw data: the guest's BenchResult plus what ran it.
type Run struct {
	Config   string `json:"config"`
	Scenario string `json:"scenario"`
	Killer   string `json:"killer"`
	// OomguardArgs are the extra daemon arguments of a variant's run.
	OomguardArgs string `json:"oomguard_args,omitempty"`
	Rep          int    `json:"rep"`
	Kernel       string `json:"kernel"`
	Qemu         string `json:"qemu"`
	CPU          string `json:"host_cpu"`
	Date         string `json:"date"`
	BootMs       int64  `json:"boot_total_ms"`
	// HostLoad is the host's 1-minute load average when the run started.
	HostLoad float64         `json:"host_load,omitempty"`
	Result   json.RawMessage `json:"result"`
	Skipped  string          `json:"skipped,omitempty"`
	Error    string          `json:"error,omitempty"`
	Log      string          `json:"killer_log,omitempty"`
}

// guest holds the host-side artefacts every boot needs.
type guest struct {
	files     []vm.File
	oomguard  bool   // the binary has a daemon
	oomd      string // why oomd cannot run ("" when it can)
	cacheFile string // host path of the thrash scenario's file
	kernel    string
	qemu      string
	cpu       string
}

const script = `
. /etc/vm/env
mkdir -p /run
echo /tmp/killer.log >>/tmp/vm-logs
kpid=0
case $KILLER in
kernel) ;;
earlyoom) /usr/bin/earlyoom -r 3600 >/tmp/killer.log 2>&1 & kpid=$! ;;
oomd) /usr/bin/oomd --interval 1 --config /etc/oomd/oomd.json --cgroup-fs /sys/fs/cgroup >/tmp/killer.log 2>&1 & kpid=$! ;;
oomguard) /test/bin/oomguard daemon $OOMGUARD_ARGS >/tmp/killer.log 2>&1 & kpid=$! ;;
esac
# The harness itself is no killer's to take (the kernel's took this shell
# in a kernel-memory bomb run, and the run had no result); the killer,
# started above, keeps its own setting.
echo -1000 >/proc/$$/oom_score_adj
sleep 1
/test/bin/vmtool bench -scenario $SCENARIO -killer $KILLER -killer-pid $kpid -window $WINDOW -max $MAXRUN -cache-file /test/data/cache.bin
echo "@@killer-log"
tail -$LOG_TAIL /tmp/killer.log 2>/dev/null
[ $kpid = 0 ] || kill $kpid
`

func prepare(repo, work string) (*guest, error) {
	g := &guest{}
	build := func(pkg, out string) error {
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
		return nil
	}
	vmtool := filepath.Join(work, "vmtool")
	if err := build("./vm/guest/vmtool", vmtool); err != nil {
		return nil, err
	}
	clonevm := filepath.Join(work, "clonevm")
	if b, err := exec.Command("gcc", "-static", "-O2", "-o", clonevm, filepath.Join(repo, "vm/guest/clonevm.c")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("gcc clonevm: %w\n%s", err, b)
	}
	g.files = append(g.files,
		vm.File{Path: "/test/bin/vmtool", Source: vmtool},
		vm.File{Path: "/test/bin/clonevm", Source: clonevm})
	og := os.Getenv("OOMGUARD_VM_BINARY")
	if og == "" {
		og = filepath.Join(work, "oomguard")
		if err := build("./cmd/oomguard", og); err != nil {
			fmt.Fprintf(os.Stderr, "bench: oomguard does not build; its runs are skipped: %v\n", err)
			og = ""
		}
	}
	if oomguardConfig != "" {
		g.files = append(g.files, vm.File{Path: "/etc/oomguard/oomguard.toml", Source: oomguardConfig, Mode: 0o644})
	}
	if og != "" {
		out, _ := exec.Command(og, "daemon", "-h").CombinedOutput()
		g.oomguard = !bytes.Contains(out, []byte("not implemented"))
		g.files = append(g.files, vm.File{Path: "/test/bin/oomguard", Source: og})
	}
	// earlyoom from the Debian package, with its shared libraries.
	cache := vm.DefaultCacheDir()
	eo := filepath.Join(cache, "debs", "earlyoom", "usr", "bin", "earlyoom")
	if _, err := os.Stat(eo); err == nil {
		g.files = append(g.files, vm.File{Path: "/usr/bin/earlyoom", Source: eo})
		libs, err := sharedLibs(eo)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			real, _ := filepath.EvalSymlinks(l)
			g.files = append(g.files, vm.File{Path: l, Source: real})
		}
	}
	g.oomd = addOomd(g, repo, cache)
	// The kernel first: without it (vm/setup.sh not run) there is no cache
	// directory either, and this error says what to do.
	k, err := vm.FindKernel(cache)
	if err != nil {
		return nil, err
	}
	// The thrash scenario's actively read file: 130 MiB, incompressible.
	data := filepath.Join(cache, "bench-cache-130M.bin")
	if _, err := os.Stat(data); err != nil {
		b := make([]byte, 130<<20)
		r := rand.NewChaCha8([32]byte{7})
		r.Read(b)
		if err := os.WriteFile(data, b, 0o644); err != nil {
			return nil, fmt.Errorf("write the thrash scenario's file: %w", err)
		}
	}
	g.cacheFile = data
	g.kernel = "Debian " + k.Version
	if out, err := exec.Command("qemu-system-x86_64", "--version").Output(); err == nil {
		g.qemu = strings.SplitN(string(out), "\n", 2)[0]
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				g.cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return g, nil
}

// addOomd adds Debian's oomd, the libraries it needs and the benchmark's
// oomd.json to the guest's files. It returns why oomd cannot run, or "".
func addOomd(g *guest, repo, cache string) string {
	debs := filepath.Join(cache, "debs")
	bin := filepath.Join(debs, "oomd", "usr", "bin", "oomd")
	if _, err := os.Stat(bin); err != nil {
		return "oomd is not unpacked in " + debs + " (vm/setup.sh unpacks it)"
	}
	// Libraries the host lacks were unpacked beside oomd by vm/setup.sh.
	var dirs []string
	for _, pat := range []string{"*/usr/lib/x86_64-linux-gnu", "*/lib/x86_64-linux-gnu"} {
		m, _ := filepath.Glob(filepath.Join(debs, pat))
		dirs = append(dirs, m...)
	}
	libs, err := sharedLibs(bin, "LD_LIBRARY_PATH="+strings.Join(dirs, ":"))
	if err != nil {
		return fmt.Sprintf("oomd cannot run: %v", err)
	}
	g.files = append(g.files,
		vm.File{Path: "/usr/bin/oomd", Source: bin},
		vm.File{Path: "/etc/oomd/oomd.json", Source: filepath.Join(repo, "bench", "vm", "oomd.json"), Mode: 0o644})
	for _, l := range libs {
		real, _ := filepath.EvalSymlinks(l)
		guestPath := l
		if rest, ok := strings.CutPrefix(l, debs+"/"); ok {
			// debs/PKG/usr/lib/...: the package's own path in the guest.
			_, guestPath, _ = strings.Cut(rest, "/")
			guestPath = "/" + guestPath
		}
		g.files = append(g.files, vm.File{Path: guestPath, Source: real})
	}
	return ""
}

// sharedLibs lists the libraries (and the loader) ldd reports for bin, run
// with env added to the environment. A library ldd cannot find is an error.
func sharedLibs(bin string, env ...string) ([]string, error) {
	cmd := exec.Command("ldd", bin)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: %s", bin, strings.TrimSpace(line))
		}
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
			}
		}
	}
	return libs, nil
}

// window is how long a run waits for the workload's end after the onset
// of pressure; a run never lasts more than maxRun after the start.
const (
	window = 30 * time.Second
	maxRun = 150 * time.Second
)

func runOne(ctx context.Context, g *guest, c Config, scenario, killer string, rep int) Run {
	r := Run{Config: c.Name, Scenario: scenario, Killer: killer, Rep: rep, Kernel: g.kernel, Qemu: g.qemu, CPU: g.cpu, Date: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &r.HostLoad)
	}
	if killer == "oomguard" {
		r.OomguardArgs = oomguardArgs
		if oomguardConfig != "" {
			r.OomguardArgs = strings.TrimSpace(r.OomguardArgs + " (config " + oomguardConfig + ")")
		}
	}
	if killer == "oomguard" && !g.oomguard {
		r.Skipped = "this oomguard binary has no daemon (not implemented yet)"
		return r
	}
	if killer == "oomd" && g.oomd != "" {
		r.Skipped = g.oomd
		return r
	}
	if scenario == "thrash" && c.Root == vm.RootRAM {
		r.Skipped = "thrash needs evictable file pages: disk root only"
		return r
	}
	files := g.files
	if scenario == "thrash" {
		files = append(slices.Clip(files), vm.File{Path: "/test/data/cache.bin", Source: g.cacheFile, Mode: 0o644})
	}
	cfg := vm.Config{
		Script:  script,
		Files:   files,
		Root:    c.Root,
		DiskMiB: 512,
		DiskBPS: 32 << 20,
		ZramMiB: c.Zram,
		Timeout: maxRun + 90*time.Second,
		Env: map[string]string{"KILLER": killer, "SCENARIO": scenario, "WINDOW": window.String(), "MAXRUN": maxRun.String(), "OOMGUARD_ARGS": oomguardArgs,
			"LOG_TAIL": strconv.Itoa(logTail)},
	}
	res, err := vm.Run(ctx, cfg)
	if res != nil {
		r.BootMs = res.Elapsed.Milliseconds()
	}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	out := string(res.Output)
	body, log, _ := strings.Cut(out, "@@killer-log")
	r.Log = strings.TrimSpace(log)
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "{") {
			r.Result = json.RawMessage(l)
		}
	}
	if r.Result == nil {
		r.Error = fmt.Sprintf("no result from the guest (exit %d):\n%s\nconsole tail:\n%s", res.ExitCode, out, tailStr(string(res.Console), 4000))
	}
	return r
}

func tailStr(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
