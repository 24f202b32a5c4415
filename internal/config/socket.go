package config

import (
	"fmt"
	"os/user"
	"strconv"
)

// GID resolves Group to a numeric group ID (reading the group database for
// a name); -1 when no group is configured.
func (s Socket) GID() (int, error) {
	if s.Group == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(s.Group); err == nil {
		return n, nil
	}
	g, err := user.LookupGroup(s.Group)
	if err != nil {
		return -1, fmt.Errorf("socket group %q: %w", s.Group, err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("socket group %q: bad gid %q", s.Group, g.Gid)
	}
	return n, nil
}
