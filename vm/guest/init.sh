#!/bin/busybox sh
# Guest init of the oomguard VM test bed. The same script is stage 1 (/init
# in the initramfs: modules, optional switch to a disk root) and stage 2
# (/sbin/vm-stage2: mounts, cgroup2, swap, the test, the verdict).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox mkdir -p /proc /sys /dev /tmp /run
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
. /etc/vm/env

say() { echo "vm-init: $*" >/dev/console; }
verdict() {
	# End every other process of the guest (a runaway test, a fork bomb),
	# then write the verdict: the last line on the result port is what the
	# harness reads. Opening the port is retried: it can fail for a moment
	# while a killed writer's close is in progress.
	kill -9 -1 2>/dev/null
	i=0
	until printf '\n@@vm-verdict %s\n' "$1" 2>/dev/null >/dev/ttyS1; do
		i=$((i+1))
		[ $i -lt 50 ] || { say "cannot write the verdict to ttyS1"; break; }
		usleep 100000
	done
	sync
	poweroff -f
	reboot -f
}

if [ "$1" != stage2 ]; then
	for m in $(cat /etc/vm/modules); do
		insmod "/lib/modules/$m" 2>/dev/null || say "insmod $m failed"
	done
	if [ "$VM_ROOT" = disk ]; then
		i=0
		while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do usleep 50000; i=$((i+1)); done
		mkdir -p /newroot
		if ! mount -t ext4 -o noatime /dev/vda /newroot; then
			say "cannot mount the disk root /dev/vda"
			stty -F /dev/ttyS1 raw -echo 2>/dev/null
			verdict "rc=125 no-disk-root"
		fi
		mount --move /dev /newroot/dev
		umount /proc /sys 2>/dev/null
		exec switch_root /newroot /sbin/vm-stage2 stage2
	fi
fi

# Stage 2.
stty -F /dev/ttyS1 raw -echo || say "stty on ttyS1 failed"
mkdir -p /sys/fs/cgroup
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || say "mount cgroup2 failed"
echo "+memory +pids +cpu" >/sys/fs/cgroup/cgroup.subtree_control || say "enabling memory pids cpu in cgroup2 failed"
mount -t tmpfs -o mode=1777,size=64m tmpfs /tmp 2>/dev/null
mount -t tmpfs tmpfs /run 2>/dev/null
if [ "${VM_ZRAM_MB:-0}" -gt 0 ]; then
	if [ -e /sys/block/zram0 ]; then
		echo "${VM_ZRAM_MB}M" >/sys/block/zram0/disksize &&
			mkswap /dev/zram0 >/dev/null && swapon /dev/zram0 || say "zram swap setup failed"
	else
		say "no zram device (module missing?)"
	fi
fi
hostname oomguard-vm
cd /test
# The harness looks for this line to tell a guest that never got this far
# (a hang or crash while booting) from a test that hung (vm.go: tail).
say "running the test"
# The test's stdout goes to the result port, stderr to the console.
sh /test/run.sh >/dev/ttyS1 2>/dev/console </dev/null
rc=$?
# Logs a test registered in /tmp/vm-logs reach the console even when the
# test itself was killed (for example by a killer under test).
for f in $(cat /tmp/vm-logs 2>/dev/null); do
	echo "=== tail of $f" >/dev/console
	tail -40 "$f" >/dev/console 2>&1
done
verdict "rc=$rc"
