// Package notify tells the rest of the machine about kills: a D-Bus signal
// on the system bus for every kill, in the spirit of systemd-oomd's Killed,
// and optional desktop notifications to the sessions of the affected users.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// The D-Bus names of the Killed signal.
const (
	// BusName is the well-known name the daemon asks for (best effort: the
	// D-Bus policy in packaging/dbus allows root to own it).
	BusName = "org.oomguard1"
	// Path is the object that emits the signal.
	Path = dbus.ObjectPath("/org/oomguard/Manager1")
	// Interface carries the signal.
	Interface = "org.oomguard.Manager1"
	// Member is the signal: Killed(s cgroup, s reason, au pids, s comm,
	// s trigger).
	Member = "Killed"
	// Signature is the D-Bus signature of the signal's body.
	Signature = "ssauss"
)

// SystemBusAddress is where the system bus listens unless
// DBUS_SYSTEM_BUS_ADDRESS says otherwise.
const SystemBusAddress = "unix:path=/run/dbus/system_bus_socket"

// Kill describes one kill for the signal and the notifications.
type Kill struct {
	// Cgroup is the victim's cgroup path.
	Cgroup string
	// Reason says why, with numbers.
	Reason string
	// PIDs are every process killed, the main victim first.
	PIDs []uint32
	// Comm is the main victim's command name.
	Comm string
	// Trigger names what fired (memory, psi, forkbomb, ...).
	Trigger string
	// UIDs are the owners of the killed processes; desktop notifications go
	// to their sessions.
	UIDs []uint32
	// DryRun marks a kill that was only decided.
	DryRun bool
}

// Options configure a Notifier.
type Options struct {
	// Address of the bus for the Killed signal; "" means the system bus.
	Address string
	// Signal enables the Killed signal.
	Signal bool
	// Desktop enables desktop notifications.
	Desktop bool
	// UserBus returns the session bus address of a user; nil means
	// "unix:path=/run/user/UID/bus", where systemd --user and dbus-broker
	// put it.
	UserBus func(uid uint32) string
	// Timeout bounds each D-Bus exchange; zero means 2 s.
	Timeout time.Duration
	// Queue is how many kills may wait to be announced; more are dropped.
	// Zero means 64.
	Queue int
	// Log receives failures; nil discards.
	Log *slog.Logger
}

// Notifier announces kills from a goroutine of its own, so that a slow or
// absent bus never delays the killer. Create it with New; it is safe for
// concurrent use; Close stops it.
type Notifier struct {
	opts  Options
	conn  *dbus.Conn
	queue chan Kill
	done  chan struct{}
	wg    sync.WaitGroup

	mu      sync.Mutex
	dropped uint64
	onError func(error)
}

// New connects to the bus (when the signal is enabled) and starts the
// announcing goroutine. Connecting fails when there is no bus; the daemon
// then logs it and runs without the signal.
func New(opts Options) (*Notifier, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Queue <= 0 {
		opts.Queue = 64
	}
	if opts.UserBus == nil {
		opts.UserBus = func(uid uint32) string { return fmt.Sprintf("unix:path=/run/user/%d/bus", uid) }
	}
	n := &Notifier{opts: opts, queue: make(chan Kill, opts.Queue), done: make(chan struct{})}
	if opts.Signal {
		conn, err := connect(opts.Address, opts.Timeout)
		if err != nil {
			return nil, err
		}
		n.conn = conn
		// Owning the name is a courtesy for busctl users; signals are
		// delivered by match rules without it.
		conn.RequestName(BusName, dbus.NameFlagDoNotQueue)
	}
	n.wg.Add(1)
	go n.loop()
	return n, nil
}

func connect(address string, timeout time.Duration) (*dbus.Conn, error) {
	if address == "" {
		address = SystemBusAddress
		if a := getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
			address = a
		}
	}
	return dial(address, timeout)
}

