# memory.high throttles instead of killing: memory.events high grows, the
# hog survives, usage stays near the limit, and memory.pressure rises.
. /test/lib.sh
mkcg high memory.high 48M memory.max 256M memory.swap.max 0
start high vmtool hog -mb 64 -loop; hog=$!
sleep 4
alive $hog || fail "hog under memory.high died"
cat $cg/high/memory.events
high=$(field $cg/high/memory.events high)
[ "$high" -gt 0 ] || fail "memory.events high is 0"
[ "$(field $cg/high/memory.events oom_kill)" = 0 ] || fail "memory.high caused an OOM kill"
cur=$(cat $cg/high/memory.current)
echo "memory.current=$cur"
cat $cg/high/memory.pressure
some=$(awk '/^some/ { split($5, a, "="); print a[2] }' $cg/high/memory.pressure)
[ "$some" -gt 0 ] || fail "memory.pressure total is 0 under memory.high throttling"
echo "PASS"
