package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/memlock"
)

var cmdRun = &Command{
	Name:    "run",
	Summary: "run a command with memory locks and OOM protection",
	Run:     runRun,
}

// runFailCode is the exit status of oomguard run's own failures (as env(1),
// nice(1) and timeout(1) use 125), so they are told from the command's.
const runFailCode = 125

const runUsage = `[--mlock[=onfault]] [--inherit|--recursive] [--oom-score-adj N] [--memory-max SIZE] [--memory-high SIZE] [--memory-min SIZE] [--pids-max N] [--report] -- CMD ARGS...

Runs CMD as if it had called mlockall(MCL_CURRENT|MCL_FUTURE) as its first
instruction and again after each of its execs (from outside, so static and
dynamic binaries alike). --inherit also locks its direct children,
--recursive every descendant. --mlock and --mlock --recursive work through a
seccomp filter that hands oomguard each exec and fork (the notifier);
--inherit, --trace, --report, or a filter that cannot be installed, trace
every covered process for its whole life instead.
See oomguard(8), RUN. The exit status is CMD's own, 128+N
when signal N killed it, 125 when oomguard itself failed, 126/127 when CMD
could not be executed or found.`

func runRun(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "run", runUsage)
	var (
		lock      mlockFlag
		inherit   = fs.Bool("inherit", false, "also lock the command's direct children, across their execs")
		recursive = fs.Bool("recursive", false, "lock every descendant of the command, all generations")
		oomAdj    optInt
		memMax    sizeFlag
		memHigh   sizeFlag
		memMin    sizeFlag
		pidsMax   optInt
		report    = fs.Bool("report", false, "at the end, print each process that ran: PID, generation, lock state, peak VmLck and VmRSS")
		trace     = fs.Bool("trace", false, "use the full ptrace engine (every covered process traced for its whole life); without --mlock, trace without locking (to measure the cost of tracing)")
	)
	fs.Var(&lock, "mlock", "lock the command's memory: --mlock (MCL_CURRENT|MCL_FUTURE) or --mlock=onfault (adds MCL_ONFAULT)")
	fs.Var(&oomAdj, "oom-score-adj", "set the command's oom_score_adj (-1000..1000; lowering needs CAP_SYS_RESOURCE)")
	fs.Var(&memMax, "memory-max", "hard memory limit of a cgroup created for the command (e.g. 512M)")
	fs.Var(&memHigh, "memory-high", "memory.high of the command's cgroup (v1: memory.soft_limit_in_bytes)")
	fs.Var(&memMin, "memory-min", "memory.min protection of the command's cgroup (cgroup v2 only)")
	fs.Var(&pidsMax, "pids-max", "pids.max of a cgroup created for the command")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		return usageErrorf("run: no command given (oomguard run [flags] -- CMD ARGS...)")
	}
	if *inherit && *recursive {
		return usageErrorf("run: --inherit and --recursive exclude each other")
	}
	if (*inherit || *recursive) && lock.mode == memlock.LockNone && !*trace && !*report {
		return usageErrorf("run: --inherit and --recursive only make sense with --mlock (or --trace, --report)")
	}
	o := memlock.Options{
		Lock:   lock.mode,
		Trace:  *trace,
		Report: *report,
		Limits: memlock.Limits{MemoryMax: memMax.v, MemoryHigh: memHigh.v, MemoryMin: memMin.v},
		Stdin:  env.Stdin,
		Stdout: env.Stdout,
		Stderr: env.Stderr,
		Warn:   env.Stderr,
		// A command that is not traced starts without ptrace, so that a
		// setuid program keeps its privileges.
		ReleaseHelper: []string{"/proc/self/exe", releaseHelperCommand},
	}
	switch {
	case *inherit:
		o.Scope = memlock.ScopeInherit
	case *recursive:
		o.Scope = memlock.ScopeRecursive
	}
	if oomAdj.set {
		v := int(oomAdj.v)
		o.OOMScoreAdj = &v
	}
	if pidsMax.set {
		if pidsMax.v <= 0 {
			return usageErrorf("run: --pids-max must be positive")
		}
		o.Limits.PidsMax = pidsMax.v
	}
	res, err := memlock.Run(ctx, argv, o)
	if err != nil {
		var se *memlock.StartError
		if errors.As(err, &se) {
			return &ExitError{Code: se.ExitCode(), Err: err}
		}
		return &ExitError{Code: runFailCode, Err: err}
	}
	if *report {
		writeRunReport(env.Stderr, res)
	}
	if res.LockFailures > 0 {
		fmt.Fprintf(env.Stderr, "oomguard run: warning: %d process(es) could not be locked (see above)\n", res.LockFailures)
	}
	if res.ExitCode != 0 {
		return &ExitError{Code: res.ExitCode}
	}
	return nil
}

// writeRunReport prints the --report table.
func writeRunReport(w io.Writer, res *memlock.Result) {
	fmt.Fprintf(w, "oomguard run: report: %d process(es)\n", len(res.Processes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PID\tGEN\tLOCKED\tPEAK_VMLCK_KB\tPEAK_VMRSS_KB\tEXECS\t COMMAND")
	for _, p := range res.Processes {
		lock := p.Lock.String()
		if p.LockErr != nil {
			lock += "(" + shortErr(p.LockErr) + ")"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%d\t%d\t %s\n", p.PID, p.Generation, lock, p.PeakVmLck>>10, p.PeakVmRSS>>10, p.Execs, p.Command)
	}
	tw.Flush()
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return strings.ReplaceAll(s, " ", "_")
}

// mlockFlag is --mlock, whose value is optional: "--mlock" or
// "--mlock=onfault".
type mlockFlag struct{ mode memlock.LockMode }

func (f *mlockFlag) String() string {
	if f == nil {
		return ""
	}
	switch f.mode {
	case memlock.LockAll:
		return "true"
	case memlock.LockOnFault:
		return "onfault"
	}
	return ""
}

func (f *mlockFlag) Set(v string) error {
	switch v {
	case "true", "", "all", "current":
		f.mode = memlock.LockAll
	case "onfault":
		f.mode = memlock.LockOnFault
	case "false", "none":
		f.mode = memlock.LockNone
	default:
		return fmt.Errorf("want --mlock or --mlock=onfault, not %q", v)
	}
	return nil
}

// IsBoolFlag lets "--mlock" stand alone.
func (f *mlockFlag) IsBoolFlag() bool { return true }

// optInt is an integer flag that remembers whether it was given.
type optInt struct {
	v   int64
	set bool
}

func (f *optInt) String() string {
	if f == nil || !f.set {
		return ""
	}
	return strconv.FormatInt(f.v, 10)
}

func (f *optInt) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %q", s)
	}
	f.v, f.set = v, true
	return nil
}

// sizeFlag is a memory size: bytes, or a number with a K, M, G or T suffix
// (powers of 1024, optionally followed by "iB" or "B").
type sizeFlag struct{ v uint64 }

func (f *sizeFlag) String() string {
	if f == nil || f.v == 0 {
		return ""
	}
	return strconv.FormatUint(f.v, 10)
}

func (f *sizeFlag) Set(s string) error {
	size, err := config.ParseSize(s)
	if err != nil {
		return err
	}
	v := size.Bytes()
	if v == 0 {
		return fmt.Errorf("size must be positive")
	}
	f.v = v
	return nil
}
