# Fault: the victim is frozen (cgroup.freeze). A fatal signal still reaches
# a frozen task on v2, so the daemon must kill it and its memory must come
# back; expectation: the hog is gone and memory.current of the scope falls
# within 15 s, the bystander lives.
. /test/lib.sh
need daemon scope
mkcg box memory.high 128M memory.max 400M memory.swap.max 0 cgroup.subtree_control +memory
mkcg box/by
mkcg box/ice
start box/by vmtool hog -mb 16; by=$!
start box/ice vmtool hog -mb 150 -rate 40; hog=$!
# Freeze the hog once the scope is within 3 % of memory.high (stalled in
# reclaim): the daemon must see a scope out of memory whose only candidate
# is frozen.
over() { [ "$(cat $cg/box/memory.current)" -gt 130000000 ]; }
wait_for 60 over || fail "hog never reached memory.high: memory.current $(cat $cg/box/memory.current)"
echo 1 >$cg/box/ice/cgroup.freeze
wait_for 10 grep -q "frozen 1" $cg/box/ice/cgroup.events || fail "hog not frozen"
oomguard daemon --scope $cg/box >/tmp/daemon.log 2>&1 &
d=$!
wait_for 15 dead $hog
r=$?
low() { [ "$(cat $cg/box/memory.current)" -lt 60000000 ]; }
wait_for 5 low
r2=$?
kill $d; wait $d 2>/dev/null
echo "--- daemon log"; tail -20 /tmp/daemon.log; echo "---"
[ $r = 0 ] || fail "the frozen hog ($hog) is still alive after 15 s"
[ $r2 = 0 ] || fail "memory of the frozen victim not released: memory.current $(cat $cg/box/memory.current)"
alive $by || fail "bystander died"
echo "PASS"
