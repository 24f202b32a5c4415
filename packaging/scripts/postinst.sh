#!/bin/sh
# oomguard postinst: enable and start the service on first installation,
# restart it on upgrade, when systemd runs; nothing inside a chroot or an
# offline root (DPKG_ROOT).
set -e
if [ -n "${DPKG_ROOT:-}" ] || [ ! -d /run/systemd/system ]; then
	exit 0
fi
systemctl daemon-reload >/dev/null 2>&1 || true
if [ "$1" = configure ]; then
	if ! /usr/sbin/oomguard config check --dropins /etc/oomguard/oomguard.d /etc/oomguard/oomguard.toml >/dev/null; then
		echo "oomguard: the configuration does not validate; not (re)starting the service" >&2
		exit 0
	fi
	if [ -z "${2:-}" ]; then
		systemctl enable --now oomguard.service >/dev/null 2>&1 || true
	else
		systemctl try-restart oomguard.service >/dev/null 2>&1 || true
	fi
fi
exit 0
