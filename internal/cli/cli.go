// Package cli implements oomguard's command line: one file per subcommand.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/oomguard/oomguard/internal/memlock"
)

// Env is what a subcommand may touch of the outside world. Tests pass buffers.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Command is one subcommand of oomguard.
type Command struct {
	// Name is the word that selects the command, as in "oomguard NAME".
	Name string
	// Summary is one line for the help listing.
	Summary string
	// Run executes the command with the arguments that follow its name.
	Run func(ctx context.Context, env Env, args []string) error
}

// ExitError asks Run to exit with Code instead of the generic failure code 1.
// A nil Err means nothing is printed.
type ExitError struct {
	Code int
	Err  error
}

// Error returns the wrapped error's message, or the exit status when
// there is none.
func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

// Unwrap returns the error that caused the exit.
func (e *ExitError) Unwrap() error { return e.Err }

// errUsage marks an error as a usage error: Run exits 2 for it.
var errUsage = errors.New("usage")

func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// commands lists every subcommand. Each is defined in its own file.
func commands() []*Command {
	cmds := []*Command{
		cmdDaemon,
		cmdPs,
		cmdTree,
		cmdKmem,
		cmdRun,
		cmdStatus,
		cmdConfig,
		cmdVersion,
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	return cmds
}

// rehearsalVictimCommand is a command left out of the help: the process
// the daemon starts and kills once at start, to run its kill path before
// a real kill needs it (daemon.Daemon.RehearsalVictim). It reads its
// standard input to the end, then exits 0.
const rehearsalVictimCommand = "rehearsal-victim"

// releaseHelperCommand is another command left out of the help: the
// process that `oomguard run` starts for a command it does not trace,
// which waits for the command's settings and then execs it
// (memlock.Options.ReleaseHelper). Its arguments are the command's path
// and argv.
const releaseHelperCommand = "run-release-helper"

// Run parses args (without the program name), runs the selected subcommand
// and returns the process exit code: 0 on success, 2 for usage errors, the
// code of an ExitError, and 1 for any other error.
func Run(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printHelp(env.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == releaseHelperCommand {
		if len(args) < 3 {
			fmt.Fprintf(env.Stderr, "oomguard %s: want the command's path and argv\n", releaseHelperCommand)
			return 2
		}
		return memlock.ExecWhenReleased(args[1], args[2:])
	}
	if args[0] == rehearsalVictimCommand {
		io.Copy(io.Discard, env.Stdin)
		return 0
	}
	for _, c := range commands() {
		if c.Name != args[0] {
			continue
		}
		err := c.Run(ctx, env, args[1:])
		return exitCode(env.Stderr, c.Name, err)
	}
	fmt.Fprintf(env.Stderr, "oomguard: unknown command %q\n", args[0])
	printHelp(env.Stderr)
	return 2
}

func exitCode(stderr io.Writer, name string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(stderr, "oomguard %s: %v\n", name, ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(stderr, "oomguard %s: %v\n", name, err)
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "usage: oomguard COMMAND [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintln(w, "\nRun 'oomguard COMMAND -h' for the flags of one command.")
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// writes its usage to env.Stderr.
func newFlagSet(env Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("oomguard "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: oomguard %s %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and turns a flag error into a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErrorf("%v", err)
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
