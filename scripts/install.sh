#!/usr/bin/env bash
# Builds and installs oomguard (binary, configuration, systemd unit, man
# pages, completions), then starts it: as the systemd service where systemd
# runs; otherwise in the foreground with OOMGUARD_ARGS, which defaults to
# --dry-run so that a first run on a shared machine kills nothing. Give it
# OOMGUARD_ARGS="--scope DIR" (or "" with care) to act for real.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
bash scripts/setup.sh
make install
/usr/local/sbin/oomguard config check /etc/oomguard/oomguard.toml
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable --now oomguard.service
	systemctl --no-pager status oomguard.service
else
	args=${OOMGUARD_ARGS---dry-run}
	echo "install: systemd is not running; starting 'oomguard daemon $args' in the foreground (Ctrl-C stops it)" >&2
	# shellcheck disable=SC2086
	exec /usr/local/sbin/oomguard daemon $args
fi
