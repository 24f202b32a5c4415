// Package procfs reads the /proc files oomguard needs with hand-written
// parsers that allocate nothing, so the daemon's periodic scans stay free of
// garbage.
//
// Each kernel file has its own source file. The exported methods of Reader do
// the I/O; unexported parsers take the file's bytes, so they are tested on
// fixtures and fuzzed with no filesystem at all. A value the running kernel
// does not provide is told apart from zero (Val.OK, or an error).
package procfs
