package control

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCallRoundTrip(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(sock, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(sock)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	srv := NewServer(nil)
	srv.Handle("echo", func(ctx context.Context, p json.RawMessage) (any, error) {
		var in struct{ N int }
		if err := json.Unmarshal(p, &in); err != nil {
			return nil, err
		}
		return map[string]int{"n": in.N * 2}, nil
	})
	srv.Handle("fail", func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("boom") })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, l)

	var out struct{ N int }
	if err := Call(ctx, sock, "echo", map[string]int{"N": 21}, &out); err != nil || out.N != 42 {
		t.Fatalf("echo: %+v, %v", out, err)
	}
	if err := Call(ctx, sock, "fail", nil, nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("fail: %v", err)
	}
	if err := Call(ctx, sock, "nope", nil, nil); err == nil || !strings.Contains(err.Error(), `unknown method "nope"`) {
		t.Fatalf("unknown method: %v", err)
	}
	if _, err := Listen(sock, 0o600); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
}

func TestCallNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	if err := Call(context.Background(), sock, "status", nil, nil); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("Call with no daemon: %v, want ErrNoDaemon", err)
	}
}
