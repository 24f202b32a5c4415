# Scale: with $SCALE_N extra processes (sharing one mm), how long does a
# ranking scan take (oomguard ps --json through the daemon and alone), and
# how much memory does the daemon (its lineage recorder included) use?
# Expectations: every command finishes, the daemon survives, and ps lists
# the processes.
. /test/lib.sh
need daemon
need ps json
N=${SCALE_N:-30000}
echo 500000 >/proc/sys/kernel/pid_max
echo 500000 >/proc/sys/kernel/threads-max
mkcg many pids.max max
rss() { awk '/^VmRSS/ { print $2 }' /proc/$1/status; }
# The processes exist before the daemon starts (30,000 clones in seconds
# would rightly look like a fork bomb to it): it meets them in its first
# /proc scan.
start many sh -c "manyprocs $N >/tmp/many.out 2>&1"
t0=$(ms)
wait_for 400 grep -qs processes /tmp/many.out || { cat /tmp/many.out; fail "manyprocs did not finish: $(wc -l <$cg/many/cgroup.procs) processes after $(($(ms) - t0)) ms"; }
cat /tmp/many.out
log "created in $(($(ms) - t0)) ms; cgroup has $(wc -l <$cg/many/cgroup.procs) processes"
t0=$(ms)
oomguard daemon --socket /run/og.sock >/tmp/daemon.log 2>&1 &
d=$!
wait_for 120 [ -S /run/og.sock ] || { cat /tmp/daemon.log; fail "daemon socket not up"; }
log "daemon up in $(($(ms) - t0)) ms"
sleep 3
alive $d || { cat /tmp/daemon.log; fail "daemon exited at start"; }
r0=-
r1=$(rss $d)
t0=$(ms); oomguard ps --json --socket /run/og.sock --timeout 300s >/tmp/ps1.json 2>/tmp/ps1.err; e1=$?; t1=$(ms)
t2=$(ms); oomguard ps --json --socket /nonexistent >/tmp/ps2.json 2>/tmp/ps2.err; e2=$?; t3=$(ms)
r2=$(rss $d)
tt0=$(ms); oomguard tree --json --socket /run/og.sock --timeout 300s >/tmp/tree.json 2>/tmp/tree.err; e3=$?; tt1=$(ms)
alive $d; da=$?
echo "scale: processes=$(ls -d /proc/[0-9]* | wc -l)"
echo "scale: daemon VmRSS before=${r0}kB after-spawn=${r1}kB after-ps=${r2}kB"
echo "scale: ps via daemon: exit $e1 in $((t1 - t0)) ms, $(wc -c </tmp/ps1.json) bytes"
echo "scale: ps alone: exit $e2 in $((t3 - t2)) ms, $(wc -c </tmp/ps2.json) bytes"
echo "scale: tree via daemon: exit $e3 in $((tt1 - tt0)) ms, $(wc -c </tmp/tree.json) bytes"
head -c 300 /tmp/ps1.err /tmp/ps2.err /tmp/tree.err
kill $d; wait $d 2>/dev/null
grep -v "kill step" /tmp/daemon.log | tail -5
[ $da = 0 ] || fail "the daemon died with $N processes"
[ $e1 = 0 ] || fail "oomguard ps via the daemon failed"
[ $e2 = 0 ] || fail "oomguard ps alone failed"
[ $e3 = 0 ] || fail "oomguard tree failed"
echo "PASS"
