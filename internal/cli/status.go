package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/oomguard/oomguard/internal/control"
	"github.com/oomguard/oomguard/internal/daemon"
)

var cmdStatus = &Command{
	Name:    "status",
	Summary: "show the running daemon's triggers and recent actions",
	Run: func(ctx context.Context, env Env, args []string) error {
		fs := newFlagSet(env, "status", "[--socket PATH] [--json]")
		socket := fs.String("socket", control.DefaultSocket, "the daemon's control socket `PATH`")
		asJSON := fs.Bool("json", false, "print the status as JSON")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		var st daemon.Status
		if err := control.Call(ctx, *socket, "status", nil, &st); err != nil {
			if errors.Is(err, control.ErrNoDaemon) {
				return &ExitError{Code: 3, Err: fmt.Errorf("no daemon is running at %s", *socket)}
			}
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		printStatus(env, st)
		return nil
	},
}

func printStatus(env Env, st daemon.Status) {
	w := env.Stdout
	fmt.Fprintf(w, "oomguard daemon pid %d, up %s", st.PID, time.Duration(st.UptimeSeconds*float64(time.Second)).Round(time.Second))
	if st.DryRun {
		fmt.Fprint(w, " (dry-run: kills nothing)")
	}
	fmt.Fprintln(w)
	if len(st.Scopes) > 0 {
		fmt.Fprintf(w, "scopes: %s\n", strings.Join(st.Scopes, ", "))
	} else {
		fmt.Fprintln(w, "scope: the whole machine")
	}
	t := st.Triggers
	if t.MemTotal > 0 {
		fmt.Fprintf(w, "memory: %s available of %s (%.1f%%)", human(t.MemAvailable), human(t.MemTotal), pct(t.MemAvailable, t.MemTotal))
		if t.SwapTotal > 0 {
			fmt.Fprintf(w, ", swap %s free of %s (%.1f%%)", human(t.SwapFree), human(t.SwapTotal), pct(t.SwapFree, t.SwapTotal))
		} else {
			fmt.Fprint(w, ", no swap")
		}
		fmt.Fprintln(w)
	}
	if t.Pressure.Memory.Valid {
		fmt.Fprintf(w, "pressure avg10: memory some %.2f%% full %.2f%%, io some %.2f%% full %.2f%%\n",
			t.Pressure.Memory.Some.Avg10, t.Pressure.Memory.Full.Avg10, t.Pressure.IO.Some.Avg10, t.Pressure.IO.Full.Avg10)
	}
	for _, s := range t.Scopes {
		fmt.Fprintf(w, "scope %s: usage %s", s.Path, human(s.Usage))
		if s.Limit > 0 && s.Limit < 1<<62 {
			avail := int64(s.Limit) - int64(s.Usage) + int64(s.ReclaimableFile)
			fmt.Fprintf(w, " of limit %s, available %.1f%%", human(s.Limit), 100*float64(avail)/float64(s.Limit))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "trigger verdict: %s", t.Verdict.Level)
	if t.Verdict.Reason != "" {
		fmt.Fprintf(w, " (%s: %s)", t.Verdict.Trigger, t.Verdict.Reason)
	}
	fmt.Fprintln(w)
	if t.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", t.LastError)
	}
	if len(st.Actions) == 0 {
		fmt.Fprintln(w, "no actions yet")
		return
	}
	fmt.Fprintf(w, "last %d actions:\n", len(st.Actions))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tTRIGGER\tPIDS\tREASON")
	for _, a := range st.Actions {
		kind := a.Kind
		if a.DryRun {
			kind += " (dry-run)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", a.Time.Local().Format("15:04:05.000"), kind, a.Trigger, a.PIDs, a.Reason)
	}
	tw.Flush()
	keys := make([]string, 0, len(st.Counts))
	for k := range st.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "total %s: %d\n", k, st.Counts[k])
	}
}

func pct(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// human formats a byte count with a binary unit.
func human(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTP"[exp])
}
