#!/usr/bin/env bash
# Installs everything oomguard's build and tests need on a fresh Debian
# machine: the C toolchain for test programs, and the Go modules.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in gcc libc6-dev make bash coreutils procps util-linux dbus-daemon dpkg; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
for extra in ${OOMGUARD_EXTRA_PACKAGES:-}; do
	dpkg-query -W -f='${Status}' "$extra" 2>/dev/null | grep -q "install ok installed" || need+=("$extra")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "setup: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Optional parts bring their own installers (the VM test bed, packaging).
for part in vm/setup.sh packaging/setup.sh; do
	if [ -f "$part" ]; then bash "$part"; fi
done

if ! command -v go >/dev/null 2>&1; then
	export PATH="$PATH:/usr/local/go/bin"
fi
go mod download
