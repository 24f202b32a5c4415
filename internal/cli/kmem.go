package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/oomguard/oomguard/internal/cgroupfs"
	"github.com/oomguard/oomguard/internal/control"
	"github.com/oomguard/oomguard/internal/kmem"
	"github.com/oomguard/oomguard/internal/kmemguard"
	"github.com/oomguard/oomguard/internal/policy/kmembudget"
)

// Where `oomguard kmem` looks for cgroups when given none or a relative name.
const (
	kmemV1Root   = "/sys/fs/cgroup/memory"
	kmemV2Root   = "/sys/fs/cgroup"
	kmemV2Hybrid = "/sys/fs/cgroup/unified"
	slabinfoPath = "/proc/slabinfo"
)

var cmdKmem = &Command{
	Name:    "kmem",
	Summary: "show kernel memory per cgroup, with budgets and breaches from the daemon",
	Run:     runKmem,
}

const kmemUsage = `[--json] [--socket PATH] [--top N] [--root DIR]… [CGROUP…]

Shows the kernel memory of each CGROUP (a directory, or a path relative to
` + kmemV1Root + ` or ` + kmemV2Root + `): usage, max_usage, limit, failcnt
and a breakdown by kind, each marked exact or estimate, with the heaviest
processes inside. With no CGROUP it shows the cgroups using the most kernel
memory as a tree, kernel figures only.

limit is the budget the daemon enforces and failcnt the breaches it has seen,
taken from the daemon at --socket. Without a daemon, limit is null and
failcnt is the kernel's v1 memory.kmem.failcnt (always 0 on kernels that
ignore memory.kmem.limit_in_bytes) or null on v2; max_usage is null on v2,
which keeps no kernel-memory high-water mark.`

func runKmem(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "kmem", kmemUsage)
	asJSON := fs.Bool("json", false, "print one JSON object {\"cgroups\": [...]}")
	socket := fs.String("socket", control.DefaultSocket, "the daemon's control socket")
	top := fs.Int("top", 15, "how many cgroups (no CGROUP given) or processes (per CGROUP) to show")
	var roots stringList
	fs.Var(&roots, "root", "with no CGROUP, scan below this cgroup directory instead of the memory hierarchies (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *top < 1 {
		return usageErrorf("--top must be at least 1")
	}
	daemon, derr := kmemDaemon(ctx, *socket)
	if derr != nil && !errors.Is(derr, control.ErrNoDaemon) {
		fmt.Fprintf(env.Stderr, "oomguard kmem: %v; showing kernel figures only\n", derr)
	}
	rep := kmem.Report{Cgroups: []kmem.Cgroup{}}
	var failed error
	if fs.NArg() == 0 {
		rs, err := kmemRoots(roots)
		if err != nil {
			return err
		}
		sums, err := kmem.Scan(rs)
		if err != nil && len(sums) == 0 {
			return err
		}
		shown := kmemTop(sums, *top)
		for _, s := range shown {
			c, err := kmem.ReadCgroup(s.Cgroup, kmem.Options{})
			if err != nil { // removed since the scan
				c = kmem.FromKmem(s.Cgroup.Path, s.Kmem)
			}
			rep.Cgroups = append(rep.Cgroups, c)
		}
	} else {
		for _, a := range fs.Args() {
			cg, err := resolveCgroup(a)
			var c kmem.Cgroup
			if err == nil {
				c, err = kmem.ReadCgroup(cg, kmem.Options{Attribute: true, TopProcesses: *top})
			}
			if err != nil {
				c = kmem.Cgroup{Path: a, Error: err.Error(), Breakdown: map[string]kmem.Kind{}}
				failed = fmt.Errorf("%s: %w", a, err)
			}
			rep.Cgroups = append(rep.Cgroups, c)
		}
	}
	for i := range rep.Cgroups {
		if d, ok := daemon[rep.Cgroups[i].Path]; ok {
			rep.Cgroups[i].ApplyDaemon(d)
		}
	}
	if si, err := kmem.ReadSlabinfo(slabinfoPath, 8); err == nil {
		rep.Slabinfo = si
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if fs.NArg() == 0 {
		printKmemTree(env.Stdout, rep, daemon != nil)
	} else {
		printKmemDetail(env.Stdout, rep, daemon != nil)
	}
	if failed != nil {
		return &ExitError{Code: 1, Err: failed}
	}
	return nil
}

