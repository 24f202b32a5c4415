// Package metrics is a small, allocation-free Prometheus text exposition of
// the daemon's gauges, counters and histograms, served on loopback or a
// unix socket only.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metric families in registration order. Registering is done
// at start-up; setting values is safe for concurrent use and does not
// allocate once a series has been resolved with With.
type Registry struct {
	mu       sync.Mutex
	families []*family
	names    map[string]bool
	collect  []func()
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

type kind int

const (
	kindGauge kind = iota
	kindCounter
	kindHistogram
)

func (k kind) String() string {
	return [...]string{"gauge", "counter", "histogram"}[k]
}

type family struct {
	name, help string
	kind       kind
	labels     []string
	buckets    []float64 // histograms

	mu     sync.Mutex
	series map[string]*series
}

type series struct {
	labelValues []string
	bits        atomic.Uint64 // float64 value (gauge, counter) or sum (histogram)
	count       atomic.Uint64 // histogram observations
	buckets     []atomic.Uint64
}

func (r *Registry) register(name, help string, k kind, buckets []float64, labels []string) *family {
	if !validName(name) {
		panic(fmt.Sprintf("metrics: bad metric name %q", name))
	}
	for _, l := range labels {
		if !validName(l) || strings.HasPrefix(l, "__") || l == "le" {
			panic(fmt.Sprintf("metrics: bad label name %q for %s", l, name))
		}
	}
	if k == kindCounter && !strings.HasSuffix(name, "_total") {
		panic(fmt.Sprintf("metrics: counter %s must end in _total", name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names[name] {
		panic(fmt.Sprintf("metrics: %s registered twice", name))
	}
	r.names[name] = true
	f := &family{name: name, help: help, kind: k, labels: labels, buckets: buckets, series: map[string]*series{}}
	r.families = append(r.families, f)
	return f
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (f *family) with(values []string) *series {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s wants %d label values, got %d", f.name, len(f.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.series[key]
	if !ok {
		s = &series{labelValues: slices.Clone(values)}
		if f.kind == kindHistogram {
			s.buckets = make([]atomic.Uint64, len(f.buckets))
		}
		f.series[key] = s
	}
	return s
}

// OnScrape registers fn to run before every exposition, to refresh values
// that are cheaper to read on demand (the process's own RSS and CPU).
func (r *Registry) OnScrape(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collect = append(r.collect, fn)
}

// Gauge is one gauge series.
type Gauge struct{ s *series }

// Set sets the gauge.
func (g Gauge) Set(v float64) { g.s.bits.Store(math.Float64bits(v)) }

// Value returns the current value.
func (g Gauge) Value() float64 { return math.Float64frombits(g.s.bits.Load()) }

// Counter is one counter series; it only goes up.
type Counter struct{ s *series }

// Inc adds 1.
func (c Counter) Inc() { c.Add(1) }

// Add adds v, which must not be negative (negative values are ignored).
func (c Counter) Add(v float64) {
	if !(v > 0) {
		return
	}
	addFloat(&c.s.bits, v)
}

// Value returns the current value.
func (c Counter) Value() float64 { return math.Float64frombits(c.s.bits.Load()) }

func addFloat(a *atomic.Uint64, v float64) {
	for {
		old := a.Load()
		if a.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Histogram is one histogram series.
type Histogram struct {
	s     *series
	upper []float64
}

// Observe records one value.
func (h Histogram) Observe(v float64) {
	for i, ub := range h.upper {
		if v <= ub {
			h.s.buckets[i].Add(1)
		}
	}
	addFloat(&h.s.bits, v)
	h.s.count.Add(1)
}

// Count returns the number of observations.
func (h Histogram) Count() uint64 { return h.s.count.Load() }

// GaugeVec is a gauge family with labels.
type GaugeVec struct{ f *family }

// CounterVec is a counter family with labels.
type CounterVec struct{ f *family }

// HistogramVec is a histogram family with labels.
type HistogramVec struct{ f *family }

// NewGauge registers a gauge without labels.
func (r *Registry) NewGauge(name, help string) Gauge {
	return Gauge{r.register(name, help, kindGauge, nil, nil).with(nil)}
}

// NewCounter registers a counter without labels; name must end in _total.
func (r *Registry) NewCounter(name, help string) Counter {
	return Counter{r.register(name, help, kindCounter, nil, nil).with(nil)}
}

// NewHistogram registers a histogram without labels with the given upper
// bounds (sorted ascending; +Inf is implicit).
func (r *Registry) NewHistogram(name, help string, buckets []float64) Histogram {
	f := r.register(name, help, kindHistogram, slices.Clone(buckets), nil)
	return Histogram{f.with(nil), f.buckets}
}

// NewGaugeVec registers a gauge family with the given label names.
func (r *Registry) NewGaugeVec(name, help string, labels ...string) GaugeVec {
	return GaugeVec{r.register(name, help, kindGauge, nil, labels)}
}

// NewCounterVec registers a counter family with the given label names.
func (r *Registry) NewCounterVec(name, help string, labels ...string) CounterVec {
	return CounterVec{r.register(name, help, kindCounter, nil, labels)}
}

// NewHistogramVec registers a histogram family with the given label names.
func (r *Registry) NewHistogramVec(name, help string, buckets []float64, labels ...string) HistogramVec {
	return HistogramVec{r.register(name, help, kindHistogram, slices.Clone(buckets), labels)}
}

// With returns the series for the label values, in the order of the label
// names, creating it at 0 on first use. It allocates on first use: resolve
// hot series once and keep them.
func (v GaugeVec) With(values ...string) Gauge { return Gauge{v.f.with(values)} }

// With returns the series for the label values, as GaugeVec.With.
func (v CounterVec) With(values ...string) Counter { return Counter{v.f.with(values)} }

// With returns the series for the label values, as GaugeVec.With.
func (v HistogramVec) With(values ...string) Histogram {
	return Histogram{v.f.with(values), v.f.buckets}
}

// Delete removes the series with the label values (a cgroup that is gone).
func (v GaugeVec) Delete(values ...string) {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	delete(v.f.series, strings.Join(values, "\xff"))
}

// WriteText writes every family in the Prometheus text exposition format
// (version 0.0.4), series sorted by label values.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	collect := slices.Clone(r.collect)
	fams := slices.Clone(r.families)
	r.mu.Unlock()
	for _, fn := range collect {
		fn()
	}
	bw := bufio.NewWriter(w)
	var num []byte
	for _, f := range fams {
		f.mu.Lock()
		ss := make([]*series, 0, len(f.series))
		for _, s := range f.series {
			ss = append(ss, s)
		}
		f.mu.Unlock()
		slices.SortFunc(ss, func(a, b *series) int { return slices.Compare(a.labelValues, b.labelValues) })
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.kind)
		for _, s := range ss {
			switch f.kind {
			case kindGauge, kindCounter:
				writeSample(bw, f.name, "", f.labels, s.labelValues, "", "", math.Float64frombits(s.bits.Load()), &num)
			case kindHistogram:
				count := s.count.Load()
				for i, ub := range f.buckets {
					writeSample(bw, f.name, "_bucket", f.labels, s.labelValues, "le", string(formatFloat(nil, ub)), float64(s.buckets[i].Load()), &num)
				}
				writeSample(bw, f.name, "_bucket", f.labels, s.labelValues, "le", "+Inf", float64(count), &num)
				writeSample(bw, f.name, "_sum", f.labels, s.labelValues, "", "", math.Float64frombits(s.bits.Load()), &num)
				writeSample(bw, f.name, "_count", f.labels, s.labelValues, "", "", float64(count), &num)
			}
		}
	}
	return bw.Flush()
}

func writeSample(w *bufio.Writer, name, suffix string, labels, values []string, extraName, extraValue string, v float64, num *[]byte) {
	w.WriteString(name)
	w.WriteString(suffix)
	if len(labels) > 0 || extraName != "" {
		w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(l)
			w.WriteString(`="`)
			writeEscaped(w, values[i])
			w.WriteByte('"')
		}
		if extraName != "" {
			if len(labels) > 0 {
				w.WriteByte(',')
			}
			w.WriteString(extraName)
			w.WriteString(`="`)
			w.WriteString(extraValue)
			w.WriteByte('"')
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	*num = formatFloat((*num)[:0], v)
	w.Write(*num)
	w.WriteByte('\n')
}

func formatFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func writeEscaped(w *bufio.Writer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			w.WriteString(`\\`)
		case '"':
			w.WriteString(`\"`)
		case '\n':
			w.WriteString(`\n`)
		default:
			w.WriteByte(c)
		}
	}
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// ServeHTTP answers GET /metrics (any path) with the text exposition.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if req.Method == http.MethodHead {
		return
	}
	r.WriteText(w)
}
