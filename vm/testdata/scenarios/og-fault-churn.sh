# Fault: cgroups are created and removed, and processes come and go, while
# the daemon scans (cgroups vanish mid-scan, /proc entries vanish mid-read).
# The daemon must survive 10 s of churn and then still kill a hog.
. /test/lib.sh
need daemon scope
mkcg box memory.max 160M memory.swap.max 0 cgroup.subtree_control "+memory +pids"
oomguard daemon --scope $cg/box >/tmp/daemon.log 2>&1 &
d=$!
sleep 1
mkcg box/churn
start box/churn sh -c 'i=0; while :; do i=$((i+1)); mkdir /sys/fs/cgroup/box/c$i; rmdir /sys/fs/cgroup/box/c$((i-1)) 2>/dev/null; done'
churn1=$!
mkcg box/p
start box/p sh -c 'while :; do /bin/true & /bin/true & wait; done'; churn2=$!
sleep 10
alive $d || { cat /tmp/daemon.log; fail "the daemon died during cgroup and process churn"; }
kill $churn1 $churn2
mkcg box/h
start box/h vmtool hog -mb 16; by=$!
start box/h vmtool hog -mb 400 -rate 20; hog=$!
wait_for 30 dead $hog
r=$?
kill $d; wait $d 2>/dev/null
echo "--- daemon log"; tail -20 /tmp/daemon.log; echo "---"
[ $r = 0 ] || fail "hog alive 30 s after the churn"
[ "$(field $cg/box/memory.events oom_kill)" = 0 ] || fail "the kernel killed, not the daemon"
alive $by || fail "bystander died"
echo "PASS"
