# oomguard kmem --json DIR on v2: valid JSON whose usage matches the
# cgroup's kernel memory (memory.stat kernel) under a pipe load.
. /test/lib.sh
need kmem json
mkcg km
start km vmtool pipes -n 100
sleep 3
kern=$(field $cg/km/memory.stat kernel)
oomguard kmem --json $cg/km >/tmp/kmem.json 2>/tmp/kmem.err || { cat /tmp/kmem.err; fail "oomguard kmem exited $?"; }
kern2=$(field $cg/km/memory.stat kernel)
head -c 3000 /tmp/kmem.json; echo
echo "memory.stat kernel: $kern .. $kern2"
vmtool json . </tmp/kmem.json >/dev/null || fail "oomguard kmem --json printed invalid JSON"
grep -q -i '"usage' /tmp/kmem.json || fail "no usage field in the output"
lo=$((kern * 8 / 10)) hi=$((kern2 * 12 / 10))
match=$(grep -o -E '[0-9]+' /tmp/kmem.json | awk -v lo=$lo -v hi=$hi '$1 >= lo && $1 <= hi { print; exit }')
[ -n "$match" ] || fail "no number in the output within 20 % of memory.stat kernel ($kern)"
echo "PASS: usage $match ~ kernel $kern"
