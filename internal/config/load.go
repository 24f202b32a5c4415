package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Error is one rejected setting: where it was written, its key and why it
// was rejected.
type Error struct {
	// File is the configuration file, or the flag ("--mem-kill") the value
	// came from; empty for a built-in default.
	File string
	// Line is the 1-based line of the key in File; 0 when unknown.
	Line int
	// Key is the dotted key with array indexes: "memory.kill_percent",
	// "psi[1].stall".
	Key string
	// Msg says what is wrong.
	Msg string
}

// Error returns the message with its file, line and key.
func (e *Error) Error() string {
	key := e.Key
	if key != "" {
		key += ": "
	}
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s%s", e.File, e.Line, key, e.Msg)
	case e.File != "":
		return fmt.Sprintf("%s: %s%s", e.File, key, e.Msg)
	}
	return key + e.Msg
}

// ErrorList holds every error found, ordered by file and line.
type ErrorList []*Error

// Error returns every error's message, one per line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load returns the default configuration overlaid with the file at path and
// then with every *.toml in dropinDir, in lexical order. An empty path or
// dropinDir is skipped; a missing dropinDir is fine, a missing main file is
// an error that wraps fs.ErrNotExist.
//
// A key set in a later file replaces the earlier value; tables merge key by
// key, arrays (including [[psi]] and [[kmem.budget]]) are replaced whole.
//
// Any unknown key, wrong type, bad value or inconsistent combination is an
// error: the result is then an ErrorList (or a read error) and no Config.
func Load(path, dropinDir string) (*Config, error) {
	files := []string{}
	if path != "" {
		files = append(files, path)
	}
	if dropinDir != "" {
		m, err := filepath.Glob(filepath.Join(dropinDir, "*.toml"))
		if err != nil {
			return nil, fmt.Errorf("drop-in directory %s: %w", dropinDir, err)
		}
		sort.Strings(m)
		files = append(files, m...)
	}
	l := NewLoader()
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		l.Add(f, src)
	}
	return l.Finish()
}

// Loader merges configuration sources one by one; Load is the usual entry.
// A Loader is used once, by one goroutine.
type Loader struct {
	cfg    *Config
	origin map[string]*Error // key -> where it was last set (Msg unused)
	errs   ErrorList
	files  []string
}

// NewLoader starts from Default.
func NewLoader() *Loader {
	return &Loader{cfg: Default(), origin: map[string]*Error{}}
}

// Add merges the TOML text src, named file in errors, into the configuration.
// Errors are collected and returned by Finish.
func (l *Loader) Add(file string, src []byte) {
	var raw map[string]any
	_, err := toml.Decode(string(src), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if msg == "" {
				msg = err.Error()
			}
			line := pe.Position.Line
			if st := pe.Position.Start; st > 0 && st <= len(src) {
				// The parser counts an unexpected end of line as the next
				// line; the offending key is on the line that ends there.
				line = 1 + bytes.Count(src[:st], []byte("\n"))
			}
			l.errs = append(l.errs, &Error{File: file, Line: line, Msg: "syntax error: " + msg})
			return
		}
		l.errs = append(l.errs, &Error{File: file, Line: 1, Msg: err.Error()})
		return
	}
	start := len(l.errs)
	l.files = append(l.files, file)
	d := &decoder{file: file, lines: locate(string(src)), l: l}
	d.table(raw, reflect.ValueOf(l.cfg).Elem(), "")
	added := l.errs[start:]
	sort.SliceStable(added, func(i, j int) bool { return added[i].Line < added[j].Line })
}

