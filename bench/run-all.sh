#!/usr/bin/env bash
# Reruns every benchmark, one after the other so they do not disturb each
# other, then gathers their reports into docs/benchmarks.md. Needs root and
# takes well over an hour (the VM scenarios dominate). Pass the names of the
# benchmarks to run only those: killlatency idle scan forkbomb kmem run vm.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
all=(killlatency idle scan forkbomb kmem run vm)
want=("${@:-${all[@]}}")
for b in "${want[@]}"; do
	echo "== $b" >&2
	case "$b" in
	killlatency) go test ./bench/killlatency -run TestKillLatency -count=1 -v -timeout 60m -args -write ;;
	idle) go test ./bench/idle -run TestIdleCost -count=1 -v -args -write ;;
	scan) (cd bench/scan && go run . -out ../../docs/benchmarks/scan.md) ;;
	forkbomb) OOMGUARD_BENCH=1 go test ./bench/forkbomb -run TestForkbombBench -count=1 -v -timeout 90m ;;
	kmem) go run ./bench/kmem -n 500 -rounds 40 -out docs/benchmarks/kmem.md ;;
	run) go run ./bench/run -out docs/benchmarks/run.md ;;
	vm) (cd bench/vm && go run . -reps 3) ;;
	*) echo "run-all: unknown benchmark $b (want one of ${all[*]})" >&2; exit 2 ;;
	esac
done
bash bench/collect.sh
