package scan

import "strings"

func splitLines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

func splitN3(line string, a, b, c *string) bool {
	f := strings.SplitN(line, ":", 3)
	if len(f) != 3 {
		return false
	}
	*a, *b, *c = f[0], f[1], f[2]
	return true
}
