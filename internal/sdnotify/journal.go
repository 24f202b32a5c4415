package sdnotify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// IsJournalStream reports whether f (the daemon's stderr) is connected to
// the journal, as JOURNAL_STREAM ("DEVICE:INODE", set by systemd) says.
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

// Priority returns the syslog priority journald records for a slog level:
// debug 7, info 6, warn 4, error 3, and 2 (crit) for levels above error.
func Priority(l slog.Level) int {
	switch {
	case l < slog.LevelInfo:
		return 7
	case l < slog.LevelWarn:
		return 6
	case l < slog.LevelError:
		return 4
	case l == slog.LevelError:
		return 3
	}
	return 2
}

// NewJournalHandler returns a slog handler for stderr under systemd: each
// record is one logfmt line prefixed with its priority ("<4>"), which
// journald strips and records as PRIORITY (SyslogLevelPrefix=, on by
// default); the timestamp is left to journald. Safe for concurrent use.
func NewJournalHandler(w io.Writer, level slog.Leveler) slog.Handler {
	pw := &prefixWriter{w: w}
	inner := slog.NewTextHandler(pw, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return &journalHandler{inner: inner, pw: pw}
}

type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
	buf    []byte
}

// Write is called by the text handler once per record, under mu.
func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(append(p.buf[:0], p.prefix...), b...)
	_, err := p.w.Write(p.buf)
	return len(b), err
}

type journalHandler struct {
	inner slog.Handler
	pw    *prefixWriter
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.pw.mu.Lock()
	defer h.pw.mu.Unlock()
	h.pw.prefix = append(h.pw.prefix[:0], '<', byte('0'+Priority(r.Level)), '>')
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), pw: h.pw}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), pw: h.pw}
}
