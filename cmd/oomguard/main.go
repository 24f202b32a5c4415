// Command oomguard is a userspace memory-pressure manager: an OOM killer that
// understands shared address spaces, a fork-bomb killer, a kernel-memory
// budget enforcer and a memory-lock prefix command.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/oomguard/oomguard/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
