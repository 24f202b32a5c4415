package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A value type of the configuration converts itself from the raw TOML value
// (string, int64, float64, bool) and reports what was wrong with it.
type fromTOML interface {
	fromTOML(raw any) error
}

// Size is an amount of memory in bytes. In the file it is an integer (bytes)
// or a string with a binary suffix: "64M", "1G", "512MiB", "4k". K, M, G and T
// (in either case) are powers of 1024 whether or not they are followed by
// "iB" or "B", as in systemd unit files.
type Size uint64

// ParseSize parses a size as written in the configuration file.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, suffix := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, fmt.Errorf("bad size %q: want a number with an optional K, M, G or T suffix", s)
	}
	mult := uint64(1)
	switch strings.TrimSuffix(strings.TrimSuffix(suffix, "B"), "i") {
	case "":
		if suffix != "" && suffix != "B" {
			return 0, fmt.Errorf("bad size %q: unknown suffix %q", s, suffix)
		}
	case "K", "k":
		mult = 1 << 10
	case "M", "m":
		mult = 1 << 20
	case "G", "g":
		mult = 1 << 30
	case "T", "t":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("bad size %q: unknown suffix %q (want K, M, G or T)", s, suffix)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q: %w", s, err)
	}
	v := f * float64(mult)
	if v >= math.MaxUint64 || math.IsNaN(v) {
		return 0, fmt.Errorf("bad size %q: too large", s)
	}
	if mult == 1 && strings.Contains(num, ".") {
		return 0, fmt.Errorf("bad size %q: fractional bytes", s)
	}
	return Size(v), nil
}

// String formats the size with the largest binary suffix that divides it
// exactly ("64MiB"), or in plain bytes.
func (s Size) String() string {
	for _, u := range []struct {
		shift  uint
		suffix string
	}{{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if s != 0 && uint64(s)%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", uint64(s)>>u.shift, u.suffix)
		}
	}
	return strconv.FormatUint(uint64(s), 10)
}

// Bytes returns the size in bytes.
func (s Size) Bytes() uint64 { return uint64(s) }

// MarshalText writes the size as String does.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a size as ParseSize does.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

func (s *Size) fromTOML(raw any) error {
	switch v := raw.(type) {
	case int64:
		if v < 0 {
			return fmt.Errorf("bad size %d: negative", v)
		}
		*s = Size(v)
		return nil
	case string:
		return s.UnmarshalText([]byte(v))
	}
	return fmt.Errorf("bad size: want an integer (bytes) or a string like \"64M\", got %s", tomlType(raw))
}

// Percent is a percentage between 0 and 100 inclusive. In the file it is an
// integer or a float.
type Percent float64

// Ratio returns the percentage as a fraction between 0 and 1.
func (p Percent) Ratio() float64 { return float64(p) / 100 }

// ParsePercent parses "10", "2.5" or "10%".
func ParsePercent(s string) (Percent, error) {
	f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil {
		return 0, fmt.Errorf("bad percentage %q: want a number between 0 and 100", s)
	}
	return checkPercent(f)
}

func checkPercent(f float64) (Percent, error) {
	if math.IsNaN(f) || f < 0 || f > 100 {
		return 0, fmt.Errorf("bad percentage %v: want a number between 0 and 100", f)
	}
	return Percent(f), nil
}

// MarshalTOML writes the percentage as a bare TOML number.
func (p Percent) MarshalTOML() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(p), 'f', -1, 64)), nil
}

func (p *Percent) fromTOML(raw any) error {
	var f float64
	switch v := raw.(type) {
	case int64:
		f = float64(v)
	case float64:
		f = v
	default:
		return fmt.Errorf("bad percentage: want a number between 0 and 100, got %s", tomlType(raw))
	}
	v, err := checkPercent(f)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Duration is a non-negative time span written as a Go duration string:
// "150ms", "2s", "1m30s".
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration parses a non-negative duration.
func ParseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want a number with a unit, like \"150ms\" or \"2s\"", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("bad duration %q: negative", s)
	}
	return Duration(v), nil
}

// String formats the duration as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the duration as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a duration as ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func (d *Duration) fromTOML(raw any) error {
	s, ok := raw.(string)
	if !ok {
		return fmt.Errorf("bad duration: want a string with a unit like \"2s\", got %s", tomlType(raw))
	}
	return d.UnmarshalText([]byte(s))
}

// Regexp is a compiled regular expression (RE2 syntax) that remembers its
// source. Rules match it against a process's comm or its command line.
type Regexp struct {
	*regexp.Regexp
}

// MustRegexp compiles expr and panics on error; for tests and defaults.
func MustRegexp(expr string) Regexp { return Regexp{regexp.MustCompile(expr)} }

