# Fault: the daemon is SIGKILLed while a hog grows, and restarted. The new
# daemon must resynchronise and kill the hog, once: the bystanders live and
# the kernel never has to act.
. /test/lib.sh
need daemon scope
mkcg box memory.max 200M memory.swap.max 0
start box vmtool hog -mb 16; shell=$!
start box vmtool hog -mb 48; editor=$!
sleep 1
oomguard daemon --scope $cg/box >/tmp/daemon1.log 2>&1 &
d=$!
sleep 2
start box vmtool hog -mb 400 -rate 10; hog=$!
half() { [ "$(cat $cg/box/memory.current)" -gt 130000000 ]; }
wait_for 30 half || fail "hog never grew"
kill -9 $d; wait $d 2>/dev/null
log "daemon SIGKILLed at memory.current $(cat $cg/box/memory.current)"
oomguard daemon --scope $cg/box >/tmp/daemon2.log 2>&1 &
d=$!
wait_for 30 dead $hog
r=$?
sleep 1
kill $d; wait $d 2>/dev/null
echo "--- second daemon log"; tail -20 /tmp/daemon2.log; echo "---"
[ $r = 0 ] || fail "the hog outlived the restarted daemon by 30 s"
alive $shell || fail "bystander 'shell' died (double kill?)"
alive $editor || fail "bystander 'editor' died (double kill?)"
[ "$(field $cg/box/memory.events oom_kill)" = 0 ] || fail "the kernel had to kill: the restarted daemon did not act"
echo "PASS"
