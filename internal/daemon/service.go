package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// notifyReady tells systemd (Type=notify) that the daemon is up. Without
// $NOTIFY_SOCKET it does nothing.
func notifyReady(log *slog.Logger) {
	if _, err := sddaemon.SdNotify(false, sddaemon.SdNotifyReady+"\nSTATUS=watching memory"); err != nil {
		log.Warn("sd_notify READY failed", "err", err)
	}
}

// chgrpSocket gives the control socket to group (a name or a GID), so that
// the group's members may use it. An empty group leaves it root's.
func chgrpSocket(path, group string) error {
	if group == "" {
		return nil
	}
	gid, err := strconv.Atoi(group)
	if err != nil {
		g, lerr := user.LookupGroup(group)
		if lerr != nil {
			return fmt.Errorf("control socket %s: group %q: %w", path, group, lerr)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	if err := os.Chown(path, -1, gid); err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	return nil
}
