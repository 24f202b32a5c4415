// Command vm is the side-by-side benchmark of oomguard, earlyoom and the
// kernel's OOM killer alone, in a qemu guest of the VM test bed (package
// vm). It boots one guest per run, keeps every run's raw data under
// bench/vm/data, and generates docs/benchmarks/vm.md with one plot per
// scenario under docs/benchmarks/vm/.
//
// Regenerate everything (from the repository root):
//
//	cd bench/vm && go run . -reps 3
//
// Only the report, from the kept raw data:
//
//	cd bench/vm && go run . -report-only
//
// A variant of oomguard beside the committed data, its raw data elsewhere
// and no report (the killer's log in each run's JSON has a decided_in per
// kill; the guest's start_unix_ms places log lines on the run's timeline):
//
//	cd bench/vm && go run . -reps 3 -configs ram-zram -scenarios fasthog \
//		-killers oomguard -data /tmp/variant -oomguard-args "--no-mrelease --log-level debug"
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	repo := flag.String("repo", "../..", "repository root")
	reps := flag.Int("reps", 3, "runs per scenario, killer and configuration")
	only := flag.Bool("report-only", false, "regenerate the report from the raw data only")
	cfgList := flag.String("configs", "", "comma-separated configurations (default all)")
	scList := flag.String("scenarios", "", "comma-separated scenarios (default all)")
	kList := flag.String("killers", "", "comma-separated killers (default all)")
	data := flag.String("data", "", "raw data directory for a variant's runs; no report is written (default REPO/bench/vm/data, and docs/benchmarks/vm.md)")
	flag.StringVar(&oomguardConfig, "oomguard-config", "", "a config `FILE` for the guest's oomguard (/etc/oomguard/oomguard.toml), for trying a variant (its path is recorded in each run)")
	flag.IntVar(&logTail, "log-tail", logTail, "how many of the killer log's last lines each run keeps")
	flag.StringVar(&oomguardArgs, "oomguard-args", "", "extra arguments for `oomguard daemon` in the guest, for trying a variant (recorded in each run)")
	flag.Parse()
	dataDir := *data
	if dataDir == "" {
		dataDir = filepath.Join(*repo, "bench", "vm", "data")
	}
	if !*only {
		// SIGTERM too, so that a stopped run takes its guest down with it
		// (a guest left running would load the machine for minutes).
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := runAll(ctx, *repo, dataDir, *reps, pick(configNames(), *cfgList), pick(scenarios, *scList), pick(killers, *kList)); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if *data != "" {
		// A variant's runs are not the committed data: no report.
		return
	}
	if err := report(*repo, dataDir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func configNames() []string {
	var n []string
	for _, c := range configs {
		n = append(n, c.Name)
	}
	return n
}

func pick(all []string, list string) []string {
	if list == "" {
		return all
	}
	var out []string
	for _, s := range strings.Split(list, ",") {
		if slices.Contains(all, s) {
			out = append(out, s)
		} else {
			fmt.Fprintf(os.Stderr, "bench: unknown name %q (have %v)\n", s, all)
			os.Exit(2)
		}
	}
	return out
}

func runAll(ctx context.Context, repo, dataDir string, reps int, cfgs, scs, ks []string) error {
	work, err := os.MkdirTemp("", "oomguard-bench-vm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	g, err := prepare(repo, work)
	if err != nil {
		return err
	}
	// Repetitions outermost: an interrupted run leaves whole repetitions of
	// every configuration, not all of some and none of others.
	for rep := 1; rep <= reps; rep++ {
		for _, c := range configs {
			if !slices.Contains(cfgs, c.Name) {
				continue
			}
			for _, sc := range scs {
				// Killers interleaved within a repetition: side by side in one run.
				for _, k := range ks {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					start := time.Now()
					r := runOne(ctx, g, c, sc, k, rep)
					status := "ok"
					switch {
					case r.Skipped != "":
						status = "skipped: " + r.Skipped
					case r.Error != "":
						status = "error: " + firstLine(r.Error)
					}
					fmt.Fprintf(os.Stderr, "%-12s %-9s %-9s rep %d  %5.1fs  %s\n", c.Name, sc, k, rep, time.Since(start).Seconds(), status)
					dir := filepath.Join(dataDir, c.Name)
					if err := os.MkdirAll(dir, 0o755); err != nil {
						return err
					}
					b, _ := json.MarshalIndent(r, "", " ")
					name := fmt.Sprintf("%s-%s-%d.json", sc, k, rep)
					if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
