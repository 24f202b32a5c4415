# A fork bomb under pids.max is contained by cgroup.freeze, then ended with
# cgroup.kill: the way oomguard ends a bomb on v2.
. /test/lib.sh
mkcg bomb pids.max 200 memory.max 128M
start bomb sh -c 'exec 2>/dev/null; b() { b | b & }; b; sleep 100'
hit() { [ "$(field $cg/bomb/pids.events max)" -gt 0 ]; }
wait_for 30 hit || fail "the bomb never hit pids.max: pids.current=$(cat $cg/bomb/pids.current)"
echo "pids.current=$(cat $cg/bomb/pids.current) pids.events max=$(field $cg/bomb/pids.events max)"
t0=$(ms)
echo 1 >$cg/bomb/cgroup.freeze
wait_for 10 grep -q "frozen 1" $cg/bomb/cgroup.events || fail "bomb not frozen after 10 s"
log "frozen in $(($(ms) - t0)) ms"
a=$(cat $cg/bomb/pids.current)
sleep 1
b=$(cat $cg/bomb/pids.current)
[ "$a" = "$b" ] || fail "frozen bomb still changes: pids.current $a -> $b"
echo 1 >$cg/bomb/cgroup.kill
echo 0 >$cg/bomb/cgroup.freeze
wait_for 10 grep -q "populated 0" $cg/bomb/cgroup.events || fail "bomb still populated after kill+thaw"
log "bomb of $a processes ended in $(($(ms) - t0)) ms"
echo "PASS"