// Finish validates the merged configuration and returns it, or every error
// found so far as an ErrorList.
func (l *Loader) Finish() (*Config, error) {
	errs := l.errs
	if len(errs) == 0 {
		if err := l.cfg.Validate(); err != nil {
			var vl ErrorList
			if !errors.As(err, &vl) {
				return nil, err
			}
			for _, e := range vl {
				errs = append(errs, l.place(e))
			}
			sort.SliceStable(errs, func(i, j int) bool {
				if ri, rj := l.rank(errs[i].File), l.rank(errs[j].File); ri != rj {
					return ri < rj
				}
				return errs[i].Line < errs[j].Line
			})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return l.cfg, nil
}

// place fills in where the key of a validation error was set. A validation
// error lists its keys as "a, b" when they conflict: the one set last (the
// latest file, then the latest line) is blamed. A key left at its default
// inside a written table entry is placed at the entry ("psi[0]").
func (l *Loader) place(e *Error) *Error {
	var best *Error
	for _, k := range strings.Split(e.Key, ", ") {
		o := l.originOf(k)
		if o == nil {
			continue
		}
		if best == nil || l.rank(o.File) > l.rank(best.File) || (o.File == best.File && o.Line > best.Line) {
			best = o
		}
	}
	if best == nil {
		return e
	}
	return &Error{File: best.File, Line: best.Line, Key: e.Key, Msg: e.Msg}
}

func (l *Loader) originOf(key string) *Error {
	for k := key; k != ""; {
		if o, ok := l.origin[k]; ok {
			return o
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 || !strings.Contains(k[:i], "[") {
			// Only table entries of arrays stand in for their keys: a
			// default in a plain table was not written by anyone.
			return nil
		}
		k = k[:i]
	}
	return nil
}

func (l *Loader) rank(f string) int {
	for i, g := range l.files {
		if g == f {
			return i
		}
	}
	return len(l.files)
}

type decoder struct {
	file  string
	lines map[string]int
	l     *Loader
}

func (d *decoder) errorf(key, format string, args ...any) {
	d.l.errs = append(d.l.errs, &Error{File: d.file, Line: lookupLine(d.lines, key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) set(key string) {
	d.l.origin[key] = &Error{File: d.file, Line: lookupLine(d.lines, key), Key: key}
}

var fromTOMLType = reflect.TypeOf((*fromTOML)(nil)).Elem()

// table decodes the TOML table raw into the struct rv, key by key.
func (d *decoder) table(raw map[string]any, rv reflect.Value, prefix string) {
	rt := rv.Type()
	for name, val := range raw {
		key := prefix + name
		idx := fieldByTag(rt, name)
		if idx < 0 {
			d.errorf(key, "unknown key %q%s", name, suggest(rt, name))
			continue
		}
		d.value(val, rv.Field(idx), key)
	}
}

func (d *decoder) value(val any, fv reflect.Value, key string) {
	if fv.Addr().Type().Implements(fromTOMLType) {
		if err := fv.Addr().Interface().(fromTOML).fromTOML(val); err != nil {
			d.errorf(key, "%v", err)
			return
		}
		d.set(key)
		return
	}
	switch fv.Kind() {
	case reflect.String:
		s, ok := val.(string)
		if !ok {
			d.errorf(key, "want a string, got %s", tomlType(val))
			return
		}
		fv.SetString(s)
	case reflect.Bool:
		b, ok := val.(bool)
		if !ok {
			d.errorf(key, "want true or false, got %s", tomlType(val))
			return
		}
		fv.SetBool(b)
	case reflect.Int:
		n, ok := val.(int64)
		if !ok {
			d.errorf(key, "want an integer, got %s", tomlType(val))
			return
		}
		fv.SetInt(n)
	case reflect.Float64:
		switch n := val.(type) {
		case int64:
			fv.SetFloat(float64(n))
		case float64:
			fv.SetFloat(n)
		default:
			d.errorf(key, "want a number, got %s", tomlType(val))
			return
		}
	case reflect.Struct:
		m, ok := val.(map[string]any)
		if !ok {
			d.errorf(key, "want a table [%s], got %s", key, tomlType(val))
			return
		}
		d.table(m, fv, key+".")
		return
	case reflect.Slice:
		d.slice(val, fv, key)
		return
	default:
		panic(fmt.Sprintf("config: field %s has unsupported kind %s", key, fv.Kind()))
	}
	d.set(key)
}

// slice replaces the slice fv with the TOML array val.
func (d *decoder) slice(val any, fv reflect.Value, key string) {
	var items []any
	switch a := val.(type) {
	case []any:
		items = a
	case []map[string]any:
		for _, m := range a {
			items = append(items, m)
		}
	default:
		d.errorf(key, "want an array, got %s", tomlType(val))
		return
	}
	for k := range d.l.origin {
		if strings.HasPrefix(k, key+"[") {
			delete(d.l.origin, k)
		}
	}
	et := fv.Type().Elem()
	out := reflect.MakeSlice(fv.Type(), len(items), len(items))
	for i, it := range items {
		ek := fmt.Sprintf("%s[%d]", key, i)
		ev := out.Index(i)
		if et.Kind() == reflect.Struct && !reflect.PointerTo(et).Implements(fromTOMLType) {
			switch et {
			case reflect.TypeOf(PSI{}):
				ev.Set(reflect.ValueOf(newPSI()))
			case reflect.TypeOf(KmemBudget{}):
				ev.Set(reflect.ValueOf(newKmemBudget()))
			}
			m, ok := it.(map[string]any)
			if !ok {
				d.errorf(ek, "want a table, got %s", tomlType(it))
				continue
			}
			d.table(m, ev, ek+".")
			d.set(ek)
			continue
		}
		d.value(it, ev, ek)
	}
	fv.Set(out)
	d.set(key)
}

func fieldByTag(rt reflect.Type, name string) int {
	for i := 0; i < rt.NumField(); i++ {
		if strings.Split(rt.Field(i).Tag.Get("toml"), ",")[0] == name {
			return i
		}
	}
	return -1
}

// suggest names a key that differs only in case or by a typo, for errors.
func suggest(rt reflect.Type, name string) string {
	var keys []string
	for i := 0; i < rt.NumField(); i++ {
		k := strings.Split(rt.Field(i).Tag.Get("toml"), ",")[0]
		if strings.EqualFold(k, name) || strings.ReplaceAll(k, "_", "") == strings.ReplaceAll(strings.ToLower(name), "-", "") {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
		keys = append(keys, k)
	}
	return " (known keys: " + strings.Join(keys, ", ") + ")"
}

// lookupLine finds the line of key, or of the nearest enclosing key or
// table when key itself was not written on a line of its own (inline
// tables).
func lookupLine(lines map[string]int, key string) int {
	for k := key; k != ""; {
		if n, ok := lines[k]; ok {
			return n
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// locate maps every key written in src to its 1-based line, with keys in the
// form used by Error.Key: "memory.kill_percent", "psi[1].stall",
// "kmem.budget[0]". It understands tables, arrays of tables, dotted and
// quoted keys, and values spanning lines (arrays, multi-line strings); keys
// inside inline tables are not located (their parent key is).
func locate(src string) map[string]int {
	lines := map[string]int{}
	count := map[string]int{}
	table := ""
	depth := 0 // open brackets of a multi-line array value
	inML := "" // the delimiter of an open multi-line string
	for i, line := range strings.Split(src, "\n") {
		n := i + 1
		if inML != "" {
			if strings.Contains(line, inML) {
				inML = ""
			}
			continue
		}
		if depth > 0 {
			depth += bracketDelta(line)
			continue
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		if strings.HasPrefix(t, "[[") {
			name := normKey(strings.TrimSuffix(strings.TrimSpace(stripComment(t)[2:]), "]]"))
			idx := count[name]
			count[name]++
			table = fmt.Sprintf("%s[%d]", name, idx)
			lines[table] = n
			continue
		}
		if t[0] == '[' {
			table = normKey(strings.TrimSuffix(strings.TrimSpace(stripComment(t)[1:]), "]"))
			lines[table] = n
			continue
		}
		eq := indexOutsideQuotes(t, '=')
		if eq < 0 {
			continue
		}
		key := normKey(t[:eq])
		if table != "" {
			key = table + "." + key
		}
		if _, dup := lines[key]; !dup {
			lines[key] = n
		}
		rest := strings.TrimSpace(t[eq+1:])
		switch {
		case strings.HasPrefix(rest, `"""`) || strings.HasPrefix(rest, `'''`):
			delim := rest[:3]
			if !strings.Contains(rest[3:], delim) {
				inML = delim
			}
		case strings.HasPrefix(rest, "["):
			depth = bracketDelta(rest)
		}
	}
	return lines
}

// normKey turns `a . "b" . c` into a.b.c.
func normKey(s string) string {
	var parts []string
	for _, p := range splitOutsideQuotes(strings.TrimSpace(s), '.') {
		p = strings.TrimSpace(p)
		if u, err := strconv.Unquote(p); err == nil && strings.HasPrefix(p, `"`) {
			p = u
		} else if len(p) >= 2 && p[0] == '\'' && p[len(p)-1] == '\'' {
			p = p[1 : len(p)-1]
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ".")
}

func stripComment(s string) string {
	if i := indexOutsideQuotes(s, '#'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

// bracketDelta counts [ minus ] outside strings and comments.
func bracketDelta(s string) int {
	d := 0
	eachOutsideQuotes(s, func(_ int, c byte) bool {
		switch c {
		case '#':
			return false
		case '[':
			d++
		case ']':
			d--
		}
		return true
	})
	return d
}

// indexOutsideQuotes returns the index of the first sep in s outside a
// quoted string, or -1.
func indexOutsideQuotes(s string, sep byte) int {
	at := -1
	eachOutsideQuotes(s, func(i int, c byte) bool {
		if c == sep {
			at = i
			return false
		}
		return true
	})
	return at
}

// eachOutsideQuotes calls visit with each byte of s that is not part of a
// TOML string ("basic", with backslash escapes, or 'literal'), quotes
// included, until visit returns false.
func eachOutsideQuotes(s string, visit func(i int, c byte) bool) {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == '\\' && q == '"' {
				i++
			} else if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		default:
			if !visit(i, c) {
				return
			}
		}
	}
}

func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	for {
		i := indexOutsideQuotes(s, sep)
		if i < 0 {
			return append(out, s)
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
}
