#!/usr/bin/env bash
# The test command: sets up a fresh machine, then vets and runs every test.
# Real-kernel tests confine their workloads in cgroups they create and remove.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
bash scripts/setup.sh
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "test: not gofmt'd: $unformatted" >&2
	exit 1
fi
go vet ./...
# One package at a time: the real-kernel suites (fork bombs, memory hogs,
# the qemu guest) measure timing and must not starve each other.
go test -p 1 -count=1 -timeout 60m "$@" ./...
# Modules of their own: packaging (builds and checks the .deb) and the
# benchmark programs (built and vetted; they run only when asked).
for mod in packaging bench/scan bench/vm; do
	[ -f "$mod/go.mod" ] || continue
	(cd "$mod" && go vet ./... && go test -count=1 -timeout 20m ./...)
done
