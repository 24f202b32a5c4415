# oomguard ps --scope DIR --json: valid JSON ranking the cgroup's
# processes, the largest (the hog) first.
. /test/lib.sh
need ps scope json
mkcg box memory.max 256M
start box vmtool hog -mb 16 -marker /tmp/m1; shell=$!
start box vmtool hog -mb 100 -marker /tmp/m2; hog=$!
start box vmtool hog -mb 48 -marker /tmp/m3; editor=$!
wait_for 60 [ -e /tmp/m1 -a -e /tmp/m2 -a -e /tmp/m3 ] || fail "the three processes did not finish allocating"
oomguard ps --scope $cg/box --json >/tmp/ps.json 2>/tmp/ps.err || { cat /tmp/ps.err; fail "oomguard ps exited $?"; }
head -c 3000 /tmp/ps.json; echo
vmtool json . </tmp/ps.json >/dev/null || fail "oomguard ps --json printed invalid JSON"
# The first of the three PIDs to appear in the output must be the hog's.
first=$(grep -o -E '[0-9]+' /tmp/ps.json | grep -x -E "$shell|$hog|$editor" | head -1)
[ -n "$first" ] || fail "none of the scope's PIDs ($shell $hog $editor) appears in the output"
[ "$first" = "$hog" ] || fail "first ranked PID is $first, want the hog $hog"
for p in $shell $editor; do grep -q -w "$p" /tmp/ps.json || fail "PID $p of the scope is missing"; done
echo "PASS"
