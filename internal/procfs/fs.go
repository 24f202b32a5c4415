package procfs

import (
	"errors"
	"fmt"
	"strconv"
)

// DefaultRoot is where the kernel's proc filesystem is mounted.
const DefaultRoot = "/proc"

// FS is a proc filesystem mounted at Root. Tests point Root at a fixture tree.
type FS struct {
	// Root is the mount point, without a trailing slash.
	Root string
}

// NewFS returns the proc filesystem mounted at root; "" means DefaultRoot.
func NewFS(root string) FS {
	if root == "" {
		root = DefaultRoot
	}
	for len(root) > 1 && root[len(root)-1] == '/' {
		root = root[:len(root)-1]
	}
	return FS{Root: root}
}

// Path returns the path of name (for example "meminfo") under the root.
func (fs FS) Path(name string) string { return fs.Root + "/" + name }

// Val is a number read from a kernel file. OK is false when the file did not
// have it, which is not the same as zero.
type Val struct {
	N  uint64
	OK bool
}

// Get returns the number and whether the kernel provided it.
func (v Val) Get() (uint64, bool) { return v.N, v.OK }

// Some returns a present Val holding n.
func Some(n uint64) Val { return Val{N: n, OK: true} }

// Ptr returns a pointer to a copy of the number, or nil when it is absent,
// so that encoding/json writes an absent value as null.
func (v Val) Ptr() *uint64 {
	if !v.OK {
		return nil
	}
	n := v.N
	return &n
}

func (v *Val) set(n uint64) { v.N, v.OK = n, true }

// ErrSyntax is wrapped by every parse error: the file's content was not what
// the kernel writes.
var ErrSyntax = errors.New("malformed")

// ParseError says which file failed to parse, where, and why.
type ParseError struct {
	// Path is the file read.
	Path string
	// Line is the 1-based line of the problem, 0 when not line-based.
	Line int
	// Msg says what was wrong.
	Msg string
}

// Error returns the message with the file's path and, if known, its line.
func (e *ParseError) Error() string {
	if e.Line > 0 {
		return "parse " + e.Path + ": line " + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return "parse " + e.Path + ": " + e.Msg
}

// Unwrap lets errors.Is(err, ErrSyntax) hold for every ParseError.
func (e *ParseError) Unwrap() error { return ErrSyntax }

// syntaxErr is what parsers return: the line and message, without the path,
// which the reader adds (parsers only see bytes).
type syntaxErr struct {
	line int
	msg  string
}

func (e *syntaxErr) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func errAt(line int, msg string) error { return &syntaxErr{line: line, msg: msg} }

// withPath turns a parser's error into a ParseError naming path. Other errors
// are wrapped with the path.
func withPath(path string, err error) error {
	if err == nil {
		return nil
	}
	var se *syntaxErr
	if errors.As(err, &se) {
		return &ParseError{Path: path, Line: se.line, Msg: se.msg}
	}
	return fmt.Errorf("parse %s: %w", path, err)
}

// SyntaxError returns the error a parser of another package (cgroupfs)
// gives for malformed content at line n (0: the file as a whole). WithPath
// turns it into a *ParseError naming the file.
func SyntaxError(n int, msg string) error { return errAt(n, msg) }
