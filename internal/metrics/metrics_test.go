package metrics

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sample is one parsed line of the exposition: name{labels} value.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleRe = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$`)
	labelRe  = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"`)
)

// parseText parses the text format strictly: every family has HELP then
// TYPE before its samples, sample names belong to the family, label syntax
// and values are valid. It returns the samples and each family's type.
func parseText(t *testing.T, r io.Reader) ([]sample, map[string]string) {
	t.Helper()
	var out []sample
	types := map[string]string{}
	var cur, curType string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# HELP "):
			cur = strings.Fields(line)[2]
			if _, dup := types[cur]; dup {
				t.Fatalf("line %d: family %s repeated", n, cur)
			}
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 || f[2] != cur {
				t.Fatalf("line %d: TYPE %q does not follow HELP of %s", n, line, cur)
			}
			curType = f[3]
			types[cur] = curType
		default:
			m := sampleRe.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("line %d: bad sample %q", n, line)
			}
			name := m[1]
			base := name
			if curType == "histogram" {
				base = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			}
			if base != cur {
				t.Fatalf("line %d: sample %s outside its family (current %s)", n, name, cur)
			}
			labels := map[string]string{}
			rest := m[3]
			for rest != "" {
				lm := labelRe.FindStringSubmatch(rest)
				if lm == nil {
					t.Fatalf("line %d: bad labels %q", n, m[3])
				}
				v := strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n").Replace(lm[2])
				labels[lm[1]] = v
				rest = strings.TrimPrefix(rest[len(lm[0]):], ",")
			}
			v, err := strconv.ParseFloat(m[4], 64)
			if err != nil {
				t.Fatalf("line %d: bad value %q", n, m[4])
			}
			out = append(out, sample{name, labels, v})
		}
	}
	return out, types
}

func find(t *testing.T, ss []sample, name string, labels ...string) float64 {
	t.Helper()
next:
	for _, s := range ss {
		if s.name != name || len(s.labels) != len(labels)/2 {
			continue
		}
		for i := 0; i < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.value
	}
	t.Fatalf("no sample %s%v", name, labels)
	return 0
}

func TestExposition(t *testing.T) {
	r := NewRegistry()
	g := r.NewGauge("x_ratio", "A ratio.\nSecond line with \\.")
	cv := r.NewCounterVec("x_events_total", "Events.", "source", "kind")
	h := r.NewHistogram("x_seconds", "Durations.", []float64{0.1, 1})
	g.Set(0.25)
	cv.With("proc", "lost").Add(3)
	cv.With("proc", "lost").Inc()
	cv.With(`we"ird\`, "new\nline").Inc()
	cv.With("psi", "x").Add(-5) // ignored: counters only go up
	for _, v := range []float64{0.05, 0.5, 0.5, 7} {
		h.Observe(v)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	ss, types := parseText(t, strings.NewReader(b.String()))
	if types["x_ratio"] != "gauge" || types["x_events_total"] != "counter" || types["x_seconds"] != "histogram" {
		t.Errorf("types %v", types)
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"x_ratio", nil, 0.25},
		{"x_events_total", []string{"source", "proc", "kind", "lost"}, 4},
		{"x_events_total", []string{"source", `we"ird\`, "kind", "new\nline"}, 1},
		{"x_events_total", []string{"source", "psi", "kind", "x"}, 0},
		{"x_seconds_bucket", []string{"le", "0.1"}, 1},
		{"x_seconds_bucket", []string{"le", "1"}, 3},
		{"x_seconds_bucket", []string{"le", "+Inf"}, 4},
		{"x_seconds_sum", nil, 8.05},
		{"x_seconds_count", nil, 4},
	}
	for _, c := range checks {
		if got := find(t, ss, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v\n%s", c.name, c.labels, got, c.want, b.String())
		}
	}
	if !strings.Contains(b.String(), `# HELP x_ratio A ratio.\nSecond line with \\.`) {
		t.Errorf("HELP not escaped:\n%s", b.String())
	}
}

func TestRegisterRejects(t *testing.T) {
	for name, fn := range map[string]func(r *Registry){
		"counter without _total": func(r *Registry) { r.NewCounter("x_events", "") },
		"bad name":               func(r *Registry) { r.NewGauge("x-y", "") },
		"reserved label":         func(r *Registry) { r.NewHistogramVec("x_seconds", "", nil, "le") },
		"twice":                  func(r *Registry) { r.NewGauge("x", ""); r.NewGauge("x", "") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn(NewRegistry())
		}()
	}
}

func TestSettersDoNotAllocate(t *testing.T) {
	r := NewRegistry()
	g := r.NewGaugeVec("a_ratio", "", "resource").With("memory")
	c := r.NewCounterVec("b_total", "", "trigger").With("psi")
	h := r.NewHistogram("c_seconds", "", KillDurationBuckets)
	if n := testing.AllocsPerRun(100, func() { g.Set(0.5); c.Inc(); h.Observe(0.02) }); n != 0 {
		t.Errorf("setters allocate %v times per call", n)
	}
}

