package procfs

import "github.com/oomguard/oomguard/internal/policy"

// Pressure reads /proc/pressure/RESOURCE (resource is "memory", "io" or
// "cpu") into p.
func (r *Reader) Pressure(resource string, p *policy.PressureFile) error {
	b, err := r.readRoot("pressure/", resource, true)
	if err != nil {
		return err
	}
	return r.parsed(ParsePressure(b, p))
}

// ParsePressure parses a PSI file, /proc/pressure/* or a cgroup's
// *.pressure: a "some" line and, on kernels that have it, a "full" line, each
// "some avg10=0.00 avg60=0.00 avg300=0.00 total=0". It sets p.Valid, and
// p.HasFull when the full line is there. Errors carry no path; readers add
// theirs with WithPath.
func ParsePressure(b []byte, p *policy.PressureFile) error {
	*p = policy.PressureFile{}
	seen := 0
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b = nextLine(b)
		if len(line) == 0 {
			continue
		}
		kind, rest := nextField(line)
		var dst *policy.Pressure
		switch string(kind) {
		case "some":
			dst, seen = &p.Some, seen|1
		case "full":
			dst, seen = &p.Full, seen|2
			p.HasFull = true
		default:
			return errAt(n, "line is neither \"some\" nor \"full\"")
		}
		got := 0
		for {
			var f []byte
			f, rest = nextField(rest)
			if len(f) == 0 {
				break
			}
			key, value, ok := splitEq(f)
			if !ok {
				return errAt(n, "field is not key=value")
			}
			switch string(key) {
			case "avg10", "avg60", "avg300":
				v, ok := parseDecimal(value)
				if !ok {
					return errAt(n, "average is not a number")
				}
				switch key[3] {
				case '1':
					dst.Avg10, got = v, got|1
				case '6':
					dst.Avg60, got = v, got|2
				default:
					dst.Avg300, got = v, got|4
				}
			case "total":
				v, ok := ParseUint(value)
				if !ok {
					return errAt(n, "total is not a number")
				}
				dst.Total, got = v, got|8
			}
		}
		if got != 15 {
			return errAt(n, "missing avg10, avg60, avg300 or total")
		}
	}
	if seen&1 == 0 {
		return errAt(0, "no \"some\" line")
	}
	p.Valid = true
	return nil
}

// splitEq splits "key=value".
func splitEq(f []byte) (key, value []byte, ok bool) {
	for i, c := range f {
		if c == '=' {
			return f[:i], f[i+1:], true
		}
	}
	return nil, nil, false
}

// WithPath turns an error of one of this package's exported parsers
// (ParsePressure) into a *ParseError naming path.
func WithPath(path string, err error) error { return withPath(path, err) }
