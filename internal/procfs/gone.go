package procfs

import (
	"errors"

	"golang.org/x/sys/unix"
)

// IsGone reports whether err says the process whose file was read no longer
// exists: ENOENT when its directory is gone, ESRCH when it died between open
// and read.
func IsGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}
