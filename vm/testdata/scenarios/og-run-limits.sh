# oomguard run --memory-max and --pids-max through cgroup v2: the command
# runs in a cgroup with those limits, a hog above the limit is OOM-killed
# there, and a fork loop cannot pass pids.max.
. /test/lib.sh
need run memory-max pids-max
# Like systemd-run --scope, start oomguard run in a cgroup of its own: cgroup
# v2 passes controllers only through cgroups that hold no process, and this
# scenario's own cgroup holds its shell.
RS=/sys/fs/cgroup/og-run-scope
mkdir -p $RS
inscope() { sh -c 'echo $$ > '"$RS"'/cgroup.procs && exec "$@"' sh "$@"; }
out=$(inscope oomguard run --memory-max 64M --pids-max 50 -- sh -c 'p=$(cut -d: -f3 /proc/self/cgroup); echo "cgroup $p"; cat /sys/fs/cgroup$p/memory.max /sys/fs/cgroup$p/pids.max' 2>&1)
echo "$out"
echo "$out" | grep -q -x 67108864 || fail "memory.max of the run's cgroup is not 64M"
echo "$out" | grep -q -x 50 || fail "pids.max of the run's cgroup is not 50"
inscope oomguard run --memory-max 64M -- vmtool hog -mb 200 -rate 50
r=$?
echo "hog under run --memory-max 64M exited $r"
[ $r != 0 ] || fail "a 200 MiB hog under --memory-max 64M exited 0"
dmesg | tail -5 | grep -q "Memory cgroup out of memory" || fail "no memcg OOM for the run's cgroup in the kernel log"
n=$(inscope oomguard run --pids-max 50 -- sh -c 'p=$(cut -d: -f3 /proc/self/cgroup); (for i in $(seq 100); do sleep 5 & done) 2>/dev/null; read c < /sys/fs/cgroup$p/pids.current; echo $c' 2>/tmp/run-pids.err)
echo "pids.current with 100 sleeps under --pids-max 50: $n"
[ -n "$n" ] || fail "oomguard run --pids-max 50 printed nothing: $(cat /tmp/run-pids.err)"
[ "$n" -le 50 ] || fail "pids.current $n passed --pids-max 50"
ls $RS | grep -q oomguard-run && fail "oomguard run left a cgroup behind in $RS: $(ls $RS)"
rmdir $RS || fail "$RS is not empty after oomguard run ended"
echo "PASS"
