# Helpers for the guest scenarios; sourced as /test/lib.sh.
cg=/sys/fs/cgroup
PATH=/test/bin:$PATH

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
log() { echo "$(date +%s) $*"; }

# mkcg NAME [FILE VALUE]...: creates cgroup NAME and writes the settings.
mkcg() {
	local g=$1
	shift
	mkdir -p "$cg/$g" || fail "mkdir $cg/$g"
	while [ $# -ge 2 ]; do
		echo "$2" >"$cg/$g/$1" || fail "write $2 to $cg/$g/$1"
		shift 2
	done
}

# start CG CMD...: runs CMD inside cgroup CG in the background; $! is its PID.
start() {
	local g=$1
	shift
	sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg/$g" "$@" &
}

# field FILE KEY: the value of KEY in a flat-keyed file (memory.events, memory.stat …).
field() { awk -v k="$2" '$1 == k { print $2; found = 1 } END { if (!found) print "" }' "$1"; }

alive() { [ -d /proc/$1 ] && ! grep -q '^State:.*Z' /proc/$1/status 2>/dev/null; }

# ms: milliseconds since boot.
ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }

# wait_for SECS CMD...: polls CMD every 50 ms until it succeeds; fails after SECS.
wait_for() {
	local end=$(($(ms) + $1 * 1000))
	shift
	while ! "$@"; do
		[ "$(ms)" -lt "$end" ] || return 1
		usleep 50000
	done
}

dead() { ! alive "$1"; }

# need SUBCOMMAND [FLAG]...: skips unless the oomguard binary implements the
# subcommand (and lists every FLAG in its help).
need() {
	local sub=$1 help
	shift
	command -v oomguard >/dev/null || skip "no oomguard binary in the guest"
	help=$(oomguard "$sub" -h 2>&1)
	case "$help" in
	*"not implemented"*) skip "oomguard $sub is not implemented in this binary" ;;
	*"unknown command"*) skip "oomguard has no $sub subcommand" ;;
	esac
	for f in "$@"; do
		echo "$help" | grep -q -- "-${f#-}" || skip "oomguard $sub has no $f flag"
	done
}
