# oomguard tree --socket S --json from a running daemon shows a process
# whose parent has exited (dead ancestors are kept).
. /test/lib.sh
need daemon socket
need tree socket json
mkcg box memory.max 128M
oomguard daemon --scope $cg/box --socket /run/og.sock >/tmp/daemon.log 2>&1 &
d=$!
sleep 2
alive $d || { cat /tmp/daemon.log; fail "daemon exited at start"; }
start box sh -c 'sh -c "sleep 300 & echo \$! >/tmp/gc; sleep 1000" & echo $! >/tmp/parent; sleep 0.5; exit 0'
wait_for 5 [ -s /tmp/gc ] || fail "grandchild not started"
gc=$(cat /tmp/gc)
parent=$(cat /tmp/parent)
kill $parent
sleep 1
oomguard tree --socket /run/og.sock --json >/tmp/tree.json 2>/tmp/tree.err || { cat /tmp/tree.err; kill $d; fail "oomguard tree exited $?"; }
kill $d; wait $d 2>/dev/null
head -c 3000 /tmp/tree.json; echo
vmtool json . </tmp/tree.json >/dev/null || fail "oomguard tree --json printed invalid JSON"
grep -q -w "$gc" /tmp/tree.json || fail "the grandchild $gc is not in the tree"
grep -q -w "$parent" /tmp/tree.json || fail "its dead parent $parent is not in the tree"
echo "PASS"
