#!/usr/bin/env bash
# Builds and installs oomguard, its configuration and its systemd unit, then
# starts it: as a service where systemd runs, otherwise in the foreground
# (pass --scope DIR or --dry-run through OOMGUARD_ARGS on shared machines).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
bash scripts/setup.sh
make install
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable --now oomguard.service
	systemctl --no-pager status oomguard.service
else
	echo "install: systemd is not running; starting oomguard in the foreground" >&2
	exec /usr/local/sbin/oomguard daemon ${OOMGUARD_ARGS:-}
fi
