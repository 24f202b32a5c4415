package cgroupfs

import (
	"bytes"

	"github.com/oomguard/oomguard/internal/procfs"
)

// Allocation-free scanning helpers for the memory and pressure parsers.

// eachStat calls f with the name and value of every "name value" line of
// b (memory.stat, memory.events, memory.oom_control), in order, skipping
// blank lines. A malformed line ends it with a syntax error for that line;
// f has then seen the lines before it.
func eachStat(b []byte, f func(key []byte, v uint64)) error {
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		if len(line) == 0 {
			continue
		}
		key, num, ok := twoFields(line)
		if !ok {
			return lineErr(n, "line is not \"name value\"")
		}
		v, ok := procfs.ParseUint(num)
		if !ok {
			return lineErr(n, "value is not a number")
		}
		f(key, v)
	}
	return nil
}

// twoFields splits "name value" (one space, as the kernel writes it).
func twoFields(line []byte) (key, value []byte, ok bool) {
	for i, c := range line {
		if c == ' ' {
			key, value = line[:i], line[i+1:]
			if len(key) == 0 || len(value) == 0 {
				return nil, nil, false
			}
			for _, d := range value {
				if d == ' ' {
					return nil, nil, false
				}
			}
			return key, value, true
		}
	}
	return nil, nil, false
}

// lineErr is a syntax error at line n (0: the file as a whole); readers turn
// it into a *procfs.ParseError naming the file with procfs.WithPath.
func lineErr(n int, msg string) error { return procfs.SyntaxError(n, msg) }
