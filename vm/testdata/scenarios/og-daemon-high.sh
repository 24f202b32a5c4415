# oomguard daemon scoped to a cgroup whose memory.high throttles a hog (the
# kernel never kills under memory.high: the hog would stall for ever). The
# daemon must see the pressure (memory.events high, PSI) and kill the hog,
# and only the hog, within 30 s.
. /test/lib.sh
need daemon scope
mkcg box memory.high 128M memory.max 400M memory.swap.max 0
start box vmtool hog -mb 16; shell=$!
start box vmtool hog -mb 48; editor=$!
sleep 1
oomguard daemon --scope $cg/box >/tmp/daemon.log 2>&1 &
d=$!
sleep 2
alive $d || { cat /tmp/daemon.log; fail "daemon exited at start"; }
start box vmtool hog -mb 300 -rate 20; hog=$!
t0=$(ms)
wait_for 30 dead $hog
r=$?
kill $d; wait $d 2>/dev/null
echo "--- daemon log"; tail -30 /tmp/daemon.log; echo "---"
cat $cg/box/memory.events
[ $r = 0 ] || fail "the hog throttled by memory.high is still alive after 30 s"
log "hog killed after $(($(ms) - t0)) ms of growth"
alive $shell || fail "bystander 'shell' ($shell) died"
alive $editor || fail "bystander 'editor' ($editor) died"
[ "$(field $cg/box/memory.events oom_kill)" = 0 ] || fail "the kernel killed, not the daemon"
echo "PASS"
