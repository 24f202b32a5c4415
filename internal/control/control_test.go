package control

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestSlowHandler: the server's I/O deadline bounds reading the request and
// writing the response, not the handler between them (a ps of 30,000
// processes took longer than it in the VM, and the answer was lost); a
// client that stops waiting first says after how long, and what to raise.
func TestSlowHandler(t *testing.T) {
	old := ioTimeout
	ioTimeout = 100 * time.Millisecond
	defer func() { ioTimeout = old }()
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(sock, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(nil)
	srv.Handle("slow", func(context.Context, json.RawMessage) (any, error) {
		time.Sleep(300 * time.Millisecond)
		return "done", nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, l)

	long, cancelLong := context.WithTimeout(ctx, 5*time.Second)
	defer cancelLong()
	var out string
	if err := Call(long, sock, "slow", nil, &out); err != nil || out != "done" {
		t.Fatalf("slow handler, patient client: %q, %v", out, err)
	}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	err = Call(short, sock, "slow", nil, &out)
	if err == nil || !strings.Contains(err.Error(), "no answer to slow within ") || !strings.Contains(err.Error(), "--timeout") {
		t.Fatalf("slow handler, impatient client: %v", err)
	}
}
