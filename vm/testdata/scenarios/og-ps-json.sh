# oomguard ps --scope DIR --json: valid JSON ranking the cgroup's
# processes, the largest (the hog) first.
. /test/lib.sh
need ps scope json
mkcg box memory.max 256M
start box vmtool hog -mb 16; shell=$!
start box vmtool hog -mb 100; hog=$!
start box vmtool hog -mb 48; editor=$!
sleep 2
oomguard ps --scope $cg/box --json >/tmp/ps.json 2>/tmp/ps.err || { cat /tmp/ps.err; fail "oomguard ps exited $?"; }
head -c 3000 /tmp/ps.json; echo
vmtool json . </tmp/ps.json >/dev/null || fail "oomguard ps --json printed invalid JSON"
# The first of the three PIDs to appear in the output must be the hog's.
first=$(grep -o -E '[0-9]+' /tmp/ps.json | grep -x -E "$shell|$hog|$editor" | head -1)
[ -n "$first" ] || fail "none of the scope's PIDs ($shell $hog $editor) appears in the output"
[ "$first" = "$hog" ] || fail "first ranked PID is $first, want the hog $hog"
for p in $shell $editor; do grep -q -w "$p" /tmp/ps.json || fail "PID $p of the scope is missing"; done
echo "PASS"
