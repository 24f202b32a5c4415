package policy

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestPure checks the policy package cannot do I/O: none of its transitive
// dependencies is a package that touches files, sockets or processes, and
// syscall is reachable only through time (which needs it for zoneinfo; the
// policy never loads a location).
func TestPure(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := map[string]bool{
		"os": true, "os/exec": true, "os/signal": true, "io/fs": true, "io/ioutil": true,
		"net": true, "internal/poll": true, "fmt": true, "log": true, "log/slog": true,
		"golang.org/x/sys/unix": true, "path/filepath": true, "unsafe": false,
	}
	deps := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		deps++
		if forbidden[pkg] || strings.HasPrefix(pkg, "net/") || strings.HasPrefix(pkg, "github.com/oomguard/oomguard/internal/sys") {
			t.Errorf("policy depends on %s, which does I/O", pkg)
		}
		for _, imp := range strings.Fields(imports) {
			if imp == "syscall" && pkg != "time" && !strings.HasPrefix(pkg, "internal/") && pkg != "runtime" {
				t.Errorf("%s imports syscall", pkg)
			}
		}
		if pkg == "github.com/oomguard/oomguard/internal/policy" {
			for _, imp := range strings.Fields(imports) {
				if imp == "io" || imp == "syscall" || imp == "unsafe" {
					t.Errorf("policy imports %s directly", imp)
				}
			}
		}
	}
	if deps < 10 {
		t.Fatalf("go list returned only %d packages:\n%s", deps, out)
	}
}
