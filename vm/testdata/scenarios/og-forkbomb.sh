# oomguard daemon scoped to a cgroup ends a fork bomb inside it (freeze,
# kill), and spares a bystander that is not part of the bomb's family.
. /test/lib.sh
need daemon scope
mkcg bomb pids.max 300 memory.max 256M
start bomb sleep 1000; bystander=$!
oomguard daemon --scope $cg/bomb >/tmp/daemon.log 2>&1 &
d=$!
sleep 2
alive $d || { cat /tmp/daemon.log; fail "daemon exited at start"; }
start bomb sh -c 'exec 2>/dev/null; b() { b | b & }; b; sleep 1000'
t0=$(ms)
gone() { [ "$(cat $cg/bomb/pids.current)" -le 1 ]; }
wait_for 30 gone
r=$?
kill $d; wait $d 2>/dev/null
echo "--- daemon log"; tail -30 /tmp/daemon.log; echo "---"
echo "pids.current=$(cat $cg/bomb/pids.current) pids.events max=$(field $cg/bomb/pids.events max)"
[ $r = 0 ] || fail "the fork bomb is still running after 30 s"
log "bomb ended after $(($(ms) - t0)) ms"
alive $bystander || fail "the bystander ($bystander) was killed with the bomb"
echo "PASS"
