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

// FuzzParsePID checks ParsePID against strconv.ParseUint: a PID is one to
// ten plain digits with a value above zero.
func FuzzParsePID(f *testing.F) {
	for _, s := range []string{"1", "4194304", "0", "00", "0012", "", "-1", "+1", "12a", "self", "9999999999", "10000000000"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := ParsePID(b)
		want, err := strconv.ParseUint(string(b), 10, 64)
		wantOK := err == nil && len(b) <= 10 && want > 0
		if ok != wantOK || ok && uint64(got) != want {
			t.Errorf("ParsePID(%q) = %d, %v; want %d, %v", b, got, ok, want, wantOK)
		}
	})
}
