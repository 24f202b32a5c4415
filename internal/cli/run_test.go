package cli

import (
	"strings"
	"testing"
)

// TestRunUsageErrors: every malformed `oomguard run` is refused with exit
// status 2 and a message naming the problem, before anything runs. (Runs
// that reach memlock.Run are tested in internal/memlock: it makes the calling
// process a subreaper, which a test binary should not become.)
func TestRunUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", []string{"run", "--mlock"}, "no command given"},
		{"inherit and recursive", []string{"run", "--mlock", "--inherit", "--recursive", "--", "true"}, "exclude each other"},
		{"recursive without mlock", []string{"run", "--recursive", "--", "true"}, "only make sense with --mlock"},
		{"bad mlock mode", []string{"run", "--mlock=sometimes", "--", "true"}, `want --mlock or --mlock=onfault, not "sometimes"`},
		{"bad size", []string{"run", "--memory-max", "12Q", "--", "true"}, `unknown suffix "Q"`},
		{"zero size", []string{"run", "--memory-max", "0", "--", "true"}, "size must be positive"},
		{"bad oom-score-adj", []string{"run", "--oom-score-adj", "high", "--", "true"}, `not an integer: "high"`},
		{"zero pids-max", []string{"run", "--pids-max", "0", "--", "true"}, "--pids-max must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := runMain(tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, errs)
			}
			if !strings.Contains(errs, tt.want) {
				t.Errorf("stderr %q does not say %q", errs, tt.want)
			}
		})
	}
}

func TestSizeFlagTakesConfigSizes(t *testing.T) {
	for in, want := range map[string]uint64{"4096": 4096, "64M": 64 << 20, "1G": 1 << 30, "512MiB": 512 << 20, "2k": 2048} {
		var f sizeFlag
		if err := f.Set(in); err != nil || f.v != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, f.v, err, want)
		}
	}
}
