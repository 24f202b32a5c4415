#!/usr/bin/env bash
# Installs what the VM test bed (package vm) needs on a fresh Debian machine.
#
# qemu is installed as a normal package. The guest kernel, busybox and
# earlyoom are NOT installed on the host: their .deb files are downloaded and
# unpacked (dpkg -x) into the cache directory, so the host's boot and
# services are never touched (earlyoom, installed, would start a killer on
# the host). Idempotent: everything already present is skipped.
#
# Cache directory: $OOMGUARD_VM_CACHE, else /var/tmp/oomguard-vm.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

cache=${OOMGUARD_VM_CACHE:-/var/tmp/oomguard-vm}
debs=$cache/debs
mkdir -p "$debs"

updated=0
update_once() {
	if [ "$updated" = 0 ]; then
		apt-get update -qq
		updated=1
	fi
}

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# Host tools: qemu, mke2fs for disk roots, xz to extract vmlinux (the cpio
# archives are written in Go).
need=()
for pkg in qemu-system-x86 e2fsprogs xz-utils; do
	installed "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "vm/setup: installing ${need[*]}" >&2
	update_once
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# unpack PKG: downloads PKG's .deb and unpacks it under $debs/PKG, once.
unpack() {
	local pkg=$1 dir=$debs/$1
	if [ -f "$dir/.done" ]; then
		return 0
	fi
	echo "vm/setup: unpacking $pkg into $dir" >&2
	local tmp
	tmp=$(mktemp -d "$debs/.dl.XXXXXX")
	# Every step is checked by hand: callers use "unpack X || ...", where
	# set -e does not apply, and a failed download must not be marked done.
	if ! (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
		update_once
		if ! (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null); then
			rm -rf "$tmp"
			return 1
		fi
	fi
	rm -rf "$dir"
	if ! mkdir -p "$dir" || ! dpkg -x "$tmp"/*.deb "$dir"; then
		rm -rf "$tmp" "$dir"
		return 1
	fi
	rm -rf "$tmp"
	touch "$dir/.done"
}

# The guest kernel: linux-image-amd64 is a metapackage; resolve the real one.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kpkg" ]; then
	update_once
	kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
unpack "$kpkg"
ln -sfn "$kpkg" "$debs/kernel"

unpack busybox-static
# earlyoom and its shared libraries, for the side-by-side benchmark. Optional.
unpack earlyoom || echo "vm/setup: earlyoom not available; the benchmark will skip it" >&2
# oomd (Debian's build of Facebook's oomd), for the side-by-side benchmark,
# with those of its libraries the host lacks (the bench copies the rest from
# the host, as for earlyoom). Optional.
if unpack oomd; then
	for dep in $(apt-cache depends oomd 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^lib/ {print $2}'); do
		installed "$dep" || unpack "$dep" || echo "vm/setup: $dep not available; the benchmark will skip oomd" >&2
	done
else
	echo "vm/setup: oomd not available; the benchmark will skip it" >&2
fi
