# A stand-in OOM killer for the harness self-test: when the scope's
# memory.current passes 85 % of memory.max it SIGKILLs a process chosen by
# RSS rank: RANK=1 the largest (correct), RANK=2 the largest bystander
# (deliberately broken).
scope=$1
rank=${RANK:-1}
while :; do
	cur=$(cat $scope/memory.current)
	max=$(cat $scope/memory.max)
	if [ $((cur * 100 / max)) -ge 85 ]; then
		victim=$(for p in $(cat $scope/cgroup.procs); do
			echo "$(awk '/^VmRSS/ { print $2 }' /proc/$p/status 2>/dev/null) $p"
		done | sort -n | tail -$rank | head -1 | cut -d' ' -f2)
		if [ -n "$victim" ]; then
			kill -9 $victim && echo "fake-killer: killed $victim at $cur of $max"
		fi
		sleep 1
	fi
	usleep 20000
done
