package vm

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Scenario is one named test script that runs inside a boot shared with
// other scenarios.
type Scenario struct {
	// Name names the scenario (letters, digits, '-' and '_').
	Name string
	// Script is the shell script. Exit 0 means pass, ExitSkip means the
	// feature under test is missing (the script's last output line says
	// which), anything else is a failure.
	Script string
	// Timeout bounds the scenario; at the deadline every process of it is
	// killed and it fails (default 60 s).
	Timeout time.Duration
}

// ExitSkip is the exit status a scenario uses to say that what it tests is
// not available (for example an oomguard subcommand not implemented yet).
const ExitSkip = 77

// ScenarioResult is the outcome of one scenario.
type ScenarioResult struct {
	// Name is the scenario's name.
	Name string
	// Ran reports whether the scenario ran to an end (the guest may have
	// died before or during it).
	Ran bool
	// ExitCode is the script's exit status (137 when killed at its deadline).
	ExitCode int
	// Output is everything the script wrote (stdout and stderr).
	Output []byte
}

// Passed reports whether the scenario ran and exited 0.
func (r ScenarioResult) Passed() bool { return r.Ran && r.ExitCode == 0 }

// runnerScript runs each scenario in its own leaf cgroup, under a deadline,
// then kills and removes every cgroup it left behind, so the next scenario
// starts clean. Scenario scripts stay in /sys/fs/cgroup/vm-scenario and
// create their workload cgroups directly under the root.
func runnerScript(scs []Scenario) string {
	var b strings.Builder
	b.WriteString(`
cg=/sys/fs/cgroup
cleanup_cgroups() {
	for d in $(find $cg -mindepth 1 -type d | sort -r); do
		echo 1 >$d/cgroup.kill 2>/dev/null
	done
	for d in $(find $cg -mindepth 1 -type d | sort -r); do
		i=0
		while ! rmdir $d 2>/dev/null; do
			i=$((i+1))
			[ $i -lt 100 ] || { echo "runner: cannot remove $d" >&2; break; }
			echo 1 >$d/cgroup.kill 2>/dev/null
			usleep 100000
		done
	done
	swapoff -a 2>/dev/null; [ "${VM_ZRAM_MB:-0}" -gt 0 ] && swapon /dev/zram0 2>/dev/null
	true
}
run_scenario() {
	name=$1 secs=$2
	echo "@@begin $name"
	rm -f /tmp/vm-logs
	mkdir -p $cg/vm-scenario
	(
		echo 0 >$cg/vm-scenario/cgroup.procs
		cd /tmp
		exec timeout -s KILL $secs sh /test/scenarios/$name.sh
	) 2>&1
	rc=$?
	cleanup_cgroups
	echo "@@end $name rc=$rc"
}
`)
	for _, s := range scs {
		secs := int(s.timeout().Seconds())
		fmt.Fprintf(&b, "run_scenario %s %d\n", s.Name, secs)
	}
	b.WriteString("exit 0\n")
	return b.String()
}

func (s Scenario) timeout() time.Duration {
	if s.Timeout == 0 {
		return 60 * time.Second
	}
	return s.Timeout
}

// RunScenarios boots once (cfg.Script is replaced by a runner) and runs the
// scenarios in order. The files /test/scenarios/NAME.sh are added to
// cfg.Files. The boot's deadline is the sum of the scenarios' plus a
// minute. The returned error is Run's: the guest hung or crashed; the
// results then tell which scenarios had run.
func RunScenarios(ctx context.Context, cfg Config, scs []Scenario) ([]ScenarioResult, *Result, error) {
	total := time.Minute
	for _, s := range scs {
		if s.Name == "" || strings.ContainsAny(s.Name, " /'\"$;&|") {
			return nil, nil, fmt.Errorf("vm: bad scenario name %q", s.Name)
		}
		total += s.timeout() + 2*time.Second
		cfg.Files = append(cfg.Files, File{Path: "/test/scenarios/" + s.Name + ".sh", Data: []byte(s.Script), Mode: 0o755})
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = total
	}
	cfg.Script = runnerScript(scs)
	res, err := Run(ctx, cfg)
	var out []byte
	if res != nil {
		out = res.Output
	}
	return parseScenarios(out, scs), res, err
}

// parseScenarios splits the runner's output into per-scenario results.
func parseScenarios(out []byte, scs []Scenario) []ScenarioResult {
	results := make([]ScenarioResult, len(scs))
	index := map[string]int{}
	for i, s := range scs {
		results[i].Name = s.Name
		index[s.Name] = i
	}
	cur := -1
	var buf bytes.Buffer
	for _, line := range bytes.SplitAfter(out, []byte("\n")) {
		l := strings.TrimRight(string(line), "\r\n")
		if name, ok := strings.CutPrefix(l, "@@begin "); ok {
			if i, ok := index[name]; ok {
				cur = i
				buf.Reset()
			}
			continue
		}
		if rest, ok := strings.CutPrefix(l, "@@end "); ok && cur >= 0 {
			f := strings.Fields(rest)
			if len(f) == 2 && f[0] == scs[cur].Name {
				code, err := strconv.Atoi(strings.TrimPrefix(f[1], "rc="))
				if err == nil {
					results[cur].Ran = true
					results[cur].ExitCode = code
				}
				results[cur].Output = bytes.Clone(buf.Bytes())
				cur = -1
				continue
			}
		}
		if cur >= 0 {
			buf.Write(line)
		}
	}
	if cur >= 0 {
		results[cur].Output = bytes.Clone(buf.Bytes())
	}
	return results
}
