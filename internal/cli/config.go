package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/oomguard/oomguard/internal/config"
)

var cmdConfig = &Command{
	Name:    "config",
	Summary: "check or show the configuration",
	Run:     runConfig,
}

const configUsage = `check [--dropins DIR] [FILE] | show [--config FILE] [--dropins DIR]

  check  validates FILE and, with --dropins, the drop-ins merged after it;
         without FILE, ` + config.DefaultPath + ` and ` + config.DefaultDropinDir + `,
         as the daemon reads them. Exits 0 when valid, else 1 with one
         FILE:LINE: KEY: REASON line per problem.
  show   prints the effective configuration (defaults, file, drop-ins) as TOML.`

func runConfig(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("missing subcommand: want check or show")
	}
	switch args[0] {
	case "check":
		return configCheck(env, args[1:])
	case "show":
		return configShow(env, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintf(env.Stderr, "usage: oomguard config %s\n", configUsage)
		return nil
	}
	return usageErrorf("unknown subcommand %q: want check or show", args[0])
}

func configCheck(env Env, args []string) error {
	flags := newFlagSet(env, "config check", "[--dropins DIR] [FILE]")
	dropins := flags.String("dropins", "", "also check the *.toml drop-ins in `DIR`, merged after FILE (default: "+config.DefaultDropinDir+" when FILE is not given, as the daemon does)")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	path := config.DefaultPath
	switch flags.NArg() {
	case 0:
		if !isSet(flags, "dropins") {
			*dropins = config.DefaultDropinDir
		}
	case 1:
		path = flags.Arg(0)
	default:
		return usageErrorf("config check takes one FILE, got %q", flags.Args())
	}
	if _, err := loadConfig(path, *dropins); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: OK\n", path)
	return nil
}

func configShow(env Env, args []string) error {
	flags := newFlagSet(env, "config show", "[--config FILE] [--dropins DIR]")
	path := flags.String("config", config.DefaultPath, "configuration `FILE` (\"\" for the built-in defaults)")
	dropins := flags.String("dropins", "", "drop-in `DIR` merged after FILE (default: "+config.DefaultDropinDir+" unless --config is given, as the daemon does)")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usageErrorf("config show takes no arguments, got %q", flags.Args())
	}
	p := *path
	explicit := isSet(flags, "config")
	if !explicit && !isSet(flags, "dropins") {
		*dropins = config.DefaultDropinDir
	}
	// The default file may be absent: the daemon then runs on defaults and
	// drop-ins, and show says so.
	if !explicit {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(env.Stdout, "# %s does not exist: built-in defaults.\n", p)
			p = ""
		}
	}
	c, err := loadConfig(p, *dropins)
	if err != nil {
		return err
	}
	b, err := c.TOML()
	if err != nil {
		return err
	}
	_, err = env.Stdout.Write(b)
	return err
}

// loadConfig loads and turns a list of configuration errors into one
// message with a line per error.
func loadConfig(path, dropins string) (*config.Config, error) {
	c, err := config.Load(path, dropins)
	var el config.ErrorList
	if errors.As(err, &el) {
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("invalid configuration:\n%w", err)}
	}
	return c, err
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