func TestParseStat(t *testing.T) {
	b, err := os.ReadFile("testdata/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	if st != (procStat{utime: 250, stime: 130, threads: 7, rssPages: 300}) {
		t.Errorf("parseStat = %+v", st)
	}
	for _, bad := range []string{"", "1 (x S 1 2", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 130 0 0 20 0 7 0 1 1 300\n"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestProcessFixture(t *testing.T) {
	r := NewRegistry()
	p := NewProcess(r, "testdata/proc/self")
	if err := p.Update(); err != nil {
		t.Fatal(err)
	}
	if err := p.Update(); err != nil { // a second reading must not double the counter
		t.Fatal(err)
	}
	var b strings.Builder
	r.WriteText(&b)
	ss, _ := parseText(t, strings.NewReader(b.String()))
	if got, want := find(t, ss, "oomguard_process_resident_memory_bytes"), 300*float64(os.Getpagesize()); got != want {
		t.Errorf("rss %v, want %v", got, want)
	}
	if got := find(t, ss, "oomguard_process_cpu_seconds_total"); got != 3.8 {
		t.Errorf("cpu %v, want 3.8", got)
	}
	if got := find(t, ss, "oomguard_process_threads"); got != 7 {
		t.Errorf("threads %v, want 7", got)
	}
}

func TestListenRejectsNonLoopback(t *testing.T) {
	for _, a := range []string{"0.0.0.0:0", ":0", "[::]:0", "localhost:0", "example.com:80", "unix:relative.sock", "10.0.0.1:9100"} {
		if l, err := Listen(a); err == nil {
			l.Close()
			t.Errorf("Listen(%q) accepted", a)
		}
	}
}

func scrape(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET %s: %s %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

// TestServeDaemon scrapes the daemon's metrics over loopback TCP and a unix
// socket, with the process metrics read from the real /proc/self.
func TestServeDaemon(t *testing.T) {
	d := NewDaemon("1.2.3", "/proc")
	d.MemAvailable.Set(0.42)
	d.PressureSome.With("memory", "").Set(0.031)
	d.Kills.With("psi").Inc()
	d.Kills.With("memory").Add(2)
	d.ForkBombsContained.Inc()
	d.KmemBudgetBreaches.With("kill-heaviest").Inc()
	d.EventLosses.With("proc_connector").Add(5)
	d.Resyncs.With("proc_connector").Inc()
	d.KillDuration.Observe(0.012)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "m.sock")
	ul, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 2)
	go func() { errc <- Serve(ctx, l, d.Registry) }()
	go func() { errc <- Serve(ctx, ul, d.Registry) }()

	body := scrape(t, http.DefaultClient, fmt.Sprintf("http://%s/metrics", l.Addr()))
	ss, types := parseText(t, strings.NewReader(body))
	for name, typ := range types {
		if typ == "counter" && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s lacks _total", name)
		}
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"oomguard_mem_available_ratio", nil, 0.42},
		{"oomguard_pressure_some_avg10_ratio", []string{"resource", "memory", "cgroup", ""}, 0.031},
		{"oomguard_kills_total", []string{"trigger", "psi"}, 1},
		{"oomguard_kills_total", []string{"trigger", "memory"}, 2},
		{"oomguard_forkbombs_contained_total", nil, 1},
		{"oomguard_kmem_budget_breaches_total", []string{"action", "kill-heaviest"}, 1},
		{"oomguard_event_losses_total", []string{"source", "proc_connector"}, 5},
		{"oomguard_resyncs_total", []string{"source", "proc_connector"}, 1},
		{"oomguard_kill_duration_seconds_count", nil, 1},
		{"oomguard_kill_duration_seconds_bucket", []string{"le", "0.01"}, 0},
		{"oomguard_kill_duration_seconds_bucket", []string{"le", "0.025"}, 1},
		{"oomguard_build_info", []string{"version", "1.2.3"}, 1},
	}
	for _, c := range checks {
		if got := find(t, ss, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if rss := find(t, ss, "oomguard_process_resident_memory_bytes"); rss < 1<<20 {
		t.Errorf("own RSS %v bytes: implausible", rss)
	}
	if cpu := find(t, ss, "oomguard_process_cpu_seconds_total"); cpu < 0 {
		t.Errorf("own CPU %v", cpu)
	}

	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	ubody := scrape(t, uc, "http://unix/metrics")
	parseText(t, strings.NewReader(ubody))
	if !strings.Contains(ubody, `oomguard_kills_total{trigger="psi"} 1`) {
		t.Errorf("unix socket scrape lacks kills:\n%s", ubody)
	}

	cancel()
	for range 2 {
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after cancel")
		}
	}
}

func FuzzParseStat(f *testing.F) {
	b, _ := os.ReadFile("testdata/proc/self/stat")
	f.Add(b)
	f.Add([]byte("1 ()) R 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStat(b)
	})
}

func TestConcurrentScrapes(t *testing.T) {
	d := NewDaemon("x", "/proc")
	done := make(chan bool)
	for range 4 {
		go func() {
			for range 20 {
				d.Registry.WriteText(io.Discard)
			}
			done <- true
		}()
	}
	for range 4 {
		<-done
	}
	var b strings.Builder
	d.Registry.WriteText(&b)
	ss, _ := parseText(t, strings.NewReader(b.String()))
	// CPU must stay the process's real CPU time, not a sum over scrapes.
	cpu := find(t, ss, "oomguard_process_cpu_seconds_total")
	raw, _ := os.ReadFile("/proc/self/stat")
	st, err := parseStat(raw)
	if err != nil {
		t.Fatal(err)
	}
	if real := float64(st.utime+st.stime) / userHZ; cpu > real+0.05 {
		t.Errorf("cpu counter %v above the real %v: concurrent scrapes double-counted", cpu, real)
	}
}
