package procfs

import (
	"strconv"
	"testing"
)

// FuzzParseUint checks ParseUint against strconv.ParseUint: they agree on
// every input of at most 20 bytes, and longer inputs are refused.
func FuzzParseUint(f *testing.F) {
	for _, s := range []string{"0", "42", "18446744073709551615", "18446744073709551616",
		"00000000000000000001", "", "-1", "+1", " 1", "1 ", "1_0", "0x10", "123456789012345678901"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := ParseUint(b)
		if len(b) > 20 {
			if ok {
				t.Errorf("ParseUint(%q) = %d, true; want refused (longer than 20)", b, got)
			}
			return
		}
		want, err := strconv.ParseUint(string(b), 10, 64)
		if ok != (err == nil) || got != want && ok {
			t.Errorf("ParseUint(%q) = %d, %v; strconv: %d, %v", b, got, ok, want, err)
		}
	})
}
