# Kernel memory in the v2 memory.stat: dentries grow slab_reclaimable,
# full pipes grow kernel (or sock/slab), page tables grow pagetables and
# threads grow kernel_stack.
. /test/lib.sh
mkcg km
st() { field $cg/km/memory.stat $1; }
grow() { # grow NAME BEFORE MIN_BYTES
	local now=$(st $1)
	echo "$1: $2 -> $now"
	[ $((now - $2)) -ge $3 ] || fail "$1 grew by $((now - $2)) bytes, want >= $3"
}
for f in slab_reclaimable kernel_stack pagetables; do
	[ -n "$(st $f)" ] || fail "memory.stat lacks $f"
done
kernel_field=kernel
[ -n "$(st kernel)" ] || kernel_field=slab_unreclaimable
b=$(st slab_reclaimable)
start km sh -c "vmtool dentries -n 20000 -hold >/tmp/km.out"
wait_for 30 grep -qs dentries /tmp/km.out || fail "dentries load did not finish"
grow slab_reclaimable $b 4000000
b=$(st $kernel_field)
start km vmtool pipes -n 100; sleep 3; grow $kernel_field $b 4000000
b=$(st pagetables)
start km vmtool pagetables -gb 4; sleep 3; grow pagetables $b 4000000
b=$(st kernel_stack)
start km vmtool threads -n 300; sleep 3; grow kernel_stack $b 3000000
cat $cg/km/memory.stat | head -20
echo "PASS"
