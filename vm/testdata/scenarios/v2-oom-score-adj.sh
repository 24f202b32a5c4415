# Self-protection: root in the guest may set oom_score_adj -1000, and the
# kernel then spares that process, killing the other one even though the
# protected process is larger.
. /test/lib.sh
mkcg adj memory.max 96M memory.swap.max 0
start adj sh -c 'echo -1000 >/proc/self/oom_score_adj && exec vmtool hog -mb 56'; big=$!
sleep 1
[ "$(cat /proc/$big/oom_score_adj)" = -1000 ] || fail "oom_score_adj -1000 not set: $(cat /proc/$big/oom_score_adj)"
start adj vmtool hog -mb 200 -rate 50; small=$!
wait_for 20 dead $small || fail "unprotected hog still alive"
alive $big || fail "the protected process was killed"
echo "PASS"
