// Package kubernetes holds the DaemonSet manifest; its test checks the
// configuration embedded in the ConfigMap with oomguard's own loader.
package kubernetes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oomguard/oomguard/internal/config"
)

// embeddedTOML returns the block scalar under "oomguard.toml: |".
func embeddedTOML(t *testing.T, manifest string) string {
	t.Helper()
	lines := strings.Split(manifest, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "oomguard.toml: |" {
			continue
		}
		indent := len(l) - len(strings.TrimLeft(l, " ")) + 2
		var out []string
		for _, b := range lines[i+1:] {
			if strings.TrimSpace(b) == "" {
				out = append(out, "")
				continue
			}
			if len(b)-len(strings.TrimLeft(b, " ")) < indent {
				break
			}
			out = append(out, b[indent:])
		}
		return strings.Join(out, "\n")
	}
	t.Fatal("no oomguard.toml in the ConfigMap")
	return ""
}

func TestConfigMapValid(t *testing.T) {
	b, err := os.ReadFile("oomguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "oomguard.toml")
	os.WriteFile(p, []byte(embeddedTOML(t, string(b))), 0o644)
	c, err := config.Load(p, "")
	if err != nil {
		t.Fatalf("the ConfigMap's oomguard.toml is invalid:\n%v", err)
	}
	if len(c.Scope) == 0 {
		t.Error("the DaemonSet must be scoped to the pods' cgroups")
	}
	if c.Metrics.Listen == "" || config.CheckListen(c.Metrics.Listen) != nil {
		t.Errorf("metrics listen %q: want a loopback address for kube-rbac-proxy", c.Metrics.Listen)
	}
	if c.Notify.DBus {
		t.Error("no system bus in a pod: dbus must be off")
	}
}

func TestDaemonSetShape(t *testing.T) {
	b, _ := os.ReadFile("oomguard.yaml")
	s := string(b)
	for _, want := range []string{
		"kind: DaemonSet", "hostPID: true", "hostNetwork: true", "privileged: true",
		"path: /sys/fs/cgroup", "configMap:", "--upstream=http://127.0.0.1:9798/",
		"prometheus.io/scrape: \"true\"", "priorityClassName: system-node-critical",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("manifest lacks %q", want)
		}
	}
}