// kmemDaemon asks the daemon for its budgets, by cgroup path. A nil map
// with ErrNoDaemon means nothing listens.
func kmemDaemon(ctx context.Context, socket string) (map[string]kmem.DaemonCgroup, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var res kmemguard.ControlResult
	if err := control.Call(ctx, socket, kmemguard.ControlMethod, nil, &res); err != nil {
		return nil, err
	}
	m := make(map[string]kmem.DaemonCgroup, len(res.Cgroups))
	for _, c := range res.Cgroups {
		m[c.Path] = c
	}
	return m, nil
}

// resolveCgroup opens a cgroup named by a: an absolute path, or one that
// starts with "./" or "../", as given; any other name relative to the v1
// memory hierarchy, else the v2 one, else the current directory. (Looked
// up in the current directory first, "system.slice" typed in
// /sys/fs/cgroup/unified would name that hierarchy's cgroup, which
// accounts no memory there.)
func resolveCgroup(a string) (cgroupfs.Cgroup, error) {
	cands := []string{a}
	if !filepath.IsAbs(a) && !strings.HasPrefix(a, "./") && !strings.HasPrefix(a, "../") {
		cands = []string{filepath.Join(kmemV1Root, a), filepath.Join(kmemV2Root, a), a}
	}
	var errs []string
	for _, c := range cands {
		cg, err := cgroupfs.Open(c)
		if err == nil {
			return cg, nil
		}
		errs = append(errs, err.Error())
	}
	return cgroupfs.Cgroup{}, fmt.Errorf("tried %s", strings.Join(errs, "; "))
}

// kmemRoots returns the hierarchies to scan: the given roots, or every
// mounted hierarchy that accounts kernel memory.
func kmemRoots(given []string) ([]cgroupfs.Cgroup, error) {
	var out []cgroupfs.Cgroup
	for _, r := range given {
		cg, err := cgroupfs.Open(r)
		if err != nil {
			return nil, err
		}
		out = append(out, cg)
	}
	if len(out) > 0 {
		return out, nil
	}
	if cg, err := cgroupfs.Open(kmemV1Root); err == nil && cg.Version == cgroupfs.V1 {
		out = append(out, cg)
	}
	for _, r := range []string{kmemV2Root, kmemV2Hybrid} {
		cg, err := cgroupfs.Open(r)
		if err != nil || cg.Version != cgroupfs.V2 {
			continue
		}
		b, err := cg.ReadFile("cgroup.controllers")
		if err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " memory ") {
			out = append(out, cg)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no cgroup hierarchy with kernel-memory accounting found (v1 memory or v2 with the memory controller)")
	}
	return out, nil
}

// kmemTop returns the n cgroups using the most kernel memory plus their
// scanned ancestors, in tree order.
func kmemTop(sums []kmem.Summary, n int) []kmem.Summary {
	byUsage := append([]kmem.Summary(nil), sums...)
	sort.SliceStable(byUsage, func(i, j int) bool { return byUsage[i].Kmem.Usage.N > byUsage[j].Kmem.Usage.N })
	if len(byUsage) > n {
		byUsage = byUsage[:n]
	}
	index := map[string]kmem.Summary{}
	for _, s := range sums {
		index[s.Cgroup.Path] = s
	}
	keep := map[string]kmem.Summary{}
	for _, s := range byUsage {
		for p := s.Cgroup.Path; ; p = filepath.Dir(p) {
			if a, ok := index[p]; ok {
				keep[p] = a
			}
			if p == "/" || p == "." {
				break
			}
		}
	}
	out := make([]kmem.Summary, 0, len(keep))
	for _, s := range keep {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		return strings.ReplaceAll(out[i].Cgroup.Path, "/", "\x00") < strings.ReplaceAll(out[j].Cgroup.Path, "/", "\x00")
	})
	return out
}

func size(p *uint64) string {
	if p == nil {
		return "-"
	}
	return kmembudget.FormatBytes(*p)
}

