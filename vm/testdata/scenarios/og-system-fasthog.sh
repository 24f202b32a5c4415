# System-wide, on a disk root with no swap: oomguard daemon unscoped (the
# guest is the project's own) is the machine's OOM killer. A fast hog must
# die by the daemon before the kernel's global OOM, the bystanders live,
# and the daemon, mlocked, keeps running while memory is nearly exhausted.
. /test/lib.sh
need daemon
mkcg by
mkcg wl
start by vmtool hog -mb 16 -touch-every 1s; shell=$!
start by vmtool hog -mb 64 -touch-every 1s; editor=$!
sleep 1
echo /tmp/daemon.log >>/tmp/vm-logs
oomguard daemon >/tmp/daemon.log 2>&1 &
d=$!
sleep 2
alive $d || { cat /tmp/daemon.log; fail "daemon exited at start"; }
start wl vmtool hog -mb 2000; hog=$!
wait_for 60 dead $hog
r=$?
sleep 1
alive $d; dalive=$?
kill $d; wait $d 2>/dev/null
echo "--- daemon log"; tail -20 /tmp/daemon.log; echo "---"
[ $r = 0 ] || fail "the hog is alive after 60 s"
[ $dalive = 0 ] || fail "the daemon died under memory exhaustion"
dmesg | grep -q "Out of memory: Killed process" && fail "the kernel's global OOM killer had to act: $(dmesg | grep 'Killed process')"
alive $shell || fail "bystander 'shell' died"
alive $editor || fail "bystander 'editor' died"
echo "PASS"
