package daemon

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/oomguard/oomguard/internal/config"
	"github.com/oomguard/oomguard/internal/policy"
)

func TestPolicyTriggersFromConfig(t *testing.T) {
	c := config.Default()
	c.Memory.RequireBoth = false
	c.Memory.StallPercent, c.Memory.StallWindow = 35, config.Duration(time.Second)
	c.Memory.Lead = config.Duration(250 * time.Millisecond)
	c.Thrash.Sustain = config.Duration(5 * time.Second)
	c.ScopeLimits.TermPercent, c.ScopeLimits.KillPercent = 0, 0
	psi, err := config.ParsePSI("io full 500ms 2s kill")
	if err != nil {
		t.Fatal(err)
	}
	c.PSI = []config.PSI{psi}
	got, err := policyTriggers(c)
	if err != nil {
		t.Fatal(err)
	}
	want := policy.MemAvailTrigger{Enabled: true, MemTermPercent: 10, MemKillPercent: 5,
		SwapTermPercent: 10, SwapKillPercent: 5, MemoryOnly: true, StallPercent: 35, StallWindow: time.Second,
		Lead: 250 * time.Millisecond}
	if d := cmp.Diff(want, got.MemAvail); d != "" {
		t.Errorf("memavail (-want +got):\n%s", d)
	}
	if got.Scope.Enabled {
		t.Errorf("scope trigger enabled with both levels at 0")
	}
	wantPSI := []policy.PSITrigger{{Resource: policy.PSIIO, Full: true, System: true, Scopes: true,
		KillPercent: 25, Window: 2 * time.Second}}
	if d := cmp.Diff(wantPSI, got.PSI); d != "" {
		t.Errorf("psi (-want +got):\n%s", d)
	}
	if !got.Thrash.Enabled || got.Thrash.Sustain != 5*time.Second || got.Thrash.AvailPercent != 20 {
		t.Errorf("thrash not taken from the config: %+v", got.Thrash)
	}
}

func TestPolicyRulesFromConfig(t *testing.T) {
	c := config.Default()
	c.Rules.Prefer = []config.Regexp{config.MustRegexp("^chrome$")}
	c.Rules.Protect = []string{"sshd"}
	c.Kill.KillCgroup = true
	r := PolicyRules(c)
	if len(r.Prefer) != 1 || !r.Prefer[0].MatchString("chrome") || r.Avoid != nil ||
		!cmp.Equal(r.Protected, []string{"sshd"}) || !r.KillCgroup {
		t.Fatalf("rules %+v", r)
	}
}
