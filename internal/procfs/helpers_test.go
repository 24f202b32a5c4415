package procfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture is the recorded /proc tree of this machine (kernel 6.18):
// 15042 is a sleep whose comm is "a b) (c", 15088 a zombie, 2 kthreadd.
const fixture = "testdata/proc"

func fixtureFS(t testing.TB) FS {
	t.Helper()
	abs, err := filepath.Abs(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return NewFS(abs)
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixture, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkFuzzErr is what every fuzz target asserts about a parser's error: it
// is a syntax error that, through withPath, names the file.
func checkFuzzErr(t *testing.T, path string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	werr := withPath(path, err)
	var pe *ParseError
	if !errors.As(werr, &pe) || !errors.Is(werr, ErrSyntax) {
		t.Fatalf("parser error %v (%T) is not a syntax error", err, err)
	}
	if !strings.Contains(werr.Error(), path) {
		t.Fatalf("error %q does not name %s", werr, path)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
