package daemon

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
)

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
