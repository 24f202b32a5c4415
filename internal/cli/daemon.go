package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/daemon"
	"github.com/oomguard/oomguard/internal/logging"
)

var cmdDaemon = &Command{
	Name:    "daemon",
	Summary: "run the memory-pressure manager (in the foreground)",
	Run:     runDaemon,
}

// configSource remembers where the configuration came from, so SIGHUP can
// read it again with the same command-line overrides on top.
type configSource struct {
	path, dropins string
	flags         *config.Overrides
}

func (s configSource) load() (*config.Config, error) {
	cfg, err := config.Load(s.path, s.dropins)
	if err != nil {
		return nil, err
	}
	if err := s.flags.Apply(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// daemonConfigSource parses the daemon's flags and says which files to read:
// --config FILE alone, or else the default file (when present) with its
// drop-in directory.
func daemonConfigSource(env Env, args []string) (configSource, error) {
	fset := newFlagSet(env, "daemon", "[--config FILE] [--scope DIR]... [--dry-run] [--socket PATH] [flags]")
	src := configSource{flags: config.RegisterFlags(fset)}
	path := fset.String("config", "", "read the configuration from `FILE` (default "+config.DefaultPath+" when present)")
	dropins := fset.String("dropins", "", "merge *.toml drop-ins from `DIR` after the file (default "+config.DefaultDropinDir+" with the default file)")
	if err := parseFlags(fset, args); err != nil {
		return src, err
	}
	if fset.NArg() > 0 {
		return src, usageErrorf("unexpected argument %q", fset.Arg(0))
	}
	src.dropins = *dropins
	switch {
	case *path != "":
		src.path = *path
		if *dropins == "" && filepath.Clean(*path) == config.DefaultPath {
			src.dropins = config.DefaultDropinDir
		}
	default:
		if _, err := os.Stat(config.DefaultPath); err == nil {
			src.path = config.DefaultPath
		} else if !errors.Is(err, fs.ErrNotExist) {
			return src, fmt.Errorf("config %s: %w", config.DefaultPath, err)
		}
		if *dropins == "" {
			src.dropins = config.DefaultDropinDir
		}
	}
	return src, nil
}

func runDaemon(ctx context.Context, env Env, args []string) error {
	src, err := daemonConfigSource(env, args)
	if err != nil {
		return err
	}
	cfg, err := src.load()
	if err != nil {
		return fmt.Errorf("refusing to start: %w", err)
	}
	level, err := logging.ParseLevel(string(cfg.Log.Level))
	if err != nil {
		return err
	}
	log := logging.New(env.Stderr, level, logging.Format(cfg.Log.Format))
	d, err := daemon.New(cfg, log)
	if err != nil {
		return fmt.Errorf("refusing to start: %w", err)
	}
	d.Version = Version
	// This very program, whatever became of its file since it started.
	d.RehearsalVictim = []string{"/proc/self/exe", rehearsalVictimCommand}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				next, err := src.load()
				if err == nil {
					err = d.Reload(next)
				}
				if err != nil {
					log.Error("reload refused; keeping the running configuration", "err", err)
				}
			}
		}
	}()
	return d.Run(ctx)
}
