# A killer watching cgroup "box" must kill the growing hog before the kernel
# does, and leave the two bystanders alone. $KILLER is the killer's command;
# the scope directory is appended.
. /test/lib.sh
[ -n "$KILLER" ] || fail "KILLER is not set"
mkcg box memory.max 160M
start box vmtool hog -mb 16; shell=$!
start box vmtool hog -mb 48; editor=$!
sleep 1
$KILLER $cg/box >/tmp/killer.log 2>&1 &
killer=$!
sleep 2
alive $killer || { cat /tmp/killer.log; fail "killer exited at start"; }
start box vmtool hog -mb 400 -rate 20; hog=$!
t0=$(ms)
wait_for 30 dead $hog || fail "hog still alive after 30 s"
log "hog gone after $(($(ms) - t0)) ms of growth"
sleep 1
kill $killer; wait $killer 2>/dev/null
echo "--- killer log"; tail -20 /tmp/killer.log; echo "---"
cat $cg/box/memory.events
ooms=$(field $cg/box/memory.events oom_kill)
alive $shell || fail "bystander 'shell' ($shell) died"
alive $editor || fail "bystander 'editor' ($editor) died"
[ "$ooms" = 0 ] || fail "the kernel OOM-killed $ooms process(es) in box: the killer did not act first"
echo "PASS: the hog was killed before the kernel acted; bystanders alive"
