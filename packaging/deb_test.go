// Package packaging builds oomguard's .deb with nfpm; its test builds the
// package and checks it in scratch roots.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: cannot check the .deb", tool)
		}
	}
}

// TestDeb builds the .deb, inspects it with dpkg-deb, unpacks it with
// dpkg -x and runs the unpacked binary on the unpacked configuration,
// verifies the unpacked unit, then installs and purges it with dpkg in an
// empty scratch root.
func TestDeb(t *testing.T) {
	need(t, "dpkg-deb", "dpkg", "gzip", "git")
	out := t.TempDir()
	deb := strings.TrimSpace(lastLine(run(t, ".", []string{"VERSION=1.2.3"}, "./build-deb.sh", out)))
	if !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("build-deb.sh printed %q", deb)
	}

	info := run(t, ".", nil, "dpkg-deb", "-I", deb)
	for _, want := range []string{"Package: oomguard", "Version: 1.2.3", "Section: admin", "postinst", "prerm", "postrm", "conffiles"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
		}
	}
	conffiles := run(t, ".", nil, "dpkg-deb", "-f", deb, "Package")
	if strings.TrimSpace(conffiles) != "oomguard" {
		t.Errorf("Package field %q", conffiles)
	}
	ctrl := t.TempDir()
	run(t, ".", nil, "dpkg-deb", "-e", deb, ctrl)
	if b, _ := os.ReadFile(filepath.Join(ctrl, "conffiles")); strings.TrimSpace(string(b)) != "/etc/oomguard/oomguard.toml" {
		t.Errorf("conffiles = %q", b)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		run(t, ".", nil, "sh", "-n", filepath.Join(ctrl, s))
	}

	listing := run(t, ".", nil, "dpkg-deb", "-c", deb)
	for path, mode := range map[string]string{
		"./usr/sbin/oomguard":                              "-rwxr-xr-x",
		"./etc/oomguard/oomguard.toml":                     "-rw-r--r--",
		"./etc/oomguard/oomguard.d/":                       "drwxr-xr-x",
		"./usr/lib/systemd/system/oomguard.service":        "-rw-r--r--",
		"./usr/share/man/man8/oomguard.8.gz":               "-rw-r--r--",
		"./usr/share/man/man5/oomguard.toml.5.gz":          "-rw-r--r--",
		"./usr/share/bash-completion/completions/oomguard": "-rw-r--r--",
		"./usr/share/zsh/vendor-completions/_oomguard":     "-rw-r--r--",
		"./usr/share/dbus-1/system.d/org.oomguard1.conf":   "-rw-r--r--",
		"./usr/share/doc/oomguard/guide.md":                "-rw-r--r--",
	} {
		found := false
		for _, l := range strings.Split(listing, "\n") {
			f := strings.Fields(l)
			if len(f) >= 6 && f[len(f)-1] == path {
				found = true
				if f[0] != mode || f[1] != "root/root" {
					t.Errorf("%s: %s %s, want %s root/root", path, f[0], f[1], mode)
				}
			}
		}
		if !found {
			t.Errorf("%s missing from the package", path)
		}
	}

	// Unpack and use what was unpacked.
	root := t.TempDir()
	run(t, ".", nil, "dpkg", "-x", deb, root)
	bin := filepath.Join(root, "usr/sbin/oomguard")
	if v := run(t, ".", nil, bin, "version"); !strings.Contains(v, "1.2.3") {
		t.Errorf("unpacked binary reports version %q, want 1.2.3", v)
	}
	run(t, ".", nil, bin, "config", "check", filepath.Join(root, "etc/oomguard/oomguard.toml"))
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		unit, _ := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/oomguard.service"))
		ud := t.TempDir()
		os.WriteFile(filepath.Join(ud, "oomguard.service"), []byte(strings.ReplaceAll(string(unit), "/usr/sbin/oomguard", bin)), 0o644)
		args := []string{"verify"}
		if _, err := exec.LookPath("man"); err != nil {
			args = append(args, "--man=no")
		}
		if o := run(t, ".", []string{"MANPATH=" + filepath.Join(root, "usr/share/man"), "SYSTEMD_LOG_LEVEL=notice"},
			"systemd-analyze", append(args, filepath.Join(ud, "oomguard.service"))...); strings.TrimSpace(o) != "" {
			t.Errorf("systemd-analyze verify of the unpacked unit:\n%s", o)
		}
	}

	// Install and purge with dpkg in an empty root. The maintainer scripts
	// run outside the chroot with DPKG_ROOT set, and must touch nothing but
	// that root (they skip systemctl there).
	sr := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		os.MkdirAll(filepath.Join(sr, d), 0o755)
	}
	os.WriteFile(filepath.Join(sr, "var/lib/dpkg/status"), nil, 0o644)
	dpkg := []string{"--root=" + sr, "--force-not-root", "--force-script-chrootless", "--log=/dev/null"}
	run(t, ".", nil, "dpkg", append(dpkg, "-i", deb)...)
	if st := run(t, ".", nil, "dpkg-query", "--admindir="+filepath.Join(sr, "var/lib/dpkg"), "-W", "-f=${Status} ${Version}", "oomguard"); st != "install ok installed 1.2.3" {
		t.Errorf("installed status %q", st)
	}
	if _, err := os.Stat(filepath.Join(sr, "usr/sbin/oomguard")); err != nil {
		t.Errorf("installed binary: %v", err)
	}
	os.WriteFile(filepath.Join(sr, "etc/oomguard/oomguard.d/50-local.toml"), []byte("dry_run = true\n"), 0o644)
	run(t, ".", nil, "dpkg", append(dpkg, "--purge", "oomguard")...)
	for _, p := range []string{"usr/sbin/oomguard", "etc/oomguard", "usr/lib/systemd/system/oomguard.service"} {
		if _, err := os.Stat(filepath.Join(sr, p)); err == nil {
			t.Errorf("%s left after purge", p)
		}
	}
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}
