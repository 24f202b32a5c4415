# The kernel's v2 memcg OOM on memory.max: the hog dies, memory.events
# counts max, oom and oom_kill, and oom.group kills the whole group.
. /test/lib.sh
mkcg max memory.max 64M memory.swap.max 0
start max vmtool hog -mb 128; hog=$!
t0=$(ms)
wait_for 20 dead $hog || fail "hog above memory.max still alive after 20 s"
log "kernel OOM in $(($(ms) - t0)) ms"
cat $cg/max/memory.events
[ "$(field $cg/max/memory.events max)" -gt 0 ] || fail "memory.events max is 0"
[ "$(field $cg/max/memory.events oom)" -gt 0 ] || fail "memory.events oom is 0"
[ "$(field $cg/max/memory.events oom_kill)" = 1 ] || fail "memory.events oom_kill is not 1"
dmesg | grep -q "Memory cgroup out of memory" || fail "no memcg OOM in the kernel log"

# memory.oom.group: the whole cgroup goes.
mkcg grp memory.max 64M memory.swap.max 0 memory.oom.group 1
start grp vmtool hog -mb 8; b=$!
start grp vmtool hog -mb 128; h=$!
wait_for 20 dead $h || fail "oom.group hog still alive"
wait_for 5 dead $b || fail "oom.group bystander survived the group kill"
echo "PASS"
