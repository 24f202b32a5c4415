// Package control is the daemon's local control socket: a small, versioned
// JSON request/response protocol over a unix stream socket, one request per
// connection.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// APIVersion is the protocol version carried in every request and response.
const APIVersion = 1

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/oomguard/oomguard.sock"

// Request is one call: a method name and its parameters.
type Request struct {
	Version int             `json:"version"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// Response carries either a result or an error message.
type Response struct {
	Version int             `json:"version"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// Handler answers one method. params is nil when the request had none.
type Handler func(ctx context.Context, params json.RawMessage) (any, error)

// Server serves handlers on a unix socket. Register handlers with Handle
// before Serve; Handle is safe to call concurrently with Serve.
type Server struct {
	mu       sync.RWMutex
	handlers map[string]Handler
	log      *slog.Logger
}

// NewServer returns a server with no handlers. A nil logger discards logs.
func NewServer(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{handlers: map[string]Handler{}, log: log}
}

// Handle registers h for method, replacing any earlier handler.
func (s *Server) Handle(method string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[method] = h
}

// Listen creates the socket at path with mode perm (0600 for root-only;
// 0660 with a group to share it) and removes a stale socket left by a dead
// daemon. It refuses to take over a socket a live daemon still answers on.
func Listen(path string, perm os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another daemon is already listening there", path)
	}
	os.Remove(path)
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, perm); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return l, nil
}

// Serve answers connections on l until ctx is done, then closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("control socket: accept: %w", err)
		}
		go s.serveConn(ctx, c)
	}
}

// ioTimeout bounds reading a request and writing its response, each; the
// handler in between takes what it takes (a ps of tens of thousands of
// processes on a slow machine, seconds). It is also Call's wait when its
// context has no deadline.
var ioTimeout = 10 * time.Second

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	var req Request
	resp := Response{Version: APIVersion}
	if err := json.NewDecoder(io.LimitReader(c, 1<<20)).Decode(&req); err != nil {
		resp.Error = fmt.Sprintf("bad request: %v", err)
	} else if req.Version != APIVersion {
		resp.Error = fmt.Sprintf("unsupported API version %d (daemon speaks %d)", req.Version, APIVersion)
	} else {
		s.mu.RLock()
		h := s.handlers[req.Method]
		s.mu.RUnlock()
		if h == nil {
			resp.Error = fmt.Sprintf("unknown method %q", req.Method)
		} else if res, err := h(ctx, req.Params); err != nil {
			resp.Error = err.Error()
		} else if resp.Result, err = json.Marshal(res); err != nil {
			resp.Error = fmt.Sprintf("encode result of %s: %v", req.Method, err)
		}
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		s.log.Debug("control: write response", "err", err)
	}
}

// ErrNoDaemon is returned by Call when nothing listens on the socket.
var ErrNoDaemon = errors.New("no daemon is running there")

// Call sends one request to the daemon at socket and decodes its result into
// result (which may be nil). It wraps ErrNoDaemon when nothing listens.
func Call(ctx context.Context, socket, method string, params, result any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("control socket %s: %w", socket, ErrNoDaemon)
		}
		return fmt.Errorf("control socket %s: %w", socket, err)
	}
	defer c.Close()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(ioTimeout)
	}
	c.SetDeadline(dl)
	wait := time.Until(dl).Round(time.Millisecond)
	req := Request{Version: APIVersion, Method: method}
	if params != nil {
		if req.Params, err = json.Marshal(params); err != nil {
			return fmt.Errorf("encode %s params: %w", method, err)
		}
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fmt.Errorf("control socket %s: send %s: %w", socket, method, err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("control socket %s: no answer to %s within %v (a daemon watching tens of thousands of processes on a slow machine may need longer: --timeout): %w",
				socket, method, wait, err)
		}
		return fmt.Errorf("control socket %s: read %s response: %w", socket, method, err)
	}
	if resp.Error != "" {
		return fmt.Errorf("daemon at %s: %s: %s", socket, method, resp.Error)
	}
	if result != nil {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("decode %s result: %w", method, err)
		}
	}
	return nil
}