// dial connects (authenticates and says Hello) within timeout. dbus.Connect
// has no deadline of its own: a connection that completes after the
// timeout is closed.
func dial(address string, timeout time.Duration) (*dbus.Conn, error) {
	type result struct {
		conn *dbus.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := dbus.Connect(address)
		ch <- result{c, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connect to D-Bus %s: %w", address, r.err)
		}
		return r.conn, nil
	case <-t.C:
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("connect to D-Bus %s: no answer within %s", address, timeout)
	}
}

// OnError sets a function called for every failed or dropped announcement
// (for metrics). Call it before the first Killed.
func (n *Notifier) OnError(fn func(error)) {
	n.mu.Lock()
	n.onError = fn
	n.mu.Unlock()
}

// ErrQueueFull is reported for a kill dropped because too many were waiting.
var ErrQueueFull = errors.New("notify: queue full, kill not announced")

// Killed queues k for the signal and the desktop notifications and returns
// at once.
func (n *Notifier) Killed(k Kill) {
	select {
	case n.queue <- k:
	default:
		n.fail(ErrQueueFull)
	}
}

func (n *Notifier) fail(err error) {
	n.mu.Lock()
	fn := n.onError
	n.mu.Unlock()
	if n.opts.Log != nil {
		n.opts.Log.Warn("notification failed", "err", err)
	}
	if fn != nil {
		fn(err)
	}
}

func (n *Notifier) loop() {
	defer n.wg.Done()
	for {
		select {
		case k := <-n.queue:
			n.announce(k)
		case <-n.done:
			for {
				select {
				case k := <-n.queue:
					n.announce(k)
				default:
					return
				}
			}
		}
	}
}

func (n *Notifier) announce(k Kill) {
	if n.conn != nil {
		if err := n.Emit(k); err != nil {
			n.fail(err)
		}
	}
	if n.opts.Desktop && !k.DryRun {
		for _, uid := range uniq(k.UIDs) {
			if uid == 0 {
				continue
			}
			if err := n.Desktop(uid, k); err != nil {
				n.fail(err)
			}
		}
	}
}

// Emit sends the Killed signal for k now, synchronously.
func (n *Notifier) Emit(k Kill) error {
	if n.conn == nil {
		return errors.New("notify: D-Bus signal disabled")
	}
	pids := k.PIDs
	if pids == nil {
		pids = []uint32{}
	}
	if err := n.conn.Emit(Path, Interface+"."+Member, k.Cgroup, k.Reason, pids, k.Comm, k.Trigger); err != nil {
		return fmt.Errorf("emit %s.%s: %w", Interface, Member, err)
	}
	return nil
}

// Desktop sends one desktop notification about k to the session bus of uid
// (org.freedesktop.Notifications.Notify), best effort: it fails when the
// user has no session bus or no notification server. A session bus admits
// only its owner, so the connection is made as uid (see dialUser), which
// needs CAP_SETUID.
func (n *Notifier) Desktop(uid uint32, k Kill) error {
	addr := n.opts.UserBus(uid)
	conn, err := dialUser(addr, uid, n.opts.Timeout)
	if err != nil {
		return fmt.Errorf("desktop notification to uid %d: %w", uid, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.Timeout)
	defer cancel()
	title := "oomguard killed " + k.Comm
	body := k.Reason
	if len(k.PIDs) > 1 {
		body = fmt.Sprintf("%s (%d processes)", body, len(k.PIDs))
	}
	obj := conn.Object("org.freedesktop.Notifications", "/org/freedesktop/Notifications")
	call := obj.CallWithContext(ctx, "org.freedesktop.Notifications.Notify", 0,
		"oomguard", uint32(0), "dialog-warning", title, strings.TrimSpace(body), []string{},
		map[string]dbus.Variant{"urgency": dbus.MakeVariant(byte(2))}, int32(-1))
	if call.Err != nil {
		return fmt.Errorf("desktop notification to uid %d: %w", uid, call.Err)
	}
	return nil
}

// Close stops the goroutine after the queued kills are announced, and
// disconnects from the bus.
func (n *Notifier) Close() error {
	close(n.done)
	n.wg.Wait()
	if n.conn != nil {
		return n.conn.Close()
	}
	return nil
}

func uniq(v []uint32) []uint32 {
	var out []uint32
	seen := map[uint32]bool{}
	for _, x := range v {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
