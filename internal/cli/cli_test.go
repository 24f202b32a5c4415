package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runMain(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), code
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"no command", nil, 2, "", "usage: oomguard COMMAND"},
		{"help", []string{"help"}, 0, "", "commands:"},
		{"unknown", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"version", []string{"version"}, 0, "oomguard " + Version, ""},
		{"bad flag", []string{"version", "--nope"}, 2, "", "flag provided but not defined: -nope"},
		{"status without daemon", []string{"status", "--socket", "/nonexistent/oomguard.sock"}, 3, "", "no daemon is running at /nonexistent/oomguard.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := runMain(tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, errs)
			}
			if !strings.Contains(out, tt.inStdout) {
				t.Errorf("stdout %q does not contain %q", out, tt.inStdout)
			}
			if !strings.Contains(errs, tt.inStderr) {
				t.Errorf("stderr %q does not contain %q", errs, tt.inStderr)
			}
		})
	}
}

func TestDaemonRefusesBadConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	writeFile(t, bad, "[memory]\nkill_percent = 150\n")
	_, errs, code := runMain("daemon", "--config", bad, "--dry-run", "--socket", filepath.Join(t.TempDir(), "s"))
	if code == 0 || !strings.Contains(errs, "refusing to start") || !strings.Contains(errs, bad+":2") {
		t.Fatalf("exit %d, stderr %q; want a refusal naming %s:2", code, errs, bad)
	}
}

func TestDaemonRefusesMissingScope(t *testing.T) {
	_, errs, code := runMain("daemon", "--scope", "/sys/fs/cgroup/memory/does-not-exist", "--socket", filepath.Join(t.TempDir(), "s"))
	if code == 0 || !strings.Contains(errs, "does-not-exist") {
		t.Fatalf("exit %d, stderr %q; want a refusal naming the scope", code, errs)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
