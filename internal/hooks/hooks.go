// Package hooks runs the administrator's pre-kill and post-kill commands
// with the victim's details in OOMGUARD_* environment variables, under a
// deadline, without ever blocking the killer for longer than that deadline.
package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Event is what a hook is told about a kill.
type Event struct {
	// PID is the main victim; PIDs are all processes killed with it (the
	// processes sharing its address space, or the members of its cgroup or
	// fork-bomb family), PID included.
	PID  int
	PIDs []int
	// UID is the victim's real user ID.
	UID int
	// Comm is the victim's command name.
	Comm string
	// Cgroup is the victim's cgroup path.
	Cgroup string
	// Trigger names what fired: memory, swap, psi, scope_limit, thrash,
	// forkbomb, kmem_budget.
	Trigger string
	// Reason is the human-readable explanation with numbers.
	Reason string
	// RSSBytes is the victim's resident memory when it was chosen.
	RSSBytes uint64
	// DryRun is set when nothing is actually killed.
	DryRun bool
	// Result is the outcome, for post-kill hooks: "killed", "timeout",
	// "failed: ...".
	Result string
}

// The values of OOMGUARD_EVENT.
const (
	PreKill  = "pre-kill"
	PostKill = "post-kill"
)

// Env returns the environment variables a hook sees for ev at the given
// stage: OOMGUARD_EVENT, OOMGUARD_PID, OOMGUARD_PIDS (space-separated),
// OOMGUARD_UID, OOMGUARD_COMM, OOMGUARD_CGROUP, OOMGUARD_TRIGGER,
// OOMGUARD_REASON, OOMGUARD_RSS_BYTES, OOMGUARD_DRY_RUN (0 or 1) and, after
// the kill, OOMGUARD_RESULT.
func (ev Event) Env(stage string) []string {
	pids := make([]string, len(ev.PIDs))
	for i, p := range ev.PIDs {
		pids[i] = strconv.Itoa(p)
	}
	dry := "0"
	if ev.DryRun {
		dry = "1"
	}
	env := []string{
		"OOMGUARD_EVENT=" + stage,
		"OOMGUARD_PID=" + strconv.Itoa(ev.PID),
		"OOMGUARD_PIDS=" + strings.Join(pids, " "),
		"OOMGUARD_UID=" + strconv.Itoa(ev.UID),
		"OOMGUARD_COMM=" + clean(ev.Comm),
		"OOMGUARD_CGROUP=" + clean(ev.Cgroup),
		"OOMGUARD_TRIGGER=" + clean(ev.Trigger),
		"OOMGUARD_REASON=" + clean(ev.Reason),
		"OOMGUARD_RSS_BYTES=" + strconv.FormatUint(ev.RSSBytes, 10),
		"OOMGUARD_DRY_RUN=" + dry,
	}
	if stage == PostKill {
		env = append(env, "OOMGUARD_RESULT="+clean(ev.Result))
	}
	return env
}

// clean drops NUL bytes, which an environment cannot carry.
func clean(s string) string { return strings.ReplaceAll(s, "\x00", "") }

// Runner runs the hooks. Its zero value runs nothing. Set the fields before
// first use; the methods are safe for concurrent use.
type Runner struct {
	// PreKillCmd and PostKillCmd are shell command lines ("" = none), run
	// with Shell -c in a process group of their own.
	PreKillCmd  string
	PostKillCmd string
	// Timeout bounds each run; at the deadline the hook's whole process
	// group is killed. Zero means 5 s.
	Timeout time.Duration
	// Shell runs the commands; "" means /bin/sh.
	Shell string
	// MaxPending bounds the post-kill hooks running at once; further ones
	// are dropped (and reported) rather than queued. Zero means 4.
	MaxPending int
	// Log receives a line per failed hook and the hook's output; nil
	// discards.
	Log *slog.Logger
	// OnFailure, if set, is called with the stage ("pre-kill", "post-kill")
	// for every hook that fails, times out or is dropped (for metrics).
	OnFailure func(stage string, err error)

	once    sync.Once
	pending chan struct{}
	wg      sync.WaitGroup
}

// ErrTimeout is wrapped by the error of a hook killed at its deadline.
var ErrTimeout = errors.New("hook timed out")

// ErrDropped is reported for a post-kill hook not run because MaxPending
// hooks were already running.
var ErrDropped = errors.New("hook dropped: too many hooks running")

func (r *Runner) init() {
	r.once.Do(func() {
		n := r.MaxPending
		if n <= 0 {
			n = 4
		}
		r.pending = make(chan struct{}, n)
	})
}

// PreKill runs the pre-kill hook for ev and waits for it, at most Timeout
// (plus the moment it takes to kill it). The hook cannot veto the kill: the
// error only reports a failure, and the caller kills regardless. With no
// pre-kill command it returns nil at once. ctx cancels the wait early
// (the hook is then killed too).
func (r *Runner) PreKill(ctx context.Context, ev Event) error {
	if r.PreKillCmd == "" {
		return nil
	}
	err := r.run(ctx, r.PreKillCmd, ev.Env(PreKill))
	r.fail(PreKill, err)
	return err
}

// PostKill starts the post-kill hook for ev and returns at once; the hook
// runs under the same deadline in the background. Wait waits for those
// still running.
func (r *Runner) PostKill(ev Event) {
	if r.PostKillCmd == "" {
		return
	}
	r.init()
	select {
	case r.pending <- struct{}{}:
	default:
		r.fail(PostKill, ErrDropped)
		return
	}
	env := ev.Env(PostKill)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() { <-r.pending }()
		r.fail(PostKill, r.run(context.Background(), r.PostKillCmd, env))
	}()
}

// Wait blocks until every post-kill hook started so far has ended; each
// ends by its deadline.
func (r *Runner) Wait() { r.wg.Wait() }

func (r *Runner) fail(stage string, err error) {
	if err == nil {
		return
	}
	if r.Log != nil {
		r.Log.Warn("hook failed", "stage", stage, "err", err)
	}
	if r.OnFailure != nil {
		r.OnFailure(stage, err)
	}
}

// outputLimit bounds the hook output kept for the log.
const outputLimit = 4 << 10

type capped struct{ bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := outputLimit - c.Len(); room > 0 {
		if len(p) > room {
			c.Buffer.Write(p[:room])
		} else {
			c.Buffer.Write(p)
		}
	}
	return len(p), nil
}

func (r *Runner) run(ctx context.Context, command string, env []string) error {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	shell := r.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	cmd := exec.Command(shell, "-c", command)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}, env...)
	cmd.Dir = "/"
	var out capped
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so the deadline kills what it started too. No
	// Pdeathsig: it fires when the forking *thread* exits, and the daemon
	// has goroutines that end locked to their thread (which kills it).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Children that escaped the group may hold the output pipe: stop
	// reading it shortly after the hook itself has gone.
	cmd.WaitDelay = 500 * time.Millisecond
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("hook %q: %w", command, err)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
		err = fmt.Errorf("%w after %s: killed its process group %d", ErrTimeout, timeout, pgid)
	case <-ctx.Done():
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
		err = fmt.Errorf("hook cancelled: %w", ctx.Err())
	}
	if r.Log != nil && out.Len() > 0 {
		r.Log.Info("hook output", "command", command, "took", time.Since(start).Round(time.Millisecond), "output", strings.TrimSpace(out.String()))
	}
	if err != nil {
		return fmt.Errorf("hook %q: %w", command, err)
	}
	return nil
}
