# cgroup.kill ends every process of a subtree at once, including ones
# forked after the write started; cgroup.events shows populated 0.
. /test/lib.sh
mkcg k
mkcg k/a
mkcg k/b
start k/a sleep 1000
start k/a vmtool hog -mb 8
start k/b sh -c 'while :; do sleep 1 & wait; done'
sleep 0.5
n=$(cat $cg/k/a/cgroup.procs $cg/k/b/cgroup.procs | wc -l)
[ "$n" -ge 3 ] || fail "only $n processes started"
echo 1 >$cg/k/cgroup.kill || fail "write cgroup.kill"
wait_for 5 grep -q "populated 0" $cg/k/cgroup.events || fail "k still populated after cgroup.kill: $(cat $cg/k/cgroup.procs $cg/k/*/cgroup.procs)"
echo "PASS: $n processes killed"
