package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/control"
	"github.com/oomguard/oomguard/internal/daemon"
	"github.com/oomguard/oomguard/internal/policy"
	"github.com/oomguard/oomguard/internal/scan"
)

var cmdPs = &Command{
	Name:    "ps",
	Summary: "show the victim ranking as the killer sees it",
	Run:     runPs,
}

func runPs(ctx context.Context, env Env, args []string) error {
	fset := newFlagSet(env, "ps", "[--scope DIR]... [--json] [--socket PATH] [--timeout D] [--config FILE]")
	var scopes stringList
	fset.Var(&scopes, "scope", "rank only the processes of this cgroup `DIR` (repeatable)")
	asJSON := fset.Bool("json", false, `print {"candidates": [...]} as JSON, best victim first`)
	socket := fset.String("socket", control.DefaultSocket, "ask the daemon at this control socket `PATH` first")
	timeout := fset.Duration("timeout", 10*time.Second, "how long to wait for the daemon's answer (tens of thousands of processes on a slow machine can take longer)")
	cfgPath := fset.String("config", "", "rules from this configuration `FILE` when no daemon answers (default "+config.DefaultPath+" when present)")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fset.Arg(0))
	}
	var abs []string
	for _, s := range scopes {
		c, err := cgroupfs.Open(s)
		if err != nil {
			return fmt.Errorf("scope: %w", err)
		}
		abs = append(abs, c.Path)
	}

	var res daemon.PsResult
	source := "daemon at " + *socket
	callCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	err := control.Call(callCtx, *socket, "ps", daemon.PsParams{Scopes: abs}, &res)
	if err != nil {
		if !errors.Is(err, control.ErrNoDaemon) && !strings.Contains(err.Error(), daemon.ErrScopeMismatch.Error()) {
			return err
		}
		source = "computed locally: " + noDaemonReason(err, *socket)
		if res.Candidates, err = localRanking(abs, *cfgPath); err != nil {
			return err
		}
	}
	if *asJSON {
		if res.Candidates == nil {
			res.Candidates = []policy.Candidate{}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(env.Stderr, "ranking %s\n", source)
	printCandidates(env, res.Candidates)
	return nil
}

func noDaemonReason(err error, socket string) string {
	if errors.Is(err, control.ErrNoDaemon) {
		return "no daemon is running at " + socket
	}
	return "the daemon at " + socket + " watches other scopes"
}

// localRanking ranks the processes itself, with the rules of the
// configuration file, exactly as the daemon's policy would.
func localRanking(scopes []string, cfgPath string) ([]policy.Candidate, error) {
	path := cfgPath
	if path == "" {
		if _, err := os.Stat(config.DefaultPath); err == nil {
			path = config.DefaultPath
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("config %s: %w", config.DefaultPath, err)
		}
	}
	cfg, err := config.Load(path, "")
	if err != nil {
		return nil, err
	}
	var cgs []cgroupfs.Cgroup
	for _, s := range scopes {
		c, err := cgroupfs.Open(s)
		if err != nil {
			return nil, err
		}
		cgs = append(cgs, c)
	}
	sc := scan.New(scan.Config{ProcRoot: "/proc", Scopes: cgs, SelfPID: os.Getpid()})
	snap := &policy.Snapshot{Time: time.Now(), SelfPID: os.Getpid()}
	if err := sc.System(snap); err != nil {
		return nil, err
	}
	if err := sc.Processes(snap); err != nil {
		return nil, err
	}
	sc.CgroupKernel(snap)
	return policy.Rank(snap, daemon.PolicyRules(cfg)), nil
}

func printCandidates(env Env, cs []policy.Candidate) {
	tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tVICTIM\tPIDS\tCOMM\tBADNESS\tRSS\tSWAP\tADJ\tSTATUS\tREASON")
	for i, c := range cs {
		status := "candidate"
		switch {
		case c.Protected:
			status = "protected"
		case c.Skipped:
			status = "skipped"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", i+1, c.Victim, joinInts(c.PIDs), c.Comm,
			c.Badness, human(c.RSS), human(c.Swap), c.OOMScoreAdj, status, c.Reason)
	}
	tw.Flush()
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}
