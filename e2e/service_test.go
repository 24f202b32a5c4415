package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/oomguard/oomguard/internal/testbed"
)

// TestServiceEndToEnd starts the daemon from the example configuration on a
// scoped cgroup and checks everything an administrator sees: status, ps and
// tree over the socket, the Prometheus endpoint, the D-Bus Killed signal on
// a private bus, the pre- and post-kill hooks, and a SIGHUP reload.
func TestServiceEndToEnd(t *testing.T) {
	g := testbed.New(t, testbed.Options{MemoryLimit: 256 << 20, OOMKillDisable: true})
	bus := startPrivateBus(t)
	sub, err := dbus.Connect(bus)
	if err != nil {
		t.Fatalf("connect to the private bus: %v", err)
	}
	defer sub.Close()
	if err := sub.AddMatchSignal(dbus.WithMatchInterface("org.oomguard.Manager1"), dbus.WithMatchMember("Killed")); err != nil {
		t.Fatal(err)
	}
	signals := make(chan *dbus.Signal, 10)
	sub.Signal(signals)

	dir := t.TempDir()
	hookLog := filepath.Join(dir, "hooks.log")
	hook := filepath.Join(dir, "hook.sh")
	script := fmt.Sprintf("#!/bin/sh\necho \"$OOMGUARD_EVENT $OOMGUARD_PID $OOMGUARD_TRIGGER\" >> %s\n", hookLog)
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	d := startDaemon(t, "--config", "../etc/oomguard.toml", "--scope", g.Memory.Path,
		"--metrics-listen", addr, "--dbus-address", bus,
		"--pre-kill-hook", hook, "--post-kill-hook", hook)

	hog := g.Command(testbed.CompileC(t, hogSource), "600", "1000")
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	hogFD := waitForChildOf(t, g, hog.Process.Pid)
	hogPID := hogFD.PID()
	if !waitDead(t, hogFD, 20*time.Second) {
		t.Fatalf("hog %d survived; log:\n%s", hogPID, d.Log())
	}

	// D-Bus: the Killed signal names the victim.
	select {
	case s := <-signals:
		if len(s.Body) < 3 {
			t.Fatalf("Killed signal body %v", s.Body)
		}
		pids, _ := s.Body[2].([]uint32)
		if len(pids) == 0 || int(pids[0]) != hogPID {
			t.Fatalf("Killed signal names pids %v, want %d first (body %v)", pids, hogPID, s.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no Killed signal on the private bus; log:\n%s", d.Log())
	}

	// Hooks: pre-kill before post-kill, both with the victim.
	want := []string{fmt.Sprintf("pre-kill %d scope", hogPID), fmt.Sprintf("post-kill %d scope", hogPID)}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(hookLog)
		got = strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(got) >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("hooks ran as %q, want %q", got, want)
	}

	// Status over the socket lists the kill with its reason and numbers.
	out, stderr, code := oomguard(t, "status", "--socket", d.socket, "--json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var st struct {
		UptimeSeconds float64 `json:"uptime_seconds"`
		Actions       []struct {
			Kind    string             `json:"kind"`
			PIDs    []int              `json:"pids"`
			Reason  string             `json:"reason"`
			Numbers map[string]float64 `json:"numbers"`
		} `json:"actions"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if len(st.Actions) == 0 || st.Actions[0].Kind != "kill" || st.Actions[0].PIDs[0] != hogPID ||
		st.Actions[0].Reason == "" || st.Actions[0].Numbers["rss_bytes"] <= 0 || st.UptimeSeconds <= 0 {
		t.Fatalf("status does not show the kill of %d with reason and numbers: %s", hogPID, out)
	}
	if text, _, code := oomguard(t, "status", "--socket", d.socket); code != 0 || !strings.Contains(text, "last 1 actions") {
		t.Fatalf("status (text): exit %d:\n%s", code, text)
	}

	// ps and tree answer over the socket.
	by := g.Command(testbed.CompileC(t, hogSource), "16", "0")
	byOut, _ := by.StdoutPipe()
	if err := by.Start(); err != nil {
		t.Fatal(err)
	}
	byPID := atoi(t, readLine(t, byOut, "ready ", 10*time.Second)[0])
	byFD := pin(t, byPID, "bystander")
	out, stderr, code = oomguard(t, "ps", "--socket", d.socket, "--scope", g.Memory.Path, "--json")
	if code != 0 || !strings.Contains(out, fmt.Sprintf(`"pids": [
        %d
      ]`, byPID)) {
		t.Fatalf("ps over the socket: exit %d: %s\n%s", code, stderr, out)
	}
	// The guard takes events in batches (every 100 ms when calm): on a
	// fast machine the bystander's fork and exec may not be taken yet.
	listed := func() bool {
		out, stderr, code = oomguard(t, "tree", "--socket", d.socket, "--json")
		return code == 0 && (strings.Contains(out, fmt.Sprintf(`"pid":%d`, byPID)) || strings.Contains(out, fmt.Sprintf(`"pid": %d`, byPID)))
	}
	for deadline := time.Now().Add(3 * time.Second); !listed() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if !listed() {
		t.Fatalf("tree over the socket does not list %d: exit %d: %s\n%.3000s", byPID, code, stderr, out)
	}

	// Metrics: the kill is counted, the gauges are there.
	metrics := scrape(t, addr)
	for _, re := range []string{
		`(?m)^oomguard_kills_total\{trigger="scope"\} 1$`,
		`(?m)^oomguard_scope_available_ratio\{cgroup="` + regexp.QuoteMeta(g.Memory.Path) + `"\} 0\.\d+`,
		`(?m)^oomguard_process_resident_memory_bytes \d+`,
		`(?m)^oomguard_kill_duration_seconds_count 1$`,
	} {
		if !regexp.MustCompile(re).MatchString(metrics) {
			t.Errorf("metrics lack %s:\n%s", re, metrics)
		}
	}

	// SIGHUP reloads without losing state.
	d.cmd.Process.Signal(syscall.SIGHUP)
	if !d.waitLog(10*time.Second, regexp.MustCompile(`configuration reloaded`)) {
		t.Fatalf("no reload after SIGHUP; log:\n%s", d.Log())
	}
	if m := scrape(t, addr); !regexp.MustCompile(`(?m)^oomguard_config_reloads_total\{result="ok"\} 1$`).MatchString(m) ||
		!regexp.MustCompile(`(?m)^oomguard_kills_total\{trigger="scope"\} 1$`).MatchString(m) {
		t.Fatalf("after reload, metrics lost state or did not count the reload:\n%s", m)
	}
	if !alive(t, byFD) {
		t.Fatalf("bystander %d died", byPID)
	}
}

// TestStatusWithoutDaemon: status exits non-zero and says no daemon runs there.
func TestStatusWithoutDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	_, stderr, code := oomguard(t, "status", "--socket", sock)
	if code == 0 || !strings.Contains(stderr, "no daemon is running at "+sock) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// TestConfigCheckNamesFileAndLine: a bad file is rejected with FILE:LINE.
func TestConfigCheckNamesFileAndLine(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[memory]\nterm_percent = 10\nkill_percent = \"lots\"\n"), 0o644)
	_, stderr, code := oomguard(t, "config", "check", bad)
	if code == 0 || !strings.Contains(stderr, bad+":3") {
		t.Fatalf("exit %d, stderr %q; want %s:3", code, stderr, bad)
	}
	if _, stderr, code := oomguard(t, "config", "check", "../etc/oomguard.toml"); code != 0 {
		t.Fatalf("the example configuration is invalid: %s", stderr)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s\n%s", resp.Status, b)
	}
	return string(b)
}

func freeLoopbackAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startPrivateBus runs a dbus-daemon of the test's own, listening in the
// test's temporary directory (the session default, /tmp, keeps the socket
// file after the daemon is killed), and returns its address.
func startPrivateBus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatal("dbus-daemon is not installed; scripts/setup.sh installs it")
	}
	cmd := exec.Command(bin, "--session", "--nofork", "--nopidfile", "--print-address=1",
		"--address=unix:dir="+t.TempDir())
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon printed no address: %v", err)
	}
	return strings.TrimSpace(line)
}
