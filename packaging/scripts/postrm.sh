#!/bin/sh
# oomguard postrm: forget the unit; on purge, remove the drop-in directory
# (dpkg removes the conffile itself).
set -e
if [ "$1" = purge ]; then
	rm -rf "${DPKG_ROOT:-}/etc/oomguard/oomguard.d"
	rmdir "${DPKG_ROOT:-}/etc/oomguard" 2>/dev/null || true
fi
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
