package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("dry_run = true\n[memory]\nkill_percent = 4\n"), 0o644)
	if code, out, errs := runCLI(t, "config", "check", good); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("check good: code %d, stdout %q, stderr %q", code, out, errs)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("dry_run = true\n\n[memory]\nkill_percent = 400\n"), 0o644)
	code, _, errs := runCLI(t, "config", "check", bad)
	if code == 0 || !strings.Contains(errs, bad+":4:") || !strings.Contains(errs, "bad percentage") {
		t.Errorf("check bad: code %d, stderr %q; want non-zero and %s:4", code, errs, bad)
	}
	// Drop-ins are checked with --dropins.
	dd := filepath.Join(dir, "d")
	os.Mkdir(dd, 0o755)
	os.WriteFile(filepath.Join(dd, "10-x.toml"), []byte("[kill]\nnope = 1\n"), 0o644)
	code, _, errs = runCLI(t, "config", "check", "--dropins", dd, good)
	if code == 0 || !strings.Contains(errs, filepath.Join(dd, "10-x.toml")+":2:") {
		t.Errorf("check drop-ins: code %d, stderr %q", code, errs)
	}
	if code, _, errs := runCLI(t, "config", "check", filepath.Join(dir, "missing.toml")); code == 0 || !strings.Contains(errs, "missing.toml") {
		t.Errorf("check missing: code %d, stderr %q", code, errs)
	}
	if code, _, _ := runCLI(t, "config", "frob"); code != 2 {
		t.Errorf("unknown subcommand: code %d, want 2", code)
	}
}

func TestConfigShow(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	os.WriteFile(p, []byte("[memory]\nterm_percent = 12\n[[psi]]\nstall = \"150ms\"\n"), 0o644)
	dd := filepath.Join(dir, "d")
	os.Mkdir(dd, 0o755)
	os.WriteFile(filepath.Join(dd, "a.toml"), []byte("dry_run = true\n"), 0o644)
	code, out, errs := runCLI(t, "config", "show", "--config", p, "--dropins", dd)
	if code != 0 {
		t.Fatalf("show: code %d, stderr %q", code, errs)
	}
	for _, want := range []string{"dry_run = true", "term_percent = 12", "[[psi]]", `stall = "150ms"`, `window = "2s"`, "kill_percent = 5"} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	// What show prints is a valid configuration that check accepts.
	shown := filepath.Join(dir, "shown.toml")
	os.WriteFile(shown, []byte(out), 0o644)
	if code, _, errs := runCLI(t, "config", "check", shown); code != 0 {
		t.Errorf("check of show output: code %d, %s", code, errs)
	}
}
