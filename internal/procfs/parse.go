package procfs

// Small allocation-free scanners shared by the parsers.

// nextLine splits b at the first newline. A last line without a newline is
// returned whole.
func nextLine(b []byte) (line, rest []byte) {
	for i, c := range b {
		if c == '\n' {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// isSpace reports whether c separates fields in kernel files.
func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// nextField skips leading blanks and returns the next blank-separated field.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isSpace(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}

// ParseUint parses b as an unsigned decimal number that fits in 64 bits: one
// to twenty ASCII digits, no sign, blanks or other text. ok is false for
// anything else, including overflow. It does not allocate, which is why the
// kernel-file parsers of procfs and cgroupfs use it instead of strconv.
func ParseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// parseInt parses an optionally negative decimal number.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	u, ok := ParseUint(b)
	if !ok || u > 1<<63 || (!neg && u == 1<<63) {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// parseHex parses a hexadecimal number with an optional 0x prefix.
func parseHex(b []byte) (uint64, bool) {
	if len(b) >= 2 && b[0] == '0' && (b[1] == 'x' || b[1] == 'X') {
		b = b[2:]
	}
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(d)
	}
	return n, true
}

// parseDecimal parses a non-negative fixed-point number such as "43.57", as
// PSI averages are written.
func parseDecimal(b []byte) (float64, bool) {
	ip, fp := b, []byte(nil)
	for i, c := range b {
		if c == '.' {
			ip, fp = b[:i], b[i+1:]
			if len(fp) == 0 {
				return 0, false
			}
			break
		}
	}
	n, ok := ParseUint(ip)
	if !ok || len(fp) > 18 {
		return 0, false
	}
	v := float64(n)
	if len(fp) > 0 {
		f, ok := ParseUint(fp)
		if !ok {
			return 0, false
		}
		scale := 1.0
		for range fp {
			scale *= 10
		}
		v += float64(f) / scale
	}
	return v, true
}

// parseKB parses the value of a "Key:   1234 kB" line: the number, times 1024
// when the kB unit follows. Any other trailing text is an error.
func parseKB(b []byte) (uint64, bool) {
	num, rest := nextField(b)
	n, ok := ParseUint(num)
	if !ok {
		return 0, false
	}
	unit, rest := nextField(rest)
	if len(unit) == 0 {
		return n, true
	}
	if string(unit) != "kB" {
		return 0, false
	}
	if extra, _ := nextField(rest); len(extra) != 0 {
		return 0, false
	}
	if n > ^uint64(0)>>10 {
		return 0, false
	}
	return n << 10, true
}

// splitKey splits "Key:value" at the first colon.
func splitKey(line []byte) (key, value []byte, ok bool) {
	for i, c := range line {
		if c == ':' {
			return line[:i], line[i+1:], true
		}
	}
	return nil, nil, false
}
