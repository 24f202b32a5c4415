package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Listen opens the metrics listener on addr: a loopback "IP:PORT"
// (127.0.0.0/8 or ::1) or "unix:/path". Any other address is refused, so the
// endpoint is never reachable from another host. A stale unix socket file is
// replaced; the socket is made readable by every local user, like the
// loopback port.
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return nil, fmt.Errorf("metrics listen %q: want unix:/absolute/path", addr)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("metrics listen %s: %w", path, err)
		}
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("metrics listen %s: %w", path, err)
		}
		if err := os.Chmod(path, 0o666); err != nil {
			l.Close()
			return nil, fmt.Errorf("metrics listen %s: %w", path, err)
		}
		return l, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("metrics listen %q: not a loopback IP address; metrics are served on loopback or a unix socket only", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	return l, nil
}

// Serve serves the registry at /metrics on l until ctx is done, then shuts
// the server down and closes l. It returns nil after a shutdown by ctx.
func Serve(ctx context.Context, l net.Listener, r *Registry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", r)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/" {
			http.NotFound(w, req)
			return
		}
		fmt.Fprintln(w, "oomguard: metrics at /metrics")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		case <-done:
		}
	}()
	err := srv.Serve(l)
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("metrics server on %s: %w", l.Addr(), err)
}
