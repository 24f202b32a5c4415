package memlock

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// helperEnv makes the test binary act as "oomguard run": the variable holds
// the JSON of helperOptions and the arguments are the command. Tests run it
// inside testbed cgroups, so the tracer never runs in the test process (Run
// reaps every child of its process).
const helperEnv = "OOMGUARD_MEMLOCK_HELPER"

type helperOptions struct {
	Lock        LockMode
	Scope       Scope
	Trace       bool
	OOMScoreAdj *int
	Limits      Limits
	Report      bool
	// Traceme starts an untraced command under PTRACE_TRACEME, as Run
	// does without Options.ReleaseHelper, instead of through the test
	// binary as the release helper (as the CLI does).
	Traceme bool
	// Interrupted runs Run with a context already ended, as the CLI's is
	// by a SIGTERM that comes before Run takes the signals over.
	Interrupted bool
}

// releaseArg makes the test binary act as the release helper
// (Options.ReleaseHelper): "binary releaseArg PATH ARGV...".
const releaseArg = "memlock-release-helper"

func TestMain(m *testing.M) {
	if len(os.Args) > 3 && os.Args[1] == releaseArg {
		os.Exit(ExecWhenReleased(os.Args[2], os.Args[3:]))
	}
	if js := os.Getenv(helperEnv); js != "" {
		os.Exit(helperMain(js))
	}
	os.Exit(m.Run())
}

func helperMain(js string) int {
	var h helperOptions
	if err := json.Unmarshal([]byte(js), &h); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 125
	}
	os.Unsetenv(helperEnv)
	o := Options{
		Lock: h.Lock, Scope: h.Scope, Trace: h.Trace, OOMScoreAdj: h.OOMScoreAdj,
		Limits: h.Limits, Report: h.Report,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Warn: os.Stderr,
	}
	if !h.Traceme {
		o.ReleaseHelper = []string{"/proc/self/exe", releaseArg}
	}
	ctx := context.Background()
	if h.Interrupted {
		c, cancel := context.WithCancel(ctx)
		cancel()
		ctx = c
	}
	res, err := Run(ctx, os.Args[1:], o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "oomguard run:", err)
		if se, ok := err.(*StartError); ok {
			return se.ExitCode()
		}
		return 125
	}
	for _, p := range res.Processes {
		fmt.Fprintf(os.Stderr, "REPORT pid=%d gen=%d lock=%s vmlck=%d vmrss=%d execs=%d comm=%s\n",
			p.PID, p.Generation, p.Lock, p.PeakVmLck>>10, p.PeakVmRSS>>10, p.Execs, p.Command)
	}
	fmt.Fprintf(os.Stderr, "ENGINE %s\nATENTRY %d\n", res.Engine, res.LockedAtEntry)
	if res.LockFailures > 0 {
		fmt.Fprintf(os.Stderr, "LOCKFAILURES %d\n", res.LockFailures)
	}
	return res.ExitCode
}
