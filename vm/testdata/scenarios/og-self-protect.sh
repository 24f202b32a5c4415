# The daemon protects itself where it may (root with CAP_SYS_RESOURCE in
# the guest): oom_score_adj -1000 and locked memory.
. /test/lib.sh
need daemon scope
mkcg box memory.max 128M
oomguard daemon --scope $cg/box >/tmp/daemon.log 2>&1 &
d=$!
protected() {
	adj=$(cat /proc/$d/oom_score_adj)
	lck=$(awk '/^VmLck/ { print $2 }' /proc/$d/status)
	[ "$adj" = -1000 ] && [ "${lck:-0}" -gt 0 ]
}
wait_for 20 protected
alive $d || { cat /tmp/daemon.log; fail "daemon exited at start"; }
echo "oom_score_adj=$adj VmLck=${lck}kB"
grep -E '^(VmRSS|VmLck|Threads)' /proc/$d/status
kill $d; wait $d 2>/dev/null
tail -10 /tmp/daemon.log
[ "$adj" = -1000 ] || fail "daemon's oom_score_adj is $adj, want -1000"
[ "${lck:-0}" -gt 0 ] || fail "daemon has no locked memory (VmLck 0): not mlocked"
echo "PASS"
