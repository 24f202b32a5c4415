package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version; the build may override it with
// -ldflags "-X github.com/oomguard/oomguard/internal/cli.Version=…".
var Version = "0.1.0-dev"

var cmdVersion = &Command{
	Name:    "version",
	Summary: "print the version",
	Run: func(ctx context.Context, env Env, args []string) error {
		fs := newFlagSet(env, "version", "")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		rev := ""
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					rev = " (" + s.Value[:12] + ")"
				}
			}
		}
		fmt.Fprintf(env.Stdout, "oomguard %s%s %s/%s %s\n", Version, rev, runtime.GOOS, runtime.GOARCH, runtime.Version())
		return nil
	},
}
