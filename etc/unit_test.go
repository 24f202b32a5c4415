// Package etc holds the shipped configuration files; its test checks them.
package etc

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestUnitVerify runs systemd-analyze verify on oomguard.service, with the
// binary path pointed at a stand-in executable (verify checks that
// ExecStart= exists) and, when man(1) is installed, the man pages from
// ../man so that Documentation= is checked as well.
func TestUnitVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt package systemd): unit not verified")
	}
	unit, err := os.ReadFile("oomguard.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "oomguard")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(unit), "/usr/sbin/oomguard", bin)
	if err := os.WriteFile(filepath.Join(dir, "oomguard.service"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify"}
	man, _ := filepath.Abs("../man")
	if _, err := exec.LookPath("man"); err != nil {
		args = append(args, "--man=no")
		t.Log("man(1) not installed: Documentation= not checked")
	}
	cmd := exec.Command(analyze, append(args, filepath.Join(dir, "oomguard.service"))...)
	cmd.Env = append(os.Environ(), "MANPATH="+man, "SYSTEMD_LOG_LEVEL=notice")
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitPolicy checks the properties issue 8 asks of the unit.
func TestUnitPolicy(t *testing.T) {
	b, err := os.ReadFile("oomguard.service")
	if err != nil {
		t.Fatal(err)
	}
	set := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			set[k] = append(set[k], v)
		}
	}
	want := map[string]string{
		"Type": "notify", "OOMScoreAdjust": "-1000", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"RuntimeDirectory": "oomguard", "ReadWritePaths": "/sys/fs/cgroup", "Delegate": "no",
		// The event thread and the memory loop run at SCHED_FIFO.
		"RestrictRealtime": "no",
	}
	for k, v := range want {
		if len(set[k]) != 1 || set[k][0] != v {
			t.Errorf("%s = %q, want %q", k, set[k], v)
		}
	}
	for _, k := range []string{"WatchdogSec", "MemoryMin", "MemoryLow", "ExecReload", "CapabilityBoundingSet", "SystemCallFilter"} {
		if len(set[k]) == 0 {
			t.Errorf("%s missing", k)
		}
	}
	caps := strings.Fields(set["CapabilityBoundingSet"][0])
	if !slices.Contains(caps, "CAP_SYS_NICE") {
		t.Errorf("CapabilityBoundingSet %q lacks CAP_SYS_NICE, which SCHED_FIFO needs", caps)
	}
	for _, c := range caps {
		if c == "CAP_SYS_ADMIN" || c == "CAP_SETUID" {
			t.Errorf("capability %s is not needed by default", c)
		}
	}
	filter := strings.Join(set["SystemCallFilter"], " ")
	for _, sc := range []string{"process_mrelease", "pidfd_open", "pidfd_send_signal", "kcmp", "ptrace", "mlockall"} {
		if !strings.Contains(filter, " "+sc) {
			t.Errorf("SystemCallFilter lacks %s", sc)
		}
	}
}
