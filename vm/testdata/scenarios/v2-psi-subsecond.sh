# PSI triggers with sub-second windows on a cgroup's memory.pressure and
# on /proc/pressure/memory fire under memory.high throttling. Needs
# CAP_SYS_RESOURCE (root in the guest) for windows that are not multiples
# of 2 s.
. /test/lib.sh
mkcg psi memory.high 32M memory.max 256M memory.swap.max 0
vmtool psi -file $cg/psi/memory.pressure -trigger "some 50000 500000" -timeout 20s -ready /tmp/armed1 >/tmp/psi1 2>&1 &
p1=$!
vmtool psi -file /proc/pressure/memory -trigger "some 50000 500000" -timeout 20s -ready /tmp/armed2 >/tmp/psi2 2>&1 &
p2=$!
wait_for 5 [ -e /tmp/armed1 -a -e /tmp/armed2 ] || { cat /tmp/psi1 /tmp/psi2; fail "triggers not armed"; }
start psi vmtool hog -mb 96 -loop; hog=$!
wait $p1; r1=$?
wait $p2; r2=$?
cat /tmp/psi1 /tmp/psi2
[ $r1 = 0 ] || fail "no event from the cgroup's 500 ms memory trigger"
[ $r2 = 0 ] || fail "no event from the system's 500 ms memory trigger"
echo "PASS"