func count(p *uint64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func printKmemTree(w io.Writer, rep kmem.Report, daemon bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CGROUP\tVER\tUSAGE\tMAX_USAGE\tLIMIT\tFAILCNT\tTCP/SOCK\tSLAB\tPAGETABLES\tSTACKS")
	for _, c := range rep.Cgroups {
		// Name each cgroup relative to its nearest shown ancestor.
		name := c.Path
		for _, a := range rep.Cgroups {
			if rel, ok := strings.CutPrefix(c.Path, a.Path+"/"); ok && len(rel) < len(name) {
				name = rel
			}
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", strings.Repeat("  ", treeDepth(rep.Cgroups, c.Path)), name,
			c.Version, size(c.Usage), size(c.MaxUsage), size(c.Limit), count(c.Failcnt),
			size(kindBytes(c, "tcp", "sock")), size(kindBytes(c, "slab")), size(kindBytes(c, "pagetables")), size(kindBytes(c, "kernel_stack")))
	}
	tw.Flush()
	printKmemFooter(w, rep, daemon)
}

// treeDepth counts the shown ancestors of path.
func treeDepth(cs []kmem.Cgroup, path string) int {
	d := 0
	for _, c := range cs {
		if strings.HasPrefix(path, c.Path+"/") {
			d++
		}
	}
	return d
}

func kindBytes(c kmem.Cgroup, names ...string) *uint64 {
	for _, n := range names {
		if k, ok := c.Breakdown[n]; ok && k.Bytes != nil {
			return k.Bytes
		}
	}
	return nil
}

func printKmemDetail(w io.Writer, rep kmem.Report, daemon bool) {
	for i, c := range rep.Cgroups {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if c.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", c.Path, c.Error)
			continue
		}
		fmt.Fprintf(w, "%s (cgroup %s)\n", c.Path, c.Version)
		fmt.Fprintf(w, "  usage %s (%s)\n", size(c.Usage), c.UsageSource)
		fmt.Fprintf(w, "  max_usage %s", size(c.MaxUsage))
		if c.MaxUsageSource != "" {
			fmt.Fprintf(w, " (%s)", c.MaxUsageSource)
		}
		fmt.Fprintf(w, "\n  limit %s", size(c.Limit))
		if c.Limit != nil {
			fmt.Fprintf(w, " (daemon budget, action %s)", c.Action)
		}
		fmt.Fprintf(w, "\n  failcnt %s", count(c.Failcnt))
		if c.FailcntSource != "" {
			fmt.Fprintf(w, " (%s)", c.FailcntSource)
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  KIND\tBYTES\tCOUNT\tACCURACY\tSOURCE")
		names := make([]string, 0, len(c.Breakdown))
		for n := range c.Breakdown {
			names = append(names, n)
		}
		sort.Slice(names, func(i, j int) bool {
			a, b := c.Breakdown[names[i]].Bytes, c.Breakdown[names[j]].Bytes
			av, bv := uint64(0), uint64(0)
			if a != nil {
				av = *a
			}
			if b != nil {
				bv = *b
			}
			if av != bv {
				return av > bv
			}
			return names[i] < names[j]
		})
		for _, n := range names {
			k := c.Breakdown[n]
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", n, size(k.Bytes), count(k.Count), k.Accuracy, k.Source)
		}
		tw.Flush()
		if len(c.Processes) > 0 {
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  PID\tCOMM\tKMEM(est)\tPAGETABLES\tTHREADS\tSTACKS(est)\tPIPES\tPIPE_BYTES(est)\tSOCKETS")
			for _, p := range c.Processes {
				fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%d\n", p.PID, p.Comm, kmembudget.FormatBytes(p.Total),
					kmembudget.FormatBytes(p.PageTables), p.Threads, kmembudget.FormatBytes(p.KernelStack), p.Pipes,
					kmembudget.FormatBytes(p.PipeBytes), p.Sockets)
			}
			tw.Flush()
		}
	}
	printKmemFooter(w, rep, daemon)
}

func printKmemFooter(w io.Writer, rep kmem.Report, daemon bool) {
	if !daemon {
		fmt.Fprintln(w, "\nno daemon answered: limit is unset and failcnt is the kernel's own (v1) or unknown (v2).")
	}
	if rep.Slabinfo != nil && len(rep.Slabinfo.Top) > 0 {
		fmt.Fprintf(w, "\nsystem-wide slab caches (%s, %s in all; context, not per cgroup):", rep.Slabinfo.Source, kmembudget.FormatBytes(rep.Slabinfo.Total))
		for i, s := range rep.Slabinfo.Top {
			if i == 5 {
				break
			}
			fmt.Fprintf(w, " %s %s;", s.Name, kmembudget.FormatBytes(s.Bytes))
		}
		fmt.Fprintln(w)
	}
}