// MarshalText writes the source of the expression.
func (r Regexp) MarshalText() ([]byte, error) {
	if r.Regexp == nil {
		return nil, nil
	}
	return []byte(r.String()), nil
}

// UnmarshalText compiles the expression.
func (r *Regexp) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("bad regular expression: empty (it would match every process)")
	}
	re, err := regexp.Compile(string(b))
	if err != nil {
		return fmt.Errorf("bad regular expression %q: %w", b, err)
	}
	r.Regexp = re
	return nil
}

func (r *Regexp) fromTOML(raw any) error {
	s, ok := raw.(string)
	if !ok {
		return fmt.Errorf("bad regular expression: want a string, got %s", tomlType(raw))
	}
	return r.UnmarshalText([]byte(s))
}

// enum checks raw against a closed set of words.
func enum(raw any, allowed ...string) (string, error) {
	s, ok := raw.(string)
	if !ok {
		return "", fmt.Errorf("want one of %s, got %s", strings.Join(allowed, "|"), tomlType(raw))
	}
	for _, a := range allowed {
		if s == a {
			return s, nil
		}
	}
	return "", fmt.Errorf("bad value %q: want one of %s", s, strings.Join(allowed, "|"))
}

// Resource is a PSI resource: memory, io or cpu.
type Resource string

// The PSI resources.
const (
	ResourceMemory Resource = "memory"
	ResourceIO     Resource = "io"
	ResourceCPU    Resource = "cpu"
)

func (r *Resource) fromTOML(raw any) error {
	s, err := enum(raw, "memory", "io", "cpu")
	*r = Resource(s)
	return err
}

// StallKind is the PSI line a trigger watches: some or full.
type StallKind string

// The PSI stall kinds.
const (
	KindSome StallKind = "some"
	KindFull StallKind = "full"
)

func (k *StallKind) fromTOML(raw any) error {
	s, err := enum(raw, "some", "full")
	*k = StallKind(s)
	return err
}

// Level is what a trigger asks for when it fires: term (SIGTERM first, with
// the kill.term_grace period) or kill (SIGKILL at once).
type Level string

// The trigger levels.
const (
	LevelTerm Level = "term"
	LevelKill Level = "kill"
)

func (l *Level) fromTOML(raw any) error {
	s, err := enum(raw, "term", "kill")
	*l = Level(s)
	return err
}

// KmemAction is what the daemon does to a cgroup over its kernel-memory
// budget.
type KmemAction string

// The kernel-memory budget actions.
const (
	// KmemKillHeaviest kills the process with the largest kernel-memory
	// footprint inside the cgroup.
	KmemKillHeaviest KmemAction = "kill-heaviest"
	// KmemKillCgroup freezes the cgroup and kills every process in it.
	KmemKillCgroup KmemAction = "kill-cgroup"
	// KmemReport only counts and logs the breach.
	KmemReport KmemAction = "report"
)

func (a *KmemAction) fromTOML(raw any) error {
	s, err := enum(raw, "kill-heaviest", "kill-cgroup", "report")
	*a = KmemAction(s)
	return err
}

// ParseKmemAction checks s against the kernel-memory budget actions.
func ParseKmemAction(s string) (KmemAction, error) {
	var a KmemAction
	err := a.fromTOML(s)
	return a, err
}

// LogLevel is the least severe log level written: debug, info, warn, error.
type LogLevel string

func (l *LogLevel) fromTOML(raw any) error {
	s, err := enum(raw, "debug", "info", "warn", "error")
	*l = LogLevel(s)
	return err
}

// LogFormat selects the log output: text (logfmt on stderr), journal (lines
// with sd-daemon "<N>" priority prefixes for journald) or auto (journal when
// stderr is connected to the journal, as $JOURNAL_STREAM says; text otherwise).
type LogFormat string

func (f *LogFormat) fromTOML(raw any) error {
	s, err := enum(raw, "auto", "text", "journal")
	*f = LogFormat(s)
	return err
}

// FileMode is a permission mode written as an octal string, "0600".
type FileMode uint32

// MarshalText writes the mode as four octal digits.
func (m FileMode) MarshalText() ([]byte, error) { return []byte(fmt.Sprintf("%04o", uint32(m))), nil }

func (m *FileMode) fromTOML(raw any) error {
	s, ok := raw.(string)
	if !ok {
		return fmt.Errorf("bad mode: want an octal string like \"0660\", got %s", tomlType(raw))
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return fmt.Errorf("bad mode %q: want an octal permission like \"0660\"", s)
	}
	*m = FileMode(v)
	return nil
}

func tomlType(raw any) string {
	switch raw.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date-time"
	}
	return fmt.Sprintf("%T", raw)
}
