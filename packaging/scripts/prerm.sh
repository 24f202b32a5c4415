#!/bin/sh
# oomguard prerm: stop the service before removal.
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	systemctl disable --now oomguard.service >/dev/null 2>&1 || true
fi
exit 0
