package procfs

// OOMScoreAdj reads /proc/PID/oom_score_adj, a number from -1000 to 1000.
func (r *Reader) OOMScoreAdj(pid int) (int, error) {
	b, err := r.readPID(pid, "oom_score_adj", 0, true)
	if err != nil {
		return 0, err
	}
	v, err := parseOOMScoreAdj(b)
	return v, r.parsed(err)
}

// parseOOMScoreAdj parses one signed number and a newline.
func parseOOMScoreAdj(b []byte) (int, error) {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	v, ok := parseInt(b)
	if !ok {
		return 0, errAt(1, "not a number")
	}
	if v < -1000 || v > 1000 {
		return 0, errAt(1, "outside -1000…1000")
	}
	return int(v), nil
}
