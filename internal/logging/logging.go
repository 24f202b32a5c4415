// Package logging builds the daemon's slog logger: plain text on a terminal,
// and lines prefixed with sd-daemon(3) priorities ("<3>", "<6>", …) when
// stderr is connected to journald, so journalctl shows the right levels.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Format selects how log lines are written.
type Format string

// The log formats.
const (
	// Auto picks Journal when $JOURNAL_STREAM says stderr goes to journald.
	Auto Format = "auto"
	// Text is slog's key=value text format.
	Text Format = "text"
	// Journal is Text without the time (journald adds it), prefixed with
	// the sd-daemon priority of the level.
	Journal Format = "journal"
)

// ParseLevel turns "debug", "info", "warn" or "error" into a level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// New returns a logger writing to w at level and above. With Auto, it
// writes Journal lines when w is the file that $JOURNAL_STREAM names.
func New(w io.Writer, level slog.Level, f Format) *slog.Logger {
	if f == Auto || f == "" {
		f = Text
		if file, ok := w.(*os.File); ok && IsJournalStream(os.Getenv, file) {
			f = Journal
		}
	}
	if f == Journal {
		return slog.New(&journalHandler{w: w, level: level, mu: new(sync.Mutex)})
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// IsJournalStream reports whether f is connected to the journal, as
// $JOURNAL_STREAM ("DEVICE:INODE", set by systemd for the service's stdout
// and stderr) says. A child that inherits the variable but writes
// elsewhere is not fooled.
func IsJournalStream(getenv func(string) string, f *os.File) bool {
	var dev, ino uint64
	if _, err := fmt.Sscanf(getenv("JOURNAL_STREAM"), "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// journalHandler writes one line per record, prefixed with the sd-daemon
// priority: <3> error, <4> warning, <6> info, <7> debug.
type journalHandler struct {
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
	group string
	mu    *sync.Mutex
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "<%d>", priority(r.Level))
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		v := a.Value.Resolve().String()
		if strings.ContainsAny(v, " \t\"=") {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, " %s=%s", key, v)
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}
