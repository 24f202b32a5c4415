package daemon

import (
	"fmt"
	"regexp"
	"time"

	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/policy"
)

// policyTriggers turns the configuration's trigger sections into the policy
// core's typed triggers.
func policyTriggers(c *config.Config) (policy.Triggers, error) {
	t := policy.DefaultTriggers()
	t.MemAvail = policy.MemAvailTrigger{
		Enabled:         c.Memory.TermPercent > 0 || c.Memory.KillPercent > 0,
		MemTermPercent:  float64(c.Memory.TermPercent),
		MemKillPercent:  float64(c.Memory.KillPercent),
		SwapTermPercent: float64(c.Memory.SwapTermPercent),
		SwapKillPercent: float64(c.Memory.SwapKillPercent),
		MemoryOnly:      !c.Memory.RequireBoth,
		StallPercent:    float64(c.Memory.StallPercent),
		StallWindow:     time.Duration(c.Memory.StallWindow),
		Lead:            time.Duration(c.Memory.Lead),
	}
	t.Scope.Enabled = c.ScopeLimits.TermPercent > 0 || c.ScopeLimits.KillPercent > 0
	t.Scope.TermPercent = float64(c.ScopeLimits.TermPercent)
	t.Scope.KillPercent = float64(c.ScopeLimits.KillPercent)
	if len(c.PSI) > 0 {
		t.PSI = nil
		for _, p := range c.PSI {
			pt, err := policyPSI(p)
			if err != nil {
				return t, err
			}
			t.PSI = append(t.PSI, pt)
		}
	}
	t.Thrash.Enabled = c.Thrash.Enabled
	if c.Thrash.RefaultRate > 0 {
		t.Thrash.RefaultsPerSec = c.Thrash.RefaultRate
	}
	if c.Thrash.PressurePercent > 0 {
		t.Thrash.PressurePercent = float64(c.Thrash.PressurePercent)
	}
	if c.Thrash.AvailableSoftPercent > 0 {
		t.Thrash.AvailPercent = float64(c.Thrash.AvailableSoftPercent)
	}
	t.Thrash.Turnover = c.Thrash.Turnover
	if c.Thrash.Sustain > 0 {
		t.Thrash.Sustain = time.Duration(c.Thrash.Sustain)
	}
	if err := t.Validate(); err != nil {
		return t, fmt.Errorf("triggers: %w", err)
	}
	return t, nil
}

// policyPSI turns a kernel-style PSI trigger ("memory some 150ms 2s") into
// the policy's percentage form: a stall of 150ms per 2s window is 7.5 %.
func policyPSI(p config.PSI) (policy.PSITrigger, error) {
	var r policy.PSIResource
	switch p.Resource {
	case "memory":
		r = policy.PSIMemory
	case "io":
		r = policy.PSIIO
	case "cpu":
		r = policy.PSICPU
	default:
		return policy.PSITrigger{}, fmt.Errorf("psi: unknown resource %q", p.Resource)
	}
	window := time.Duration(p.Window)
	if window <= 0 {
		return policy.PSITrigger{}, fmt.Errorf("psi %s %s: window must be positive", p.Resource, p.Kind)
	}
	pct := 100 * float64(p.Stall) / float64(window)
	t := policy.PSITrigger{Resource: r, Full: p.Kind == "full", System: p.Cgroup == "", Scopes: true, Window: window}
	if p.Level == "kill" {
		t.KillPercent = pct
	} else {
		t.TermPercent = pct
	}
	return t, nil
}

// PolicyRules compiles the configuration's rules for the policy core.
func PolicyRules(c *config.Config) policy.Rules {
	conv := func(in []config.Regexp) []*regexp.Regexp {
		var out []*regexp.Regexp
		for _, r := range in {
			if r.Regexp != nil {
				out = append(out, r.Regexp)
			}
		}
		return out
	}
	return policy.Rules{
		Prefer:     conv(c.Rules.Prefer),
		Avoid:      conv(c.Rules.Avoid),
		Ignore:     conv(c.Rules.Ignore),
		Protected:  append([]string(nil), c.Rules.Protect...),
		KillCgroup: c.Kill.KillCgroup,
	}
}
