# oomguard daemon --dry-run scoped to a cgroup: it must name the hog as the
# victim it would kill, and kill nothing (the kernel's memcg OOM ends the
# hog, and the bystander lives).
. /test/lib.sh
need daemon scope dry-run
mkcg box memory.max 128M memory.swap.max 0
start box vmtool hog -mb 16; shell=$!
sleep 1
oomguard daemon --scope $cg/box --dry-run >/tmp/daemon.log 2>&1 &
d=$!
sleep 2
alive $d || { cat /tmp/daemon.log; fail "daemon exited at start"; }
start box vmtool hog -mb 300 -rate 20; hog=$!
wait_for 30 dead $hog || fail "hog alive after 30 s"
sleep 1
kill $d; wait $d 2>/dev/null
echo "--- daemon log"; tail -30 /tmp/daemon.log; echo "---"
alive $shell || fail "bystander 'shell' died under --dry-run"
[ "$(field $cg/box/memory.events oom_kill)" -ge 1 ] || fail "the hog died, but not by the kernel: the dry run killed it"
grep -q -w "$hog" /tmp/daemon.log || fail "the dry run never named the hog (PID $hog)"
echo "PASS"
